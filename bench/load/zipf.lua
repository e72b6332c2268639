-- wrk script: GET /k/<rank> with rank drawn from a Zipf(S) distribution over N keys (rank 1 the most popular,
-- P(rank = i) = i^-S / H(N,S)). The CDF (N doubles, 0.8 MB for 100,000 keys) is built once per wrk thread in
-- init(); each request draws u ~ U[0,1) and binary-searches it (17 steps for 100,000 keys).
-- Environment: ZIPF_N (100000), ZIPF_S (1.0), ZIPF_PREFIX (/k/), ZIPF_SEED (per-thread seed base, default time),
--   ZIPF_DELAY_MS (0: none; > 0: each connection waits that long before each request — an offered-load cap of
--   about conns * 1000 / (delay + latency) requests/s, so that two servers can be compared at the same rate).
-- Usage: ZIPF_N=100000 wrk -t1 -c64 -d60s -s bench/load/zipf.lua http://127.0.0.1:PORT
local N = tonumber(os.getenv("ZIPF_N") or "") or 100000
local S = tonumber(os.getenv("ZIPF_S") or "") or 1.0
local PREFIX = os.getenv("ZIPF_PREFIX") or "/k/"
local SEED = tonumber(os.getenv("ZIPF_SEED") or "") or os.time()
local DELAY = tonumber(os.getenv("ZIPF_DELAY_MS") or "") or 0

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local cdf = {}
function init(args)
  local sum = 0.0
  for i = 1, N do sum = sum + i ^ (-S); cdf[i] = sum end
  for i = 1, N do cdf[i] = cdf[i] / sum end
  cdf[N] = 1.0
  math.randomseed(SEED + 7919 * (thread_no or 0))
end

local floor, random, format = math.floor, math.random, wrk.format
function request()
  local u = random()
  local lo, hi = 1, N
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return format("GET", PREFIX .. lo)
end

if DELAY > 0 then
  function delay() return DELAY end
end
