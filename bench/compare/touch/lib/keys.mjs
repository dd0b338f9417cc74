// Touch key families (touches.md §1.3), computed on the client side:
// XXH3-64 with seed 0 over a family tag, "\0" separators and, for keys
// derived from a template, the template id as 8 big-endian bytes.
import { xxh3, xxh32 } from "@node-rs/xxhash";

const NUL = Buffer.from([0]);

function h3(parts) {
  return xxh3.xxh64(Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : p))), 0n);
}

function be8(tid) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(tid);
  return b;
}

export const hex16 = (k) => k.toString(16).padStart(16, "0");

// JS default sort compares UTF-16 code units, which is the order Prisma uses.
export const sortFields = (names) => [...names].sort();

export function tableKey(entity) {
  return h3(["tbl", NUL, entity]);
}

export function templateId(entity, sortedFields) {
  const parts = ["tpl", NUL, entity];
  for (const f of sortedFields) parts.push(NUL, f);
  return h3(parts);
}

export function templateKey(tid) {
  return h3(["tpl", NUL, be8(tid)]);
}

function derived(tag, tid, extra, args) {
  const parts = [tag, NUL, be8(tid)];
  if (extra !== null) parts.push(NUL, extra);
  for (const a of args) parts.push(NUL, a);
  return h3(parts);
}

export const watchKey = (tid, args) => derived("key", tid, null, args);
export const membershipKey = (tid, args) => derived("mem", tid, null, args);
export const projectedFieldKey = (tid, field, args) => derived("fld", tid, field, args);

export function keyIdOfString(s) {
  const t = s.trim().toLowerCase();
  if (/^[0-9a-f]{16}$/.test(t)) return Number(BigInt("0x" + t) & 0xffffffffn);
  return xxh32(Buffer.from(t, "utf8"), 0);
}

// The golden vectors of touches.md §1.3; returns a list of mismatches.
export function selfTest() {
  const bad = [];
  const eq = (name, got, want) => {
    if (got !== want) bad.push(`${name}: got ${got}, want ${want}`);
  };
  const tid = templateId("public.todos", sortFields(["userId", "status", "tenantId"]));
  const args = ["open", "t1", "u1"];
  eq("tableKey", hex16(tableKey("public.todos")), "feadeb84d447fd63");
  eq("templateId", hex16(tid), "ddd2330fdab379da");
  eq("watchKey", hex16(watchKey(tid, args)), "39accd125778dc36");
  eq("membershipKey", hex16(membershipKey(tid, args)), "eae633979a7ee466");
  eq("projectedFieldKey", hex16(projectedFieldKey(tid, "title", args)), "1ecc53e76a89f0d5");
  eq("templateKey", hex16(templateKey(tid)), "5086e055faafe816");
  eq("keyId(templateKey)", keyIdOfString(hex16(templateKey(tid))), 4205832214);
  eq("keyId(tableKey)", keyIdOfString(hex16(tableKey("public.todos"))), 3561487715);
  eq("tableKey(posts)", hex16(tableKey("posts")), "8c646d3dd6bc68f4");
  const p = templateId("posts", ["tenantId"]);
  eq("templateId(posts)", hex16(p), "0af3814da0aea55f");
  eq("watch(posts,t1)", hex16(watchKey(p, ["t1"])), "f9ae463d06fcf3fc");
  eq("mem(posts,t2)", hex16(membershipKey(p, ["t2"])), "1e2eb8465e0fc10e");
  const pu = templateId("posts", ["tenantId", "userId"]);
  eq("watch(posts2,t1,456)", hex16(watchKey(pu, ["t1", "456"])), "d5990f95976a97fb");
  const e = templateId("public.events", ["at", "flag"]);
  eq("watch(events)", hex16(watchKey(e, ["2026-03-23T10:30:00.000Z", "1"])), "7b292861cf31be2d");
  eq("keyId(hello)", keyIdOfString(" Hello "), 4211111929);
  // A little-endian template id must give a different key.
  const le = Buffer.alloc(8);
  le.writeBigUInt64LE(p);
  if (h3(["key", NUL, le, NUL, "t1"]) === watchKey(p, ["t1"])) bad.push("little-endian tid8 gives the same key");
  return bad;
}
