#!/usr/bin/env bash
# PostgreSQL killed (`pg_ctl stop -m immediate`: no shutdown checkpoint, as a crash) in the middle
# of a load run and started again OUTAGE seconds later, with a Jepsen-style check of every write
# the service acknowledged. A private cluster (initdb in a temporary directory, port PGPORT, run as
# the `postgres` user) and a private Redis (RPORT) are used: the machine's own are not touched.
#
# Running meanwhile, each recording what it was told:
#   - wrk on cached forecasts (Zipf over KEYS keywords, warmed first): they need no store, so the
#     target is zero non-2xx answers throughout;
#   - a probe asking an uncached forecast every 0.2 s (a new horizon each time: it needs the
#     store): while PostgreSQL is down the target is 503 JSON within 2 s, no hang; after it is
#     back, the time to the first 200 (target: within 5 s);
#   - a watch writer: POST /v1/watchlist with a new keyword every 0.1 s; an acknowledged write is
#     a 2xx answer;
#   - an import writer: `kwi import` of a new 10-row file every second; acknowledged = exit 0.
# Afterwards every acknowledged watch must be in the store, every acknowledged import must have all
# its 10 rows, and every refused import none or all of them (one transaction). Exits non-zero when
# a target is missed or an acknowledged write is lost.
#
#   benches/faults/pg_restart.sh
#
# Env: KWI_BIN (default $CARGO_TARGET_DIR/debug/kwi), DURATION (40), STOP_AT (15), OUTAGE (8),
# CONNS (16), THREADS (2), KEYS (2000), PGPORT (55432), RPORT (18380). Installs wrk when absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-${CARGO_TARGET_DIR:-target}/debug/kwi}
DURATION=${DURATION:-40}
STOP_AT=${STOP_AT:-15}
OUTAGE=${OUTAGE:-8}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
KEYS=${KEYS:-2000}
PGPORT=${PGPORT:-55432}
RPORT=${RPORT:-18380}
PORT=18391
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null || { echo "cannot install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --bin kwi)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (runs the private cluster as the postgres user)" >&2; exit 1; }
BIN=$(realpath "$BIN")
data=$(mktemp -d)
chmod 755 "$data"
pgroot="$data/pg"   # owned by postgres: the cluster, its socket and its log
pgdata="$pgroot/data"
pids=()
pg() { su postgres -c "$PGBIN/pg_ctl -D $pgdata -o '-p $PGPORT -k $pgroot -c listen_addresses=127.0.0.1' -l $pgroot/pg.log $*" >/dev/null; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  pg stop -m immediate 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
now() { date +%s.%N; }
mkdir -p "$pgroot" && chown postgres "$pgroot"
su postgres -c "$PGBIN/initdb -D $pgdata -U postgres --auth=trust" >/dev/null
pg start -w
redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no >"$data/redis.log" 2>&1 &
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export KWI_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres" KWI_REDIS_URL="redis://127.0.0.1:$RPORT"
export KWI_DATA_DIR="$data" RUST_LOG=warn
echo "machine: $(nproc) cores; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') private cluster; wrk -t$THREADS -c$CONNS -d${DURATION}s on cached forecasts; PostgreSQL killed at ${STOP_AT}s, started ${OUTAGE}s later"
python3 benches/load/make_keywords.py --count "$KEYS" "$data/panel.csv" "$data/keys.txt"
"$BIN" import --quiet "$data/panel.csv"
KWI_BEARER=$("$BIN" users create --email jepsen@kwi.bench --role admin --plan internal | tail -1)
export KWI_BEARER
"$BIN" serve --no-sample --listen "127.0.0.1:$PORT" 2>"$data/serve.log" & pids+=($!)
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
base="http://127.0.0.1:$PORT"
# Warm the cache on every key (so the wrk run asks only cached forecasts).
KWI_KEYWORDS="$data/keys.txt" KWI_MODE=miss KWI_PATH="/v1/keywords/{key}/forecast?horizon=13&levels=80,95" \
  wrk -t2 -c8 -d"$(( KEYS / 400 + 5 ))s" -s benches/load/keywords.lua "$base" >/dev/null
first_key=$(head -1 "$data/keys.txt")

# The probe: an uncached forecast every 0.2 s (horizons 1..104 then levels vary, never repeated).
(
  i=0
  while :; do
    i=$((i + 1))
    h=$(( (i % 104) + 1 )); lv=$(( (i / 104) % 98 + 1 ))
    out=$(curl -s -m 10 -o "$data/probe.body" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $KWI_BEARER" \
      "$base/v1/keywords/$first_key/forecast?horizon=$h&levels=$lv" || echo "000 10")
    echo "$(now) $out $(head -c 120 "$data/probe.body" | tr -d '\n')"
    sleep 0.2
  done >"$data/probe.log"
) & pids+=($!)
# The watch writer.
(
  i=0
  while :; do
    i=$((i + 1))
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $KWI_BEARER" \
      -H 'Content-Type: application/json' --data "{\"keyword\":\"jepsen watch $i\",\"source\":\"etsy\"}" "$base/v1/watchlist" || echo 000)
    echo "$i $code"
    sleep 0.1
  done >"$data/watches.log"
) & pids+=($!)
# The import writer.
(
  i=0
  while :; do
    i=$((i + 1))
    f="$data/import_$i.csv"
    { echo "platform,keyword,period_start,search_volume"
      for w in $(seq 0 9); do echo "google,jepsen import $i,$(date -d "2024-01-07 + $((w * 7)) days" +%F),$((100 + w))"; done; } >"$f"
    rc=0; "$BIN" import --quiet "$f" >/dev/null 2>"$data/import_$i.err" || rc=$?
    echo "$i $rc"
    sleep 1
  done >"$data/imports.log"
) & pids+=($!)
(
  sleep "$STOP_AT"
  now >"$data/stopped_at"; pg stop -m immediate
  sleep "$OUTAGE"
  pg start -w; now >"$data/started_at"
) & chaos=$!
out=$(KWI_KEYWORDS="$data/keys.txt" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s benches/load/keywords.lua "$base" | grep '^RESULT')
wait "$chaos" || true
# Stop the writers and the probe, then let in-flight writes settle.
for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
sleep 2
echo "wrk on cached forecasts: ${out#RESULT }"
q() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -tAqc "$1"; }
q "SELECT keyword FROM watchlist WHERE keyword LIKE 'jepsen watch %'" | sed 's/^jepsen watch //' | sort -n >"$data/watches.stored"
q "SELECT keyword, count(*) FROM keyword_observations WHERE keyword LIKE 'jepsen import %' GROUP BY keyword" \
  | sed 's/^jepsen import //' >"$data/imports.stored"
python3 - "$data" "$out" <<'PY'
import sys
d, out = sys.argv[1], sys.argv[2]
stopped = float(open(f"{d}/stopped_at").read()); started = float(open(f"{d}/started_at").read())
probe = []
for line in open(f"{d}/probe.log"):
    p = line.split(" ", 3)
    if len(p) >= 3:
        probe.append((float(p[0]), p[1], float(p[2]), p[3].strip() if len(p) > 3 else ""))
# A request that began while PostgreSQL was down (the probe logs when it ended).
down = [r for r in probe if stopped + 0.5 < r[0] - r[2] and r[0] < started]
after = [r for r in probe if r[0] - r[2] > started]
first_ok = next((r[0] for r in after if r[1] == "200"), None)
codes = {}
for r in down:
    codes[r[1]] = codes.get(r[1], 0) + 1
slowest = max((r[2] for r in down), default=0.0)
print(f"probe while down: {len(down)} requests, answers {codes}, slowest {slowest:.2f} s; "
      f"bodies: {sorted({r[3][:80] for r in down if r[1] != '200'})[:2]}")
print(f"probe after restart: first 200 {first_ok - started:.2f} s after PostgreSQL was up" if first_ok else "probe never got a 200 after the restart")
acked_w = {int(l.split()[0]) for l in open(f"{d}/watches.log") if l.split()[1].startswith("2")}
sent_w = sum(1 for _ in open(f"{d}/watches.log"))
stored_w = {int(l) for l in open(f"{d}/watches.stored") if l.strip()}
lost_w = sorted(acked_w - stored_w)
print(f"watches: {sent_w} sent, {len(acked_w)} acknowledged, {len(stored_w)} stored, "
      f"{len(lost_w)} acknowledged but lost {lost_w[:5]}, {len(stored_w - acked_w)} stored without an acknowledgement")
imports = {int(l.split()[0]): int(l.split()[1]) for l in open(f"{d}/imports.log") if len(l.split()) == 2}
stored_i = {int(k): int(v) for k, v in (l.strip().split("|") for l in open(f"{d}/imports.stored") if "|" in l)}
acked_i = [i for i, rc in imports.items() if rc == 0]
lost_i = [i for i in acked_i if stored_i.get(i) != 10]
partial = [i for i, n in stored_i.items() if n not in (0, 10)]
print(f"imports: {len(imports)} run, {len(acked_i)} acknowledged, {len(lost_i)} acknowledged but not all 10 rows stored {lost_i[:5]}, "
      f"{len(partial)} half-written {partial[:5]}, {sum(1 for i, rc in imports.items() if rc and stored_i.get(i) == 10)} refused yet fully stored")
fields = dict(kv.split("=") for kv in out.split()[1:])
bad = int(fields["errors"]) + int(fields["non2xx"])
ok = (bad == 0 and not lost_w and not lost_i and not partial and down
      and set(codes) <= {"503", "200"} and slowest <= 2.0 and first_ok is not None and first_ok - started <= 5)
print("postgres restart:", "all targets met, no acknowledged write lost" if ok else f"TARGET MISSED (cached-forecast failures or non-2xx: {bad})")
sys.exit(0 if ok else 1)
PY
