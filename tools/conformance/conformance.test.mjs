// Runs the official Durable Streams server conformance suite against the
// server at CONFORMANCE_TEST_URL (tools/conformance/run starts one).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("CONFORMANCE_TEST_URL is required (use tools/conformance/run)")

runConformanceTests({
  baseUrl,
  // Must match the server's --long-poll-timeout-ms (the runner passes the same value).
  longPollTimeoutMs: Number(process.env.LONG_POLL_TIMEOUT_MS ?? 2000),
  subscriptions: true,
})
