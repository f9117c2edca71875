-- wrk script: send the requests listed in a file, one per line as
--   METHOD <TAB> PATH <TAB> TOKEN INDEX (1-based, into BENCH_TOKENS) <TAB> BODY (may be empty)
-- BENCH_CYCLE=1 sends them round and round; otherwise each line is sent once (a release can be
-- decided only once) and, when the list runs out, the connection goes idle: the bench sees
-- requests = lines and fails the round rather than measure a starved server.
-- Any status outside 2xx is counted (wrk itself counts only >= 400); prints one JSON line of
-- results, the same keys as post_case.lua.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "none", "[^,]+") do
  tokens[#tokens + 1] = t
end
local cycle = os.getenv("BENCH_CYCLE") == "1"
local prepared = {}
local file = assert(io.open(os.getenv("BENCH_LINES") or "", "r"))
for line in file:lines() do
  local method, path, token, body = line:match("^([^\t]+)\t([^\t]+)\t(%d+)\t?(.*)$")
  if method then
    local headers = { ["Authorization"] = "Bearer " .. tokens[tonumber(token)] }
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    prepared[#prepared + 1] = wrk.format(method, path, headers, body)
  end
end
file:close()

local sent = 0
bad = 0

request = function()
  if sent >= #prepared and not cycle then
    return ""  -- nothing left: write nothing, so this connection waits out the run
  end
  sent = sent + 1
  return prepared[((sent - 1) % #prepared) + 1]
end

response = function(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local e = summary.errors
  local non_2xx = 0
  for _, thread in ipairs(threads) do
    non_2xx = non_2xx + thread:get("bad")
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, non_2xx, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
