#!/usr/bin/env bash
# SIGKILL in the middle of writes, on PostgreSQL:
#   1. `kwi import` of M4 Weekly (366,912 observations, one transaction) killed KILLS times at
#      random moments: the store holds all or none of it each time (the count before, or before +
#      366,912); then run to the end, then run again: the count grows once, never twice (nothing
#      doubled).
#   2. `kwi serve` killed while every request computes a forecast and queues its prediction: after
#      a restart on the same store it serves, the predictions written before the kill are still
#      there, and every stored prediction row passes the table's checks (one value per step and
#      level, enforced in the insert's transaction).
# Prints PASS/FAIL per check; exits non-zero when one fails.
#
#   benches/faults/sigkill.sh
#
# Env: KWI_BIN (default $CARGO_TARGET_DIR/debug/kwi), KILLS (3). Installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-${CARGO_TARGET_DIR:-target}/debug/kwi}
KILLS=${KILLS:-3}
PORT=18392
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null || { echo "cannot install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --bin kwi)" >&2; exit 1; }
data=$(mktemp -d)
db="kwi_sigkill_$$"
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" KWI_DATA_DIR="$data" RUST_LOG=warn
unset KWI_REDIS_URL
q() { psql -h 127.0.0.1 -U postgres -d "$db" -tAqc "$1"; }
failures=0
check() { if [ "$2" = 0 ]; then echo "PASS $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi; }
M4=(data/m4/Weekly-train.csv --end 2018-12-23)

"$BIN" import --quiet data/samples/gtrends_pt_weekly_topics.csv
before=$(q "SELECT count(*) FROM keyword_observations")
echo "machine: $(nproc) cores; store holds $before observations"
for i in $(seq 1 "$KILLS"); do
  delay=$(python3 -c "import random; print(round(random.uniform(1.0, 6.0), 2))")
  "$BIN" import --quiet "${M4[@]}" >/dev/null 2>&1 & ipid=$!
  sleep "$delay"; kill -9 "$ipid" 2>/dev/null || true; wait "$ipid" 2>/dev/null || true
  n=$(q "SELECT count(*) FROM keyword_observations")
  check "import killed after ${delay}s: all or none ($n)" "$([ "$n" = "$before" ] || [ "$n" = $((before + 366912)) ]; echo $?)"
  before=$n
done
"$BIN" import --quiet "${M4[@]}" >/dev/null
full=$(q "SELECT count(*) FROM keyword_observations")
"$BIN" import --quiet "${M4[@]}" >/dev/null
again=$(q "SELECT count(*) FROM keyword_observations")
check "import run to the end ($before → $full), then again ($again): added once, nothing doubled" \
  "$([ "$full" = $((before + 366912)) ] && [ "$again" = "$full" ]; echo $?)"

KEY=$("$BIN" users create --email sigkill@kwi.bench --role admin --plan internal | tail -1)
q "SELECT platform || '/' || replace(keyword, ' ', '%20') FROM keyword_data WHERE platform = 'benchmark' LIMIT 300" >"$data/keys.txt"
start() {
  "$BIN" serve --no-sample --listen "127.0.0.1:$PORT" 2>>"$data/serve.log" & pid=$!
  for _ in $(seq 1 240); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && return; sleep 0.5; done
  echo "kwi serve never became ready" >&2; exit 1
}
start
KWI_BEARER=$KEY KWI_KEYWORDS="$data/keys.txt" KWI_MODE=miss KWI_PATH="/v1/keywords/{key}/forecast?horizon={h}" \
  wrk -t2 -c16 -d10s -s benches/load/keywords.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1 & wpid=$!
sleep 6
persisted=$(curl -s "127.0.0.1:$PORT/metrics" | awk '$1 == "kwi_predictions_persisted_total" {print $2}')
rows_confirmed=$(q "SELECT count(*) FROM predictions")
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
wait "$wpid" 2>/dev/null || true
rows_after_kill=$(q "SELECT count(*) FROM predictions")
echo "serve killed mid-load: ${persisted:-0} predictions confirmed by the writer before; rows $rows_confirmed then, $rows_after_kill after the kill"
check "predictions written before the kill are kept" "$([ "$rows_after_kill" -ge "$rows_confirmed" ]; echo $?)"
start
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "127.0.0.1:$PORT/v1/keywords/$(head -1 "$data/keys.txt")/forecast?horizon=7")
check "restarted on the same store, serves a forecast: $code" "$([ "$code" = 200 ]; echo $?)"
check "no half-written keyword snapshot (every keyword has its observations)" \
  "$([ "$(q "SELECT count(*) FROM keyword_data d WHERE NOT EXISTS (SELECT 1 FROM keyword_observations o WHERE o.platform = d.platform AND o.keyword = d.keyword)")" = 0 ]; echo $?)"
if [ "$failures" = 0 ]; then echo "sigkill: all checks passed"; else echo "sigkill: $failures check(s) failed"; exit 1; fi
