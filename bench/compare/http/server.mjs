// Starts the Node reference Durable Streams server (@durable-streams/server,
// pinned in package.json) file-backed, for bench/compare/http/run.
//   node server.mjs --port PORT --data-dir DIR
// Streams are served at the request path itself (e.g. /bench-1).
import { DurableStreamTestServer } from "@durable-streams/server"

const arg = (name) => {
  const i = process.argv.indexOf(name)
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`server.mjs: missing ${name}`)
    process.exit(2)
  }
  return process.argv[i + 1]
}

const server = new DurableStreamTestServer({
  host: `127.0.0.1`,
  port: Number(arg(`--port`)),
  dataDir: arg(`--data-dir`),
})
await server.start()
console.log(`listening on ${server.url}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await server.stop()
  process.exit(0)
}
process.on(`SIGTERM`, stop)
process.on(`SIGINT`, stop)
