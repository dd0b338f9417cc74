#!/usr/bin/env node
// State streams benchmark driver: Weir against NATS JetStream KV and etcd.
// One mode per benchmark; prints one JSON object (the last line of stdout).
//
//   node statebench.mjs snapshot --server weir|nats|etcd --port P --pid PID [--keys 100000] [--trials 3]
//   node statebench.mjs append   --server S --port P --pid PID --case plain|state|put [--batch 1]
//                                [--appenders 32] [--keys 10000] [--secs 5] [--warmup 2]
//   node statebench.mjs fanout   --server S --port P --pid PID [--subs 1000] [--rate 10000]
//                                [--keys 10000] [--secs 15] [--warmup 3] [--move 0.25] [--drain 5] [--conns N]
//
// See README.md for what each figure means.
import { Worker } from "node:worker_threads";
import { Conn } from "../lib/http.mjs";
import * as C from "./lib/clients.mjs";
import { GROUPS, VALUE_BYTES, ChangeGen, value, weirMsg, peerKey, parseGS, initialGroup } from "./lib/data.mjs";
import { parseArgs, sleep, nowMs, nowAbs, cpuSecs, memOf, RssSampler, pct, randInt, coreTimes, coreBusy, foreignTicks, foreignPct } from "../lib/util.mjs";

const o = parseArgs(process.argv.slice(2));
const mode = o._[0];
const label = o.server; // weir | nats | natsfs | etcd (natsfs: NATS with sync_interval: always)
const server = label === "natsfs" ? "nats" : label;
const port = Number(o.port);
const pid = Number(o.pid);
const num = (k, d) => (o[k] === undefined ? d : Number(o[k]));
const log = (...a) => console.error(`[statebench ${label} ${mode}]`, ...a);

// CPU, core-busy, foreign-process and RSS bookkeeping around a window.
function window0() {
  return { t: nowMs(), cpu: cpuSecs(pid), cores: coreTimes(), foreign: foreignTicks([pid, process.pid]), client: process.cpuUsage() };
}
function window1(w) {
  const secs = (nowMs() - w.t) / 1000;
  const cpu = cpuSecs(pid) - w.cpu;
  const cu = process.cpuUsage(w.client);
  return {
    secs,
    serverCpuSecs: cpu,
    serverCpuPct: (100 * cpu) / secs,
    clientCpuPct: (100 * (cu.user + cu.system)) / 1e6 / secs,
    coreBusyPct: coreBusy(w.cores, coreTimes()),
    foreignCpuPct: foreignPct(w.foreign, foreignTicks([pid, process.pid]), secs),
  };
}

// ------------------------------------------------------------------ 1. snapshot
// A new subscriber: connect, hold the full state of `keys` keys, then see the
// next change (written by an already connected writer as soon as the state is
// held). Trials alternate the variants of the server.
async function snapshot() {
  const keys = num("keys", 100000);
  const trials = num("trials", 3);
  const expected = new Int32Array(keys); // s of every key's current value
  for (let i = 0; i < keys; i++) expected[i] = i;
  const tl = nowMs();
  const cl = cpuSecs(pid);
  let writer;
  if (server === "weir") {
    await C.weirCreate(port, C.STREAM, true);
    await C.weirLoad(port, keys, (i) => i);
    const conn = new Conn(C.HOST, port);
    writer = (i, s) => C.weirAppend(conn, C.STREAM, `[${weirMsg(i, initialGroup(i), s)}]`);
    writer.close = () => conn.destroy();
  } else if (server === "nats") {
    await C.natsLoad(port, keys, (i) => i);
    const c = await C.natsOpen(port);
    writer = (i, s) => C.natsPut(c, peerKey(initialGroup(i), i), value(initialGroup(i), s));
    writer.close = () => c.nc.close();
  } else {
    await C.etcdLoad(port, keys, (i) => i);
    const client = C.etcdOpen(port);
    writer = (i, s) => C.etcdPut(client, peerKey(initialGroup(i), i), value(initialGroup(i), s));
    writer.close = () => client.close();
  }
  await writer(0, 0); // connect the writer before the first trial
  const loadSecs = (nowMs() - tl) / 1000;
  const loadCpu = cpuSecs(pid) - cl;
  const rssLoaded = memOf(pid).rss;
  log(`loaded ${keys} keys in ${loadSecs.toFixed(1)} s`);
  await sleep(1000);

  const variants = server === "weir" ? ["http", "ws"] : server === "nats" ? ["watch"] : ["range"];
  const subscribe = {
    http: () => C.weirHttpFull(port),
    ws: () => C.weirWsFull(port),
    watch: () => C.natsFull(port),
    range: () => C.etcdFull(port, num("page", 10000)),
  };
  const keyIndex = (k) => Number(k.slice(-6));
  const asText = (v) => (typeof v === "string" ? v : v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString() : JSON.stringify(v));
  const results = [];
  let sNext = 1000000;
  for (let t = 0; t < trials; t++) {
    for (const variant of variants) {
      const j = randInt(keys);
      const s = sNext++;
      const rss = new RssSampler(pid, 50);
      const w = window0();
      const t0 = nowMs();
      const sub = await subscribe[variant]();
      const tHold = nowMs();
      const changeP = sub.nextChange();
      const tSend = nowMs();
      const ackP = writer(j, s).then(() => nowMs());
      const ch = await changeP;
      const tSeen = nowMs();
      const tAck = await ackP;
      const win = window1(w);
      const peakRss = rss.stop();
      // Verify (outside the timed part): every key, with its current value, and the change.
      let bad = 0;
      if (sub.map.size !== keys) bad++;
      for (const [k, v] of sub.map) {
        const i = keyIndex(k);
        const gs = parseGS(asText(v));
        if (!(i >= 0 && i < keys) || gs.s !== expected[i] || gs.g !== initialGroup(i)) bad++;
      }
      const cgs = parseGS(ch.value);
      const changeOk = keyIndex(ch.key) === j && cgs.s === s;
      expected[j] = s;
      await sub.close();
      results.push({
        variant,
        trial: t,
        rows: sub.map.size,
        badRows: bad,
        changeOk,
        holdMs: tHold - t0,
        changeMs: tSeen - tSend,
        totalMs: tSeen - t0,
        writeAckMs: tAck - tSend,
        serverCpuSecs: win.serverCpuSecs,
        clientCpuPct: win.clientCpuPct,
        foreignCpuPct: win.foreignCpuPct,
        peakRss,
      });
      log(`${variant} trial ${t}: hold ${(tHold - t0).toFixed(0)} ms, change ${(tSeen - tSend).toFixed(1)} ms, rows ${sub.map.size}, bad ${bad}, change ${changeOk ? "ok" : "WRONG"}`);
      await sleep(300);
    }
  }
  await writer.close();
  const med = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null;
  };
  const byVariant = {};
  for (const v of variants) {
    const rs = results.filter((r) => r.variant === v);
    byVariant[v] = {
      trials: rs.length,
      holdMs: med(rs.map((r) => r.holdMs)),
      changeMs: med(rs.map((r) => r.changeMs)),
      totalMs: med(rs.map((r) => r.totalMs)),
      writeAckMs: med(rs.map((r) => r.writeAckMs)),
      serverCpuSecs: med(rs.map((r) => r.serverCpuSecs)),
      clientCpuPct: med(rs.map((r) => r.clientCpuPct)),
      peakRss: Math.max(...rs.map((r) => r.peakRss)),
      foreignCpuPct: Math.max(...rs.map((r) => r.foreignCpuPct)),
      badRows: rs.reduce((a, r) => a + r.badRows, 0),
      changesWrong: rs.filter((r) => !r.changeOk).length,
    };
  }
  return { mode, server: label, keys, valueBytes: VALUE_BYTES, trials, loadSecs, loadCpuSecs: loadCpu, rssLoaded, variants: byVariant, results };
}

// ------------------------------------------------------------------ 2. append
// `appenders` closed-loop writers, each with one request in flight, each
// request `batch` changes of 100-byte values over `keys` keys.
async function append() {
  const appenders = num("appenders", 32);
  const batch = num("batch", 1);
  const keys = num("keys", 10000);
  const secs = num("secs", 5);
  const warmup = num("warmup", 2);
  const kase = o.case; // plain | state | put
  let sCounter = 0;
  let mkReq; // () => Promise (one request of `batch` changes)
  let close = async () => {};
  if (server === "weir") {
    await C.weirCreate(port, C.STREAM, kase === "state");
    const conns = Array.from({ length: appenders }, () => new Conn(C.HOST, port));
    let ci = 0;
    mkReq = (slot) => {
      const parts = [];
      for (let b = 0; b < batch; b++) {
        const i = randInt(keys);
        parts.push(weirMsg(i, initialGroup(i), sCounter++));
      }
      return C.weirAppend(conns[slot], C.STREAM, `[${parts.join(",")}]`);
    };
    close = async () => conns.forEach((c) => c.destroy());
  } else if (server === "nats") {
    if (batch !== 1) throw new Error("NATS KV has no batch put");
    const c = await C.natsOpen(port, { create: true });
    mkReq = () => {
      const i = randInt(keys);
      return C.natsPut(c, peerKey(initialGroup(i), i), value(initialGroup(i), sCounter++));
    };
    close = () => c.nc.close();
  } else {
    if (batch !== 1) throw new Error("etcd put is one key");
    const client = C.etcdOpen(port);
    mkReq = () => {
      const i = randInt(keys);
      return C.etcdPut(client, peerKey(initialGroup(i), i), value(initialGroup(i), sCounter++));
    };
    close = async () => client.close();
  }
  let measuring = false;
  let stop = false;
  let reqs = 0;
  let errors = 0;
  let firstError = null;
  const lat = [];
  const tStart = nowMs();
  const loops = Array.from({ length: appenders }, async (_, slot) => {
    while (!stop) {
      const t = nowMs();
      try {
        await mkReq(slot);
        if (measuring) {
          reqs++;
          lat.push(nowMs() - t);
        }
      } catch (e) {
        errors++;
        firstError ||= e.message;
        await sleep(10);
      }
    }
  });
  await sleep(warmup * 1000);
  const rss = new RssSampler(pid, 200);
  const w = window0();
  measuring = true;
  await sleep(secs * 1000);
  measuring = false;
  const win = window1(w);
  const peakRss = rss.stop();
  stop = true;
  await Promise.race([Promise.all(loops), sleep(10000)]);
  await close();
  lat.sort((a, b) => a - b);
  const records = reqs * batch;
  return {
    mode,
    server: label,
    case: kase,
    appenders,
    batch,
    keys,
    valueBytes: VALUE_BYTES,
    secs: win.secs,
    requestsPerSec: reqs / win.secs,
    recordsPerSec: records / win.secs,
    p50Ms: pct(lat, 50),
    p99Ms: pct(lat, 99),
    errors,
    firstError,
    serverCpuPct: win.serverCpuPct,
    serverCpuUsPerChange: records ? (1e6 * win.serverCpuSecs) / records : null,
    clientCpuPct: win.clientCpuPct,
    coreBusyPct: win.coreBusyPct,
    foreignCpuPct: win.foreignCpuPct,
    peakRss,
    wallSecs: (nowMs() - tStart) / 1000,
  };
}

// ------------------------------------------------------------------ 3. fanout
// `subs` filtered state subscribers (subscriber k follows group k % 20, 5 %
// of the keys), `rate` changes/s from a writer worker; every delivery is
// recorded and checked against the change sequence afterwards.
async function fanout() {
  const subs = num("subs", 1000);
  const rate = num("rate", 10000);
  const keys = num("keys", 10000);
  const secs = num("secs", 15);
  const warmup = num("warmup", 3);
  const pMove = num("move", 0.25);
  const seed = num("seed", 42);
  const conns = Math.min(subs, num("conns", subs));
  const inflight = num("inflight", 2048);
  const drainSecs = num("drain", 5);
  const total = warmup + secs;
  const maxChanges = Math.ceil(rate * total * 1.05) + 1000;

  // Load the initial state: key i in group i % 20.
  const tl = nowMs();
  let base = 0; // Weir: offset of change 0; peers: revision before change 0
  if (server === "weir") {
    await C.weirCreate(port, C.STREAM, true);
    base = await C.weirLoad(port, keys, () => -1);
  } else if (server === "nats") base = await C.natsLoad(port, keys, () => -1);
  else base = await C.etcdLoad(port, keys, () => -1);
  const loadSecs = (nowMs() - tl) / 1000;
  log(`loaded ${keys} keys in ${loadSecs.toFixed(1)} s (base ${base})`);
  await sleep(500);
  const rss0 = memOf(pid).rss;

  // Deliveries, in typed arrays (grown by doubling).
  let cap = 1 << 20;
  let n = 0;
  let evSub = new Uint16Array(cap);
  let evRev = new Float64Array(cap); // Weir offset / peer revision
  let evOp = new Uint8Array(cap); // 1 upsert/put, 2 delete
  let evKey = new Int32Array(cap);
  let evS = new Int32Array(cap); // the value's s (upserts), -2 for deletes
  let evG = new Int8Array(cap);
  let evRecv = new Float64Array(cap);
  const grow = () => {
    const g = (A) => {
      const b = new A.constructor(cap * 2);
      b.set(A);
      return b;
    };
    [evSub, evRev, evOp, evKey, evS, evG, evRecv] = [evSub, evRev, evOp, evKey, evS, evG, evRecv].map(g);
    cap *= 2;
  };
  let live = false;
  let preLive = 0; // changes before the writer started (must be 0)
  const onChange = (sub) => (rev, op, key, val) => {
    if (!live) preLive++;
    if (n === cap) grow();
    evSub[n] = sub;
    evRev[n] = rev;
    evOp[n] = op;
    evKey[n] = Number(key.slice(-6));
    if (op === 1) {
      const gs = parseGS(val);
      evS[n] = gs.s;
      evG[n] = gs.g;
    } else {
      evS[n] = -2;
      evG[n] = -1;
    }
    evRecv[n] = nowAbs();
    n++;
  };

  // Connect the subscribers, each with its snapshot.
  const tc = nowMs();
  const handles = [];
  const snapBad = [];
  const shared = [];
  if (server === "nats")
    for (let c = 0; c < conns; c += 50) shared.push(...(await Promise.all(Array.from({ length: Math.min(50, conns - c) }, () => C.natsOpen(port)))));
  if (server === "etcd") for (let c = 0; c < conns; c++) shared.push(C.etcdOpen(port));
  const connectOne = async (k) => {
    const g = k % GROUPS;
    let h;
    if (server === "weir") h = await C.weirWsGroup(port, g, onChange(k));
    else if (server === "nats") h = await C.natsGroup(shared[k % conns], g, onChange(k));
    else h = await C.etcdGroup(shared[k % conns], g, onChange(k));
    // The snapshot must hold exactly the keys of group g, with their loaded values.
    let bad = 0;
    let want = 0;
    for (let i = 0; i < keys; i++) if (initialGroup(i) === g) want++;
    if (h.rows.length !== want) bad++;
    for (const [key, val] of h.rows) {
      const i = Number(key.slice(-6));
      const gs = parseGS(val);
      if (initialGroup(i) !== g || gs.g !== g || gs.s !== -1) bad++;
    }
    if (bad) snapBad.push(k);
    h.rows = null;
    handles[k] = h;
  };
  // Connect in waves of 50.
  for (let k = 0; k < subs; k += 50) await Promise.all(Array.from({ length: Math.min(50, subs - k) }, (_, j) => connectOne(k + j)));
  const connectSecs = (nowMs() - tc) / 1000;
  log(`${subs} subscribers on ${server === "weir" ? subs : conns} connections hold their snapshots after ${connectSecs.toFixed(1)} s`);
  await sleep(1000);
  const rssSubs = memOf(pid).rss;

  // The writer.
  const sendAtBuf = new SharedArrayBuffer(8 * maxChanges);
  const revSeqBuf = new SharedArrayBuffer(4 * (2 * maxChanges + 1000));
  const sendAt = new Float64Array(sendAtBuf);
  const revSeq = new Int32Array(revSeqBuf);
  const failedBuf = new SharedArrayBuffer(maxChanges);
  const failed = new Uint8Array(failedBuf);
  const worker = new Worker(new URL("./lib/writer_worker.mjs", import.meta.url), {
    workerData: { server, port, keys, rate, secs: total, pMove, seed, base, revBase: base + 1, inflight, sendAt: sendAtBuf, revSeq: revSeqBuf, failed: failedBuf },
  });
  const wres = await new Promise((resolve, reject) => {
    let w0 = null;
    let wEnd = null;
    let rss = null;
    worker.on("message", (m) => {
      if (m.type === "ready") {
        live = true;
        setTimeout(() => {
          rss = new RssSampler(pid, 200);
          w0 = { ...window0(), n };
        }, warmup * 1000);
      } else if (m.type === "stopping") {
        if (w0) wEnd = { ...window1(w0), deliveries: n - w0.n, peakRss: rss.stop() };
      } else if (m.type === "done") resolve({ ...m, win: wEnd });
      else if (m.type === "error") reject(new Error(m.message));
    });
    worker.on("error", reject);
  });
  const sent = wres.sent;
  log(`writer: ${sent} changes (${wres.changesPerSec.toFixed(0)}/s), ${wres.errors} errors, ${n} deliveries so far`);

  // Expected deliveries: replay the change sequence.
  const gen = new ChangeGen(keys, pMove, seed);
  const changes = new Array(sent);
  const perGroup = new Array(GROUPS).fill(0);
  const subsOfGroup = new Array(GROUPS).fill(0);
  for (let k = 0; k < subs; k++) subsOfGroup[k % GROUPS]++;
  let expectedTotal = 0;
  let failedWrites = 0;
  const failedMoveOf = new Map(); // key -> seqs of moves whose write failed (their delete's revision is unknown)
  for (let s = 0; s < sent; s++) {
    const ch = gen.next();
    changes[s] = ch;
    if (failed[s]) {
      // The write failed or timed out: whether it was stored is unknown, so
      // its deliveries are neither expected nor refused ("indeterminate").
      failedWrites++;
      if (ch.oldG !== ch.newG) failedMoveOf.set(ch.key, [...(failedMoveOf.get(ch.key) || []), s]);
      continue;
    }
    perGroup[ch.newG]++;
    if (ch.oldG !== ch.newG) perGroup[ch.oldG]++;
    expectedTotal += subsOfGroup[ch.newG] + (ch.oldG !== ch.newG ? subsOfGroup[ch.oldG] : 0);
  }
  // Drain: wait until the expected number arrived (bounded).
  const td = nowMs();
  while (n < expectedTotal && nowMs() - td < drainSecs * 1000) await sleep(50);
  const drainWait = (nowMs() - td) / 1000;
  await sleep(300); // anything extra arrives too
  const got = n;
  const trouble = { ...C.subTrouble }; // before our own closes
  for (const h of handles) if (h) await h.close();
  for (const c of shared) {
    try {
      if (server === "nats") await c.nc.close();
      else c.close();
    } catch {}
  }

  // Verify every delivery.
  const seqOf = (i) => {
    if (server === "weir") return evRev[i] - base;
    const r = evRev[i] - (base + 1);
    const q = r >= 0 && r < revSeq.length ? revSeq[r] - 1 : -1;
    // A put whose ack never came has no recorded revision; its value names it.
    if (q < 0 && evOp[i] === 1 && evS[i] >= 0 && evS[i] < sent && failed[evS[i]]) return evS[i];
    return q;
  };
  const seen = new Map(); // sub -> Set of seq*2+op-1
  let unexpected = 0;
  let indeterminate = 0;
  let duplicates = 0;
  let wrongValue = 0;
  let wrongKey = 0;
  let outOfOrder = 0;
  const lastRev = new Float64Array(subs).fill(-1);
  const lat = [];
  const latAck = [];
  const wStart = wres.t0 + warmup * 1000;
  const wEndT = wres.tStop;
  const counts = new Int32Array(subs);
  for (let i = 0; i < got; i++) {
    const k = evSub[i];
    const g = k % GROUPS;
    const seq = seqOf(i);
    if (evRev[i] <= lastRev[k]) outOfOrder++;
    lastRev[k] = evRev[i];
    const ch = seq >= 0 && seq < sent ? changes[seq] : null;
    if (!ch) {
      // A delete at an unrecorded revision of a key whose move failed to be acknowledged.
      if (evOp[i] === 2 && (failedMoveOf.get(evKey[i]) || []).some((q) => changes[q].oldG === g)) indeterminate++;
      else unexpected++;
      continue;
    }
    if (failed[seq]) {
      indeterminate++;
      continue;
    }
    const op = evOp[i];
    // Expected: upsert if the change leaves the key in g (entered or stayed), delete if it left g.
    const want = ch.newG === g ? 1 : ch.oldG === g ? 2 : 0;
    if (want !== op) {
      unexpected++;
      continue;
    }
    if (evKey[i] !== ch.key) wrongKey++;
    if (op === 1 && (evS[i] !== seq || evG[i] !== g)) wrongValue++;
    let set = seen.get(k);
    if (!set) seen.set(k, (set = new Set()));
    if (set.has(seq)) {
      duplicates++;
      continue;
    }
    set.add(seq);
    counts[k]++;
    const t = sendAt[seq];
    if (t >= wStart && t < wEndT) lat.push(evRecv[i] - t);
  }
  let changesInWindow = 0;
  for (let s = 0; s < sent; s++) if (sendAt[s] >= wStart && sendAt[s] < wEndT) changesInWindow++;
  let missing = 0;
  for (let k = 0; k < subs; k++) missing += perGroup[k % GROUPS] - counts[k];
  lat.sort((a, b) => a - b);
  const win = wres.win || {};
  return {
    mode,
    server: label,
    subs,
    conns: server === "weir" ? subs : conns,
    keys,
    groups: GROUPS,
    rate,
    pMove,
    secs,
    warmup,
    loadSecs,
    connectSecs,
    changesSent: sent,
    changesPerSec: wres.changesPerSec,
    writerBacklogAtEnd: wres.backlogAtEnd,
    writerErrors: wres.errors,
    writerFirstError: wres.firstError,
    writerSeqMismatch: wres.seqMismatch,
    writerMaxInflight: wres.maxInflightSeen,
    writes: wres.writes,
    writeAckP50Ms: wres.ackP50,
    writeAckP99Ms: wres.ackP99,
    expectedDeliveries: expectedTotal,
    deliveries: got,
    deliveriesPerSec: win.deliveries != null ? win.deliveries / win.secs : null,
    missing,
    unexpected,
    failedWrites,
    indeterminate,
    duplicates,
    wrongValue,
    wrongKey,
    outOfOrder,
    preLive,
    subscribersClosed: trouble.closed,
    subscriberErrors: trouble.errors,
    subscriberFirstTrouble: trouble.first,
    snapshotBadSubs: snapBad.length,
    drainSecs,
    drainWaitSecs: drainWait,
    exact: wres.seqMismatch === 0 && trouble.closed === 0 && trouble.errors === 0 && missing === 0 && unexpected === 0 && duplicates === 0 && wrongValue === 0 && wrongKey === 0 && snapBad.length === 0 && outOfOrder === 0,
    latN: lat.length,
    latP50Ms: pct(lat, 50),
    latP90Ms: pct(lat, 90),
    latP99Ms: pct(lat, 99),
    latMaxMs: lat.length ? lat[lat.length - 1] : null,
    serverCpuPct: win.serverCpuPct ?? null,
    changesInWindow,
    serverCpuUsPerChange: win.serverCpuSecs != null && changesInWindow ? (1e6 * win.serverCpuSecs) / changesInWindow : null,
    serverCpuUsPerDelivery: win.serverCpuSecs != null && win.deliveries ? (1e6 * win.serverCpuSecs) / win.deliveries : null,
    clientCpuPct: win.clientCpuPct ?? null,
    coreBusyPct: win.coreBusyPct ?? null,
    foreignCpuPct: win.foreignCpuPct ?? null,
    rssLoaded: rss0,
    rssSubscribed: rssSubs,
    peakRss: win.peakRss ?? null,
  };
}

const modes = { snapshot, append, fanout };
if (!modes[mode] || !["weir", "nats", "natsfs", "etcd"].includes(label) || !port) {
  console.error("usage: statebench.mjs snapshot|append|fanout --server weir|nats|natsfs|etcd --port P --pid PID [options]");
  process.exit(2);
}
const res = await modes[mode]();
process.stdout.write(JSON.stringify(res) + "\n");
process.exit(0);
