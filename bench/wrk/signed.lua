-- wrk script: the Instance-signed call, GET /v1/user/profile with `Authorization: Instance <id>:<signature>` and
-- `X-Timestamp` (PROTOCOL §4). bench/wrk.sh makes the sessions and signs each once over a fixed X-Timestamp (one
-- `<authorization>\t<x-timestamp>` a line): the signature covers no nonce and the timestamp stays inside the
-- servers' skew window (600 s) for the whole run, so the same signed request may repeat, and wrk spends no CPU on
-- HMAC while the servers verify every request in full. One request in flight per connection (no pipelining).
--
--   wrk -t2 -c64 -d8s -s bench/wrk/signed.lua http://127.0.0.1:PORT -- signed.txt
local requests = {}
local next_index = 1

function init(args)
  local file = assert(io.open(args[1], "r"), "give the signed-headers file after --")
  for line in file:lines() do
    local authorization, timestamp = line:match("^([^\t]+)\t(.+)$")
    if authorization then
      requests[#requests + 1] = wrk.format("GET", "/v1/user/profile", {
        ["Authorization"] = authorization,
        ["X-Timestamp"] = timestamp,
      })
    end
  end
  file:close()
  assert(#requests > 0, "the signed-headers file is empty")
  next_index = (id or 0) % #requests + 1
end

function setup(thread)
  thread_count = (thread_count or 0) + 1
  thread:set("id", thread_count * 7919)
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

-- One JSON line for bench/wrk.sh (wrk's own text report is printed above it).
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationMicros":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"non2xx":%d,"timeouts":%d,"p50Micros":%d,"p99Micros":%d,"maxMicros":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
