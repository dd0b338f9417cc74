#!/usr/bin/env node
// Touch benchmark driver (one mode per call; `run` calls it). Talks to one
// server on loopback with the HTTP surface Weir and Prisma Streams share,
// samples the server process through /proc, and prints one JSON object.
//
//   node touchbench.mjs selftest
//   node touchbench.mjs waiters --port P --pid PID [--waiters 10000 --secs 20 --warmup 5 --rate 1000 ...]
//   node touchbench.mjs append  --port P --pid PID --case plain|state|touch|touchhot [--appenders 32 --batch 10 --secs 8]
//   node touchbench.mjs streams --port P --pid PID [--streams 100]
import { Conn, jreq } from "../lib/http.mjs";
import { PROFILE_TOUCH, must, createStream, activate, meta, pickMeta } from "./lib/api.mjs";
import { waitersMode } from "./lib/waiters.mjs";
import * as K from "./lib/keys.mjs";
import { parseArgs, sleep, nowMs, cpuSecs, memOf, RssSampler, pct, randInt, coreTimes, coreBusy, foreignTicks, foreignPct } from "../lib/util.mjs";

const A = parseArgs(process.argv.slice(2));
const mode = A._[0];
const HOST = A.host || "127.0.0.1";
const PORT = Number(A.port || 0);
const PID = Number(A.pid || 0);
const num = (k, d) => (A[k] !== undefined ? Number(A[k]) : d);

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// ------------------------------------------------------------------ append
// Benchmark 2: append throughput, plain JSON / state-protocol / touch with
// 1,000 active templates (idle, or hot through a few fine waiters).
const ENTITIES = 6;
const FIELDS = 10;
const DOMAIN = 20;
function thousandTemplates() {
  const combos = [];
  for (let a = 0; a < FIELDS; a++) combos.push([a]);
  for (let a = 0; a < FIELDS; a++) for (let b = a + 1; b < FIELDS; b++) combos.push([a, b]);
  for (let a = 0; a < FIELDS; a++)
    for (let b = a + 1; b < FIELDS; b++) for (let c = b + 1; c < FIELDS; c++) combos.push([a, b, c]);
  const per = Math.ceil(1000 / ENTITIES); // 167 (<= 256, Prisma's per-entity cap)
  const t = [];
  for (let e = 0; e < ENTITIES && t.length < 1000; e++)
    for (let i = 0; i < per && t.length < 1000; i++)
      t.push({ entity: `e${e}`, fields: combos[i].map((f) => ({ name: `f${f}`, encoding: "string" })) });
  return t;
}

function changeRecord() {
  const e = randInt(ENTITIES);
  const old = {};
  for (let f = 0; f < FIELDS; f++) old[`f${f}`] = `v${randInt(DOMAIN)}`;
  const val = { ...old };
  const f = randInt(FIELDS);
  val[`f${f}`] = `v${(Number(old[`f${f}`].slice(1)) + 1 + randInt(DOMAIN - 1)) % DOMAIN}`;
  return { type: `e${e}`, key: `r${randInt(100000)}`, value: val, old_value: old, headers: { operation: "update" } };
}

async function appendMode() {
  const CASE = A.case || "state";
  const APPENDERS = num("appenders", 32);
  const BATCH = num("batch", 10);
  const SECS = num("secs", 8);
  const WARM = num("warmup", 2);
  const HOT = num("hot-waiters", 8);
  const STREAM = `tp-${CASE}`;
  const ctl = new Conn(HOST, PORT);
  let templates = 0;
  let tids = [];
  const specs = thousandTemplates();
  if (CASE === "plain") await createStream(ctl, STREAM, null);
  else if (CASE === "state") await createStream(ctl, STREAM, { apiVersion: "durable.streams/profile/v1", profile: { kind: "state-protocol" } });
  else if (CASE === "touch0") await createStream(ctl, STREAM, PROFILE_TOUCH());
  else if (CASE === "touch" || CASE === "touchhot") {
    await createStream(ctl, STREAM, PROFILE_TOUCH({ templates: { activationRateLimitPerMinute: 0 } }));
    tids = await activate(ctl, STREAM, specs);
    templates = tids.length;
  } else throw new Error(`unknown case ${CASE}`);

  // Hot: HOT long-poll fine waiters that together name every template in
  // templateIdsUsed (so all are hot) and wait on one watch key each.
  const hot = [];
  let hotAnswers = 0;
  let hotErrors = 0;
  let stopping = false;
  if (CASE === "touchhot") {
    const per = Math.ceil(tids.length / HOT);
    for (let h = 0; h < HOT; h++) {
      const mine = tids.slice(h * per, (h + 1) * per);
      const spec = specs[h * per];
      const tidB = K.templateId(spec.entity, K.sortFields(spec.fields.map((f) => f.name)));
      const key = K.hex16(K.watchKey(tidB, spec.fields.map(() => "v0")));
      const w = { conn: new Conn(HOST, PORT), cursor: "now" };
      const loop = () => {
        if (stopping) return;
        const body = JSON.stringify({ cursor: w.cursor, keys: [key], interestMode: "fine", templateIdsUsed: mine, timeoutMs: 4000 });
        w.conn.request("POST", `/v1/stream/${STREAM}/touch/wait`, body).then(
          (r) => {
            if (stopping) return;
            hotAnswers++;
            if (r.status === 200) w.cursor = JSON.parse(r.body.toString()).cursor;
            else hotErrors++;
            loop();
          },
          () => {
            if (!stopping) {
              hotErrors++;
              setTimeout(loop, 200);
            }
          },
        );
      };
      hot.push(w);
      loop();
    }
    await sleep(500);
  }

  const bodies = Array.from({ length: 64 }, () => JSON.stringify(Array.from({ length: BATCH }, changeRecord)));
  let measuring = false;
  let stop = false;
  let acked = 0;
  let records = 0;
  let errors = 0;
  const lat = [];
  async function appender(i) {
    const c = new Conn(HOST, PORT);
    let k = i;
    while (!stop) {
      const t0 = nowMs();
      try {
        const r = await c.request("POST", `/v1/stream/${STREAM}`, bodies[k++ % bodies.length]);
        if (r.status >= 200 && r.status < 300) {
          if (measuring) {
            acked++;
            records += BATCH;
            lat.push(nowMs() - t0);
          }
        } else {
          errors++;
          if (errors <= 3) console.error(`append HTTP ${r.status}: ${r.body.toString().slice(0, 200)}`);
        }
      } catch (e) {
        errors++;
        if (errors <= 3) console.error(`append error: ${e.message}`);
        await sleep(50);
      }
    }
    c.destroy();
  }
  const tasks = Array.from({ length: APPENDERS }, (_, i) => appender(i));
  await sleep(WARM * 1000);
  const cpu0 = cpuSecs(PID);
  const cores0 = coreTimes();
  const foreign0 = foreignTicks([PID, process.pid]);
  const sampler = new RssSampler(PID, 250);
  measuring = true;
  const t0 = nowMs();
  await sleep(SECS * 1000);
  measuring = false;
  const secs = (nowMs() - t0) / 1000;
  const cpu1 = cpuSecs(PID);
  const cores = coreBusy(cores0, coreTimes());
  const foreign = foreignPct(foreign0, foreignTicks([PID, process.pid]), secs);
  stop = true;
  await Promise.all(tasks);
  const peak = sampler.stop();
  // How long the touch processor needs to catch up once the load stops.
  let settleSecs = null;
  let metaEnd = {};
  if (templates) {
    const ts = nowMs();
    metaEnd = await meta(ctl, STREAM, "?settle=flush&timeoutMs=60000").catch(() => ({}));
    settleSecs = metaEnd.settled ? (nowMs() - ts) / 1000 : null;
  }
  stopping = true;
  for (const w of hot) w.conn.destroy();
  lat.sort((x, y) => x - y);
  const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
  out({
    mode: "append",
    case: CASE,
    templates,
    appenders: APPENDERS,
    batch: BATCH,
    secs: r2(secs),
    appendsPerSec: r2(acked / secs),
    recordsPerSec: r2(records / secs),
    appendP50Ms: r2(pct(lat, 50)),
    appendP99Ms: r2(pct(lat, 99)),
    errors,
    hotWaiters: hot.length,
    hotAnswers,
    hotErrors,
    serverCpuSecs: r2(cpu1 - cpu0),
    serverCpuPct: r2((100 * (cpu1 - cpu0)) / secs),
    serverPeakRss: peak,
    coreBusyPct: cores,
    foreignCpuPct: foreign,
    settleSecs: r2(settleSecs),
    settled: templates ? !!metaEnd.settled : null,
    metaEnd: pickMeta(metaEnd),
  });
}

// ------------------------------------------------------------------ streams
// Benchmark 3b: RSS per touch-enabled stream (1 vs N streams, each with a
// template, one change processed and a wait served), and per plain stream.
async function streamsMode() {
  const N = num("streams", 100);
  const ctl = new Conn(HOST, PORT);
  const tpl = [{ entity: "posts", fields: [{ name: "tenantId", encoding: "string" }] }];
  const tid = K.templateId("posts", ["tenantId"]);
  const key = K.hex16(K.watchKey(tid, ["t1"]));
  // Configured: touch on and one template. Used: a wait served and one
  // change processed (so the journal has stamped its filter).
  async function configure(i) {
    const name = `ts-${i}`;
    await createStream(ctl, name, PROFILE_TOUCH(A["filter-pow2"] ? { memory: { filterPow2: Number(A["filter-pow2"]) } } : {}));
    await activate(ctl, name, tpl);
  }
  async function use(i) {
    const name = `ts-${i}`;
    must(await jreq(ctl, "POST", `/v1/stream/${name}/touch/wait`, { cursor: "now", keys: [key], templateIdsUsed: [K.hex16(tid)], timeoutMs: 0 }), "wait");
    must(await jreq(ctl, "POST", `/v1/stream/${name}`, [{ type: "posts", key: "p1", value: { tenantId: "t1", title: "x" }, headers: { operation: "insert" } }]), "append");
  }
  const settle = (i) => meta(ctl, `ts-${i}`, "?settle=flush&timeoutMs=5000");
  await sleep(1000);
  const rss0 = memOf(PID).rss;
  await configure(0);
  await use(0);
  await settle(0);
  await sleep(1500);
  const rss1 = memOf(PID).rss;
  const t0 = nowMs();
  for (let i = 1; i < N; i++) await configure(i);
  await sleep(2000);
  const rssConfigured = memOf(PID).rss;
  for (let i = 1; i < N; i++) await use(i);
  const createSecs = (nowMs() - t0) / 1000;
  let unsettled = 0;
  for (let i = 1; i < N; i++) if (!(await settle(i)).settled) unsettled++;
  await sleep(3000);
  const rssN = memOf(PID).rss;
  for (let i = 0; i < N; i++) {
    await createStream(ctl, `plain-${i}`, null);
    must(await jreq(ctl, "POST", `/v1/stream/plain-${i}`, [{ a: i }]), "append plain");
  }
  await sleep(2000);
  const rssP = memOf(PID).rss;
  ctl.destroy();
  out({
    mode: "streams",
    streams: N,
    rssEmpty: rss0,
    rss1Touch: rss1,
    rssNTouch: rssN,
    rssNConfigured: rssConfigured,
    bytesPerConfiguredTouchStream: Math.round((rssConfigured - rss1) / (N - 1)),
    bytesPerTouchStream: Math.round((rssN - rss1) / (N - 1)),
    touchStreamCreateSecs: Math.round(createSecs * 100) / 100,
    unsettled,
    rssPlusPlain: rssP,
    bytesPerPlainStream: Math.round((rssP - rssN) / N),
  });
}

// ------------------------------------------------------------------ main
try {
  if (mode === "selftest") {
    const bad = K.selfTest();
    out({ mode: "selftest", ok: bad.length === 0, bad });
    process.exit(bad.length ? 1 : 0);
  } else if (mode === "waiters") await waitersMode(A, out);
  else if (mode === "append") await appendMode();
  else if (mode === "streams") await streamsMode();
  else {
    console.error("usage: touchbench.mjs selftest|waiters|append|streams --port P --pid PID [...]");
    process.exit(2);
  }
  process.exit(0);
} catch (e) {
  console.error(`touchbench ${mode}: ${e.stack || e}`);
  process.exit(1);
}
