#!/usr/bin/env bash
# Redis stopped for OUTAGE seconds and restarted in the middle of a wrk run against `kwi serve` on
# PostgreSQL + Redis, with the near cache off (KWI_CACHE_MB=0), so every forecast asks Redis and the
# outage is felt by every request. A private redis-server on RPORT is used (the machine's Redis is
# not touched). Reports what wrk saw (requests, errors, non-2xx: the target is zero), and from
# /metrics, polled every 0.25 s: when the service saw Redis go (kwi_cache_redis_up 0), how many
# cache operations failed, when the cache answered again after Redis came back (the target is
# within 5 s), and the rate-limit decisions taken in process meanwhile
# (kwi_rate_limit_fallbacks_total), which stop growing once Redis is back. Exits non-zero when
# wrk saw a failed or non-2xx answer, or the cache did not recover within 5 s.
#
#   benches/faults/redis_outage.sh
#
# Env: KWI_BIN (default $CARGO_TARGET_DIR/debug/kwi, the binary `cargo test` builds), DURATION
# (60), STOP_AT (20), OUTAGE (10), CONNS (32), THREADS (2), KEYS (2000), RPORT (18379). Installs
# wrk with apt-get when absent. The figures are errors and recovery times, not throughput.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-${CARGO_TARGET_DIR:-target}/debug/kwi}
DURATION=${DURATION:-60}
STOP_AT=${STOP_AT:-20}
OUTAGE=${OUTAGE:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
KEYS=${KEYS:-2000}
RPORT=${RPORT:-18379}
PORT=18390
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null || { echo "cannot install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --bin kwi)" >&2; exit 1; }
data=$(mktemp -d)
db="kwi_redis_outage_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT
now() { date +%s.%N; }
start_redis() {
  redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no >>"$data/redis.log" 2>&1 &
  for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on $RPORT did not start" >&2; exit 1
}
start_redis
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" KWI_REDIS_URL="redis://127.0.0.1:$RPORT"
export KWI_DATA_DIR="$data" RUST_LOG=warn KWI_CACHE_MB=0
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo); wrk -t$THREADS -c$CONNS -d${DURATION}s; Redis stopped at ${STOP_AT}s for ${OUTAGE}s; near cache off"
python3 benches/load/make_keywords.py --count "$KEYS" "$data/panel.csv" "$data/keys.txt"
"$BIN" import --quiet "$data/panel.csv"
KWI_BEARER=$("$BIN" users create --email outage@kwi.bench --role admin --plan internal | tail -1)
export KWI_BEARER
"$BIN" serve --no-sample --listen "127.0.0.1:$PORT" 2>"$data/serve.log" & pids+=($!)
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
KWI_KEYWORDS="$data/keys.txt" wrk -t"$THREADS" -c"$CONNS" -d5s -s benches/load/keywords.lua "http://127.0.0.1:$PORT" >/dev/null
# /metrics every 0.25 s: time, redis_up, cache errors, limiter fallbacks.
(
  while :; do
    m=$(curl -s -m 1 "127.0.0.1:$PORT/metrics" || true)
    v() { echo "$m" | awk -v n="$1" '$1 == n {print $2; f=1} END {if (!f) print 0}'; }
    echo "$(now) $(v kwi_cache_redis_up) $(v kwi_cache_redis_errors_total) $(v kwi_rate_limit_fallbacks_total)"
    sleep 0.25
  done >"$data/probe.log"
) & pids+=($!)
(
  sleep "$STOP_AT"
  now >"$data/stopped_at"; redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  sleep "$OUTAGE"
  start_redis; now >"$data/started_at"
) & chaos=$!
out=$(KWI_KEYWORDS="$data/keys.txt" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s benches/load/keywords.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
wait "$chaos" || true
sleep 1
echo "wrk: ${out#RESULT }"
python3 - "$data" "$out" <<'PY'
import sys
d, out = sys.argv[1], sys.argv[2]
stopped = float(open(f"{d}/stopped_at").read()); started = float(open(f"{d}/started_at").read())
rows = [tuple(map(float, l.split())) for l in open(f"{d}/probe.log") if len(l.split()) == 4]
down = next((t for t, up, *_ in rows if t > stopped and up == 0), None)
back = next((t for t, up, *_ in rows if t > started and up == 1), None)
def at(t): return min(rows, key=lambda r: abs(r[0] - t))
e0, f0 = at(stopped)[2:]; e1, f1 = at(started)[2:]
e_end, f_end = rows[-1][2:]
# Fallbacks still counted more than 5 s after Redis came back would mean the limiter never returned.
f_late = at(started + 5)[3]
print(f"Redis stopped; kwi saw it after {down - stopped:.2f} s" if down else "kwi never reported Redis down")
print(f"Redis back; cache answering again {back - started:.2f} s after the restart" if back else "cache never answered again")
print(f"cache operations failed during the outage: {e1 - e0:.0f}; after the restart: {e_end - e1:.0f}")
print(f"rate-limit decisions taken in process: {f1 - f0:.0f} during the outage, {f_end - f_late:.0f} from 5 s after the restart to the end")
fields = dict(kv.split("=") for kv in out.split()[1:])
bad = int(fields["errors"]) + int(fields["non2xx"])
ok = bad == 0 and back is not None and back - started <= 5 and f_end - f_late == 0
print("redis outage:", "all targets met" if ok else f"TARGET MISSED (failed or non-2xx answers: {bad})")
sys.exit(0 if ok else 1)
PY
