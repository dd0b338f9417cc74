// The three servers' client sides: writers (load, put, change) and
// subscribers (full state then changes; one group's filtered state then
// membership changes). Every subscriber function opens its own connection.
import http from "node:http";
import WebSocket from "ws";
import { connect as natsConnect, StorageType, headers as natsHeaders, Empty } from "nats";
import { Etcd3 } from "etcd3";
import { Conn } from "../../lib/http.mjs";
import { peerKey, groupPrefix, value, weirMsg, initialGroup } from "./data.mjs";
import { weirOffsetNum } from "../../lib/util.mjs";

export const HOST = "127.0.0.1";
// Subscriber connections lost or failing during benchmark 3 (none expected).
export const subTrouble = { closed: 0, errors: 0, first: null };
const trouble = (kind, msg) => {
  subTrouble[kind]++;
  subTrouble.first ||= msg;
};
export const BUCKET = "kv"; // NATS KV bucket
export const STREAM = "kv"; // Weir stream

// ------------------------------------------------------------------ Weir

// Create a JSON stream: a State Protocol state stream or a plain one.
export async function weirCreate(port, name, state) {
  const c = new Conn(HOST, port);
  const r = await c.request("PUT", `/v1/stream/${name}`, "", state ? "Stream-State: state-protocol\r\n" : "");
  c.destroy();
  if (r.status !== 201 && r.status !== 200) throw new Error(`create ${name}: ${r.status} ${r.body}`);
}

export async function weirAppend(conn, name, body) {
  const r = await conn.request("POST", `/v1/stream/${name}`, body);
  if (r.status !== 204 && r.status !== 200) throw new Error(`append: ${r.status} ${r.body.toString().slice(0, 200)}`);
  return weirOffsetNum(r.headers["stream-next-offset"]);
}

// Load keys 0..n-1 (group initialGroup(i), s = sOf(i)); returns the tail.
export async function weirLoad(port, n, sOf, batch = 1000, inflight = 4) {
  const conns = Array.from({ length: inflight }, () => new Conn(HOST, port));
  let next = 0;
  let tail = 0;
  await Promise.all(
    conns.map(async (c) => {
      while (next < n) {
        const a = next;
        const b = Math.min(n, a + batch);
        next = b;
        const parts = [];
        for (let i = a; i < b; i++) parts.push(weirMsg(i, initialGroup(i), sOf(i), "insert"));
        const got = await weirAppend(c, STREAM, `[${parts.join(",")}]`);
        tail = Math.max(tail, got); // (not Math.max(tail, await …): that reads tail before the await)
      }
    }),
  );
  for (const c of conns) c.destroy();
  return tail;
}

function httpGet(agent, port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

// Benchmark 1, HTTP: `offset=-1&snapshot=true` (snapshot-start, one insert
// per row, snapshot-end; Stream-Next-Offset = fence), then a long poll from
// the fence. Resolves when the state is held: {map, nextChange(): Promise<msg>, close()}.
export async function weirHttpFull(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const r = await httpGet(agent, port, `/v1/stream/${STREAM}?offset=-1&snapshot=true`);
  if (r.status !== 200) throw new Error(`snapshot: ${r.status} ${r.body.toString().slice(0, 200)}`);
  const items = JSON.parse(r.body.toString("utf8"));
  const map = new Map();
  let controls = 0;
  for (const m of items) {
    if (m.headers && m.headers.control) controls++;
    else if (m.headers.operation === "insert") map.set(m.key, m.value);
  }
  if (controls !== 2) throw new Error(`snapshot: ${controls} controls, want snapshot-start and snapshot-end`);
  let offset = r.headers["stream-next-offset"];
  const nextChange = async () => {
    for (;;) {
      const lp = await httpGet(agent, port, `/v1/stream/${STREAM}?offset=${offset}&live=long-poll`);
      if (lp.status === 204) {
        offset = lp.headers["stream-next-offset"] || offset;
        continue;
      }
      if (lp.status !== 200) throw new Error(`long-poll: ${lp.status}`);
      offset = lp.headers["stream-next-offset"];
      const arr = JSON.parse(lp.body.toString("utf8"));
      if (arr.length) return { key: arr[0].key, value: JSON.stringify(arr[0].value) };
    }
  };
  return { map, fence: weirOffsetNum(r.headers["stream-next-offset"]), nextChange, close: () => agent.destroy() };
}

// A WebSocket JSON session (net/PROTOCOL.md 9.1) negotiated at version 2.
export function weirWs(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}/v1/ws`, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("open", () => {
      ws.send(JSON.stringify({ type: "hello", id: 1, client: "statebench", max_version: 2 }));
      ws.once("message", (m) => {
        const v = JSON.parse(m.toString());
        if (v.type !== "welcome" || v.version !== 2) return reject(new Error(`hello: ${m}`));
        ws.removeListener("error", reject);
        resolve(ws);
      });
    });
  });
}

// Benchmark 1, WebSocket JSON: subscribe_state with a snapshot, no filter
// (snapshot rows, snapshot_done, then the stored records as `data`).
export async function weirWsFull(port) {
  const ws = await weirWs(port);
  const map = new Map();
  let changeWaiter = null;
  const early = [];
  const held = new Promise((resolve, reject) => {
    ws.on("message", (m) => {
      const v = JSON.parse(m.toString());
      if (v.type === "snapshot") for (const r of v.rows) map.set(r.key, r.value);
      else if (v.type === "snapshot_done") resolve(v);
      else if (v.type === "data") {
        for (const r of v.records) {
          const msg = JSON.parse(r.payload);
          const c = { key: msg.key, value: JSON.stringify(msg.value) };
          if (changeWaiter) {
            changeWaiter(c);
            changeWaiter = null;
          } else early.push(c);
        }
      } else if (v.type === "error") reject(new Error(`subscribe_state: ${m}`));
    });
    ws.send(JSON.stringify({ type: "subscribe_state", id: 9, stream: STREAM, snapshot: true }));
  });
  const done = await held;
  if (done.rows !== map.size) throw new Error(`snapshot_done says ${done.rows} rows, got ${map.size}`);
  return {
    map,
    fence: done.fence,
    nextChange: () => (early.length ? Promise.resolve(early.shift()) : new Promise((r) => (changeWaiter = r))),
    close: () => ws.terminate(),
  };
}

// Benchmark 3: one filtered state subscriber of group g. onSnapshot(rows)
// once, then onChange(offset, op, key, valueText) per membership change.
export async function weirWsGroup(port, g, onChange) {
  const ws = await weirWs(port);
  const rows = [];
  await new Promise((resolve, reject) => {
    let snap = true;
    ws.on("message", (m) => {
      const v = JSON.parse(m.toString());
      if (v.type === "change") onChange(v.offset, v.op === "upsert" ? 1 : v.op === "delete" ? 2 : 3, v.key, v.value);
      else if (v.type === "snapshot") for (const r of v.rows) rows.push([r.key, r.value]);
      else if (v.type === "snapshot_done") {
        snap = false;
        resolve();
      } else if (v.type === "error" || (v.type !== "state_subscribed" && snap)) reject(new Error(`subscribe_state: ${m}`));
    });
    let ours = false;
    ws.on("close", (code) => {
      reject(new Error("closed"));
      if (!ours) trouble("closed", `WebSocket closed by the server (${code})`);
    });
    ws.closeOurs = () => {
      ours = true;
      ws.terminate();
    };
    ws.send(
      JSON.stringify({ type: "subscribe_state", id: 9, stream: STREAM, snapshot: true, filter: { field: "g", op: "eq", value: g } }),
    );
  });
  return { rows, close: () => ws.closeOurs() };
}

// ------------------------------------------------------------------ NATS JetStream KV

export async function natsOpen(port, opts = {}) {
  const { jsTimeout, create, ...copts } = opts;
  const nc = await natsConnect({ servers: `${HOST}:${port}`, maxReconnectAttempts: 0, ...copts });
  const js = nc.jetstream(jsTimeout ? { timeout: jsTimeout } : {});
  const kv = await js.views.kv(BUCKET, create ? { history: 1, storage: StorageType.File, replicas: 1 } : { bindOnly: true });
  return { nc, js, kv };
}

const natsDelHeaders = () => {
  const h = natsHeaders();
  h.set("KV-Operation", "DEL");
  return h;
};
const te = new TextEncoder();
const td = new TextDecoder();
export const natsPut = (n, key, val) => n.kv.put(key, te.encode(val)); // -> revision
// A KV delete (as kv.delete does) whose PubAck revision we keep.
export const natsDel = (n, key) => n.js.publish(`$KV.${BUCKET}.${key}`, Empty, { headers: natsDelHeaders() }).then((pa) => pa.seq);

export async function natsLoad(port, n, sOf, inflight = 1000) {
  const c = await natsOpen(port, { create: true });
  let next = 0;
  let last = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        const i = next++;
        const rev = await natsPut(c, peerKey(initialGroup(i), i), value(initialGroup(i), sOf(i)));
        last = Math.max(last, rev);
      }
    }),
  );
  await c.nc.close();
  return last;
}

// Benchmark 1: a KV watcher of every key (every current value, then updates).
export async function natsFull(port) {
  const c = await natsOpen(port);
  const map = new Map();
  let held;
  const heldP = new Promise((r) => (held = r));
  let initialized = false;
  let changeWaiter = null;
  const early = [];
  const w = await c.kv.watch({ key: ">", initializedFn: () => ((initialized = true), held()) });
  (async () => {
    for await (const e of w) {
      if (!initialized) {
        if (e.operation === "PUT") map.set(e.key, e.value);
        else map.delete(e.key);
      } else {
        const ch = { key: e.key, value: td.decode(e.value) };
        if (changeWaiter) {
          changeWaiter(ch);
          changeWaiter = null;
        } else early.push(ch);
      }
    }
  })().catch(() => {});
  await heldP;
  return {
    map,
    nextChange: () => (early.length ? Promise.resolve(early.shift()) : new Promise((r) => (changeWaiter = r))),
    close: async () => {
      w.stop();
      await c.nc.close();
    },
  };
}

// Benchmark 3: a KV watcher with a subject filter on the group's key prefix,
// on connection `c` (shared by several subscribers when --conns is lower).
export async function natsGroup(c, g, onChange) {
  const rows = [];
  let initialized = false;
  let held;
  const heldP = new Promise((r) => (held = r));
  const w = await c.kv.watch({ key: groupPrefix(g) + ">", initializedFn: () => ((initialized = true), held()) });
  (async () => {
    for await (const e of w) {
      if (!initialized) rows.push([e.key, td.decode(e.value)]);
      else if (e.operation === "PUT") onChange(e.revision, 1, e.key, td.decode(e.value));
      else onChange(e.revision, 2, e.key, null);
    }
  })().catch((err) => trouble("errors", `NATS watcher: ${err.message}`));
  await heldP;
  return { rows, close: () => w.stop() };
}

// ------------------------------------------------------------------ etcd

export const etcdOpen = (port) => new Etcd3({ hosts: `${HOST}:${port}` });
const ALL_START = Buffer.from([0]);
const ALL_END = Buffer.from([0]);
const prefixEnd = (p) => {
  const b = Buffer.from(p);
  b[b.length - 1]++;
  return b;
};

export const etcdPut = (client, key, val) => client.kv.put({ key: Buffer.from(key), value: Buffer.from(val) }).then((r) => Number(r.header.revision));
// A group move as one transaction: delete the old key, put the new one (one revision).
export const etcdMove = (client, oldKey, newKey, val) =>
  client.kv
    .txn({ compare: [], success: [{ request_delete_range: { key: Buffer.from(oldKey) } }, { request_put: { key: Buffer.from(newKey), value: Buffer.from(val) } }], failure: [] })
    .then((r) => Number(r.header.revision));

export async function etcdLoad(port, n, sOf, perTxn = 128, inflight = 8) {
  const client = etcdOpen(port);
  let next = 0;
  let last = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        const a = next;
        const b = Math.min(n, a + perTxn);
        next = b;
        const success = [];
        for (let i = a; i < b; i++) success.push({ request_put: { key: Buffer.from(peerKey(initialGroup(i), i)), value: Buffer.from(value(initialGroup(i), sOf(i))) } });
        const r = await client.kv.txn({ compare: [], success, failure: [] });
        last = Math.max(last, Number(r.header.revision));
      }
    }),
  );
  client.close();
  return last;
}

// A paginated range read at one revision (the first page's), [start, end).
async function etcdRangeAll(client, start, end, page, onKv) {
  let rev = 0;
  let key = start;
  for (;;) {
    const res = await client.kv.range({ key, range_end: end, limit: page, revision: rev });
    if (!rev) rev = Number(res.header.revision);
    for (const kv of res.kvs) onKv(kv);
    if (!res.more || !res.kvs.length) break;
    key = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
  }
  return rev;
}

// Benchmark 1: a range read of every key at one revision (pages of `page`
// keys), then a watch from the next revision.
export async function etcdFull(port, page = 10000) {
  const client = etcdOpen(port);
  const map = new Map();
  const rev = await etcdRangeAll(client, ALL_START, ALL_END, page, (kv) => map.set(kv.key.toString(), kv.value));
  let changeWaiter = null;
  const early = [];
  const watcherP = client
    .watch()
    .inRange({ start: ALL_START, end: ALL_END })
    .startRevision(rev + 1)
    .create()
    .then((w) => {
      w.on("put", (kv) => {
        const ch = { key: kv.key.toString(), value: kv.value.toString() };
        if (changeWaiter) {
          changeWaiter(ch);
          changeWaiter = null;
        } else early.push(ch);
      });
      return w;
    });
  return {
    map,
    fence: rev,
    nextChange: () => (early.length ? Promise.resolve(early.shift()) : new Promise((r) => (changeWaiter = r))),
    close: async () => {
      try {
        await (await watcherP).cancel();
      } catch {}
      client.close();
    },
  };
}

// Benchmark 3: a prefix range read at one revision, then a prefix watch
// from the next revision, on client `client` (shared when --conns is lower).
export async function etcdGroup(client, g, onChange, page = 10000) {
  const p = groupPrefix(g);
  const rows = [];
  const rev = await etcdRangeAll(client, Buffer.from(p), prefixEnd(p), page, (kv) => rows.push([kv.key.toString(), kv.value.toString()]));
  const w = await client
    .watch()
    .prefix(p)
    .startRevision(rev + 1)
    .create();
  w.on("put", (kv) => onChange(Number(kv.mod_revision), 1, kv.key.toString(), kv.value.toString()));
  w.on("delete", (kv) => onChange(Number(kv.mod_revision), 2, kv.key.toString(), null));
  w.on("error", (e) => trouble("errors", `etcd watcher: ${e.message}`));
  return { rows, close: () => w.cancel().catch(() => {}) };
}
