// Helpers shared by the comparison harnesses (touch/, state/): argument parsing, server process sampling (/proc), offsets,
// percentiles.
import fs from "node:fs";

export function parseArgs(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const k = a.slice(2);
      const v = argv[i + 1] !== undefined && !argv[i + 1].startsWith("--") ? argv[++i] : "1";
      o[k] = v;
    } else o._.push(a);
  }
  return o;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const nowMs = () => performance.now();

const CLK_TCK = 100; // Linux USER_HZ; checked by `run` with getconf CLK_TCK

// CPU seconds (utime + stime, all threads) of a process.
export function cpuSecs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

// {rss, hwm} in bytes from /proc/PID/status.
export function memOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "latin1");
    const kb = (k) => {
      const m = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"));
      return m ? Number(m[1]) * 1024 : NaN;
    };
    return { rss: kb("VmRSS"), hwm: kb("VmHWM"), threads: Number((s.match(/^Threads:\s+(\d+)/m) || [])[1]) };
  } catch {
    return { rss: NaN, hwm: NaN, threads: NaN };
  }
}

// Samples a process's RSS every `ms` ms; peak() gives the largest seen.
export class RssSampler {
  constructor(pid, ms = 200) {
    this.pid = pid;
    this.max = 0;
    this.t = setInterval(() => this.sample(), ms);
    this.sample();
  }
  sample() {
    const r = memOf(this.pid).rss;
    if (r > this.max) this.max = r;
    return r;
  }
  stop() {
    clearInterval(this.t);
    this.sample();
    return this.max;
  }
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// The sequence number of the next record, read from a Stream-Next-Offset
// header. Weir: 32 decimal digits split by "_" (the next record offset).
// Prisma Streams: 26 Crockford base32 characters over 16 bytes (epoch u32,
// seq+1 as u64, in-block u32), the seq being the last record's.
export function nextSeqOf(offset) {
  if (!offset) return NaN;
  if (/^\d{16}_\d{16}$/.test(offset)) return Number(BigInt(offset.replace("_", "")));
  if (offset.length === 26) {
    let v = 0n;
    for (const ch of offset.toUpperCase()) {
      const d = CROCKFORD.indexOf(ch);
      if (d < 0) return NaN;
      v = (v << 5n) | BigInt(d);
    }
    v >>= 2n; // 130 bits carry 128
    return Number((v >> 32n) & 0xffffffffffffffffn);
  }
  return NaN;
}

export function pct(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function randInt(n) {
  return Math.floor(Math.random() * n);
}

// Milliseconds on a clock shared by the main thread and workers (each
// thread's performance.now() has its own origin).
export const nowAbs = () => performance.timeOrigin + performance.now();

// A small deterministic PRNG (mulberry32), so two threads can agree on a
// sequence of random choices without talking.
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Per-core busy jiffies and total jiffies from /proc/stat: {cpu0: [busy, total], ...}.
export function coreTimes() {
  const o = {};
  try {
    for (const l of fs.readFileSync("/proc/stat", "latin1").split("\n")) {
      const m = l.match(/^(cpu\d+)\s+(.*)$/);
      if (!m) continue;
      const v = m[2].trim().split(/\s+/).map(Number);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      const idle = v[3] + v[4];
      o[m[1]] = [total - idle, total];
    }
  } catch {}
  return o;
}

// Busy % of each core between two coreTimes() snapshots.
export function coreBusy(a, b) {
  const o = {};
  for (const k of Object.keys(b)) {
    if (!a[k]) continue;
    const dt = b[k][1] - a[k][1];
    o[k] = dt > 0 ? Math.round((1000 * (b[k][0] - a[k][0])) / dt) / 10 : null;
  }
  return o;
}

// CPU ticks per process (pid -> utime+stime) except `exclude`, from /proc:
// to tell whether something else ran on the machine during a measurement.
export function foreignTicks(exclude) {
  const m = new Map();
  const ex = new Set(exclude.map(Number));
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || ex.has(Number(d))) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "latin1");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      m.set(d, Number(f[11]) + Number(f[12]));
    } catch {}
  }
  return m;
}

// % of one core used by other processes between two foreignTicks() maps
// (processes that exited in between are not counted).
export function foreignPct(a, b, secs) {
  let t = 0;
  for (const [pid, v] of b) t += v - (a.get(pid) ?? 0);
  return Math.round(t / secs); // ticks are 1/100 s
}

// The record number of a Weir HTTP offset ("0000000000000000_0000000000000042" -> 42).
export function weirOffsetNum(offset) {
  if (!offset || !/^\d{16}_\d{16}$/.test(offset)) return NaN;
  return Number(BigInt(offset.replace("_", "")));
}
