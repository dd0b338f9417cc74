// The HTTP surface Weir and Prisma Streams share, as used by the drivers.
import { jreq } from "../../lib/http.mjs";

export const PROFILE_TOUCH = (touchExtra = {}) => ({
  apiVersion: "durable.streams/profile/v1",
  profile: { kind: "state-protocol", touch: { enabled: true, ...touchExtra } },
});

export function must(r, what) {
  if (r.status < 200 || r.status >= 300) {
    throw new Error(`${what}: HTTP ${r.status} ${typeof r.json === "string" ? r.json : JSON.stringify(r.json)}`);
  }
  return r;
}

export async function createStream(c, name, profile) {
  const r = await c.request("PUT", `/v1/stream/${name}`, null, "Content-Type: application/json\r\n");
  must({ status: r.status, json: r.body.toString() }, `create ${name}`);
  if (profile) must(await jreq(c, "POST", `/v1/stream/${name}/_profile`, profile), `profile ${name}`);
}

export async function activate(c, name, templates) {
  const ids = [];
  for (let i = 0; i < templates.length; i += 256) {
    const r = must(
      await jreq(c, "POST", `/v1/stream/${name}/touch/templates/activate`, { templates: templates.slice(i, i + 256) }),
      `activate ${name}`,
    );
    if (r.json.denied && r.json.denied.length) throw new Error(`activate ${name}: denied ${JSON.stringify(r.json.denied.slice(0, 3))}`);
    for (const a of r.json.activated) ids.push(a.templateId);
  }
  return ids;
}

export async function meta(c, name, q = "") {
  return must(await jreq(c, "GET", `/v1/stream/${name}/touch/meta${q}`), `meta ${name}`).json;
}

// The fields of a wait answer this driver needs. Both servers answer compact
// JSON, so plain string search is enough (and much cheaper than JSON.parse
// at 20,000+ answers/s); anything unexpected falls back to JSON.parse.
function field(b, name) {
  const k = `"${name}":`;
  const i = b.indexOf(k);
  if (i < 0) return undefined;
  let j = i + k.length;
  if (b[j] === '"') {
    const e = b.indexOf('"', j + 1);
    return b.slice(j + 1, e);
  }
  let e = j;
  while (e < b.length && b[e] !== "," && b[e] !== "}") e++;
  return b.slice(j, e);
}
export function parseWait(b) {
  const cursor = field(b, "cursor");
  const touched = field(b, "touched");
  const stale = field(b, "stale");
  const seq = field(b, "bucketMaxSourceOffsetSeq");
  if (cursor === undefined || (touched === undefined && stale === undefined)) {
    const j = JSON.parse(b);
    return { cursor: j.cursor, touched: !!j.touched, stale: !!j.stale, seq: Number(j.bucketMaxSourceOffsetSeq), flushAt: Number(j.flushAtMs) };
  }
  return { cursor, touched: touched === "true", stale: stale === "true", seq: Number(seq), flushAt: Number(field(b, "flushAtMs")) };
}

export function pickMeta(m) {
  const keys = [
    "touchMode", "activeWaiters", "fineWaitersActive", "broadFineWaitersActive", "hotFineKeys", "lagSourceOffsets",
    "overflowBuckets", "journalFlushesTotal", "touchesTemplateTotal", "touchesTableTotal",
    "fineTouchesDroppedDueToBudgetTotal", "fineTouchesSkippedColdKeyTotal", "fineTouchesSkippedColdTemplateTotal",
    "waitTouchedTotal", "waitTimeoutTotal", "waitStaleTotal", "flushIntervalMsP95Last10s", "coalesceMs",
  ];
  const o = {};
  for (const k of keys) if (m && m[k] !== undefined) o[k] = m[k];
  return o;
}

