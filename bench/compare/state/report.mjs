#!/usr/bin/env node
// Markdown tables (medians over rounds) from the JSON files `run` leaves in
// its output directory: <server>.<bench>.r<round>.json.
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: report.mjs OUTDIR");
  process.exit(2);
}
const runs = {}; // "server|bench" -> [result...]
for (const f of fs.readdirSync(dir).sort()) {
  const m = f.match(/^(\w+)\.(.+)\.r(\d+)\.json$/);
  if (!m) continue;
  let j;
  try {
    j = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8").trim().split("\n").pop());
  } catch {
    j = { failed: "unparsable" };
  }
  j._round = Number(m[3]);
  const lf = path.join(dir, f.replace(/\.json$/, ".load"));
  if (fs.existsSync(lf)) j._load = fs.readFileSync(lf, "utf8").trim().replace(/\n/g, ", ");
  (runs[`${m[1]}|${m[2]}`] ||= []).push(j);
}
const read = (f) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : "");
const mm = Object.fromEntries(
  read("machine.txt")
    .split("\n")
    .filter(Boolean)
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
);
const ORDER = ["weir", "nats", "natsfs", "etcd"];
const servers = [...new Set(Object.keys(runs).map((k) => k.split("|")[0]))].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
const NAME = {
  weir: "Weir",
  nats: `NATS KV${mm.nats ? " " + mm.nats.replace(/^nats-server: /, "") : ""}`,
  natsfs: `NATS KV${mm.natsfs ? " " + mm.natsfs.split(" ")[1] : ""} fsync`,
  etcd: `etcd${mm.etcd ? " " + mm.etcd.replace(/^etcd Version: /, "") : ""}`,
};
const DUR = {
  weir: "fsync per commit group (`--durability sync`)",
  nats: "no fsync per write (2.9.10 has no `sync_interval`; JetStream syncs periodically, 2 min by NATS's documented default)",
  natsfs: "fsync per write (`sync_interval: always`)",
  etcd: "WAL fsync'd before each answer (default; batched across concurrent requests)",
};

function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const h = Math.floor(v.length / 2);
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}
const ok = (rs) => (rs || []).filter((r) => !r.failed);
const med = (rs, f) => median(ok(rs).map((r) => (typeof f === "function" ? f(r) : r[f])));
function fmt(x, d = 0) {
  if (x == null || Number.isNaN(x)) return "n/a";
  if (Math.abs(x) >= 100 || d === 0) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(d);
}
const f1 = (x) => fmt(x, 1);
const f2 = (x) => fmt(x, 2);
const mib = (x) => (x == null ? "n/a" : (x / 1048576).toFixed(0));
const failedNote = (rs) => {
  const n = (rs || []).filter((r) => r.failed).length;
  return n ? ` (${n} run${n > 1 ? "s" : ""} failed)` : "";
};
const goal = (b) => (b == null ? "not measured" : b ? "**met**" : "**not met**");

const lines = [];
const P = (s = "") => lines.push(s);
P("## State streams: Weir against NATS JetStream KV and etcd (medians over rounds)");
P();
if (mm.nproc) {
  P(`- **Date:** ${mm.date}; ${mm.wall_secs} s in all.`);
  P(`- **Machine:** ${mm.nproc} cores (\`nproc\`), kernel ${mm.kernel}, ${mm.cpu}; server pinned to core 0, the Node ${mm.node} load generator to core 1.`);
  P(`- **Load average:** ${mm.load_start} at the start, ${mm.load_end} at the end. ${read("rounds.txt").trim().split("\n").join("; ")}.`);
  if (mm.weir_bin) P(`- **Weir:** ${mm.weir_bin}, ${mm.weir_version}.`);
  P(`- **Peers:** ${[mm.nats && `nats-server ${mm.nats.replace(/^nats-server: /, "")} (\`nats-server -js -sd DIR\`)`, mm.natsfs && `nats-server ${mm.natsfs.replace(/^nats-server: /, "")} with \`sync_interval: always\` in its config file (\`natsfs\`)`, mm.etcd && `etcd ${mm.etcd.replace(/^etcd Version: /, "")}`].filter(Boolean).join("; ")}.`);
  P(`- **Command:** \`${mm.cmd}\`.`);
  P();
}
P("Durability of each row:");
P();
for (const s of servers) P(`- ${NAME[s]}: ${DUR[s]}.`);
P();

// ---- 1. snapshot
if (Object.keys(runs).some((k) => k.endsWith("|snapshot"))) {
  const r0 = ok(runs[Object.keys(runs).find((k) => k.endsWith("|snapshot"))])[0] || {};
  P(`### 1. A new subscriber: full state of ${fmt(r0.keys)} keys (${r0.valueBytes ?? 100}-byte values), then the next change`);
  P();
  P("From opening the connection to holding every key in a Map (hold), then one change written by an already connected writer as soon as the state is held, until the subscriber sees it (next change). Total = connect → change seen. Every row and the change are checked afterwards. Server CPU: utime+stime over one subscriber's whole trial.");
  P();
  P("| server | subscriber | hold ms | next change ms | **total ms** | vs best peer | rows checked | server CPU ms | peak RSS MiB | load of the keys s |");
  P("|---|---|---|---|---|---|---|---|---|---|");
  const PATH = {
    http: "HTTP `offset=-1&snapshot=true`, then long-poll from the fence",
    ws: "WebSocket JSON `subscribe_state` (snapshot, then `data`)",
    watch: "KV watch `>` (every current value, then updates)",
    range: "range read at one revision (pages of 10,000), then watch from revision+1",
  };
  const rowsOf = [];
  for (const s of servers) {
    const rs = runs[`${s}|snapshot`];
    if (!rs) continue;
    for (const v of Object.keys((ok(rs)[0] || {}).variants || {})) {
      const g = (k) => med(rs, (r) => (r.variants[v] || {})[k]);
      rowsOf.push({ s, v, rs, total: g("totalMs"), g });
    }
  }
  const bestPeer = Math.min(...rowsOf.filter((x) => x.s !== "weir" && x.total != null).map((x) => x.total));
  const bestWeir = Math.min(...rowsOf.filter((x) => x.s === "weir" && x.total != null).map((x) => x.total));
  for (const x of rowsOf) {
    const bad = ok(x.rs).reduce((a, r) => a + (r.variants[x.v] || {}).badRows + (r.variants[x.v] || {}).changesWrong, 0);
    const n = ok(x.rs).reduce((a, r) => a + (r.variants[x.v] || {}).trials, 0);
    P(
      `| ${NAME[x.s]}${failedNote(x.rs)} | ${PATH[x.v]} | ${fmt(x.g("holdMs"))} | ${f1(x.g("changeMs"))} | **${fmt(x.total)}** | ${Number.isFinite(bestPeer) ? f2(x.total / bestPeer) : "n/a"} | ${bad ? `**${bad} wrong**` : `all, ${n} subscribers`} | ${fmt(1000 * x.g("serverCpuSecs"))} | ${mib(x.g("peakRss"))} | ${f1(med(x.rs, "loadSecs"))} |`,
    );
  }
  P();
  P("Per round (total ms of each subscriber; CPU of other processes, % of one core, at most):");
  P();
  for (const x of rowsOf)
    P(`- ${NAME[x.s]} ${x.v}: ${ok(x.rs).map((r) => `r${r._round} ${r.results.filter((t) => t.variant === x.v).map((t) => fmt(t.totalMs)).join(", ")} (other ${fmt((r.variants[x.v] || {}).foreignCpuPct)}%)`).join("; ")}`);
  P();
  const met = Number.isFinite(bestPeer) && Number.isFinite(bestWeir) ? bestWeir <= bestPeer / 2 : null;
  P(`Goal: Weir at most half the best peer's time: best Weir ${fmt(bestWeir)} ms, best peer ${fmt(bestPeer)} ms (ratio ${Number.isFinite(bestPeer) ? f2(bestWeir / bestPeer) : "n/a"}): ${goal(met)}.`);
  P();
}

// ---- 2. append
const akeys = Object.keys(runs).filter((k) => k.includes("|append-"));
if (akeys.length) {
  const a0 = ok(runs[akeys[0]])[0] || {};
  P(`### 2. Appends of ${a0.valueBytes ?? 100}-byte changes over ${fmt(a0.keys)} keys, ${a0.appenders ?? "?"} requests in flight, ${a0.secs ? Math.round(a0.secs) : "?"} s`);
  P();
  P("Closed loop: each of the writers keeps one request in flight. Weir: one HTTP keep-alive connection per writer, each append a JSON array of State Protocol `update` messages (the plain stream gets the same bytes). NATS: `kv.put` on one connection; etcd: `put` on one client (both multiplex the requests in flight). Server CPU per change = utime+stime / changes.");
  P();
  P("| server | stream | changes per request | requests/s | **changes/s** | vs Weir plain, same batch | p50 / p99 ms | server CPU | server CPU µs/change | client CPU | core 0 / core 1 busy | errors |");
  P("|---|---|---|---|---|---|---|---|---|---|---|---|");
  const cases = [...new Set(akeys.map((k) => k.split("|")[1]))];
  const ratios = [];
  for (const s of servers)
    for (const c of cases.sort()) {
      const rs = runs[`${s}|${c}`];
      if (!rs) continue;
      const [, kind, b] = c.match(/^append-(\w+)-b(\d+)$/);
      const rec = med(rs, "recordsPerSec");
      const plain = med(runs[`weir|append-plain-b${b}`], "recordsPerSec") ?? med(runs[`weir|append-plain-b1`], "recordsPerSec");
      if (s === "weir" && kind === "state" && plain) ratios.push([b, rec / plain]);
      const label = kind === "plain" ? "plain JSON stream" : kind === "state" ? "state-protocol" : s === "etcd" ? "etcd put" : "KV put";
      P(
        `| ${NAME[s]}${failedNote(rs)} | ${label} | ${b} | ${fmt(med(rs, "requestsPerSec"))} | **${fmt(rec)}** | ${plain ? f2(rec / plain) : "n/a"} | ${f1(med(rs, "p50Ms"))} / ${f1(med(rs, "p99Ms"))} | ${fmt(med(rs, "serverCpuPct"))}% | ${f1(med(rs, "serverCpuUsPerChange"))} | ${fmt(med(rs, "clientCpuPct"))}% | ${fmt(med(rs, (r) => r.coreBusyPct?.cpu0))}% / ${fmt(med(rs, (r) => r.coreBusyPct?.cpu1))}% | ${fmt(med(rs, "errors"))} |`,
      );
    }
  P();
  P("Per round, changes/s (CPU of other processes, % of one core):");
  P();
  for (const s of servers)
    P(`- ${NAME[s]}: ${cases.filter((c) => runs[`${s}|${c}`]).map((c) => `${c.replace("append-", "")} ${ok(runs[`${s}|${c}`]).map((r) => `${fmt(r.recordsPerSec)} (${fmt(r.foreignCpuPct)}%)`).join(" / ")}`).join("; ")}`);
  P();
  if (ratios.length) P(`Goal: state-protocol appends ≥ 70 % of plain-stream appends (same run, same batch): ${ratios.map(([b, x]) => `${b} per append ${fmt(100 * x)} % (${goal(x >= 0.7)})`).join("; ")}.`);
  P();
}

// ---- 3. fanout
const fkeys = Object.keys(runs).filter((k) => k.includes("|fanout-"));
if (fkeys.length) {
  const f0 = ok(runs[fkeys[0]])[0] || {};
  P(`### 3. Filtered subscribers: each ~5 % of ${fmt(f0.keys)} keys (${f0.groups ?? 20} groups), ${fmt(100 * (f0.pMove ?? 0.25))} % of changes move a key to another group`);
  P();
  P("Subscriber k follows group k mod 20 (Weir: `subscribe_state` with the filter `{\"field\":\"g\",\"op\":\"eq\",\"value\":G}` on the JSON value over WebSocket; NATS: a KV watch on `gGG.>`; etcd: a prefix range read then a prefix watch on `gGG.`), one connection per subscriber. Exact = every change reached exactly the subscribers of the group it entered, stayed in or left, as an upsert or a delete with the right key and value, in order, nothing else, and every snapshot held exactly its group. Latency: from sending the write that carried the change to the subscriber reading it, over the measured window (sends after the warm-up). Server CPU per change over the measured window.");
  P();
  P("| server | subscribers | changes/s asked / done | deliveries/s | exact? | latency p50 / p90 / p99 / max ms | write ack p50 / p99 ms | server CPU | µs per change | µs per delivery | RSS loaded / subscribed / peak MiB | client CPU | subscribe s |");
  P("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  const cases = [...new Set(fkeys.map((k) => k.split("|")[1]))].sort((a, b) => {
    const [sa, ra] = a.replace("fanout-", "").split("x").map(Number);
    const [sb, rb] = b.replace("fanout-", "").split("x").map(Number);
    return sb * rb - sa * ra || sb - sa;
  });
  for (const c of cases)
    for (const s of servers) {
      const rs = runs[`${s}|${c}`];
      if (!rs) continue;
      const [subs, rate] = c.replace("fanout-", "").split("x").map(Number);
      const exact = ok(rs).map((r) =>
        (r.exact ? "yes" : "") +
        (r.failedWrites ? ` (${fmt(r.failedWrites)} writes unacknowledged (${r.writerFirstError}), their ${fmt(r.indeterminate)} deliveries not judged)` : "") +
        (r.exact
          ? ""
          : `**no**: ${[r.missing && `${fmt(r.missing)} not delivered ${r.drainSecs ?? 10} s after the last write`, r.unexpected && `${fmt(r.unexpected)} unexpected`, r.duplicates && `${fmt(r.duplicates)} duplicates`, r.wrongValue && `${fmt(r.wrongValue)} wrong values`, r.wrongKey && `${fmt(r.wrongKey)} wrong keys`, r.outOfOrder && `${fmt(r.outOfOrder)} out of order`, r.snapshotBadSubs && `${r.snapshotBadSubs} bad snapshots`, r.subscribersClosed && `${r.subscribersClosed} connections closed`, r.subscriberErrors && `${r.subscriberErrors} subscriber errors`, r.writerSeqMismatch && `${r.writerSeqMismatch} writes at unexpected offsets`].filter(Boolean).join(", ")}`),
      );
      P(
        `| ${NAME[s]}${failedNote(rs)} | ${fmt(subs)} | ${fmt(rate)} / ${fmt(med(rs, "changesPerSec"))} | ${fmt(med(rs, "deliveriesPerSec"))} | ${exact.join("; ")} | ${f1(med(rs, "latP50Ms"))} / ${f1(med(rs, "latP90Ms"))} / **${f1(med(rs, "latP99Ms"))}** / ${fmt(med(rs, "latMaxMs"))} | ${f1(med(rs, "writeAckP50Ms"))} / ${f1(med(rs, "writeAckP99Ms"))} | ${fmt(med(rs, "serverCpuPct"))}% | ${f1(med(rs, "serverCpuUsPerChange"))} | ${f1(med(rs, "serverCpuUsPerDelivery"))} | ${mib(med(rs, "rssLoaded"))} / ${mib(med(rs, "rssSubscribed"))} / ${mib(med(rs, "peakRss"))} | ${fmt(med(rs, "clientCpuPct"))}% | ${f1(med(rs, "connectSecs"))} |`,
      );
    }
  P();
  P("Per round (p99 ms / changes/s done / deliveries received of expected / client CPU / core 0 busy / other processes, % of one core):");
  P();
  for (const c of cases)
    for (const s of servers) {
      const rs = runs[`${s}|${c}`];
      if (!rs) continue;
      P(`- ${NAME[s]}, ${c.replace("fanout-", "")}: ${ok(rs).map((r) => `r${r._round} ${f1(r.latP99Ms)} / ${fmt(r.changesPerSec)} / ${fmt(r.deliveries)} of ${fmt(r.expectedDeliveries)} / ${fmt(r.clientCpuPct)}% / ${fmt(r.coreBusyPct?.cpu0)}% / ${fmt(r.foreignCpuPct)}%${r.writerErrors ? ` / writer errors ${r.writerErrors}: ${r.writerFirstError}` : ""}${r.subscriberFirstTrouble ? ` / ${r.subscriberFirstTrouble}` : ""}`).join(" ; ")}`);
    }
  P();
  const g = runs["weir|fanout-1000x10000"];
  if (g) {
    const p99 = med(g, "latP99Ms");
    const exact = ok(g).every((r) => r.exact);
    const rate = med(g, "changesPerSec");
    P(`Goal (1,000 subscribers, 10,000 changes/s, exact, p99 ≤ 25 ms): Weir exact in ${ok(g).filter((r) => r.exact).length} of ${ok(g).length} rounds, ${fmt(rate)} changes/s done, p99 ${f1(p99)} ms: ${goal(exact && p99 != null && p99 <= 25 && rate >= 9500)}.`);
    P();
  }
}
process.stdout.write(lines.join("\n") + "\n");
