-- wrk script: the ticket -> session exchange, POST /v1/instance with `Authorization: User <ticket>` (PROTOCOL §2,
-- §6). Each request takes the next ticket of a file made by bench/wrk.sh (one ticket a line, minted with
-- `callbox ticket mint`, no nonce, so a ticket may be exchanged again), so the sessions belong to several users.
-- One request in flight per connection (no pipelining), keep-alive, as wrk does by default.
--
--   wrk -t2 -c64 -d8s -s bench/wrk/exchange.lua http://127.0.0.1:PORT -- tickets.txt
local requests = {}
local next_index = 1

function init(args)
  local file = assert(io.open(args[1], "r"), "give the tickets file after --")
  for ticket in file:lines() do
    if #ticket > 0 then
      requests[#requests + 1] = wrk.format("POST", "/v1/instance", {
        ["Authorization"] = "User " .. ticket,
        ["Content-Type"] = "application/json",
      }, '{"version":{"os":"wrk"},"services":{"im":true,"voip":true}}')
    end
  end
  file:close()
  assert(#requests > 0, "the tickets file is empty")
  -- Threads start at different tickets (`id` is set per thread by setup()).
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
