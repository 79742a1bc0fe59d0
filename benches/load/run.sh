#!/usr/bin/env bash
# Load benchmark of the cached forecast GET on loopback (preliminary: see README "Load").
# Starts `kwi serve` on a fresh PostgreSQL database + Redis (or the embedded default with
# KWI_EMBEDDED=1), loads the built-in sample (32 Google Trends keywords), warms the cache, then runs
# wrk for DURATION seconds with a Zipf(1.1) keyword mix. Bounded in time; stops the server itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-target/debug/kwi}
PORT=${PORT:-18181}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
data=$(mktemp -d)
if [ "${KWI_EMBEDDED:-0}" = 1 ]; then
  export KWI_DATABASE_URL="sqlite:$data/kwi.db"; unset KWI_REDIS_URL || true
else
  db="kwi_load_$$"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
  export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  export KWI_REDIS_URL="redis://127.0.0.1:6379"
fi
KWI_DATA_DIR="$data" KWI_LISTEN="127.0.0.1:$PORT" RUST_LOG=warn "$BIN" serve &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "${db:-}" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
keys="$data/keywords.txt"
curl -sf "127.0.0.1:$PORT/v1/keywords/search?q=a&limit=100" >/dev/null
python3 - "$PORT" > "$keys" <<'PY'
import json, sys, urllib.parse, urllib.request
port = sys.argv[1]
seen = []
for q in "abcdefghijklmnopqrstuvwxyz":
    r = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/keywords/search?q={q}&limit=100"))
    for h in r["results"]:
        k = f'{h["platform"]}/{urllib.parse.quote(h["keyword"])}'
        if k not in seen:
            seen.append(k)
print("\n".join(seen))
PY
echo "keywords: $(wc -l < "$keys"); machine: $(nproc) cores; backend: ${KWI_DATABASE_URL%%:*}, cache: ${KWI_REDIS_URL:-in-process}"
while read -r k; do curl -sf -o /dev/null "127.0.0.1:$PORT/v1/keywords/$k/forecast?horizon=13&levels=80,95"; done < "$keys"
KWI_KEYWORDS="$keys" wrk -t2 -c"$CONNS" -d"${DURATION}s" -s benches/load/keywords.lua "http://127.0.0.1:$PORT"
curl -s "127.0.0.1:$PORT/metrics" | grep -E '^kwi_cache_(hits|misses)_total' || true
