// bench/compare/idle/idle.mjs: resident memory per idle connection of a
// running Weir server. Opens N connections of one kind, makes each do the
// least that makes it a live client (WebSocket: hello/welcome; HTTP: one
// keep-alive HEAD of a stream), waits, and reads the server's RSS from
// /proc before and after. Prints one JSON line.
//
//   node idle.mjs --port P --pid PID --kind ws|http [--conns 1000] [--settle-ms 3000]
//
// Needs the `ws` package (bench/compare/state's node_modules).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import http from "node:http";

const require = createRequire(new URL("../state/package.json", import.meta.url));
const WebSocket = require("ws");

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i < 0 ? d : process.argv[i + 1];
};
const port = Number(arg("port"));
const pid = Number(arg("pid"));
const kind = arg("kind", "ws");
const conns = Number(arg("conns", 1000));
const settle = Number(arg("settle-ms", 3000));
if (!port || !pid) {
  console.error("usage: node idle.mjs --port P --pid PID --kind ws|http [--conns N]");
  process.exit(2);
}
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function wsHello() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("open", () => {
      ws.send(JSON.stringify({ type: "hello", id: 1, client: "idle", max_version: 2 }));
      ws.once("message", (m) => {
        const v = JSON.parse(m.toString());
        if (v.type !== "welcome") return reject(new Error(`hello: ${m}`));
        resolve(ws);
      });
    });
  });
}

// One keep-alive socket per agent, so each HEAD holds its own connection.
async function httpHead() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "HEAD", path: "/v1/stream/idle-probe", agent }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end();
  });
  return agent;
}

await sleep(settle);
const before = rssKiB();
const held = [];
for (let i = 0; i < conns; i += 100) {
  const wave = Array.from({ length: Math.min(100, conns - i) }, () => (kind === "ws" ? wsHello() : httpHead()));
  held.push(...(await Promise.all(wave)));
}
await sleep(settle);
const after = rssKiB();
console.log(JSON.stringify({ kind, conns, rssBeforeKiB: before, rssAfterKiB: after, perConnKiB: (after - before) / conns }));
for (const h of held) (kind === "ws" ? h.terminate() : h.destroy());
process.exit(0);
