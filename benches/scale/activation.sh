#!/usr/bin/env bash
# How long a model activated on one instance takes to be served by another: two `kwi serve` over
# one PostgreSQL (+ Redis), two small models fitted and registered (`kwi-train fit` on the Google
# Trends sample, `publish --no-activate`), then TRIALS activations through instance A's API,
# alternating the two, each timed from A's 200 until instance B's /readyz names the new version
# (polled every 50 ms). B learns of it from the registry (`--model-poll-secs`, POLL) or at once
# from Redis pub/sub; the figures say which.
#
#   benches/scale/activation.sh
#
# Env: KWI_BIN, KWI_TRAIN_BIN (default $CARGO_TARGET_DIR/debug/{kwi,kwi-train}), TRIALS (6),
# POLL (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${CARGO_TARGET_DIR:-target}
BIN=${KWI_BIN:-$T/debug/kwi}
TRAIN=${KWI_TRAIN_BIN:-$T/debug/kwi-train}
TRIALS=${TRIALS:-6}
POLL=${POLL:-5}
A=18311 B=18312
for b in "$BIN" "$TRAIN"; do [ -x "$b" ] || { echo "missing $b (cargo build --bins)" >&2; exit 1; }; done
data=$(mktemp -d)
db="kwi_activation_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" KWI_REDIS_URL="redis://127.0.0.1:6379"
export KWI_DATA_DIR="$data" RUST_LOG=warn KWI_MODEL_POLL_SECS="$POLL"
echo "machine: $(nproc) cores; two instances, --model-poll-secs $POLL; $TRIALS activations"
"$BIN" import --quiet data/samples/gtrends_pt_weekly_topics.csv
versions=()
for seed in 1 2; do
  "$TRAIN" fit --train data/samples/gtrends_pt_weekly_topics.csv --steps 200 --seed "$seed" \
    --out "$data/model$seed" >"$data/fit$seed.log" 2>&1
  "$TRAIN" publish --artifact "$data/model$seed" --no-activate >>"$data/fit$seed.log" 2>&1
  versions+=("$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" "$data/model$seed/manifest.json")")
done
KEY=$("$BIN" users create --email activation@kwi.bench --role admin --plan internal | tail -1)
start() { # port log
  "$BIN" serve --no-sample --listen "127.0.0.1:$1" 2>"$2" & pids+=($!)
  for _ in $(seq 1 240); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.5; done
  echo "instance on $1 never became ready" >&2; exit 1
}
start "$A" "$data/a.log"
start "$B" "$data/b.log"
served() { curl -s "127.0.0.1:$1/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"]["version"])'; }
: >"$data/times"
for i in $(seq 1 "$TRIALS"); do
  v=${versions[$(( i % 2 ))]}
  code=$(curl -s -o "$data/act.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" "127.0.0.1:$A/v1/models/$v/activate")
  t0=$(date +%s.%N)
  [ "$code" = 200 ] || { echo "activation on A answered $code: $(cat "$data/act.json")" >&2; exit 1; }
  [ "$(served "$A")" = "$v" ] || { echo "A does not serve $v right after activating it" >&2; exit 1; }
  for _ in $(seq 1 400); do [ "$(served "$B")" = "$v" ] && break; sleep 0.05; done
  t1=$(date +%s.%N)
  [ "$(served "$B")" = "$v" ] || { echo "B never served $v" >&2; exit 1; }
  python3 -c "print(f'{$t1 - $t0:.3f}')" | tee -a "$data/times" | xargs echo "activation $i ($v): served by B after (s)"
done
python3 - "$data/times" "$POLL" <<'PY'
import statistics, sys
t = sorted(float(l) for l in open(sys.argv[1]))
print(f"propagation to the other instance: median {statistics.median(t):.3f} s, max {t[-1]:.3f} s over {len(t)} activations (poll interval {sys.argv[2]} s)")
PY
