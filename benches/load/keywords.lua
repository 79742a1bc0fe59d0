-- wrk script for the load benchmark (benches/load/run.sh). Seeded, so runs are comparable.
-- Keys: KWI_KEYWORDS, one "platform/keyword" (URL-encoded) per line; its order is the Zipf rank.
-- KWI_PATH: request path with {key} (and, in miss mode, {h}) placeholders
--           (default /v1/keywords/{key}/forecast?horizon=13&levels=80,95).
-- KWI_MODE: zipf (default): keys drawn from a Zipf(KWI_ZIPF_S, default 1.1) law;
--           miss: every request a key never asked before (keys in turn, horizon {h} = 1..104 moving
--           on after each pass), i.e. an uncached forecast each time.
-- Usage: KWI_KEYWORDS=keys.txt wrk -t2 -c32 -d10s -s benches/load/keywords.lua http://127.0.0.1:8080
local path = os.getenv("KWI_KEYWORDS") or "benches/load/keywords.txt"
local s = tonumber(os.getenv("KWI_ZIPF_S") or "1.1")
local template = os.getenv("KWI_PATH") or "/v1/keywords/{key}/forecast?horizon=13&levels=80,95"
local mode = os.getenv("KWI_MODE") or "zipf"
-- KWI_BEARER: an API key or access token sent as `Authorization: Bearer …` (empty: none).
local bearer = os.getenv("KWI_BEARER") or ""
local headers = nil
if #bearer > 0 then headers = { ["Authorization"] = "Bearer " .. bearer } end
local keys = {}
for line in io.lines(path) do
  if #line > 0 then keys[#keys + 1] = line end
end
assert(#keys > 0, "no keywords in " .. path)
local cdf, total = {}, 0
for i = 1, #keys do
  total = total + 1 / (i ^ s)
  cdf[i] = total
end

local threads, counter = 0, 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(42 + (tid or 0))
  -- Threads start far apart in miss mode so they never ask for the same key.
  counter = (tid or 0) * 500000
end

local function zipf()
  local u = math.random() * total
  local lo, hi = 1, #keys
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return keys[lo], 13
end
local function miss()
  counter = counter + 1
  local k = keys[(counter % #keys) + 1]
  local h = (math.floor(counter / #keys) % 104) + 1
  return k, h
end
request = function()
  local k, h
  if mode == "miss" then k, h = miss() else k, h = zipf() end
  -- "%" is special in gsub replacements (URL-encoded keys have it): double it.
  local p = template:gsub("{key}", (k:gsub("%%", "%%%%"))):gsub("{h}", tostring(h))
  return wrk.format("GET", p, headers)
end
done = function(summary, latency, requests)
  -- errors: socket errors and timeouts together (timeouts: of those, answers slower than wrk's --timeout).
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d timeouts=%d p50_ms=%.2f p99_ms=%.2f rps=%.0f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
