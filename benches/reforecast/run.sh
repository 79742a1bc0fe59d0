#!/usr/bin/env bash
# Sharded re-forecast benchmark (issue #19): KEYS stored keywords re-forecast through the queue
# (`kwi-train reforecast --chunk CHUNK --wait`) by 1 `kwi worker`, then by 2, on a fresh PostgreSQL
# database (dropped afterwards). Each run's predictions are then counted: every keyword with
# search volume exactly once per run.
#
#   benches/reforecast/run.sh
#
# Env: KWI_BIN (default target/perf/kwi), KWI_TRAIN_BIN (default target/perf/kwi-train), KEYS
# (default 100000), CHUNK (default 1000), WORKERS (worker counts to run, default "1 2"), MODEL (an
# artifact folder of `kwi-train fit` to publish first; default none: the built-in seasonal-naive
# baseline serves). Build first:
#   cargo build --profile perf -p kwi -p kwi-training --bin kwi --bin kwi-train
# Keywords: 104-week windows of the real M4 Weekly series at stride 3 (benches/load/make_keywords.py;
# 110,553 windows exist), platform `benchmark`. Needs psql and PostgreSQL on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-target/perf/kwi}
TRAIN=${KWI_TRAIN_BIN:-target/perf/kwi-train}
KEYS=${KEYS:-100000}
CHUNK=${CHUNK:-1000}
WORKERS=${WORKERS:-"1 2"}
for t in psql python3 "$BIN" "$TRAIN"; do
  command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t (binaries: cargo build --profile perf -p kwi -p kwi-training --bin kwi --bin kwi-train)" >&2; exit 1; }
done
data=$(mktemp -d)
db=kwi_reforecast_$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
unset KWI_REDIS_URL KWI_ETSY_API_KEY KWI_EBAY_CLIENT_ID KWI_SPAPI_CLIENT_ID || true
export RUST_LOG=${RUST_LOG:-warn}
sql() { psql -h 127.0.0.1 -U postgres -d "$db" -tAqc "$1"; }
cpu_secs() { # user + system CPU seconds of a live process
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

python3 benches/load/make_keywords.py --count "$KEYS" --weeks 104 --stride 3 "$data/kw.csv" "$data/keys.txt"
t0=$(date +%s.%N)
"$BIN" import "$data/kw.csv" >/dev/null
t1=$(date +%s.%N)
echo "RESULT import keywords=$(sql 'SELECT COUNT(*) FROM keyword_data') observations=$(sql 'SELECT COUNT(*) FROM keyword_observations') seconds=$(echo "$t1 - $t0" | bc)"
if [ -n "${MODEL:-}" ]; then "$TRAIN" publish --artifact "$MODEL"; fi

runs=0
for n in $WORKERS; do
  pids=()
  for i in $(seq 1 "$n"); do
    "$BIN" worker --lease-secs 120 >"$data/worker-$n-$i.out" 2>"$data/worker-$n-$i.err" &
    pids+=($!)
  done
  sleep 3 # connected, migrated, idle
  before=$(sql "SELECT COUNT(*) FROM predictions")
  t0=$(date +%s.%N)
  "$TRAIN" reforecast --chunk "$CHUNK" --run "bench-$n-workers" --wait
  t1=$(date +%s.%N)
  cpu=0
  for p in "${pids[@]}"; do cpu=$(echo "$cpu + $(cpu_secs "$p")" | bc); done
  for p in "${pids[@]}"; do kill -TERM "$p"; done
  for p in "${pids[@]}"; do wait "$p" || true; done
  runs=$((runs + 1))
  written=$(( $(sql "SELECT COUNT(*) FROM predictions") - before ))
  secs=$(echo "$t1 - $t0" | bc)
  echo "RESULT workers=$n keywords=$KEYS chunk=$CHUNK seconds=$secs keywords_per_second=$(echo "$KEYS / $secs" | bc) predictions_written=$written worker_cpu_seconds=$cpu model=$(sql "SELECT DISTINCT model_version FROM predictions LIMIT 1")"
  for i in $(seq 1 "$n"); do echo "  worker $i: $(tail -1 "$data/worker-$n-$i.out")"; done
done
with_volume=$(sql "SELECT COUNT(*) FROM keyword_data WHERE cardinality(volume_periods) > 0")
not_once=$(sql "SELECT COUNT(*) FROM (SELECT platform, keyword FROM predictions GROUP BY 1, 2 HAVING COUNT(*) <> $runs) x")
missing=$(sql "SELECT COUNT(*) FROM keyword_data d WHERE cardinality(volume_periods) > 0 AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.platform = d.platform AND p.keyword = d.keyword)")
echo "RESULT check keywords_with_volume=$with_volume runs=$runs keywords_not_written_exactly_once_per_run=$not_once keywords_without_prediction=$missing"
[ "$not_once" = 0 ] && [ "$missing" = 0 ]
