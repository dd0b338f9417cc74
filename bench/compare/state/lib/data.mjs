// Key names, 100-byte values and the deterministic change sequence shared by
// every server, the writer worker and the verifier.
import { prng } from "../../lib/util.mjs";

export const GROUPS = 20; // a group is 1/20 = 5 % of the keys
export const VALUE_BYTES = 100;

// Weir: the State Protocol entity key; the group lives in the value (field g).
export const keyName = (i) => "k" + String(i).padStart(6, "0");
// NATS KV and etcd: the group is the key's prefix, so a prefix watch selects it.
export const groupPrefix = (g) => "g" + String(g).padStart(2, "0") + ".";
export const peerKey = (g, i) => groupPrefix(g) + keyName(i);

// Exactly VALUE_BYTES bytes of JSON: {"g":G,"s":S,"v":"xxx..."}.
export function value(g, s) {
  const head = `{"g":${g},"s":${s},"v":"`;
  return head + "x".repeat(VALUE_BYTES - head.length - 2) + '"}';
}

// {g, s} of a value() text without a full JSON parse (NaN if malformed).
export function parseGS(str) {
  if (typeof str !== "string" || !str.startsWith('{"g":')) return { g: NaN, s: NaN };
  const c = str.indexOf(',"s":', 5);
  if (c < 0) return { g: NaN, s: NaN };
  return { g: parseInt(str.slice(5, c), 10), s: parseInt(str.slice(c + 5, str.indexOf(",", c + 5)), 10) };
}

// One State Protocol message (insert or update) of key i.
export const weirMsg = (i, g, s, op = "update") =>
  `{"type":"kv","key":"${keyName(i)}","value":${value(g, s)},"headers":{"operation":"${op}"}}`;

export const initialGroup = (i) => i % GROUPS;

// The changes of benchmark 3, the same for every server: change `seq` sets
// key perm[seq % nKeys] (a seeded permutation, so a key changes again only
// after every other key did, and never twice among in-flight changes) to a
// new value; with probability pMove its group changes (the key leaves one
// filter and enters another), otherwise it stays in its group.
export class ChangeGen {
  constructor(nKeys, pMove, seed = 42) {
    this.n = nKeys;
    this.pMove = pMove;
    this.rnd = prng(seed);
    this.perm = Array.from({ length: nKeys }, (_, i) => i);
    for (let i = nKeys - 1; i > 0; i--) {
      const j = Math.floor(this.rnd() * (i + 1));
      [this.perm[i], this.perm[j]] = [this.perm[j], this.perm[i]];
    }
    this.group = Int8Array.from({ length: nKeys }, (_, i) => initialGroup(i));
    this.seq = 0;
  }
  // {seq, key, oldG, newG}
  next() {
    const key = this.perm[this.seq % this.n];
    const oldG = this.group[key];
    let newG = oldG;
    if (this.rnd() < this.pMove) newG = (oldG + 1 + Math.floor(this.rnd() * (GROUPS - 1))) % GROUPS;
    this.group[key] = newG;
    return { seq: this.seq++, key, oldG, newG };
  }
}
