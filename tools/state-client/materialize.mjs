// Materializes a Weir state stream with the official Durable Streams
// JavaScript client (@durable-streams/client) and state library
// (@durable-streams/state), and checks the result against Weir's own
// `GET _state` rows, twice:
//   (a) replaying the whole history from offset -1;
//   (b) starting from a `snapshot=true` read, then following the later
//       changes from the snapshot's offset.
// Needs WEIR_URL (the server's base URL). Prints one summary line; exits 1
// with a diff on any mismatch.

import { isDeepStrictEqual } from "node:util";
import { stream } from "@durable-streams/client";
import { MaterializedState } from "@durable-streams/state";

const base = process.env.WEIR_URL;
if (!base) {
  console.error("WEIR_URL is not set");
  process.exit(2);
}
const name = `state-client-${process.pid}-${Date.now()}`;
const url = `${base}/v1/stream/${name}`;
const JSON_CT = { "content-type": "application/json" };

// A small deterministic generator, so a failure reproduces.
let seed = 0x2545f491;
const rand = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) % n;
};

async function must(res, what) {
  if (!res.ok) {
    throw new Error(`${what}: ${res.status} ${await res.text()}`);
  }
  return res;
}

async function append(messages) {
  await must(
    await fetch(url, { method: "POST", headers: JSON_CT, body: JSON.stringify(messages) }),
    "append",
  );
}

// The (type, key) model the generator keeps, so inserts go to absent keys
// and updates and deletes to present ones, as the State Protocol means them.
const present = new Set();
let counter = 0;
function changes(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const type = rand(2) === 0 ? "todo" : "user";
    const key = String(rand(25));
    const id = `${type}\u0000${key}`;
    counter++;
    const value = {
      n: counter,
      title: `${type} ${key} #${counter}`,
      done: rand(2) === 0,
      tags: Array.from({ length: rand(3) }, (_, j) => `t${j}`),
      nested: { depth: { at: counter % 7 } },
    };
    if (!present.has(id)) {
      out.push({ type, key, value, headers: { operation: "insert" } });
      present.add(id);
    } else if (rand(4) === 0) {
      out.push({ type, key, headers: { operation: "delete" } });
      present.delete(id);
    } else {
      out.push({ type, key, value, headers: { operation: "update" } });
    }
  }
  return out;
}

function reset() {
  present.clear();
  return { headers: { control: "reset" } };
}

// Feeds one message to the materialized state: `reset` clears it, the
// snapshot bracket controls carry no change.
function feed(state, message) {
  const control = message?.headers?.control;
  if (control === "reset") {
    state.clear();
  } else if (control === "snapshot-start" || control === "snapshot-end") {
    // nothing to apply
  } else if (control !== undefined) {
    throw new Error(`unexpected control ${JSON.stringify(message)}`);
  } else {
    state.apply(message);
  }
}

function flatten(state) {
  const out = new Map();
  for (const type of state.types) {
    for (const [key, value] of state.getType(type)) {
      out.set(JSON.stringify([type, key]), value);
    }
  }
  return out;
}

// Every row of `_state`, walking the pages.
async function serverState() {
  const rows = new Map();
  let after = null;
  let fence = null;
  for (;;) {
    const q = new URLSearchParams({ limit: "17" });
    if (after) q.set("after", after);
    const res = await must(await fetch(`${url}/_state?${q}`), "_state");
    const page = await res.json();
    fence ??= page.fence;
    for (const r of page.rows) {
      const id = JSON.stringify([r.type, r.key]);
      if (rows.has(id)) throw new Error(`_state returned ${id} twice`);
      rows.set(id, r.value);
    }
    if (page.next === null) break;
    after = page.next;
  }
  return { rows, fence };
}

function diff(got, want) {
  const lines = [];
  for (const [id, v] of want) {
    if (!got.has(id)) lines.push(`  missing ${id}: want ${JSON.stringify(v)}`);
    else if (!isDeepStrictEqual(got.get(id), v))
      lines.push(`  differs ${id}: got ${JSON.stringify(got.get(id))} want ${JSON.stringify(v)}`);
  }
  for (const [id, v] of got) {
    if (!want.has(id)) lines.push(`  extra ${id}: got ${JSON.stringify(v)}`);
  }
  return lines;
}

let failed = false;
function compare(label, state, server) {
  const lines = diff(flatten(state), server.rows);
  if (lines.length > 0) {
    failed = true;
    console.error(`${label}: materialized state differs from _state (fence ${server.fence}):`);
    console.error(lines.slice(0, 50).join("\n"));
    if (lines.length > 50) console.error(`  … ${lines.length - 50} more`);
  }
}

async function main() {
  await must(await fetch(url, { method: "PUT", headers: JSON_CT }), "create");
  await must(
    await fetch(`${url}/_profile`, {
      method: "POST",
      headers: JSON_CT,
      body: JSON.stringify({
        apiVersion: "durable.streams/profile/v1",
        profile: { kind: "state-protocol" },
      }),
    }),
    "profile",
  );

  let written = 0;
  for (let batch = 0; batch < 8; batch++) {
    const msgs = changes(40);
    if (batch === 4) msgs.splice(20, 0, reset());
    await append(msgs);
    written += msgs.length;
  }

  // (a) The whole history through the client, materialized.
  const history = await stream({ url, offset: "-1", live: false });
  const all = await history.json();
  if (all.length !== written) {
    throw new Error(`history read returned ${all.length} messages, ${written} were written`);
  }
  const replayed = new MaterializedState();
  for (const m of all) feed(replayed, m);
  const atA = await serverState();
  if (atA.fence !== history.offset) {
    failed = true;
    console.error(`(a) _state fence ${atA.fence} != the client's offset ${history.offset}`);
  }
  compare("(a) replay from -1", replayed, atA);

  // (b) A snapshot through the client (the first request carries
  // snapshot=true; any further one snapshot=false, an ordinary read).
  let first = true;
  const snap = await stream({
    url,
    offset: "-1",
    live: false,
    params: {
      snapshot: () => {
        const v = first ? "true" : "false";
        first = false;
        return v;
      },
    },
  });
  const snapMessages = await snap.json();
  const snapOffset = snap.offset;
  const head = snapMessages[0]?.headers?.control;
  const tail = snapMessages[snapMessages.length - 1]?.headers?.control;
  if (head !== "snapshot-start" || tail !== "snapshot-end") {
    throw new Error(`snapshot is not bracketed by controls: ${head} … ${tail}`);
  }
  const fromSnapshot = new MaterializedState();
  for (const m of snapMessages) feed(fromSnapshot, m);
  compare("(b) snapshot", fromSnapshot, atA);
  if (snapOffset !== atA.fence) {
    failed = true;
    console.error(`(b) snapshot offset ${snapOffset} != _state fence ${atA.fence}`);
  }

  // Later changes, followed from the snapshot's offset until up to date.
  let later = 0;
  for (let batch = 0; batch < 3; batch++) {
    const msgs = changes(30);
    await append(msgs);
    later += msgs.length;
  }
  const follow = await stream({ url, offset: snapOffset, live: false });
  const changesAfter = await follow.json();
  if (changesAfter.length !== later) {
    failed = true;
    console.error(`(b) read from ${snapOffset} returned ${changesAfter.length} messages, ${later} were written after it`);
  }
  if (!follow.upToDate) {
    failed = true;
    console.error("(b) the follow-up read ended without being up to date");
  }
  for (const m of changesAfter) feed(fromSnapshot, m);
  const atB = await serverState();
  if (atB.fence !== follow.offset) {
    failed = true;
    console.error(`(b) _state fence ${atB.fence} != the client's offset ${follow.offset}`);
  }
  compare("(b) snapshot then changes", fromSnapshot, atB);

  const summary =
    `state-client: ${written + later} changes over ${present.size} live keys; ` +
    `replay matched ${atA.rows.size} rows, snapshot (${snapMessages.length - 2} rows) + ` +
    `${changesAfter.length} changes matched ${atB.rows.size} rows`;
  if (failed) {
    console.error(`${summary} — MISMATCH`);
    process.exit(1);
  }
  console.log(summary);
}

main().catch((e) => {
  console.error(`state-client: ${e?.stack ?? e}`);
  process.exit(1);
});
