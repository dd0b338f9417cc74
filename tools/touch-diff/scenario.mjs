// Differential test of Prisma Streams' touch / live-template surface.
//
// One scripted scenario runs against two servers at once (PRISMA_URL, the
// reference, and WEIR_URL), step by step. Each step sends the same requests
// to both, turns each answer into a comparable "observation" and compares
// the two: HTTP status, JSON field names (recursively), outcomes such as
// `touched` / `stale` / `denied` reasons, and error messages (exact text).
// Values that legitimately differ between two servers (cursors and epochs,
// which are random per journal; timestamps; timing-driven counters) are
// compared by shape only, with a comment at each such rule saying why.
//
// Prints one line per step (OK / DIFF plus a compact diff), then a summary,
// and exits 1 on any difference. Spec: shared/specs/touches.md.

import nodeHttp from "node:http";

const TARGETS = [
  { name: "prisma", base: process.env.PRISMA_URL },
  { name: "weir", base: process.env.WEIR_URL },
];
for (const t of TARGETS) {
  if (!t.base) {
    console.error(`touch-diff: ${t.name.toUpperCase()}_URL is not set`);
    process.exit(2);
  }
  t.st = {};
}
const VERBOSE = ["1", "2"].includes(process.env.TOUCH_DIFF_VERBOSE);

// ---------------------------------------------------------------------------
// Key vectors (touches.md §1.3, golden and recomputed vectors). Using them
// checks the hashing end to end: a wait on a wrong key never wakes.
const K = {
  POSTS_TID: "0af3814da0aea55f", // posts / [tenantId]
  WATCH_T1: "f9ae463d06fcf3fc", // watch(posts/[tenantId], t1)
  MEM_T1: "998c7dcd3c0ca6c5", // membership(posts/[tenantId], t1)
  MEM_T2: "1e2eb8465e0fc10e", // membership(posts/[tenantId], t2)
  TABLE_POSTS: "8c646d3dd6bc68f4", // tableKey(posts)
  POSTS_TU_TID: "940145c39e0c6eca", // posts / [tenantId, userId]
  WATCH_T1_123: "c385bc18a683a909", // watch(posts/[tenantId,userId], t1,123)
  PUBPOSTS_TID: "1dedf2d16458bb4e", // public.posts / [userId]
  PUBPOSTS_WATCH_42: "c37628366458cd69",
  PMSG_TID: "b6a1aed38e04f0b3", // public.message / [channelId]
  PMSG_WATCH_1: "369cf6ea5e57b0bd",
  PMSG_WATCH_2: "834baf1716e3cfc4",
  MSG_TID: "059e134555c4e1be", // message / [id]
  MSG_MEM_1: "455c3379cecf8bf2",
  MSG_FLD_AUTHOR_1: "44afe9ff6252dd08",
  EVENTS_TID: "eaaaecdcbedb201e", // public.events / [at, flag]
  EVENTS_WATCH: "7b292861cf31be2d", // [2026-03-23T10:30:00.000Z, 1]
};
/** keyId of a 16-hex routing key: its low 32 bits (§1.3). */
const keyId = (hex) => parseInt(hex.slice(8), 16) >>> 0;

// ---------------------------------------------------------------------------
// HTTP.

/**
 * One HTTP request on a fresh connection (no keep-alive: a pooled socket
 * that the server closed while idle would fail the next request at random).
 */
function http(t, method, path, body, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  let payload;
  if (body !== undefined) {
    payload = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    if (!("content-type" in headers)) headers["content-type"] = "application/json";
    headers["content-length"] = String(payload.length);
  }
  const url = new URL(t.base + path);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = text === "" ? null : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({
            status: res.statusCode,
            headers: { get: (name) => res.headers[name.toLowerCase()] ?? null },
            text,
            body: json === undefined ? text : json,
            ms: Date.now() - started,
          });
        });
      }
    );
    req.setTimeout(opts.timeoutMs ?? 20_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    req.end(payload);
  });
}

const enc = encodeURIComponent;
const post = (t, path, body, opts) => http(t, "POST", path, body, opts);
const get = (t, path, opts) => http(t, "GET", path, undefined, opts);
const wait = (t, s, body, opts) => post(t, `/v1/stream/${enc(s)}/touch/wait`, body, opts);
const meta = (t, s, q = "") => get(t, `/v1/stream/${enc(s)}/touch/meta${q}`);
const activate = (t, s, body) => post(t, `/v1/stream/${enc(s)}/touch/templates/activate`, body);
const setProfile = (t, s, touch, extra = {}) =>
  post(t, `/v1/stream/${enc(s)}/_profile`, {
    apiVersion: "durable.streams/profile/v1",
    profile: { kind: "state-protocol", ...(touch === undefined ? {} : { touch }), ...extra },
  });
const append = (t, s, records) => post(t, `/v1/stream/${enc(s)}`, records);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The error text of a non-2xx answer: Prisma's JSON envelope message, or the plain body. */
function errorText(res) {
  if (res.body && typeof res.body === "object" && res.body.error) return res.body.error;
  return { plainText: res.text };
}

/**
 * Waits (≤ 5 s) until the touch processor has scanned past `before` (the
 * meta answer taken before an append) and the journal has flushed, so that
 * a cursor taken after this covers the append. Every append of the
 * scenario goes through this: a cursor taken while an earlier append is
 * still unprocessed would wake on that append later (timing, not
 * behaviour), and `meta?settle=flush` alone does not wait for rows the
 * processor has not read yet (its lag is the last batch's).
 */
async function settleAfter(t, s, before) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const m = await meta(t, s);
    if (
      m.status === 200 &&
      m.body.walScannedThrough !== before.walScannedThrough &&
      m.body.pendingKeys === 0
    ) {
      return m.body;
    }
    if (Date.now() > deadline) throw new Error(`settle(${s}): touch processor did not catch up: ${m.text}`);
    await sleep(20);
  }
}

async function appendChecked(t, s, records) {
  const r = await append(t, s, records);
  if (r.status >= 300) throw new Error(`append to ${s}: ${r.status} ${r.text}`);
  t.st.nextOffset = r.headers.get("stream-next-offset");
  return r;
}

/** Appends and waits until the touch processor has handled it. */
async function appendSettled(t, s, records) {
  const before = (await meta(t, s)).body;
  await appendChecked(t, s, records);
  return settleAfter(t, s, before);
}

/** A settled cursor from `meta?settle=flush`. */
async function settledCursor(t, s) {
  const m = await meta(t, s, "?settle=flush&timeoutMs=5000");
  if (m.status !== 200) throw new Error(`meta ${s}: ${m.status} ${m.text}`);
  return m.body.cursor;
}

/**
 * Starts a wait, appends `records` after `delayMs`, and returns the wait's
 * answer once the append is processed. The wait is in flight when the
 * append lands, so its keys are hot (Prisma derives fine touches only for
 * keys someone waits on).
 */
async function waitWhileAppending(t, s, body, records, delayMs = 300) {
  const before = (await meta(t, s)).body;
  const w = wait(t, s, body);
  await sleep(delayMs);
  await appendChecked(t, s, records);
  const r = await w;
  await settleAfter(t, s, before);
  return r;
}

// Records (State Protocol, touches.md §1.2).
const ins = (type, key, value) => ({ type, key, value, headers: { operation: "insert" } });
const upd = (type, key, value, old_value) => ({
  type,
  key,
  value,
  ...(old_value === undefined ? {} : { old_value }),
  headers: { operation: "update" },
});
const post_ = (key, tenantId, extra = {}) => ins("posts", key, { tenantId, title: "x", ...extra });

// ---------------------------------------------------------------------------
// Canonical observations and diffs.
//
// canon(value, rules) rewrites a JSON value into what is compared: by
// default every value as is ("value" mode); a rule can switch a subtree to
// "shape" mode (types and field names only), name a shape check (cursor,
// hex16, ...), ignore a field, or supply a function. Rule keys are dotted
// paths where `*` matches any key or array index.

const SHAPES = {
  // `<epochHex16>:<generation>`; epochs are random per journal (§1.7).
  cursor: (v) => typeof v === "string" && /^[0-9a-f]{16}:[0-9]+$/.test(v),
  hex16: (v) => typeof v === "string" && /^[0-9a-f]{16}$/.test(v),
  dec: (v) => typeof v === "string" && /^-?[0-9]+$/.test(v),
  num: (v) => typeof v === "number" && Number.isFinite(v),
  uint: (v) => Number.isInteger(v) && v >= 0,
  iso: (v) => typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(v),
};

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function ruleFor(rules, path) {
  for (const [pat, rule] of Object.entries(rules)) {
    const segs = pat === "" ? [] : pat.split(".");
    if (segs.length !== path.length) continue;
    if (segs.every((s, i) => s === "*" || s === String(path[i]))) return rule;
  }
  return undefined;
}

function canon(v, rules = {}, mode = "value", path = []) {
  const rule = ruleFor(rules, path);
  if (rule === "ignore") return "<ignored>";
  if (typeof rule === "function") return rule(v);
  if (typeof rule === "string" && SHAPES[rule]) {
    return SHAPES[rule](v) ? `<${rule}>` : `<not ${rule}: ${JSON.stringify(v)}>`;
  }
  if (rule === "value" || rule === "shape") mode = rule;
  if (Array.isArray(v)) return v.map((x, i) => canon(x, rules, mode, [...path, i]));
  if (v && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = canon(v[k], rules, mode, [...path, k]);
    return out;
  }
  return mode === "shape" ? `<${typeName(v)}>` : v;
}

/**
 * Field names whose integral number is written with a fraction (`"x":100.0`)
 * in the raw JSON text. JSON.parse hides the difference, but a typed client
 * (an integer field in Go, Rust, Java) rejects 100.0 where Prisma (a JS
 * server, which never writes a `.0`) writes 100.
 */
function integralWithFraction(text, onlyKeys) {
  const out = new Set();
  for (const m of String(text).matchAll(/"([^"\\]+)":\s*-?\d+\.0+(?![0-9eE])/g)) {
    if (!onlyKeys || onlyKeys.includes(m[1])) out.add(m[1]);
  }
  return [...out].sort();
}

/** A response as compared: status plus canonical body. */
function obs(res, rules = {}, mode = "value") {
  return { status: res.status, body: canon(res.body, rules, mode) };
}

function short(v) {
  const s = v === undefined ? "(absent)" : JSON.stringify(v);
  return s.length > 160 ? s.slice(0, 157) + "..." : s;
}

function diff(a, b, path = "", out = []) {
  if (out.length > 12) return out;
  const ta = typeName(a);
  const tb = typeName(b);
  if (ta === "object" && tb === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in a)) out.push(`${p}: only weir has it = ${short(b[k])}`);
      else if (!(k in b)) out.push(`${p}: weir lacks it (prisma = ${short(a[k])})`);
      else diff(a[k], b[k], p, out);
    }
  } else if (ta === "array" && tb === "array") {
    if (a.length !== b.length) out.push(`${path || "(root)"}: length prisma=${a.length} weir=${b.length}`);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i >= a.length) out.push(`${path}[${i}]: only weir has it = ${short(b[i])}`);
      else if (i >= b.length) out.push(`${path}[${i}]: weir lacks it (prisma = ${short(a[i])})`);
      else diff(a[i], b[i], `${path}[${i}]`, out);
    }
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push(`${path || "(root)"}: prisma=${short(a)} weir=${short(b)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Steps.

const results = [];
let section = "";

async function step(name, fn) {
  const fullName = section ? `${section} / ${name}` : name;
  const outs = await Promise.all(
    TARGETS.map((t) =>
      fn(t).catch((e) => ({ scenarioError: String(e?.message ?? e).slice(0, 300) }))
    )
  );
  const d = diff(outs[0], outs[1]);
  for (const [i, o] of outs.entries()) {
    if (o && typeof o === "object" && "scenarioError" in o && TARGETS[i].name === "prisma") {
      d.unshift(`(scenario error against prisma: the scenario itself is wrong)`);
    }
  }
  results.push({ name: fullName, ok: d.length === 0, diffs: d });
  if (d.length === 0) {
    console.log(`OK   ${fullName}`);
    if (VERBOSE) console.log(`       ${process.env.TOUCH_DIFF_VERBOSE === "2" ? JSON.stringify(outs[0]) : short(outs[0])}`);
  } else {
    console.log(`DIFF ${fullName}`);
    for (const line of d) console.log(`       ${line}`);
  }
  return outs;
}

// Rules for the common answers.
// Wait answers (§1.8). Cursors and epochs are random per journal; flush
// timestamps are wall clock; generations count flushes, which depend on
// timing (coalescing windows, processor ticks). bucketMaxSourceOffsetSeq is
// the offset seq of the touch that woke the wait: deterministic, by value.
const WAIT = {
  cursor: "cursor",
  epoch: "hex16",
  generation: "uint",
  flushAtMs: "num",
  bucketStartMs: "num",
};
// A timeout answer reports the last flush at the moment the wait gave up,
// and whether the processor had flushed a change made during the wait by
// then is timing (Prisma sometimes takes more than a second to pick a batch
// up), so there bucketMaxSourceOffsetSeq is compared by shape.
const WAIT_TIMEOUT = { ...WAIT, bucketMaxSourceOffsetSeq: "dec" };
const wobs = (res) => obs(res, res.body?.touched === false ? WAIT_TIMEOUT : WAIT);

// Meta answers (§1.9): field names and types always; by value only what the
// scenario fixes. Not by value: cursor/epoch/generation (random epoch, flush
// counts), coalesceMs (adaptive, depends on lag and waiters at the last
// batch), lastFlushAtMs and flush intervals (wall clock), hot-key counts and
// filtering flags (they depend on the 10 s grace expiry and the 2 s sweep),
// per-batch totals (batch boundaries depend on processor-tick timing), and
// journal wake/sweep timings.
const META_VALUE = [
  "mode",
  "bucketMs",
  "filterSize",
  "k",
  "pendingKeys",
  "overflowBuckets",
  "activeWaiters",
  "settled",
  "coarseIntervalMs",
  "touchCoalesceWindowMs",
  "activeTemplates",
  "lagSourceOffsets",
  "bucketMaxSourceOffsetSeq",
  "fineWaitersActive",
  "coarseWaitersActive",
  "broadFineWaitersActive",
  "scanRowsTotal",
  "waitTouchedTotal",
  "waitTimeoutTotal",
  "waitStaleTotal",
];
const META = Object.fromEntries([
  ["", "shape"],
  ["cursor", "cursor"],
  ["epoch", "hex16"],
  ...META_VALUE.map((k) => [k, "value"]),
]);

const ACTIVATE = {
  // The journal cursor at the start of the request (random epoch).
  "activated.*.activeFromTouchOffset": "cursor",
};

const tpl = (entity, ...fields) => ({
  entity,
  fields: fields.map((f) => {
    const [name, encoding = "string"] = f.split(":");
    return { name, encoding };
  }),
});

async function main() {
  const t0 = Date.now();

  // ------------------------------------------------------------------ setup
  section = "setup";
  for (const s of ["app", "plain", "rl", "rl2", "caps", "off", "pub"]) {
    await step(`PUT ${s} (application/json)`, async (t) => {
      const r = await http(t, "PUT", `/v1/stream/${s}`, "", { headers: { "content-type": "application/json" } });
      if (s === "app") t.st.nextOffset = r.headers.get("stream-next-offset");
      return { status: r.status };
    });
  }
  await step("PUT bin (application/octet-stream)", async (t) =>
    ({
      status: (await http(t, "PUT", "/v1/stream/bin", "", { headers: { "content-type": "application/octet-stream" } }))
        .status,
    })
  );

  // --------------------------------------------------------------- profiles
  section = "profile";
  await step("GET _profile of a stream without one", async (t) => obs(await get(t, "/v1/stream/plain/_profile")));
  await step("GET _profile of a missing stream", async (t) => obs(await get(t, "/v1/stream/nosuch/_profile")));
  await step("POST state-protocol on an octet-stream stream", async (t) =>
    obs(await setProfile(t, "bin", { enabled: true }))
  );
  await step("POST _profile on a missing stream", async (t) => obs(await setProfile(t, "nosuch", { enabled: true })));

  const badProfiles = [
    ["touch not an object", "yes"],
    ["touch.storage", { enabled: true, storage: "sqlite" }],
    ["touch.derivedStream", { enabled: true, derivedStream: "x" }],
    ["touch.retention", { enabled: true, retention: {} }],
    ["touch.metrics", { enabled: true, metrics: {} }],
    ["unknown key with enabled false", { enabled: false, bogus: 1 }],
    ["touch.memory.bogus", { enabled: true, memory: { bogus: 1 } }],
    ["touch.templates.bogus", { enabled: true, templates: { bogus: 1 } }],
    ["memory not an object", { enabled: true, memory: [] }],
    ["templates not an object", { enabled: true, templates: 5 }],
    ["coarseIntervalMs 0", { enabled: true, coarseIntervalMs: 0 }],
    ["coarseIntervalMs 'abc'", { enabled: true, coarseIntervalMs: "abc" }],
    ["touchCoalesceWindowMs -1", { enabled: true, touchCoalesceWindowMs: -1 }],
    ["onMissingBefore 'never'", { enabled: true, onMissingBefore: "never" }],
    ["lagDegrade 1.5", { enabled: true, lagDegradeFineTouchesAtSourceOffsets: 1.5 }],
    ["lagRecover -1", { enabled: true, lagRecoverFineTouchesAtSourceOffsets: -1 }],
    ["fineTouchBudgetPerBatch -1", { enabled: true, fineTouchBudgetPerBatch: -1 }],
    ["fineTokensPerSecond 0.5", { enabled: true, fineTokensPerSecond: 0.5 }],
    ["fineBurstTokens -2", { enabled: true, fineBurstTokens: -2 }],
    ["lagReservedFineTouchBudgetPerBatch 'x'", { enabled: true, lagReservedFineTouchBudgetPerBatch: "x" }],
    ["memory.bucketMs 0.5", { enabled: true, memory: { bucketMs: 0.5 } }],
    ["memory.filterPow2 9", { enabled: true, memory: { filterPow2: 9 } }],
    ["memory.filterPow2 31", { enabled: true, memory: { filterPow2: 31 } }],
    ["memory.k 0", { enabled: true, memory: { k: 0 } }],
    ["memory.k 9", { enabled: true, memory: { k: 9 } }],
    ["memory.pendingMaxKeys 0", { enabled: true, memory: { pendingMaxKeys: 0 } }],
    ["memory.keyIndexMaxKeys 1025", { enabled: true, memory: { keyIndexMaxKeys: 1025 } }],
    ["memory.hotKeyTtlMs 0", { enabled: true, memory: { hotKeyTtlMs: 0 } }],
    ["memory.hotTemplateTtlMs -5", { enabled: true, memory: { hotTemplateTtlMs: -5 } }],
    ["memory.hotMaxKeys 0", { enabled: true, memory: { hotMaxKeys: 0 } }],
    ["memory.hotMaxTemplates 1.25", { enabled: true, memory: { hotMaxTemplates: 1.25 } }],
    ["templates.defaultInactivityTtlMs -1", { enabled: true, templates: { defaultInactivityTtlMs: -1 } }],
    ["templates.lastSeenPersistIntervalMs 0", { enabled: true, templates: { lastSeenPersistIntervalMs: 0 } }],
    ["templates.gcIntervalMs 0", { enabled: true, templates: { gcIntervalMs: 0 } }],
    ["templates.maxActiveTemplatesPerEntity 0", { enabled: true, templates: { maxActiveTemplatesPerEntity: 0 } }],
    ["templates.maxActiveTemplatesPerStream -1", { enabled: true, templates: { maxActiveTemplatesPerStream: -1 } }],
    ["templates.activationRateLimitPerMinute -1", { enabled: true, templates: { activationRateLimitPerMinute: -1 } }],
    ["first error wins (memory.k and coarseIntervalMs)", { enabled: true, coarseIntervalMs: 0, memory: { k: 0 } }],
  ];
  for (const [name, touch] of badProfiles) {
    await step(`invalid touch: ${name}`, async (t) => obs(await setProfile(t, "app", touch)));
  }
  // "profile.kind must be <kinds>" lists the profile kinds the server
  // implements. Prisma also has evlog, metrics and otel-traces, which are
  // outside the touch surface and not in Weir, so the list legitimately
  // differs: compared is the prefix and that generic and state-protocol are
  // listed.
  const KIND_LIST = {
    "error.message": (m) => {
      const prefix = "profile.kind must be ";
      if (typeof m !== "string" || !m.startsWith(prefix)) return m;
      const kinds = m.slice(prefix.length).split("|");
      return `${prefix}<kinds incl. generic, state-protocol: ${kinds.includes("generic") && kinds.includes("state-protocol")}>`;
    },
  };
  const badEnvelopes = [
    ["body not JSON", "{"],
    ["body an array", []],
    ["unknown top-level key", { apiVersion: "durable.streams/profile/v1", profile: { kind: "state-protocol" }, extra: 1 }],
    ["wrong apiVersion", { apiVersion: "durable.streams/profile/v2", profile: { kind: "state-protocol" } }],
    ["unknown profile kind", { apiVersion: "durable.streams/profile/v1", profile: { kind: "nope" } }],
    ["profile missing", { apiVersion: "durable.streams/profile/v1" }],
    ["unknown key in profile", { apiVersion: "durable.streams/profile/v1", profile: { kind: "state-protocol", bogus: 1 } }],
  ];
  for (const [name, body] of badEnvelopes) {
    await step(`invalid envelope: ${name}`, async (t) => obs(await post(t, "/v1/stream/app/_profile", body), KIND_LIST));
  }
  await step("a rejected profile left the stream without touch", async (t) =>
    obs(await get(t, "/v1/stream/app/_profile"))
  );

  await step("valid: numeric strings are coerced, enabled is truthy", async (t) =>
    obs(await setProfile(t, "off", { enabled: "yes", coarseIntervalMs: "50", memory: { k: "3" } }))
  );
  await step("valid: touch enabled with defaults (app)", async (t) => obs(await setProfile(t, "app", { enabled: true })));
  await step("GET _profile shows the normalized config", async (t) => {
    const r = await get(t, "/v1/stream/app/_profile");
    return { ...obs(r), integralsWrittenWithFraction: integralWithFraction(r.text) };
  });
  await step("valid: rl (activation rate limit 1/min)", async (t) =>
    obs(await setProfile(t, "rl", { enabled: true, templates: { activationRateLimitPerMinute: 1 } }))
  );
  await step("valid: rl2 (rate limit 1/min, for concurrency)", async (t) =>
    obs(await setProfile(t, "rl2", { enabled: true, templates: { activationRateLimitPerMinute: 1 } }))
  );
  await step("valid: caps (entity cap 2, stream cap 3)", async (t) =>
    obs(
      await setProfile(t, "caps", {
        enabled: true,
        templates: { maxActiveTemplatesPerEntity: 2, maxActiveTemplatesPerStream: 3 },
      })
    )
  );
  await step("valid: pub (onMissingBefore skipBefore)", async (t) =>
    obs(await setProfile(t, "pub", { enabled: true, onMissingBefore: "skipBefore" }))
  );
  await step("valid: state-protocol without touch (plain)", async (t) => obs(await setProfile(t, "plain", undefined)));
  await step("turning touch off stores {enabled:false}", async (t) => obs(await setProfile(t, "off", { enabled: false })));
  await step("GET _profile after turning touch off", async (t) => obs(await get(t, "/v1/stream/off/_profile")));

  // ------------------------------------------------- touch not enabled / 404
  section = "not enabled";
  for (const s of ["plain", "off", "nosuch"]) {
    await step(`meta on ${s}`, async (t) => obs(await meta(t, s)));
    await step(`wait on ${s}`, async (t) => obs(await wait(t, s, { cursor: "now", keys: ["a"], timeoutMs: 0 })));
    await step(`activate on ${s}`, async (t) => obs(await activate(t, s, { templates: [tpl("posts", "tenantId")] })));
  }
  await step("no /touch read route", async (t) => ({ status: (await get(t, "/v1/stream/app/touch?offset=-1")).status }));

  // -------------------------------------------------------------- headers
  section = "headers";
  const hdrs = (res) => ({
    status: res.status,
    contentType: res.headers.get("content-type"),
    cacheControl: res.headers.get("cache-control"),
    nosniff: res.headers.get("x-content-type-options"),
  });
  await step("profile POST", async (t) => hdrs(await setProfile(t, "app", { enabled: true })));
  await step("profile GET", async (t) => hdrs(await get(t, "/v1/stream/app/_profile")));
  await step("profile 400", async (t) => hdrs(await setProfile(t, "app", { enabled: true, k: 1 })));
  await step("wait 200", async (t) => hdrs(await wait(t, "app", { cursor: "now", keys: ["a"], timeoutMs: 0 })));
  await step("wait 400", async (t) => hdrs(await wait(t, "app", "{")));
  await step("meta 200", async (t) => hdrs(await meta(t, "app")));
  await step("meta 404 (touch not enabled)", async (t) => hdrs(await meta(t, "plain")));

  // ------------------------------------------------------------- templates
  section = "activate";
  await step("posts [tenantId:string]", async (t) =>
    obs(await activate(t, "app", { templates: [tpl("posts", "tenantId")] }), ACTIVATE)
  );
  await step("same again is idempotent", async (t) =>
    obs(await activate(t, "app", { templates: [tpl("posts", "tenantId")] }), ACTIVATE)
  );
  await step("posts [userId:int64, tenantId] (fields sorted for the id), ttl 120000", async (t) =>
    obs(
      await activate(t, "app", { templates: [tpl("posts", "userId:int64", "tenantId")], inactivityTtlMs: 120000.9 }),
      ACTIVATE
    )
  );
  await step("one request: new, duplicate in request, refresh", async (t) =>
    obs(
      await activate(t, "app", {
        templates: [tpl("message", "id:int64"), tpl("message", "id:int64"), tpl("posts", "tenantId")],
      }),
      ACTIVATE
    )
  );
  await step("per-template invalid: bad encoding, duplicate names, same id with other encodings", async (t) =>
    obs(
      await activate(t, "app", {
        templates: [
          tpl("posts", "x:nope"),
          tpl("posts", "a", "a"),
          tpl("posts", "tenantId:int64"),
          { entity: "posts", fields: [{ name: "y" }] },
          tpl("public.message", "channelId:int64"),
        ],
      }),
      ACTIVATE
    )
  );
  await step("public.events [at:datetime, flag:bool] and public.posts later", async (t) =>
    obs(await activate(t, "app", { templates: [tpl("public.events", "flag:bool", "at:datetime")] }), ACTIVATE)
  );
  const badActivations = [
    ["body not JSON", "{"],
    ["templates missing", {}],
    ["templates not an array", { templates: "x" }],
    ["templates empty", { templates: [] }],
    ["257 templates", { templates: Array.from({ length: 257 }, (_, i) => tpl("e", `f${i}`)) }],
    ["entity empty after trim", { templates: [tpl("  ", "a")] }],
    ["entity missing", { templates: [{ fields: [{ name: "a", encoding: "string" }] }] }],
    ["fields not an array", { templates: [{ entity: "e", fields: "a" }] }],
    ["0 fields", { templates: [{ entity: "e", fields: [] }] }],
    ["4 fields", { templates: [tpl("e", "a", "b", "c", "d")] }],
    ["field name empty", { templates: [tpl("e", " ")] }],
    ["field name not a string", { templates: [{ entity: "e", fields: [{ name: 5, encoding: "string" }] }] }],
    ["one bad definition rejects the request", { templates: [tpl("e", "a"), tpl("", "a")] }],
    ["inactivityTtlMs -1", { templates: [tpl("e", "a")], inactivityTtlMs: -1 }],
    ["inactivityTtlMs string", { templates: [tpl("e", "a")], inactivityTtlMs: "10" }],
  ];
  for (const [name, body] of badActivations) {
    await step(`400: ${name}`, async (t) => obs(await activate(t, "app", body)));
  }
  await step("wrong method (GET)", async (t) => obs(await get(t, "/v1/stream/app/touch/templates/activate")));
  await step("meta counts active templates", async (t) =>
    ({ activeTemplates: (await meta(t, "app")).body.activeTemplates })
  );

  section = "rate limit";
  await step("rl: first new template uses the only token", async (t) =>
    obs(await activate(t, "rl", { templates: [tpl("posts", "tenantId")] }), ACTIVATE)
  );
  await step("rl: refresh of an active template uses no token", async (t) =>
    obs(await activate(t, "rl", { templates: [tpl("posts", "tenantId")] }), ACTIVATE)
  );
  await step("rl: second new template is rate_limited", async (t) =>
    obs(await activate(t, "rl", { templates: [tpl("posts", "userId")] }), ACTIVATE)
  );
  await step("rl: refresh + new + invalid in one request", async (t) =>
    obs(
      await activate(t, "rl", { templates: [tpl("posts", "tenantId"), tpl("posts", "title"), tpl("posts", "z:bad")] }),
      ACTIVATE
    )
  );
  await step("rl2: two concurrent calls, one token: exactly one activates", async (t) => {
    const [a, b] = await Promise.all([
      activate(t, "rl2", { templates: [tpl("posts", "tenantId")] }),
      activate(t, "rl2", { templates: [tpl("posts", "userId")] }),
    ]);
    // Which of the two wins is a race; the counts are not.
    return {
      statuses: [a.status, b.status],
      activated: a.body.activated.length + b.body.activated.length,
      denied: [...a.body.denied, ...b.body.denied].map((d) => d.reason),
    };
  });

  section = "caps";
  await step("caps: e1 [a], e1 [b]", async (t) =>
    obs(await activate(t, "caps", { templates: [tpl("e1", "a"), tpl("e1", "b")] }), ACTIVATE)
  );
  await sleep(20); // distinct last-seen times for the LRU order
  await step("caps: e1 [c] evicts the LRU of e1 (entity cap 2)", async (t) => {
    const r = await activate(t, "caps", { templates: [tpl("e1", "c")] });
    const m = await meta(t, "caps");
    return { ...obs(r, ACTIVATE), activeTemplates: m.body.activeTemplates };
  });
  await sleep(20);
  await step("caps: e2 [a], e2 [b] evict one more (stream cap 3)", async (t) => {
    const r = await activate(t, "caps", { templates: [tpl("e2", "a"), tpl("e2", "b")] });
    const m = await meta(t, "caps");
    return { ...obs(r, ACTIVATE), activeTemplates: m.body.activeTemplates };
  });

  // ----------------------------------------------------------------- waits
  section = "wait";
  await step("meta ?settle=flush before any append", async (t) => {
    const r = await meta(t, "app", "?settle=flush&timeoutMs=5000");
    t.st.epoch = r.body.epoch;
    // The checkpoint of an empty stream is its (start) offset (§1.9).
    return { ...obs(r, META), walScannedThroughIsNextOffset: r.body.walScannedThrough === t.st.nextOffset };
  });
  await step("cursor 'now', timeoutMs 0: touched false at once", async (t) => {
    const r = await wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], timeoutMs: 0 });
    return { ...wobs(r), fast: r.ms < 1000 };
  });

  await step("fine wait woken by a matching insert", async (t) => {
    const c0 = await settledCursor(t, "app");
    t.st.c0 = c0;
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c0, keys: [K.WATCH_T1, K.MEM_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [post_("p1", "t1")]
    );
    return { ...wobs(r), cursorMoved: r.body.cursor !== c0, woke: r.ms < 5000 };
  });
  await step("the same cursor again: touched at once", async (t) => {
    const r = await wait(t, "app", { cursor: t.st.c0, keys: [K.WATCH_T1], timeoutMs: 10000 });
    return { ...wobs(r), fast: r.ms < 1000 };
  });
  await step("uppercase epoch is the same cursor", async (t) => {
    const r = await wait(t, "app", { cursor: "  " + t.st.c0.toUpperCase() + " ", keys: [K.WATCH_T1], timeoutMs: 0 });
    return wobs(r);
  });
  await step("fine wait not woken by another tenant (800 ms timeout)", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 800 },
      [post_("p2", "t2")]
    );
    return { ...wobs(r), waitedOut: r.ms >= 700 };
  });
  await step("coarse wait on the table key woken by any posts change", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.TABLE_POSTS], interestMode: "coarse", timeoutMs: 10000 },
      [post_("p3", "t9")]
    );
    return wobs(r);
  });
  await step("coarse wait via templateIdsUsed (table key of the template's entity)", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: ["unrelated"], templateIdsUsed: [K.POSTS_TID], interestMode: "coarse", timeoutMs: 10000 },
      [post_("p4", "t8")]
    );
    return wobs(r);
  });
  await step("coarse wait via an inactive template falls back to the raw keys", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await wait(t, "app", {
      cursor: c,
      keys: [K.TABLE_POSTS],
      templateIdsUsed: ["ffffffffffffffff"],
      interestMode: "coarse",
      timeoutMs: 0,
    });
    return wobs(r);
  });
  await step("keyIds wait (watch key id) woken by a matching insert", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keyIds: [keyId(K.WATCH_T1)], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [post_("p5", "t1")]
    );
    return wobs(r);
  });
  await step("keyIds of the table key wake in fine mode (table touches)", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(t, "app", { cursor: c, keyIds: [keyId(K.TABLE_POSTS)], timeoutMs: 10000 }, [
      post_("p6", "t7"),
    ]);
    return wobs(r);
  });
  await step("keys and keyIds: keyIds win (keys of t1, keyIds of nothing)", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1], keyIds: [12345], timeoutMs: 800 },
      [post_("p7", "t1")]
    );
    return wobs(r);
  });
  await step("keyIds given as numeric strings are accepted", async (t) => {
    const r = await wait(t, "app", { cursor: "now", keyIds: ["7", 8], timeoutMs: 0 });
    return wobs(r);
  });
  await step("1025 keys with duplicates (2 distinct) are accepted", async (t) => {
    const keys = Array.from({ length: 1025 }, (_, i) => (i % 2 ? "a" : " b "));
    return wobs(await wait(t, "app", { cursor: "now", keys, timeoutMs: 0 }));
  });
  await step("1024 distinct keys (broad wait) woken by a matching insert", async (t) => {
    const c = await settledCursor(t, "app");
    const keys = [K.WATCH_T1, ...Array.from({ length: 1023 }, (_, i) => `k${i}`)];
    const r = await waitWhileAppending(t, "app", { cursor: c, keys, timeoutMs: 10000 }, [post_("p8", "t1")]);
    return wobs(r);
  });
  await step("two-field template: watch(t1,123) and the one-field watch(t1) both woken", async (t) => {
    const c = await settledCursor(t, "app");
    const hit = wait(t, "app", {
      cursor: c,
      keys: [K.WATCH_T1_123],
      templateIdsUsed: [K.POSTS_TU_TID],
      timeoutMs: 10000,
    });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [post_("p9", "t1", { userId: 123 })]
    );
    return { hit: wobs(await hit), tenantOnly: wobs(r) };
  });

  section = "derivation";
  await step("update moving t1 -> t2 wakes both membership keys", async (t) => {
    const c = await settledCursor(t, "app");
    const m1 = wait(t, "app", { cursor: c, keys: [K.MEM_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.MEM_T2], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [upd("posts", "p1", { tenantId: "t2", title: "x" }, { tenantId: "t1", title: "x" })]
    );
    return { memT1: wobs(await m1), memT2: wobs(r) };
  });
  await step("update moving channel 1 -> 2 wakes both watch keys", async (t) => {
    await appendSettled(t, "app", [ins("public.message", "m1", { channelId: 1, text: "a" })]);
    const c = await settledCursor(t, "app");
    const w1 = wait(t, "app", { cursor: c, keys: [K.PMSG_WATCH_1], templateIdsUsed: [K.PMSG_TID], timeoutMs: 10000 });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.PMSG_WATCH_2], templateIdsUsed: [K.PMSG_TID], timeoutMs: 10000 },
      [upd("public.message", "m1", { channelId: 2, text: "a" }, { channelId: 1, text: "a" })]
    );
    return { watch1: wobs(await w1), watch2: wobs(r) };
  });
  await step("onMissingBefore coarse: update without old_value wakes the table, not the fine key", async (t) => {
    const c = await settledCursor(t, "app");
    const coarse = wait(t, "app", { cursor: c, keys: [K.TABLE_POSTS], interestMode: "coarse", timeoutMs: 5000 });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 1200 },
      [upd("posts", "p5", { tenantId: "t1", title: "y" })]
    );
    return { fine: wobs(r), coarse: wobs(await coarse) };
  });
  await step("onMissingBefore skipBefore: update without old_value wakes the after keys", async (t) => {
    const a = await activate(t, "pub", { templates: [tpl("posts", "tenantId")] });
    const c = await settledCursor(t, "pub");
    const r = await waitWhileAppending(
      t,
      "pub",
      { cursor: c, keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [upd("posts", "p1", { tenantId: "t1", title: "y" })]
    );
    return { activate: obs(a, ACTIVATE), wait: wobs(r) };
  });
  await step("in-partition update: projected field key wakes, membership does not", async (t) => {
    await appendSettled(t, "app", [ins("message", "1", { id: 1, author: "a", body: "x" })]);
    const c2 = await settledCursor(t, "app");
    const mem = wait(t, "app", { cursor: c2, keys: [K.MSG_MEM_1], templateIdsUsed: [K.MSG_TID], timeoutMs: 1200 });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c2, keys: [K.MSG_FLD_AUTHOR_1], templateIdsUsed: [K.MSG_TID], timeoutMs: 10000 },
      [upd("message", "1", { id: 1, author: "b", body: "x" }, { id: 1, author: "a", body: "x" })]
    );
    return { projected: wobs(r), membership: wobs(await mem) };
  });
  await step("datetime + bool encodings (public.events [at, flag])", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.EVENTS_WATCH], templateIdsUsed: [K.EVENTS_TID], timeoutMs: 10000 },
      [ins("public.events", "e1", { at: "2026-03-23T10:30:00Z", flag: true })]
    );
    return wobs(r);
  });
  await step("activation boundary: a change before activation never wakes", async (t) => {
    const c = await settledCursor(t, "app");
    t.st.boundaryCursor = c;
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.PUBPOSTS_WATCH_42], templateIdsUsed: [K.PUBPOSTS_TID], timeoutMs: 800 },
      [ins("public.posts", "q1", { userId: 42 })]
    );
    const a = await activate(t, "app", { templates: [tpl("public.posts", "userId:int64")] });
    const again = await wait(t, "app", {
      cursor: c,
      keys: [K.PUBPOSTS_WATCH_42],
      templateIdsUsed: [K.PUBPOSTS_TID],
      timeoutMs: 0,
    });
    return { before: wobs(r), activate: obs(a, ACTIVATE), sameCursorAfter: wobs(again) };
  });
  await step("activation boundary: a change after activation wakes", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.PUBPOSTS_WATCH_42], templateIdsUsed: [K.PUBPOSTS_TID], timeoutMs: 10000 },
      [ins("public.posts", "q2", { userId: "42" })]
    );
    return wobs(r);
  });
  await step("control records produce no touches", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.TABLE_POSTS], interestMode: "coarse", timeoutMs: 800 },
      [{ headers: { control: "snapshot-start" } }, { headers: { control: "snapshot-end" } }]
    );
    return wobs(r);
  });

  section = "exact";
  await step("exact: irrelevant insert gives touched false", async (t) => {
    const c = await settledCursor(t, "app");
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1, K.MEM_T1], exact: true, timeoutMs: 800 },
      [post_("x1", "t3")]
    );
    return wobs(r);
  });
  await step("exact: relevant insert gives touched true", async (t) => {
    const c = await settledCursor(t, "app");
    t.st.exactCursor = c;
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: c, keys: [K.WATCH_T1, K.MEM_T1], exact: true, templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [post_("x2", "t1")]
    );
    return wobs(r);
  });
  await step("exact: immediate hit from recent history", async (t) => {
    const r = await wait(t, "app", { cursor: t.st.exactCursor, keys: [K.MEM_T1.toUpperCase()], exact: true, timeoutMs: 0 });
    return wobs(r);
  });
  await step("exact: immediate miss from recent history", async (t) => {
    const r = await wait(t, "app", { cursor: t.st.exactCursor, keys: [K.MEM_T2], exact: true, timeoutMs: 0 });
    return wobs(r);
  });

  section = "cursor";
  await step("'now' ignores earlier changes, then a live change wakes it", async (t) => {
    const quiet = await wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], timeoutMs: 0 });
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: "now", keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 10000 },
      [post_("n1", "t1")]
    );
    return { quiet: wobs(quiet), live: wobs(r) };
  });
  await step("stale: a cursor from another epoch", async (t) => {
    const ep = t.st.epoch;
    const other = (ep[0] === "0" ? "1" : "0") + ep.slice(1);
    const r = await wait(t, "app", { cursor: `${other}:0`, keys: [K.WATCH_T1], timeoutMs: 10000 });
    return {
      ...wobs(r),
      fast: r.ms < 1000,
      epochIsJournals: r.body?.epoch === ep && r.body?.cursor?.startsWith(ep + ":"),
    };
  });
  await step("a generation in the future is clamped to now", async (t) => {
    const r = await wait(t, "app", { cursor: `${t.st.epoch}:4000000000`, keys: [K.WATCH_T1], timeoutMs: 0 });
    return wobs(r);
  });

  section = "timeout";
  await step("timeoutMs 300 with no change", async (t) => {
    const r = await wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], timeoutMs: 300 });
    return { ...wobs(r), waited: r.ms >= 250 && r.ms < 3000 };
  });
  await step("negative timeoutMs is clamped to 0", async (t) => {
    const r = await wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], timeoutMs: -500 });
    return { ...wobs(r), fast: r.ms < 1000 };
  });
  await step("fractional timeoutMs (250.7) is accepted", async (t) => {
    const r = await wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], timeoutMs: 250.7 });
    return { ...wobs(r), waited: r.ms >= 200 && r.ms < 3000 };
  });
  await step("huge timeoutMs (clamped to 120000) still wakes on a change", async (t) => {
    const r = await waitWhileAppending(
      t,
      "app",
      { cursor: "now", keys: [K.TABLE_POSTS], interestMode: "coarse", timeoutMs: 1e12 },
      [post_("h1", "t6")]
    );
    return wobs(r);
  });

  section = "declareTemplates";
  await step("wait with declareTemplates activates them", async (t) => {
    const before = (await meta(t, "app")).body.activeTemplates;
    const r = await wait(t, "app", {
      cursor: "now",
      keys: ["a"],
      declareTemplates: [tpl("public.todos", "tenantId", "status")],
      inactivityTtlMs: 60000,
      timeoutMs: 0,
    });
    const after = (await meta(t, "app")).body.activeTemplates;
    const again = await activate(t, "app", { templates: [tpl("public.todos", "status", "tenantId")] });
    return { wait: wobs(r), addedActive: after - before, refresh: obs(again, ACTIVATE) };
  });
  await step("declareTemplates that is not an array is ignored", async (t) =>
    wobs(await wait(t, "app", { cursor: "now", keys: ["a"], declareTemplates: "x", timeoutMs: 0 }))
  );
  await step("inactivityTtlMs is not checked without declareTemplates", async (t) =>
    wobs(await wait(t, "app", { cursor: "now", keys: ["a"], inactivityTtlMs: -1, timeoutMs: 0 }))
  );

  // ------------------------------------------------ wait validation (§1.8)
  section = "wait 400";
  const many = (n, f) => Array.from({ length: n }, (_, i) => f(i));
  const badWaits = [
    ["body not JSON", "{"],
    ["keys not an array", { cursor: "now", keys: "a" }],
    ["keys with an empty string", { cursor: "now", keys: ["a", ""] }],
    ["keys with a blank string", { cursor: "now", keys: ["  "] }],
    ["keys with a number", { cursor: "now", keys: [1] }],
    ["keys empty array", { cursor: "now", keys: [] }],
    ["1025 distinct keys", { cursor: "now", keys: many(1025, (i) => `k${i}`) }],
    ["keyIds negative", { cursor: "now", keyIds: [-1] }],
    ["keyIds fractional", { cursor: "now", keyIds: [1.5] }],
    ["keyIds above u32", { cursor: "now", keyIds: [4294967296] }],
    ["keyIds non-numeric string", { cursor: "now", keyIds: ["x"] }],
    ["keyIds duplicates (quirk)", { cursor: "now", keyIds: [5, 5] }],
    ["keyIds empty array", { cursor: "now", keyIds: [] }],
    ["keyIds not an array (ignored)", { cursor: "now", keyIds: 5 }],
    ["1025 keyIds", { cursor: "now", keyIds: many(1025, (i) => i) }],
    ["no keys", { cursor: "now" }],
    ["templateIdsUsed alone", { cursor: "now", templateIdsUsed: [K.POSTS_TID] }],
    ["exact not a boolean", { cursor: "now", keys: ["a"], exact: "yes" }],
    ["cursor missing", { keys: ["a"] }],
    ["cursor empty", { keys: ["a"], cursor: "" }],
    ["cursor blank", { keys: ["a"], cursor: "   " }],
    ["cursor a number", { keys: ["a"], cursor: 5 }],
    ["timeoutMs a string", { cursor: "now", keys: ["a"], timeoutMs: "100" }],
    ["timeoutMs null", { cursor: "now", keys: ["a"], timeoutMs: null }],
    ["timeoutMs a boolean", { cursor: "now", keys: ["a"], timeoutMs: true }],
    ["templateIdsUsed with an empty string", { cursor: "now", keys: ["a"], templateIdsUsed: [""] }],
    ["templateIdsUsed with a number", { cursor: "now", keys: ["a"], templateIdsUsed: [1] }],
    ["interestMode 'medium'", { cursor: "now", keys: ["a"], interestMode: "medium" }],
    ["interestMode null", { cursor: "now", keys: ["a"], interestMode: null }],
    ["declareTemplates with an invalid definition", { cursor: "now", keys: ["a"], declareTemplates: [{ entity: "e" }] }],
    ["declareTemplates 257", { cursor: "now", keys: ["a"], declareTemplates: many(257, (i) => tpl("e", `f${i}`)) }],
    [
      "declareTemplates with inactivityTtlMs -1",
      { cursor: "now", keys: ["a"], declareTemplates: [tpl("e", "a")], inactivityTtlMs: -1 },
    ],
    ["exact with coarse interest", { cursor: "now", keys: [K.WATCH_T1], exact: true, interestMode: "coarse" }],
    ["exact with a non-hex key", { cursor: "now", keys: ["a"], exact: true }],
    ["exact with 17 keys", { cursor: "now", keys: many(17, (i) => i.toString(16).padStart(16, "0")), exact: true }],
    ["exact with keyIds only", { cursor: "now", keyIds: [1], exact: true }],
    ["cursor without ':'", { cursor: "abc", keys: ["a"] }],
    ["cursor short epoch", { cursor: "0123:1", keys: ["a"] }],
    ["cursor non-hex epoch", { cursor: "0123456789abcdeg:1", keys: ["a"] }],
    ["cursor negative generation", { cursor: "0123456789abcdef:-1", keys: ["a"] }],
    ["cursor empty generation", { cursor: "0123456789abcdef:", keys: ["a"] }],
    ["cursor 'NOW'", { cursor: "NOW", keys: ["a"] }],
    ["validation order: keys before cursor", { keys: "a", cursor: 5, timeoutMs: "x" }],
    ["validation order: cursor before timeoutMs", { keys: ["a"], cursor: 5, timeoutMs: "x" }],
    ["validation order: interestMode before cursor format", { keys: ["a"], cursor: "bad", interestMode: "x" }],
  ];
  for (const [name, body] of badWaits) {
    await step(name, async (t) => obs(await wait(t, "app", body)));
  }
  await step("wrong method (GET)", async (t) => obs(await get(t, "/v1/stream/app/touch/wait")));

  // ------------------------------------------------------------------ meta
  section = "meta";
  await step("meta 400: settle=soon", async (t) => obs(await meta(t, "app", "?settle=soon")));
  await step("meta 400: timeoutMs=abc", async (t) => obs(await meta(t, "app", "?timeoutMs=abc")));
  await step("meta 400: wrong method (POST)", async (t) => obs(await post(t, "/v1/stream/app/touch/meta", {})));
  await step("meta: empty settle is 400, empty timeoutMs is the default", async (t) => ({
    emptySettle: obs(await meta(t, "app", "?settle=")),
    emptyTimeout: (await meta(t, "app", "?timeoutMs=")).status,
  }));
  await step("meta after an append (processed and flushed)", async (t) => {
    await appendSettled(t, "app", [post_("m1", "t5")]);
    const r = await meta(t, "app");
    return { ...obs(r, META), integralsWrittenWithFraction: integralWithFraction(r.text) };
  });
  await step("meta ?settle=flush&timeoutMs=0", async (t) => obs(await meta(t, "app", "?settle=flush&timeoutMs=0"), META));
  await step("meta during a fine wait and a coarse wait", async (t) => {
    const fine = wait(t, "app", { cursor: "now", keys: [K.WATCH_T1], templateIdsUsed: [K.POSTS_TID], timeoutMs: 900 });
    const coarse = wait(t, "app", { cursor: "now", keys: [K.TABLE_POSTS], interestMode: "coarse", timeoutMs: 900 });
    await sleep(400);
    const m = (await meta(t, "app")).body;
    await Promise.all([fine, coarse]);
    return {
      activeWaiters: m.activeWaiters,
      fineWaitersActive: m.fineWaitersActive,
      coarseWaitersActive: m.coarseWaitersActive,
      hotFineKeysActive: m.hotFineKeysActive,
      hotTemplatesActive: m.hotTemplatesActive,
    };
  });
  await step("meta after the waits ended: hot interest moves to grace", async (t) => {
    const m = (await meta(t, "app")).body;
    return {
      activeWaiters: m.activeWaiters,
      hotFineKeysActive: m.hotFineKeysActive,
      hotTemplatesActive: m.hotTemplatesActive,
      someKeyGrace: m.hotFineKeysGrace >= 1,
      someTemplateGrace: m.hotTemplatesGrace >= 1,
    };
  });
  await step("meta of the caps stream", async (t) => obs(await meta(t, "caps"), META));

  // ---------------------------------------------------------------- appends
  section = "append";
  const badAppends = [
    ["operation 'upsert'", [{ type: "posts", key: "1", value: {}, headers: { operation: "upsert" } }]],
    ["insert without value", [{ type: "posts", key: "1", headers: { operation: "insert" } }]],
    ["unknown record key", [{ type: "posts", key: "1", value: {}, extra: 1, headers: { operation: "insert" } }]],
    ["empty type", [{ type: "", key: "1", value: {}, headers: { operation: "insert" } }]],
    ["bad timestamp", [{ type: "posts", key: "1", value: {}, headers: { operation: "insert", timestamp: "yesterday" } }]],
    ["control mixed with operation", [{ headers: { control: "reset", operation: "insert" } }]],
  ];
  for (const [name, body] of badAppends) {
    await step(`400: ${name}`, async (t) => {
      const r = await append(t, "app", body);
      return { status: r.status, error: errorText(r) };
    });
  }
  await step("valid single record (not an array) and a delete with txid and timestamp", async (t) => {
    const before = (await meta(t, "app")).body;
    const a = await append(t, "app", post_("d1", "t1"));
    const b = await append(t, "app", [
      {
        type: "posts",
        key: "d1",
        old_value: { tenantId: "t1" },
        headers: { operation: "delete", txid: "tx1", timestamp: "2026-03-23T10:30:00.123+02:00" },
      },
    ]);
    t.st.nextOffset = b.headers.get("stream-next-offset");
    await settleAfter(t, "app", before);
    return { single: a.status, del: b.status };
  });
  await step("walScannedThrough equals the stream's next offset once caught up", async (t) => {
    const m = (await meta(t, "app")).body;
    return { equalsNextOffset: m.walScannedThrough === t.st.nextOffset };
  });
  // Settle so the appends above do not leave a batch in flight.
  await step("settled after the appends", async (t) => {
    const m = await meta(t, "app", "?settle=flush&timeoutMs=5000");
    return { status: m.status, settled: m.body.settled, pendingKeys: m.body.pendingKeys };
  });

  // ----------------------------------------------------------- live.metrics
  section = "live.metrics";
  // Ticks are flushed once a second; counters are per tick interval. After
  // 2.2 s of quiet every action above has been counted in some tick.
  await sleep(2200);
  await step("HEAD live.metrics (exists, application/json)", async (t) => {
    const r = await http(t, "HEAD", "/v1/stream/live.metrics");
    return { status: r.status, contentType: r.headers.get("content-type") };
  });
  for (const t of TARGETS) t.st.lm = await readAll(t, "live.metrics");
  await step("records are JSON objects with type, ts, stream", async (t) => {
    const recs = t.st.lm;
    return {
      status: recs.status,
      allObjects: recs.items.every((r) => r && typeof r === "object" && !Array.isArray(r)),
      allHaveEnvelope: recs.items.every(
        (r) => typeof r.type === "string" && SHAPES.iso(r.ts) && typeof r.stream === "string"
      ),
      types: [...new Set(recs.items.map((r) => r.type))].filter((x) => !x.startsWith("live.templates_snapshot")).sort(),
    };
  });
  const ticksOf = (t, s) => t.st.lm.items.filter((r) => r.type === "live.tick" && r.stream === s);
  await step("live.tick config numbers are written as integers", async (t) => ({
    // Only configuration fields: a measured average that happens to be
    // integral (2.0) is a float field to any client.
    fields: integralWithFraction(t.st.lm.texts.join("\n"), ["coarseIntervalMs", "coalesceWindowMs"]),
  }));
  await step("live.tick streams: every touch stream, no others", async (t) => {
    const ticks = t.st.lm.items.filter((r) => r.type === "live.tick");
    // "off" had touch on for a few requests (under a second) before it was
    // turned off: whether a tick fell into that window is timing, so only
    // "at most one tick" is compared for it.
    const streams = [...new Set(ticks.map((r) => r.stream))].filter((s) => s !== "off").sort();
    return { streams, offAtMostOneTick: ticks.filter((r) => r.stream === "off").length <= 1 };
  });
  await step("live.tick rate is about one per second per stream", async (t) => {
    const ticks = ticksOf(t, "app");
    const span = (Date.parse(ticks.at(-1).ts) - Date.parse(ticks[0].ts)) / 1000;
    const rate = (ticks.length - 1) / span;
    return { enough: ticks.length >= 5, rateOk: rate > 0.7 && rate < 1.3 };
  });
  // Field names and types of the last tick of app, by value only the fields
  // that are configuration or identity.
  const TICK = {
    "": "shape",
    ts: "iso",
    type: "value",
    stream: "value",
    liveSystemVersion: "value",
    instanceId: "value",
    region: "value",
    "touch.coarseIntervalMs": "value",
    "touch.coalesceWindowMs": "value",
    "touch.cursor": "cursor",
    "touch.epoch": "hex16",
    "templates.active": "value",
  };
  await step("live.tick fields (app, last tick)", async (t) => canon(ticksOf(t, "app").at(-1), TICK));
  await step("live.tick fields (caps, last tick)", async (t) => canon(ticksOf(t, "caps").at(-1), TICK));
  await step("live.tick fields (rl2, no journal yet)", async (t) => canon(ticksOf(t, "rl2").at(-1), TICK));
  // Sums over all ticks of a stream: each action is counted in exactly one
  // interval, so the sums are deterministic even though the split is not.
  const sum = (ticks, f) => ticks.reduce((a, x) => a + (f(x) ?? 0), 0);
  await step("live.tick sums (app): wait outcomes, stale, activations", async (t) => {
    const ticks = ticksOf(t, "app");
    return {
      waitCalls: sum(ticks, (x) => x.wait?.calls),
      waitTouched: sum(ticks, (x) => x.wait?.touched),
      waitTimeout: sum(ticks, (x) => x.wait?.timeout),
      waitStale: sum(ticks, (x) => x.wait?.stale),
      staleResponses: sum(ticks, (x) => x.touch?.staleResponses),
      templatesActivated: sum(ticks, (x) => x.templates?.activated),
      templatesEvicted: sum(ticks, (x) => x.templates?.evicted),
      activationDenied: sum(ticks, (x) => x.templates?.activationDenied),
      processorErrors: sum(ticks, (x) => x.processor?.errors),
      eventsIn: sum(ticks, (x) => x.processor?.eventsIn),
    };
  });
  await step("live.tick sums (rl, rl2, caps): activations, denials, evictions", async (t) => {
    const out = {};
    for (const s of ["rl", "rl2", "caps"]) {
      const ticks = ticksOf(t, s);
      out[s] = {
        activated: sum(ticks, (x) => x.templates?.activated),
        activationDenied: sum(ticks, (x) => x.templates?.activationDenied),
        evicted: sum(ticks, (x) => x.templates?.evicted),
      };
    }
    return out;
  });
  await step("wait.stale counted with the meta total", async (t) => ({
    waitStaleTotal: (await meta(t, "app")).body.waitStaleTotal,
  }));
  // Lifecycle events (§2.9): by value except ts (wall clock) and the
  // activeFromTouchOffset cursor (random epoch). Grouped by template id
  // (one event per activated id per call, refreshes too), so a missing or
  // extra event shows as a count difference. Within a group the events are
  // sorted: Prisma appends each call's events asynchronously
  // (`void emitLifecycle`), so two quick calls can land in either order.
  const LIFE = { ts: "iso", activeFromTouchOffset: "cursor" };
  const lifecycle = (t, s, type, race = false) => {
    const out = {};
    for (const r of t.st.lm.items.filter((r) => r.type === type && r.stream === s)) {
      // rl2: which of the two concurrent calls won is a race (see above).
      const e = race ? canon(r, { ...LIFE, templateId: "ignore", fields: "ignore", encodings: "ignore" }) : canon(r, LIFE);
      const id = race ? "<race>" : r.templateId;
      (out[id] ??= []).push(e);
    }
    for (const id of Object.keys(out)) {
      out[id].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
      out[id] = { count: out[id].length, events: out[id] };
    }
    return out;
  };
  for (const s of ["app", "rl", "rl2", "caps"]) {
    await step(`live.template_activated events (${s})`, async (t) =>
      lifecycle(t, s, "live.template_activated", s === "rl2")
    );
  }
  await step("live.template_evicted events (caps)", async (t) => lifecycle(t, "caps", "live.template_evicted"));
  await step("no lifecycle events for streams without activations", async (t) =>
    t.st.lm.items.filter((r) => r.type.startsWith("live.template_") && !["app", "rl", "rl2", "caps"].includes(r.stream)).length
  );

  // --------------------------------------------------------------- summary
  const bad = results.filter((r) => !r.ok);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(
    `touch-diff: ${results.length - bad.length} of ${results.length} steps agree, ${bad.length} differ (${secs} s)`
  );
  console.log(`${results.length - bad.length} passed, ${bad.length} failed`);
  process.exit(bad.length === 0 ? 0 : 1);
}

/** Reads a whole JSON stream from the start, following Stream-Next-Offset. */
async function readAll(t, s) {
  const items = [];
  const texts = [];
  let offset = "-1";
  let status = 0;
  for (let i = 0; i < 100; i++) {
    const r = await get(t, `/v1/stream/${enc(s)}?offset=${enc(offset)}`);
    status = r.status;
    if (r.status !== 200) break;
    if (Array.isArray(r.body)) items.push(...r.body);
    texts.push(r.text);
    const next = r.headers.get("stream-next-offset");
    const upToDate = r.headers.get("stream-up-to-date");
    if (!next || next === offset || upToDate === "true" || !Array.isArray(r.body) || r.body.length === 0) break;
    offset = next;
  }
  return { status, items, texts };
}

// A step that fails half-way can leave a side request (a concurrent wait)
// whose failure nobody awaits any more; the step already reports the error.
process.on("unhandledRejection", () => {});

main().catch((e) => {
  console.error("touch-diff: scenario crashed:", e);
  process.exit(2);
});
