-- wrk script: GET forecasts for keywords drawn from a Zipf(s) law over the keyword list in
-- KWI_KEYWORDS (one "platform/keyword" per line, URL-encoded). Seeded, so runs are comparable.
-- Usage: wrk -t2 -c32 -d10s -s benches/load/keywords.lua http://127.0.0.1:8080
local path = os.getenv("KWI_KEYWORDS") or "benches/load/keywords.txt"
local s = tonumber(os.getenv("KWI_ZIPF_S") or "1.1")
local keys = {}
for line in io.lines(path) do
  if #line > 0 then keys[#keys + 1] = line end
end
assert(#keys > 0, "no keywords in " .. path)
-- cumulative Zipf weights
local cdf, total = {}, 0
for i = 1, #keys do
  total = total + 1 / (i ^ s)
  cdf[i] = total
end
math.randomseed(42)
local function pick()
  local u = math.random() * total
  local lo, hi = 1, #keys
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return keys[lo]
end
request = function()
  return wrk.format("GET", "/v1/keywords/" .. pick() .. "/forecast?horizon=13&levels=80,95")
end
done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors %d (status %d), p50 %.2f ms, p99 %.2f ms, req/s %.0f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
