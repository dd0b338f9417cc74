-- wrk script for bench/compare/http/run: POST appends of a fixed 100-byte
-- body (application/octet-stream), and one machine-readable result line.
--
-- Environment (read when the script loads, so wrk knows whether requests
-- are static):
--   DS_STREAMS  number of streams (default 1). With 1, every request goes
--               to the URL's path and wrk sends one pre-built request.
--               With more, request i of a thread goes to DS_PREFIX .. k with
--               k = (thread offset + i) mod DS_STREAMS (round-robin).
--   DS_PREFIX   path prefix of the streams when DS_STREAMS > 1, e.g.
--               /v1/stream/append-many-
--   DS_BODY     body size in bytes (default 100)

local streams = tonumber(os.getenv("DS_STREAMS") or "1")
local prefix = os.getenv("DS_PREFIX") or "/"
local size = tonumber(os.getenv("DS_BODY") or "100")

-- Fixed pseudo-random bytes (an LCG), the same for every server.
local bytes, x = {}, 12345
for i = 1, size do
  x = (x * 1103515245 + 12345) % 2147483648
  bytes[i] = string.char(math.floor(x / 65536) % 256)
end

wrk.method = "POST"
wrk.body = table.concat(bytes)
wrk.headers["Content-Type"] = "application/octet-stream"

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

if streams > 1 then
  local counter = nil
  function request()
    if counter == nil then
      counter = (thread_id or 0) * 37
    end
    counter = counter + 1
    return wrk.format(nil, prefix .. (counter % streams))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK_RESULT requests=%d secs=%.3f rps=%.1f mbps=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f " ..
    "max_ms=%.3f errors=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, secs, summary.requests / secs, summary.requests * size / secs / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout + e.status, e.status,
    e.connect, e.read, e.write, e.timeout))
end
