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
const runs = {}; // key "server|bench" -> [result...]
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
  (runs[`${m[1]}|${m[2]}`] ||= []).push(j);
}
const machine = fs.existsSync(path.join(dir, "machine.txt")) ? fs.readFileSync(path.join(dir, "machine.txt"), "utf8") : "";
const servers = [...new Set(Object.keys(runs).map((k) => k.split("|")[0]))].sort((a, b) => (a === "weir" ? -1 : b === "weir" ? 1 : a.localeCompare(b)));

function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const h = Math.floor(v.length / 2);
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}
const ok = (rs) => (rs || []).filter((r) => !r.failed);
const med = (rs, k) => median(ok(rs).map((r) => r[k]));
const medCore = (rs, c) => median(ok(rs).map((r) => (r.coreBusyPct || {})[c]));
const rounds = (rs, k, f = fmt) => ok(rs).map((r) => f(r[k])).join(" / ");
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
  return n ? ` (${n} failed)` : "";
};

const lines = [];
const P = (s = "") => lines.push(s);
P("## Touches: Weir vs Prisma Streams 0.1.11 (medians over rounds)");
P();
const mm = Object.fromEntries(machine.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
if (machine) {
  if (mm.weir_bin) P(`Weir binary: ${mm.weir_bin}.`);
  P(`Machine: ${mm.nproc} cores, server pinned to core 0, Node ${mm.node} load generator on core 1; load average at start ${mm.load_start}, at end ${mm.load_end}; ${mm.wall_secs} s in all. Prisma Streams ${mm.prisma} on Bun ${mm.bun}. Command: \`${mm.cmd}\`.`);
  P();
}

// ---- 1. waiters
const wkeys = Object.keys(runs).filter((k) => k.includes("|waiters-"));
if (wkeys.length) {
  const counts = [...new Set(wkeys.map((k) => Number(k.split("waiters-")[1])))].sort((a, b) => b - a);
  const w0 = ok(runs[wkeys[0]])[0] || {};
  P(`### 1. Touched latency: long-poll waiters, 3 fine keys each over ${w0.tuples ?? 1000} tuples, ${w0.rate ?? 1000} changes/s`);
  P();
  P("Latency = answer received − acknowledgement of the append whose change woke the waiter (the earliest change on one of its keys that the wake covers, by `bucketMaxSourceOffsetSeq`); \"from send\" measures from the moment that append was sent. Waits/s counts every answer (each waiter re-waits at once with the returned cursor). Server CPU is utime+stime over the measured window, as % of one core. Client CPU: the Node load generator's process (utime+stime). Core busy: the whole core from /proc/stat (every process, kernel loopback work included; the server is on core 0, the client on core 1). Wake split, for live wakes (the wait was sent before the waking flush): the append's ack → the server's \`flushAtMs\`, and \`flushAtMs\` → the answer read by the client (server response path + client read backlog).");
  P();
  P("| server | waiters (connected) | waits/s | touched p50 / p95 / p99 ms | from send p50 / p99 ms | false wakes | timeouts | errors | changes/s done | server CPU | peak RSS MiB | client CPU | core 0 / core 1 busy | wake split: ack→flush / flush→read p50 ms |");
  P("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const n of counts)
    for (const s of servers) {
      const rs = runs[`${s}|waiters-${n}`];
      if (!rs) continue;
      P(
        `| ${s}${failedNote(rs)} | ${fmt(n)} (${fmt(med(rs, "waitersConnected"))}) | ${fmt(med(rs, "answersPerSec"))} | ${f1(med(rs, "latAckP50"))} / ${f1(med(rs, "latAckP95"))} / ${f1(med(rs, "latAckP99"))} | ${f1(med(rs, "latSendP50"))} / ${f1(med(rs, "latSendP99"))} | ${fmt(med(rs, "falseWakes"))} (${f2(med(rs, "falseWakePct"))}%) | ${fmt(med(rs, "timeouts"))} | ${fmt(med(rs, "errors"))} | ${fmt(med(rs, "changesPerSec"))} | ${f1(med(rs, "serverCpuSecs"))} s (${fmt(med(rs, "serverCpuPct"))}%) | ${mib(med(rs, "serverPeakRss"))} | ${fmt(med(rs, "clientCpuPct"))}% | ${fmt(medCore(rs, "cpu0"))}% / ${fmt(medCore(rs, "cpu1"))}% | ${f1(med(rs, "liveAckToFlushP50"))} / ${f1(med(rs, "liveFlushToReadP50"))} |`,
      );
    }
  P();
  P("Per round (touched p50 ms / waits/s / client CPU % / server touchMode and lag in offsets at the end / CPU of all other processes on the machine, % of one core):");
  P();
  for (const n of counts)
    for (const s of servers) {
      const rs = runs[`${s}|waiters-${n}`];
      if (!rs) continue;
      P(`- ${s}, ${fmt(n)} waiters: ${ok(rs).map((r) => `${f1(r.latAckP50)} / ${fmt(r.answersPerSec)} / ${fmt(r.clientCpuPct)}% / ${(r.metaEnd || {}).touchMode ?? "?"} ${(r.metaEnd || {}).lagSourceOffsets ?? "?"} / other processes ${fmt(r.foreignCpuPct)}%`).join(" ; ")}`);
    }
  P();
}

// ---- 1b. waiters, driven by weir-load
const rkeys = Object.keys(runs).filter((k) => k.includes("|rustwaiters-"));
if (rkeys.length) {
  // Labels are rustwaiters-<waiters>-x<changes per append>.
  const shapes = [...new Set(rkeys.map((k) => k.split("rustwaiters-")[1]))].sort((a, b) => {
    const [wa, ka] = a.split("-x").map(Number);
    const [wb, kb] = b.split("-x").map(Number);
    return wb - wa || ka - kb;
  });
  P("### 1b. The same waiters driven by weir-load (Rust)");
  P();
  P("weir-load `--workload touch`: the same waits (3 fine keys over 1,000 tenants of one template, `timeoutMs` 4000, one keep-alive connection each) and change rate, in appends of 1 change (each change its own commit) or 10 (the Node driver's shape: each append then wakes about 300 waiters at once). Latency = answer received − the moment the first change on one of the waiter's keys after its wait began was *sent* (so it includes that append's own latency: an upper bound of commit-to-answer). A false wake is a touched answer with no change of its keys sent since one second before its wait began.");
  P();
  P("| server | waiters (ready) | changes per append | waits/s | touched p50 / p95 / p99 / max ms | false wakes | timeouts | errors | changes done | server CPU | server RSS MiB |");
  P("|---|---|---|---|---|---|---|---|---|---|---|");
  const lat = (rs, i) => median(ok(rs).map((r) => (r.latency_ms || [])[i]));
  for (const sh of shapes)
    for (const s of servers) {
      const rs = runs[`${s}|rustwaiters-${sh}`];
      if (!rs) continue;
      const [n, k] = sh.split("-x").map(Number);
      P(
        `| ${s}${failedNote(rs)} | ${fmt(n)} (${fmt(med(rs, "waiters_ready"))}) | ${k} | ${fmt(med(rs, "waits_per_sec"))} | ${f1(lat(rs, 0))} / ${f1(lat(rs, 1))} / ${f1(lat(rs, 2))} / ${f1(lat(rs, 3))} | ${fmt(med(rs, "false_wakes"))} | ${fmt(med(rs, "timeouts"))} | ${fmt(med(rs, "errors"))} | ${fmt(med(rs, "changes"))} | ${fmt(med(rs, "server_cpu_percent"))}% | ${fmt(med(rs, "server_rss_mib"))} |`,
      );
    }
  P();
  P("Per round, touched p95 ms:");
  P();
  for (const sh of shapes)
    for (const s of servers) {
      const rs = runs[`${s}|rustwaiters-${sh}`];
      if (!rs) continue;
      const [n, k] = sh.split("-x").map(Number);
      P(`- ${s}, ${fmt(n)} waiters, ${k} per append: ${ok(rs).map((r) => f1((r.latency_ms || [])[1])).join(" ; ")}`);
    }
  P();
}

// ---- 2. append
const cases = [
  ["plain", "plain JSON stream"],
  ["state", "state-protocol, touch off"],
  ["touch0", "touch on, no templates"],
  ["touch", "touch on, 1,000 templates, no waiters"],
  ["touchhot", "touch on, 1,000 templates, all hot (8 fine waiters)"],
];
if (Object.keys(runs).some((k) => k.includes("|append-"))) {
  const a0 = ok(runs[Object.keys(runs).find((k) => k.includes("|append-"))])[0] || {};
  P(`### 2. Append throughput (${a0.appenders ?? "?"} appenders, ${a0.batch ?? 10} changes per append, ${a0.secs ? Math.round(a0.secs) : "?"} s each)`);
  P();
  P("\"settle\" = time for `touch/meta?settle=flush` to report settled after the load stopped (the touch processor's backlog).");
  P();
  P("| server | stream | appends/s | records/s | vs state-protocol | vs plain | append p50 / p99 ms | errors | server CPU | core 0 / core 1 busy | peak RSS MiB | settle s |");
  P("|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const s of servers) {
    const base = med(runs[`${s}|append-state`], "recordsPerSec");
    const plain = med(runs[`${s}|append-plain`], "recordsPerSec");
    for (const [c, label] of cases) {
      const rs = runs[`${s}|append-${c}`];
      if (!rs) continue;
      const rec = med(rs, "recordsPerSec");
      P(
        `| ${s}${failedNote(rs)} | ${label} | ${fmt(med(rs, "appendsPerSec"))} | ${fmt(rec)} | ${base ? f2(rec / base) : "n/a"} | ${plain ? f2(rec / plain) : "n/a"} | ${f1(med(rs, "appendP50Ms"))} / ${f1(med(rs, "appendP99Ms"))} | ${fmt(med(rs, "errors"))} | ${fmt(med(rs, "serverCpuPct"))}% | ${fmt(medCore(rs, "cpu0"))}% / ${fmt(medCore(rs, "cpu1"))}% | ${mib(med(rs, "serverPeakRss"))} | ${c === "touch" || c === "touchhot" ? f2(med(rs, "settleSecs")) : "-"} |`,
      );
    }
  }
  P();
  P("Per round, records/s (CPU of all other processes, % of one core):");
  P();
  for (const s of servers)
    P(`- ${s}: ${cases.filter(([c]) => runs[`${s}|append-${c}`]).map(([c]) => `${c} ${ok(runs[`${s}|append-${c}`]).map((r) => `${fmt(r.recordsPerSec)} (${fmt(r.foreignCpuPct)}%)`).join(" / ")}`).join("; ")}`);
  P();
  const ratio = (s) => {
    const t = med(runs[`${s}|append-touchhot`], "recordsPerSec");
    const b = med(runs[`${s}|append-state`], "recordsPerSec");
    return t && b ? t / b : null;
  };
  if (servers.length > 1) P(`Touch (1,000 hot templates) / state-protocol: ${servers.map((s) => `${s} ${f2(ratio(s))}`).join(", ")}.`);
  P();
}

// ---- 3. memory
const nStreams = (ok(Object.entries(runs).find(([k]) => k.endsWith("|streams"))?.[1])[0] || {}).streams ?? 100;
P("### 3. Memory (RSS of the server process)");
P();
P(`Idle waiters: RSS after the waiters of table 1 registered, before any change; "the connection" = RSS after each waiter's keep-alive connection served one request, before it waits; "the wait" = the rest. Touch streams: RSS after 1 and after ${nStreams} touch streams; "configured" = touch on + one template, "used" = also one wait served and one change processed (per-stream cost = difference / ${nStreams - 1}); then ${nStreams} plain JSON streams with one record each.`);
P();
P(`| server | waiters | RSS, 0 waiters MiB | RSS, idle waiters MiB | bytes / idle waiter | of which the connection | of which the wait | RSS 1 touch stream MiB | RSS ${nStreams} touch streams MiB | bytes / touch stream, configured | bytes / touch stream, used | bytes / plain stream |`);
P("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const s of servers) {
  const wk = Object.keys(runs).filter((k) => k.startsWith(`${s}|waiters-`)).sort((a, b) => Number(b.split("-")[1]) - Number(a.split("-")[1]));
  const st = runs[`${s}|streams`];
  const rowsW = wk.length ? wk : [null];
  for (const k of rowsW) {
    const rs = k ? runs[k] : null;
    P(
      `| ${s} | ${rs ? fmt(med(rs, "waitersConnected")) : "-"} | ${rs ? mib(med(rs, "rssNoWaiters")) : "-"} | ${rs ? mib(med(rs, "rssIdleWaiters")) : "-"} | ${rs ? fmt(med(rs, "bytesPerIdleWaiter")) : "-"} | ${rs ? fmt(med(rs, "bytesPerIdleConnection")) : "-"} | ${rs ? fmt(med(rs, "bytesPerWaitBeyondConnection")) : "-"} | ${st ? mib(med(st, "rss1Touch")) : "-"} | ${st ? mib(med(st, "rssNTouch")) : "-"} | ${st ? fmt(med(st, "bytesPerConfiguredTouchStream")) : "-"} | ${st ? fmt(med(st, "bytesPerTouchStream")) : "-"} | ${st ? fmt(med(st, "bytesPerPlainStream")) : "-"} |`,
    );
  }
}
P();
process.stdout.write(lines.join("\n") + "\n");
