-- wrk script: POST /v1/cases with a unique reference and selector per request, rotating the
-- pre-fetched bearer tokens; prints one JSON line of results when the run is done.
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "none", "[^,]+") do
  tokens[#tokens + 1] = t
end
local run = os.getenv("BENCH_RUN") or "0"
local platform = os.getenv("BENCH_PLATFORM") or "pixelgram"
local counter = 0

request = function()
  counter = counter + 1
  local body = string.format(
    '{"reference":"B%s-%d","platform":"%s","legal_basis":"Art. 18 CoE Convention",' ..
    '"offence_categories":["fraud"],"selectors":[{"kind":"account_handle","value":"@b%s_%d"}]}',
    run, counter, platform, run, counter)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1],
  }
  return wrk.format("POST", "/v1/cases", headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
