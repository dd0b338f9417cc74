// Benchmark 1 (touched latency under load) and 3a (RSS with idle waiters).
//
// N waiters, one keep-alive connection each, long-poll touch/wait on the
// watch keys of KPW distinct tuples of template users/[tenant] (1,000
// tenant values); each re-waits at once with the returned cursor. An
// appender thread (appender_worker.mjs) updates rows at RATE changes/s,
// each change in one tuple (before and after in the same tuple, so the
// tuple's watch key is touched).
//
// Attribution: a wake's bucketMaxSourceOffsetSeq S says the server has
// covered every record up to S. The change that woke the waiter is the
// earliest change on one of its tuples with seq <= S not covered by an
// earlier answer of this waiter; none => a false wake (as far as the
// client can tell). Latency = answer time - that change's append ack.
import { Worker } from "node:worker_threads";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Conn, jreq } from "../../lib/http.mjs";
import * as K from "./keys.mjs";
import { PROFILE_TOUCH, must, createStream, activate, meta, parseWait, pickMeta } from "./api.mjs";
import { sleep, nowAbs, cpuSecs, memOf, nextSeqOf, pct, prng } from "../../lib/util.mjs";

export async function waitersMode(A, out) {
  const num = (k, d) => (A[k] !== undefined ? Number(A[k]) : d);
  const HOST = A.host || "127.0.0.1";
  const PORT = Number(A.port || 0);
  const PID = Number(A.pid || 0);
  const N = num("waiters", 10000);
  const TUPLES = num("tuples", 1000);
  const KPW = num("keys", 3);
  const RATE = num("rate", 1000); // changes per second
  const SECS = num("secs", 20);
  const WARM = num("warmup", 5);
  // Prisma Streams 0.1.11 answers 408 to any request still unresolved after
  // 5 s (HTTP_RESOLVER_TIMEOUT_MS), long-poll waits included: stay below.
  const TIMEOUT = num("timeout-ms", 4000);
  const TICK_MS = num("tick-ms", 10); // one append per tick, RATE*TICK_MS/1000 changes
  const MAXB = num("max-batch", 1000);
  const SEED = num("seed", 42);
  const STREAM = "touch-main";
  const ENTITY = "users";

  const ctl = new Conn(HOST, PORT);
  await createStream(ctl, STREAM, PROFILE_TOUCH());
  const [tidHex] = await activate(ctl, STREAM, [{ entity: ENTITY, fields: [{ name: "tenant", encoding: "string" }] }]);
  const tid = K.templateId(ENTITY, ["tenant"]);
  if (K.hex16(tid) !== tidHex) throw new Error(`template id: server ${tidHex}, client ${K.hex16(tid)}`);
  const keyOf = Array.from({ length: TUPLES }, (_, i) => K.hex16(K.watchKey(tid, [`t${i}`])));
  const waitPath = `/v1/stream/${STREAM}/touch/wait`;

  // The changes, fixed in advance: change i is in tuple tupleOf[i].
  const maxChanges = Math.ceil(RATE * (WARM + SECS + 30));
  const maxAppends = Math.ceil((1000 / TICK_MS) * (WARM + SECS + 30)) + 1000;
  const sab = {
    tupleOf: new SharedArrayBuffer(4 * maxChanges),
    appendOf: new SharedArrayBuffer(4 * maxChanges),
    aSend: new SharedArrayBuffer(8 * maxAppends),
    aAck: new SharedArrayBuffer(8 * maxAppends),
    ctrl: new SharedArrayBuffer(4 * 8),
    stats: new SharedArrayBuffer(8 * 16),
  };
  const tupleOf = new Int32Array(sab.tupleOf);
  const appendOf = new Int32Array(sab.appendOf);
  const aSend = new Float64Array(sab.aSend);
  const aAck = new Float64Array(sab.aAck);
  const ctrl = new Int32Array(sab.ctrl);
  const stats = new Float64Array(sab.stats);
  const rnd = prng(SEED);
  const logs = Array.from({ length: TUPLES }, () => []);
  for (let i = 0; i < maxChanges; i++) {
    const tu = Math.floor(rnd() * TUPLES);
    tupleOf[i] = tu;
    logs[tu].push(i);
  }
  const tupleLog = logs.map((l) => Int32Array.from(l));

  await sleep(1500);
  const rss0 = memOf(PID).rss;

  const st = { touched: 0, falseWakes: 0, timeouts: 0, stale: 0, errors: 0, answers: 0, http408: 0 };
  const lat = []; // pairs: answer time, change index
  const rtt = []; // touched answers: answer time - time the wait was sent
  const live = []; // triples: answer time, change index, flushAtMs
  // Client CPU and loop delay over the window: started by the first answer
  // seen in it (timers can lag seconds behind under this load).
  let cli0 = null;
  let tCli0 = 0;
  const eld = monitorEventLoopDelay({ resolution: 10 });
  let seq0 = 0;
  const ws = [];
  let stopping = false;
  const wrnd = prng(SEED + 1);
  function pickTuples() {
    const s = new Set();
    while (s.size < KPW) s.add(Math.floor(wrnd() * TUPLES));
    return [...s];
  }
  function send(w) {
    if (stopping) return;
    w.tSent = nowAbs();
    w.conn.send("POST", waitPath, w.bodyHead + w.cursor + w.bodyTail, "", w.cb);
  }
  function retry(w, what) {
    st.errors++;
    if (st.errors <= 5) console.error(`wait error: ${what}`);
    setTimeout(() => send(w), 1000);
  }
  function onAnswer(w, err, r) {
    if (stopping) return;
    if (err) return retry(w, err.message);
    const t = nowAbs();
    const win = Atomics.load(ctrl, 0) === 1;
    const b = r.body.toString("latin1");
    if (r.status === 408) {
      // Prisma's request timeout: wait again at once with the same cursor.
      if (win) st.http408++;
      return send(w);
    }
    if (r.status !== 200) return retry(w, `HTTP ${r.status}: ${b.slice(0, 200)}`);
    const j = parseWait(b);
    if (win) {
      st.answers++;
      if (!cli0) {
        cli0 = process.cpuUsage();
        tCli0 = t;
        eld.enable();
      }
    }
    if (j.stale) {
      if (win) st.stale++;
    } else if (j.touched) {
      const lim = j.seq - seq0; // changes with index <= lim are covered
      let first = -1;
      for (let k = 0; k < KPW; k++) {
        const log = tupleLog[w.t[k]];
        let p = w.ptr[k];
        while (p < log.length && log[p] <= lim) {
          if (first < 0 || log[p] < first) first = log[p];
          p++;
        }
        w.ptr[k] = p;
      }
      if (win) {
        st.touched++;
        if (first < 0) st.falseWakes++;
        else {
          lat.push(t, first);
          // A live wake (the wait was sent before the waking flush): split
          // the latency at the server's flush time (same machine clock).
          if (w.tSent < j.flushAt) live.push(t, first, j.flushAt);
        }
        rtt.push(t - w.tSent);
      }
    } else if (win) st.timeouts++;
    w.cursor = j.cursor;
    send(w);
  }

  // Connect and register the waiters (no changes yet).
  const tConn0 = nowAbs();
  const CONC = num("connect-concurrency", 200);
  let next = 0;
  let connectErrors = 0;
  async function opener() {
    while (next < N) {
      const i = next++;
      const t = pickTuples();
      const w = {
        i, t, ptr: t.map(() => 0), cursor: "now", conn: new Conn(HOST, PORT), cb: null, tSent: 0,
        bodyHead: '{"cursor":"',
        bodyTail: `","keys":${JSON.stringify(t.map((x) => keyOf[x]))},"interestMode":"fine","templateIdsUsed":["${tidHex}"],"timeoutMs":${TIMEOUT}}`,
      };
      w.cb = (err, r) => onAnswer(w, err, r);
      let ok = false;
      for (let tries = 0; tries < 3 && !ok; tries++) {
        try {
          await w.conn.connect();
          ok = true;
        } catch (e) {
          connectErrors++;
          if (connectErrors <= 3) console.error(`connect: ${e.message}`);
          await sleep(200);
        }
      }
      if (!ok) continue;
      // One request first, so the connection is a used keep-alive one
      // before it waits: its own memory is measured apart from the wait's.
      try {
        await w.conn.request("GET", `/v1/stream/${STREAM}/touch/meta`, "");
      } catch (e) {
        connectErrors++;
        continue;
      }
      ws.push(w);
    }
  }
  await Promise.all(Array.from({ length: CONC }, opener));
  await sleep(1500);
  const rssConnected = memOf(PID).rss;
  let registered = 0;
  const regDeadline = nowAbs() + 60000;
  async function registeredAtLeast(k) {
    for (;;) {
      const m = await meta(ctl, STREAM);
      registered = Number(m.activeWaiters ?? m.fineWaitersActive ?? 0);
      if (registered >= k || nowAbs() > regDeadline) return;
      await sleep(250);
    }
  }
  for (const w of ws) send(w);
  const connectSecs = (nowAbs() - tConn0) / 1000;
  await registeredAtLeast(ws.length);
  const registerSecs = (nowAbs() - tConn0) / 1000;
  await sleep(2000);
  const rssIdle = memOf(PID).rss;
  const mIdle = await meta(ctl, STREAM);

  // Load.
  seq0 = nextSeqOf(must(await jreq(ctl, "GET", `/v1/stream/${STREAM}?offset=now`), "tail").headers["stream-next-offset"]);
  if (!Number.isFinite(seq0)) throw new Error("cannot read the stream's next offset");
  const worker = new Worker(new URL("./appender_worker.mjs", import.meta.url), {
    workerData: {
      host: HOST, port: PORT, pid: PID, stream: STREAM, entity: ENTITY, rate: RATE, tickMs: TICK_MS, maxBatch: MAXB,
      rows: 10, seq0, warmMs: WARM * 1000, secsMs: SECS * 1000, maxChanges, maxAppends, ...sab,
    },
  });
  const done = new Promise((res, rej) => {
    worker.once("message", res);
    worker.once("error", rej);
  });
  const doneMsg = await done;
  const tCli1 = nowAbs();
  const cli = cli0 ? process.cpuUsage(cli0) : { user: NaN, system: NaN };
  eld.disable();
  const mEnd = await meta(ctl, STREAM).catch(() => ({}));
  stopping = true;
  for (const w of ws) w.conn.destroy();
  await worker.terminate();

  const [tW0, tW1, cpu0, cpu1, peakRss] = stats;
  const secs = (tW1 - tW0) / 1000;
  const fromAck = [];
  const fromSend = [];
  let wakeBeforeAck = 0;
  for (let k = 0; k < lat.length; k += 2) {
    const t = lat[k];
    const a = appendOf[lat[k + 1]];
    fromSend.push(t - aSend[a]);
    if (!(aAck[a] > 0 && aAck[a] <= t)) {
      wakeBeforeAck++;
      fromAck.push(0);
    } else fromAck.push(t - aAck[a]);
  }
  const ackToFlush = [];
  const flushToRead = [];
  for (let k = 0; k < live.length; k += 3) {
    const a = appendOf[live[k + 1]];
    if (aAck[a] > 0) ackToFlush.push(live[k + 2] - aAck[a]);
    flushToRead.push(live[k] - live[k + 2]);
  }
  ackToFlush.sort((x, y) => x - y);
  flushToRead.sort((x, y) => x - y);
  const appendLat = [];
  for (let a = stats[7]; a < stats[8]; a++) if (aAck[a] > 0) appendLat.push(aAck[a] - aSend[a]);
  for (const v of [fromAck, fromSend, appendLat, rtt]) v.sort((x, y) => x - y);
  const r2 = (x) => (x == null || Number.isNaN(x) ? null : Math.round(x * 100) / 100);
  out({
    mode: "waiters",
    waitersRequested: N,
    waitersConnected: ws.length,
    connectErrors,
    connectSecs: r2(connectSecs),
    registeredWaiters: registered,
    registerSecs: r2(registerSecs),
    tuples: TUPLES,
    keysPerWaiter: KPW,
    rate: RATE,
    waitTimeoutMs: TIMEOUT,
    secs: r2(secs),
    changesPerSec: r2((stats[6] - stats[5]) / secs),
    appendsPerSec: r2((stats[8] - stats[7]) / secs),
    appendP50Ms: r2(pct(appendLat, 50)),
    appendP99Ms: r2(pct(appendLat, 99)),
    appendErrors: stats[9],
    seqMismatch: stats[10],
    answersPerSec: r2(st.answers / secs),
    touchedPerSec: r2(st.touched / secs),
    touched: st.touched,
    falseWakes: st.falseWakes,
    falseWakePct: r2(st.touched ? (100 * st.falseWakes) / st.touched : 0),
    timeouts: st.timeouts,
    stale: st.stale,
    http408: st.http408,
    errors: st.errors,
    latSamples: fromAck.length,
    wakeBeforeAck,
    latAckP50: r2(pct(fromAck, 50)),
    latAckP95: r2(pct(fromAck, 95)),
    latAckP99: r2(pct(fromAck, 99)),
    latAckMax: r2(fromAck.length ? fromAck[fromAck.length - 1] : null),
    latSendP50: r2(pct(fromSend, 50)),
    latSendP95: r2(pct(fromSend, 95)),
    latSendP99: r2(pct(fromSend, 99)),
    // How long a touched wait was open (sent -> answered): near 0 when the
    // change was already there when the wait arrived.
    liveWakes: flushToRead.length,
    liveAckToFlushP50: r2(pct(ackToFlush, 50)),
    liveAckToFlushP99: r2(pct(ackToFlush, 99)),
    liveFlushToReadP50: r2(pct(flushToRead, 50)),
    liveFlushToReadP99: r2(pct(flushToRead, 99)),
    touchedWaitOpenP50: r2(pct(rtt, 50)),
    touchedWaitOpenP99: r2(pct(rtt, 99)),
    serverCpuSecs: r2(cpu1 - cpu0),
    serverCpuPct: r2((100 * (cpu1 - cpu0)) / secs),
    serverPeakRss: peakRss,
    serverHwm: memOf(PID).hwm,
    rssNoWaiters: rss0,
    rssIdleWaiters: rssIdle,
    rssConnected,
    bytesPerIdleWaiter: ws.length ? Math.round((rssIdle - rss0) / ws.length) : null,
    bytesPerIdleConnection: ws.length ? Math.round((rssConnected - rss0) / ws.length) : null,
    bytesPerWaitBeyondConnection: ws.length ? Math.round((rssIdle - rssConnected) / ws.length) : null,
    clientCpuPct: r2((cli.user + cli.system) / 10 / (tCli1 - tCli0)),
    coreBusyPct: doneMsg && doneMsg.cores,
    foreignCpuPct: doneMsg && doneMsg.foreignPct, // CPU of every other process (% of one core) // whole-core busy % (user+sys+irq, every process) over the window
    clientLoopDelayP99Ms: r2(eld.percentile(99) / 1e6),
    clientLoopDelayMaxMs: r2(eld.max / 1e6),
    metaIdle: pickMeta(mIdle),
    metaEnd: pickMeta(mEnd),
  });
  ctl.destroy();
}
