#!/usr/bin/env bash
# Load benchmark of the forecast API on loopback, with the reference server measured in the same run.
#
#   benches/load/run.sh                 # PostgreSQL + Redis (fresh database, dropped afterwards)
#   KWI_EMBEDDED=1 benches/load/run.sh  # the embedded default: SQLite file + in-process cache
#
# Env: KWI_BIN (default target/release/kwi), REF_BIN (target/release/examples/refserver),
# DURATION (seconds per wrk phase, default 20), CONNS (default 32), THREADS (wrk threads, default 2),
# KEYS (keyword count, default 10000), PHASES (which phases to run, default "1 2 3 4 5"; phase 3 expects
# phase 2 to have warmed the cache), PROFILE_CMD (run with the server's pid as $1 during phase 4, e.g.
# 'pidstat -u -p ALL 5 3' or 'perf record -F 999 -g -p $1 -- sleep 10'). Needs wrk (apt-get install wrk), curl, python3, and for the
# PostgreSQL run psql + Redis on 127.0.0.1. Build first:
#   cargo build --release --bin kwi --example refserver
#
# Phases (each prints one RESULT line; a summary follows):
#  1. reference server: one Redis GET per request (/redis) and one in-process read (/local);
#  2. batch: POST /v1/forecasts with 1,000 keywords, uncached (10 batches cover all 10,000
#     keywords), then the same 1,000 again (cached);
#  3. cached forecast GET, Zipf(1.1) over the 10,000 keywords; cache hit ratio from /metrics (with
#     Redis, the share the near cache answered too; KWI_CACHE_MB=0 turns the near cache off);
#  4. uncached forecast GET: every request a key never asked before (history read + inference +
#     cache write), CONNS clients; levels 79,95, which no other phase asks for, so no request of
#     it can be a hit;
#  5. cold Zipf(1.1): the phase-3 workload with levels 81,95, which no other phase asks for, so the
#     cache starts empty for it; its hit ratio is the one a fresh deployment sees.
# Keywords: 10,000 windows of real M4 Weekly series (benches/load/make_keywords.py), platform
# `benchmark`. Metrics and tracing stay on (RUST_LOG=warn).
# AUTH=on (default): every request to kwi carries the API key of an `internal`-plan user made with
# `kwi users create`, so authentication, rate limiting, usage counting and history recording all
# run; AUTH=off starts the server with `--auth off` (nothing of that runs): the two runs back to
# back give the cost of accounts (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-target/release/kwi}
REF_BIN=${REF_BIN:-target/release/examples/refserver}
PORT=${PORT:-18181}
REF_PORT=${REF_PORT:-18282}
DURATION=${DURATION:-20}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
KEYS=${KEYS:-10000}
for t in wrk curl python3 "$BIN" "$REF_BIN"; do
  command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t (wrk: apt-get install wrk; binaries: cargo build --release --bin kwi --example refserver)" >&2; exit 1; }
done
data=$(mktemp -d)
pids=()
# Forecast keys left in Redis by earlier runs (keys hold spaces: one per line to xargs, not words).
drop_cached_forecasts() {
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'kwi:fc:*' | xargs -r -d '\n' -n 1000 redis-cli -h 127.0.0.1 -p 6379 DEL >/dev/null
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${db:-}" ] && drop_cached_forecasts || true
  [ -n "${db:-}" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT
if [ "${KWI_EMBEDDED:-0}" = 1 ]; then
  export KWI_DATABASE_URL="sqlite:$data/kwi.db"; unset KWI_REDIS_URL || true
  label="embedded (SQLite + in-process cache)"
else
  db="kwi_load_$$"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
  export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  export KWI_REDIS_URL="redis://127.0.0.1:6379"
  drop_cached_forecasts
  label="PostgreSQL + Redis"
fi
export KWI_DATA_DIR="$data" RUST_LOG=warn
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "backend: $label; wrk -t$THREADS -c$CONNS -d${DURATION}s; kwi: $BIN"

python3 benches/load/make_keywords.py --count "$KEYS" "$data/panel.csv" "$data/keys.txt"
t0=$(date +%s.%N)
"$BIN" import --quiet "$data/panel.csv"
echo "imported $KEYS keywords in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"

AUTH=${AUTH:-on}
auth_h=()
if [ "$AUTH" = on ]; then
  KWI_BEARER=$("$BIN" users create --email load@kwi.bench --role admin --plan internal | tail -1)
  export KWI_BEARER
  auth_h=(-H "Authorization: Bearer $KWI_BEARER")
fi
echo "auth: $AUTH"
RUST_LOG="warn,kwi_predict::insights=info" "$BIN" serve --no-sample --auth "$AUTH" --listen "127.0.0.1:$PORT" 2>"$data/serve.log" & pids+=($!)
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
# The start-up insights job forecasts every stored keyword once; measure after it is done.
t0=$(date +%s.%N)
for _ in $(seq 1 1200); do grep -qE 'insights job (finished|failed)' "$data/serve.log" && break; sleep 0.5; done
echo "start-up insights job: $(sed 's/\x1b\[[0-9;]*m//g' "$data/serve.log" | grep -oE 'insights job (finished|failed).*' | head -1) (waited $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s)"
curl -sf "127.0.0.1:$PORT/readyz" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("serving model", r["model"]["version"])'
first=$(head -1 "$data/keys.txt")
curl -sf "${auth_h[@]}" -o "$data/payload.json" "127.0.0.1:$PORT/v1/keywords/$first/forecast?horizon=13&levels=80,95"

"$REF_BIN" --keys "$data/keys.txt" --payload "$data/payload.json" --listen "127.0.0.1:$REF_PORT" & pids+=($!)
for _ in $(seq 1 120); do curl -sf -o /dev/null "127.0.0.1:$REF_PORT/local/$first" && break; sleep 0.5; done

run_wrk() { # name, mode, path template, base url
  local out
  # Only kwi gets the credential; the reference server takes none.
  local bearer=""; [[ $4 == *":$PORT"* ]] && bearer=${KWI_BEARER:-}
  out=$(KWI_KEYWORDS="$data/keys.txt" KWI_MODE="$2" KWI_PATH="$3" KWI_BEARER="$bearer" \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s benches/load/keywords.lua "$4" | grep '^RESULT')
  echo "$1 ${out#RESULT }"
}
# CPU seconds (user + system, from /proc) used so far by the processes named $@ (pgrep -x names;
# a number is taken as a pid). Run-to-run throughput here moves ±10-20 % with the shared machine;
# CPU time per request moves far less, so phase 4 reports it per process.
cpu_s() {
  local pids=() n
  for n in "$@"; do if [[ $n =~ ^[0-9]+$ ]]; then pids+=("$n"); else pids+=($(pgrep -x "$n")); fi; done
  for n in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$n/stat" 2>/dev/null; done |
    awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f", s / hz}'
}
counter() { curl -s "${auth_h[@]}" "127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {s += $2} END {print s + 0}'; }
# zipf_phase VAR NAME LEVELS LABEL: the Zipf workload at horizon 13 with LEVELS; the wrk result goes
# into $VAR; prints it and the cache hit ratio the server's counters saw meanwhile.
zipf_phase() {
  local h0 m0 n0 h1 m1 n1 out
  h0=$(counter kwi_cache_hits_total); m0=$(counter kwi_cache_misses_total); n0=$(counter kwi_cache_near_hits_total)
  out=$(run_wrk "$2" zipf "/v1/keywords/{key}/forecast?horizon=13&levels=$3" "http://127.0.0.1:$PORT"); echo "$out"
  h1=$(counter kwi_cache_hits_total); m1=$(counter kwi_cache_misses_total); n1=$(counter kwi_cache_near_hits_total)
  echo "$4 hits $((h1 - h0)) (near cache, Redis mode only: $((n1 - n0))), misses $((m1 - m0)), hit ratio $(python3 -c "print(f'{($h1-$h0)/max(1,($h1-$h0)+($m1-$m0)):.4f}')")"
  printf -v "$1" '%s' "$out"
}

PHASES=${PHASES:-1 2 3 4 5}
phase() { [[ " $PHASES " == *" $1 "* ]]; }

if phase 1; then
echo "--- 1. reference server"
ref_redis=$(run_wrk ref_redis zipf '/redis/{key}' "http://127.0.0.1:$REF_PORT"); echo "$ref_redis"
ref_local=$(run_wrk ref_local zipf '/local/{key}' "http://127.0.0.1:$REF_PORT"); echo "$ref_local"
fi

if phase 2; then
echo "--- 2. batch of 1,000 keywords"
python3 - "$PORT" "$data/keys.txt" <<'PY'
import json, os, sys, time, urllib.parse, urllib.request
port, keys = sys.argv[1], [l for l in open(sys.argv[2]).read().split("\n") if l]
def batch(chunk):
    body = json.dumps({"keywords": [{"platform": k.split("/")[0], "keyword": urllib.parse.unquote(k.split("/", 1)[1])} for k in chunk],
                       "horizon": 13, "levels": [80, 95]}).encode()
    headers = {"content-type": "application/json"}
    if os.environ.get("KWI_BEARER"):
        headers["authorization"] = "Bearer " + os.environ["KWI_BEARER"]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/forecasts", body, headers)
    t = time.perf_counter()
    r = json.load(urllib.request.urlopen(req))
    ms = (time.perf_counter() - t) * 1e3
    assert len(r["results"]) == len(chunk) and all("forecast" in x for x in r["results"]), "batch answered with errors"
    return ms
cold = [batch(keys[i:i + 1000]) for i in range(0, len(keys), 1000)]
warm = [batch(keys[:1000]) for _ in range(5)]
q = lambda v: f"median {sorted(v)[len(v) // 2]:.0f} ms, max {max(v):.0f} ms"
print(f"batch_uncached n={len(cold)} {q(cold)}")
print(f"batch_cached n={len(warm)} {q(warm)}")
PY
fi

if phase 3; then
echo "--- 3. cached forecast GET, Zipf(1.1) over $KEYS keywords (all warmed by phase 2)"
zipf_phase cached kwi_cached "80,95" "cache"
fi

if phase 4; then
echo "--- 4. uncached forecast GET ($CONNS clients, every request a new key)"
m0=$(counter kwi_cache_misses_total)
if [ -n "${PROFILE_CMD:-}" ]; then
  (sleep 2; bash -c "$PROFILE_CMD" _ "${pids[0]}" > "${PROFILE_OUT:-/tmp/kwi-profile.txt}" 2>&1) &
fi
c0=("$(cpu_s "${pids[0]}")" "$(cpu_s postgres)" "$(cpu_s redis-server)")
uncached=$(run_wrk kwi_uncached miss '/v1/keywords/{key}/forecast?horizon={h}&levels=79,95' "http://127.0.0.1:$PORT"); echo "$uncached"
# The CPU the prediction writer spends after wrk stops (its queue draining) belongs to these requests.
t0=$(date +%s.%N); w0=-1; w1=$(counter kwi_predictions_persisted_total)
while [ "$w1" != "$w0" ]; do w0=$w1; sleep 0.5; w1=$(counter kwi_predictions_persisted_total); done
echo "prediction writer idle $(python3 -c "print(round($(date +%s.%N) - $t0 - 0.5, 1))") s after wrk stopped"
c1=("$(cpu_s "${pids[0]}")" "$(cpu_s postgres)" "$(cpu_s redis-server)")
m1=$(counter kwi_cache_misses_total)
echo "misses during phase 4: $((m1 - m0))"
python3 - "$uncached" "${c0[@]}" "${c1[@]}" <<'PY'
import sys
n = int(dict(kv.split("=") for kv in sys.argv[1].split()[1:])["requests"])
a, b = [float(x) for x in sys.argv[2:5]], [float(x) for x in sys.argv[5:8]]
us = [1e6 * (y - x) / max(n, 1) for x, y in zip(a, b)]
print(f"CPU per uncached request: kwi {us[0]:.0f} us, postgres {us[1]:.0f} us, redis {us[2]:.0f} us, total {sum(us):.0f} us")
PY
fi

if phase 5; then
echo "--- 5. cold Zipf(1.1): levels 81,95, asked for the first time (cache empty for them)"
zipf_phase cold kwi_cold_zipf "81,95" "cold cache"
fi

phase 1 && phase 3 || exit 0
echo "--- summary ($label)"
python3 - "$ref_redis" "$ref_local" "$cached" <<'PY'
import sys
def parse(line):
    name, *kv = line.split()
    return name, {k: float(v) for k, v in (x.split("=") for x in kv)}
(_, rr), (_, rl), (_, c) = (parse(a) for a in sys.argv[1:])
print(f"cached GET {c['rps']:.0f} req/s p99 {c['p99_ms']:.2f} ms = {100*c['rps']/rr['rps']:.0f}% of reference Redis GET ({rr['rps']:.0f} req/s), "
      f"{100*c['rps']/rl['rps']:.0f}% of reference in-process read ({rl['rps']:.0f} req/s)")
PY
