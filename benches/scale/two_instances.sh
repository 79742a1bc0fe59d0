#!/usr/bin/env bash
# Two `kwi serve` instances over one PostgreSQL + Redis behind HAProxy (Debian's package) with
# active health checks on /readyz; wrk drives cached forecast GETs (Zipf over 10,000 keywords, an
# internal-plan API key: authentication, rate limiting and usage counting run) through HAProxy,
# and instance A is killed with SIGKILL at KILL_AT seconds. Reports what wrk saw (requests, socket
# errors, non-2xx), what HAProxy saw (per-server answers and retries, from its stats socket), that
# the lease-guarded insights job ran on one instance, and how long after the kill the other took
# its lease over.
#
#   benches/scale/two_instances.sh
#
# Env: KWI_BIN (default target/perf/kwi), DURATION (default 30), KILL_AT (default 10; 0: no kill,
# a steady two-instance run), CONNS (32),
# THREADS (2), KEYS (10000). Installs haproxy and wrk with apt-get when absent. Build first:
#   cargo build --profile perf --workspace --bins
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-target/perf/kwi}
DURATION=${DURATION:-30}
KILL_AT=${KILL_AT:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
KEYS=${KEYS:-10000}
LB=18300 A=18301 B=18302
for t in haproxy wrk; do
  command -v "$t" >/dev/null || { apt-get install -y -qq "$t" >/dev/null || { echo "cannot install $t" >&2; exit 1; }; }
done
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --profile perf --workspace --bins)" >&2; exit 1; }
data=$(mktemp -d)
db="kwi_scale_$$"
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
export KWI_DATA_DIR="$data" RUST_LOG=warn
redis-cli -h 127.0.0.1 --scan --pattern 'kwi:fc:*' | xargs -r -d '\n' -n 1000 redis-cli -h 127.0.0.1 DEL >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo); haproxy $(haproxy -v | head -1 | awk '{print $3}'); wrk -t$THREADS -c$CONNS -d${DURATION}s; kill A at ${KILL_AT}s"

python3 benches/load/make_keywords.py --count "$KEYS" "$data/panel.csv" "$data/keys.txt"
"$BIN" import --quiet "$data/panel.csv"
KWI_BEARER=$("$BIN" users create --email scale@kwi.bench --role admin --plan internal | tail -1)
export KWI_BEARER
start() { # port log
  RUST_LOG="warn,kwi_predict::insights=info" "$BIN" serve --no-sample --listen "127.0.0.1:$1" 2>"$2" &
  pids+=($!)
  for _ in $(seq 1 240); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.5; done
  echo "instance on $1 never became ready" >&2; exit 1
}
start "$A" "$data/a.log"; pid_a=${pids[-1]}
start "$B" "$data/b.log"
cat >"$data/haproxy.cfg" <<CFG
global
  stats socket $data/haproxy.sock mode 600 level admin
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 10s
  retries 2
  option redispatch
  retry-on conn-failure empty-response response-timeout 503
frontend kwi
  bind 127.0.0.1:$LB
  default_backend kwis
backend kwis
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2
  server a 127.0.0.1:$A check
  server b 127.0.0.1:$B check
CFG
haproxy -f "$data/haproxy.cfg" -db >"$data/haproxy.log" 2>&1 & pids+=($!)
for _ in $(seq 1 40); do curl -sf "127.0.0.1:$LB/readyz" >/dev/null && break; sleep 0.25; done
# Warm the shared cache through both instances.
KWI_KEYWORDS="$data/keys.txt" wrk -t"$THREADS" -c"$CONNS" -d5s -s benches/load/keywords.lua "http://127.0.0.1:$LB" >/dev/null
# CPU seconds (user + system) used so far by the given pids.
cpu() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
  awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f", s / hz}'; }
pid_b=${pids[1]}
pid_lb=${pids[2]}
pg_pids=$(pgrep -x postgres | tr '\n' ' ')
redis_pids=$(pgrep -x redis-server | tr '\n' ' ')
c0=("$(cpu "$pid_a" "$pid_b")" "$(cpu "$pid_lb")" "$(cpu $pg_pids)" "$(cpu $redis_pids)")
killer=
if [ "$KILL_AT" -gt 0 ]; then
  ( sleep "$KILL_AT"; kill -9 "$pid_a"; date +%s.%N >"$data/killed_at"; echo "killed A (pid $pid_a) at ${KILL_AT}s" ) & killer=$!
fi
out=$(KWI_KEYWORDS="$data/keys.txt" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s benches/load/keywords.lua "http://127.0.0.1:$LB" | grep '^RESULT')
[ -n "$killer" ] && { wait "$killer" || true; }
c1=("$(cpu "$pid_a" "$pid_b")" "$(cpu "$pid_lb")" "$(cpu $pg_pids)" "$(cpu $redis_pids)")
echo "wrk through haproxy: ${out#RESULT }"
requests=$(echo "$out" | sed -E 's/.*requests=([0-9]+).*/\1/')
python3 -c "
n = $requests; c0 = [${c0[0]}, ${c0[1]}, ${c0[2]}, ${c0[3]}]; c1 = [${c1[0]}, ${c1[1]}, ${c1[2]}, ${c1[3]}]
us = [(b - a) / n * 1e6 for a, b in zip(c0, c1)]
print('CPU per request: kwi (both) %.1f us, HAProxy %.1f us, PostgreSQL %.1f us, Redis %.1f us (wrk not counted)' % tuple(us))
"
echo "show stat" | python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect('$data/haproxy.sock'); s.sendall(b'show stat\n')
raw = b''
while True:
    c = s.recv(65536)
    if not c: break
    raw += c
lines = raw.decode().splitlines(); head = lines[0].lstrip('# ').split(',')
for l in lines[1:]:
    f = dict(zip(head, l.split(',')))
    if f.get('pxname') == 'kwis' and f.get('svname') in ('a', 'b', 'BACKEND'):
        print('haproxy %-7s status=%-5s 2xx=%s 5xx=%s conn_errors=%s resp_errors=%s retries=%s redispatches=%s' % (
            f['svname'], f['status'], f.get('hrsp_2xx'), f.get('hrsp_5xx'), f.get('econ'), f.get('eresp'), f.get('wretr'), f.get('wredis')))
"
lease() { psql -h 127.0.0.1 -U postgres -d "$db" -tAqc "SELECT holder FROM leader_leases WHERE name = 'insights'"; }
first=$(lease)
echo "insights runs at start-up: A $(grep -c 'insights job finished' "$data/a.log" || true), B $(grep -c 'insights job finished' "$data/b.log" || true); lease holder: $first"
[ "$KILL_AT" -gt 0 ] || exit 0
# The holder (A, started first) is dead: B takes the insights lease over once it runs out.
for _ in $(seq 1 240); do [ "$(lease)" != "$first" ] && break; sleep 0.5; done
echo "insights lease taken over by $(lease) $(python3 -c "print(round($(date +%s.%N) - $(cat "$data/killed_at"), 1))") s after the kill"
