// The appender of the waiters benchmark, on its own thread (its own event
// loop): with 10,000 sockets answering ~20,000 times a second, libuv's poll
// phase on the main thread can run for seconds between two timer phases,
// which would stall a timer-driven appender there. This thread keeps the
// offered rate and the phase clock; the main thread only reads shared
// memory. One append is in flight at a time, so change i is record
// seq0 + i; the tuple of change i is fixed in advance (tupleOf).
import { workerData, parentPort } from "node:worker_threads";
import { Conn } from "../../lib/http.mjs";
import { nowAbs, cpuSecs, memOf, nextSeqOf, coreTimes, coreBusy, foreignTicks, foreignPct } from "../../lib/util.mjs";

const d = workerData;
const tupleOf = new Int32Array(d.tupleOf);
const appendOf = new Int32Array(d.appendOf);
const aSend = new Float64Array(d.aSend);
const aAck = new Float64Array(d.aAck);
const ctrl = new Int32Array(d.ctrl);
const stats = new Float64Array(d.stats);
const ENTITY = d.entity;
const perTick = Math.max(1, Math.round((d.rate * d.tickMs) / 1000));

const conn = new Conn(d.host, d.port);
await conn.connect();
const path = `/v1/stream/${d.stream}`;
const t0 = nowAbs();
let sent = 0; // changes
let appends = 0;
let inFlight = false;
let on = true;
let n = 0;
let errors = 0;
let seqMismatch = 0;

function due() {
  return Math.min(d.maxChanges, Math.floor(((nowAbs() - t0) / 1000) * d.rate)) - sent;
}

function tick() {
  if (!on || inFlight || appends >= d.maxAppends) return;
  const want = due();
  if (want <= 0) return;
  const b = Math.min(want, d.maxBatch);
  const a = appends++;
  const parts = new Array(b);
  for (let k = 0; k < b; k++) {
    const i = sent + k;
    const tu = tupleOf[i];
    const row = (i * 7 + tu) % d.rows;
    n++;
    appendOf[i] = a;
    parts[k] = `{"type":"${ENTITY}","key":"u${tu}-${row}","value":{"tenant":"t${tu}","n":${n}},"old_value":{"tenant":"t${tu}","n":${n - 1}},"headers":{"operation":"update"}}`;
  }
  sent += b;
  const expectNext = d.seq0 + sent;
  inFlight = true;
  aSend[a] = nowAbs();
  conn.send("POST", path, `[${parts.join(",")}]`, "", (err, r) => {
    aAck[a] = nowAbs();
    inFlight = false;
    if (err) {
      errors++;
      if (errors <= 3) console.error(`append error: ${err.message}`);
    } else {
      if (r.status < 200 || r.status >= 300) {
        errors++;
        if (errors <= 3) console.error(`append HTTP ${r.status}: ${r.body.toString().slice(0, 200)}`);
      }
      if (nextSeqOf(r.headers["stream-next-offset"]) !== expectNext) seqMismatch++;
    }
    if (due() >= perTick) tick(); // behind schedule: send the backlog now
  });
}

const ticker = setInterval(tick, d.tickMs);
let sampler = null;
let cores0 = null;
let cores1 = null;
let foreign0 = null;
let foreign1 = null;
setTimeout(() => {
  cores0 = coreTimes();
  foreign0 = foreignTicks([d.pid, process.pid]);
  stats[0] = nowAbs();
  stats[2] = cpuSecs(d.pid);
  stats[5] = sent;
  stats[7] = appends;
  stats[4] = memOf(d.pid).rss;
  sampler = setInterval(() => {
    const r = memOf(d.pid).rss;
    if (r > stats[4]) stats[4] = r;
  }, 200);
  Atomics.store(ctrl, 0, 1);
}, d.warmMs);
setTimeout(async () => {
  Atomics.store(ctrl, 0, 2);
  stats[1] = nowAbs();
  stats[3] = cpuSecs(d.pid);
  stats[6] = sent;
  stats[8] = appends;
  cores1 = coreTimes();
  foreign1 = foreignTicks([d.pid, process.pid]);
  clearInterval(sampler);
  const r = memOf(d.pid).rss;
  if (r > stats[4]) stats[4] = r;
  on = false;
  clearInterval(ticker);
  for (let k = 0; k < 100 && inFlight; k++) await new Promise((res) => setTimeout(res, 50));
  stats[9] = errors;
  stats[10] = seqMismatch;
  stats[11] = appends;
  stats[12] = sent;
  conn.destroy();
  parentPort.postMessage({ cores: coreBusy(cores0, cores1), foreignPct: foreignPct(foreign0, foreign1, d.secsMs / 1000) });
}, d.warmMs + d.secsMs);
