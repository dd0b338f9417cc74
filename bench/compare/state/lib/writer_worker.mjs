// Benchmark 3's writer, in a worker thread (so the subscribers' socket work
// on the main thread cannot stall its timer): it writes the ChangeGen
// sequence at `rate` changes/s for `secs` seconds and stops by itself.
//
// Weir: every tick (5 ms) one append carrying every change due so far (at
// most 2,000), one append in flight at a time (a slow append makes the next
// one larger); the
// change `seq` is the record at offset base + seq, checked against every
// answer's Stream-Next-Offset.
// NATS KV / etcd: each change is its own put, sent when due, up to
// `inflight` in flight. A group move is, for NATS, a KV delete of the old
// key pipelined with a put of the new one; for etcd one transaction (delete
// + put, one revision). Each write's revision is recorded in revSeq.
//
// Shared memory: sendAt[seq] (ms, performance.timeOrigin-based) set before
// the change is sent; revSeq[rev - revBase] = seq + 1.
import { parentPort, workerData } from "node:worker_threads";
import { ChangeGen, weirMsg, peerKey, value } from "./data.mjs";
import { Conn } from "../../lib/http.mjs";
import { weirAppend, natsOpen, natsPut, natsDel, etcdOpen, etcdPut, etcdMove, STREAM } from "./clients.mjs";
import { nowAbs, sleep, pct } from "../../lib/util.mjs";

const { server, port, keys, rate, secs, pMove, seed, base, revBase, inflight } = workerData;
const sendAt = new Float64Array(workerData.sendAt);
const revSeq = new Int32Array(workerData.revSeq);
const failed = new Uint8Array(workerData.failed); // failed[seq] = 1: the write's outcome is unknown (error or timeout)
const gen = new ChangeGen(keys, pMove, seed);
const maxChanges = sendAt.length;
const TICK_MS = 5;
// Most changes in one Weir append (about 320 KB), far below the 10 MiB
// request limit even when a slow server lets the backlog grow.
const MAX_APPEND = 2000;

let sent = 0;
let acked = 0;
let errors = 0;
let seqMismatch = 0;
let maxInflightSeen = 0;
let firstError = null;
const ackLat = [];
let writes = 0;

function setRev(rev, seq) {
  const i = rev - revBase;
  if (i >= 0 && i < revSeq.length) revSeq[i] = seq + 1;
  else seqMismatch++;
}

async function main() {
  let writeOne; // (change) -> Promise, peers only
  let weirConn = null;
  let closeAll = async () => {};
  if (server === "weir") {
    weirConn = new Conn("127.0.0.1", port);
    await weirConn.connect();
    closeAll = async () => weirConn.destroy();
  } else if (server === "nats") {
    const c = await natsOpen(port, { jsTimeout: 15000 }); // PubAck timeout (default 5 s)
    writeOne = async (ch, val) => {
      if (ch.oldG === ch.newG) {
        setRev(await natsPut(c, peerKey(ch.newG, ch.key), val), ch.seq);
        writes++;
      } else {
        // Sent back to back on one connection: JetStream stores them in order.
        const [rd, rp] = await Promise.all([natsDel(c, peerKey(ch.oldG, ch.key)), natsPut(c, peerKey(ch.newG, ch.key), val)]);
        setRev(rd, ch.seq);
        setRev(rp, ch.seq);
        writes += 2;
      }
    };
    closeAll = async () => c.nc.close();
  } else {
    const client = etcdOpen(port);
    writeOne = async (ch, val) => {
      if (ch.oldG === ch.newG) setRev(await etcdPut(client, peerKey(ch.newG, ch.key), val), ch.seq);
      else setRev(await etcdMove(client, peerKey(ch.oldG, ch.key), peerKey(ch.newG, ch.key), val), ch.seq);
      writes++;
    };
    closeAll = async () => client.close();
  }
  parentPort.postMessage({ type: "ready" });
  const t0 = nowAbs();
  const tEnd = t0 + secs * 1000;
  let busy = false; // Weir: an append in flight
  let inFlight = 0; // peers
  for (;;) {
    const now = nowAbs();
    if (now >= tEnd) break;
    const due = Math.min(maxChanges, Math.floor(((now - t0) / 1000) * rate));
    if (server === "weir") {
      if (!busy && due > sent) {
        const first = sent;
        const parts = [];
        const tSend = nowAbs();
        while (sent < due && parts.length < MAX_APPEND) {
          const ch = gen.next();
          parts.push(weirMsg(ch.key, ch.newG, ch.seq));
          sendAt[ch.seq] = tSend;
          sent++;
        }
        const n = parts.length;
        busy = true;
        writes++;
        weirAppend(weirConn, STREAM, `[${parts.join(",")}]`).then(
          (next) => {
            const t = nowAbs();
            for (let k = 0; k < n; k++) ackLat.push(t - tSend);
            if (next !== base + first + n) seqMismatch++;
            acked += n;
            busy = false;
          },
          (e) => {
            errors++;
            firstError ||= e.message;
            for (let k = 0; k < n; k++) failed[first + k] = 1;
            busy = false;
          },
        );
      }
    } else {
      while (sent < due && inFlight < inflight) {
        const ch = gen.next();
        const val = value(ch.newG, ch.seq);
        const tSend = nowAbs();
        sendAt[ch.seq] = tSend;
        sent++;
        inFlight++;
        if (inFlight > maxInflightSeen) maxInflightSeen = inFlight;
        writeOne(ch, val).then(
          () => {
            ackLat.push(nowAbs() - tSend);
            acked++;
            inFlight--;
          },
          (e) => {
            errors++;
            firstError ||= e.message;
            failed[ch.seq] = 1;
            inFlight--;
          },
        );
      }
    }
    await sleep(TICK_MS);
  }
  const tStop = nowAbs();
  parentPort.postMessage({ type: "stopping" });
  // Let the last writes finish (bounded).
  for (let i = 0; i < 2000 && (busy || inFlight > 0); i++) await sleep(10);
  await closeAll();
  ackLat.sort((a, b) => a - b);
  parentPort.postMessage({
    type: "done",
    sent,
    acked,
    writes,
    errors,
    firstError,
    seqMismatch,
    maxInflightSeen,
    backlogAtEnd: Math.max(0, Math.floor(((tStop - t0) / 1000) * rate) - sent),
    changesPerSec: sent / ((tStop - t0) / 1000),
    ackP50: pct(ackLat, 50),
    ackP99: pct(ackLat, 99),
    t0,
    tStop,
  });
}

main().catch((e) => {
  parentPort.postMessage({ type: "error", message: e.stack || e.message });
});
