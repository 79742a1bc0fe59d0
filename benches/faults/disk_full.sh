#!/usr/bin/env bash
# Disk full on the embedded default: `kwi serve` on SQLite in a data directory that is a small
# tmpfs (mounted here: needs root), the disk filled to the last byte while it serves, then freed.
# Checks, and prints each as PASS/FAIL:
#   - an import while the disk is full fails with a clear error, and leaves the store as it was
#     (the observation count is unchanged: the transaction rolled back);
#   - the service keeps answering reads (cached and uncached forecasts, search) with 200;
#   - a write over HTTP is refused with 503 and a JSON body that says the disk is full (the
#     write-ahead log is emptied first, so the write must grow a file), never a 500 or a hang;
#   - after space returns, the same import succeeds, the database passes `PRAGMA integrity_check`
#     and every observation stored before is still there.
# Exits non-zero when a check fails.
#
#   benches/faults/disk_full.sh
#
# Env: KWI_BIN (default $CARGO_TARGET_DIR/debug/kwi, else target/debug/kwi), SIZE_MB (tmpfs size,
# default 400: room for the import once the filler is gone).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-${CARGO_TARGET_DIR:-target}/debug/kwi}
SIZE_MB=${SIZE_MB:-400}
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --bin kwi)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root: it mounts a tmpfs as the data directory" >&2; exit 1; }
BIN=$(realpath "$BIN")
work=$(mktemp -d)
data="$work/data"
mkdir -p "$data"
mount -t tmpfs -o "size=${SIZE_MB}m" kwi-disk-full "$data"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  cp "$work/serve.log" "${KWI_FAULT_LOG:-/dev/null}" 2>/dev/null || true
  umount "$data" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
unset KWI_DATABASE_URL KWI_REDIS_URL RUST_BACKTRACE
export KWI_DATA_DIR="$data" RUST_LOG=warn
failures=0
check() { # check NAME CONDITION-STATUS DETAIL
  if [ "$2" = 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; failures=$((failures + 1)); fi
}
count() { python3 - "$data/kwi.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(c.execute("select count(*) from keyword_observations").fetchone()[0])
PY
}

KEY=$("$BIN" users create --email disk@kwi.test --role admin --plan internal | tail -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "127.0.0.1:$port/readyz" >/dev/null || { echo "kwi serve never became ready" >&2; tail "$work/serve.log" >&2; exit 1; }
base="http://127.0.0.1:$port"
call() { # call METHOD PATH [BODY] -> "STATUS BODY"
  local out
  out=$(curl -s -m 10 -o "$work/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$base$2") || out="curl-failed($?)"
  echo "$out $(head -c 300 "$work/body" 2>/dev/null)"
}
FC="/v1/keywords/google/coffee/forecast"
call GET "$FC?horizon=8" >/dev/null # computed once: cached from now on
before=$(count)
echo "machine: $(nproc) cores; tmpfs ${SIZE_MB} MiB; store holds $before observations; $(du -sh "$data" | cut -f1) used"

# Empty the write-ahead log first, so the next write must grow a file (else a small write could
# still fit in pages SQLite already holds).
python3 -c "import sqlite3,sys; print('wal checkpoint (busy, log, done):', sqlite3.connect(sys.argv[1]).execute('pragma wal_checkpoint(TRUNCATE)').fetchone())" "$data/kwi.db"
dd if=/dev/zero of="$data/filler" bs=1M status=none 2>/dev/null || true
sync
echo "disk filled: $(df -h "$data" | awk 'NR==2 {print $4}') free"

set +e
"$BIN" import data/m4/Weekly-train.csv --end 2018-12-23 >"$work/import1.out" 2>"$work/import1.err"
rc=$?
set -e
msg=$(grep -v "^\s*$" "$work/import1.err" | tail -2 | tr "\n" " ")
echo "import while full: exit $rc: $msg"
check "import refused while full" "$([ $rc != 0 ] && grep -qi 'disk holding the database is full' "$work/import1.err"; echo $?)" "exit $rc: $msg"
after_fail=$(count)
check "nothing of the refused import kept ($before → $after_fail)" "$([ "$after_fail" = "$before" ]; echo $?)" "count changed"

for path in "$FC?horizon=8" "$FC?horizon=13" "/v1/keywords/search?q=cof" "/readyz"; do
  res=$(call GET "$path")
  check "read while full: GET $path → ${res%% *}" "$([ "${res%% *}" = 200 ]; echo $?)" "$res"
done
res=$(call POST /v1/watchlist '{"keyword":"disk full probe","source":"etsy"}')
status=${res%% *}
echo "write while full: POST /v1/watchlist → $res"
ok=1
[ "$status" = 503 ] && grep -q 'disk is full' "$work/body" && ok=0
check "write while full answered 503 'disk is full'" "$ok" "$res"
check "server still running" "$(kill -0 "$pid" 2>/dev/null; echo $?)" "it exited"

rm -f "$data/filler"
rc=0
"$BIN" import data/m4/Weekly-train.csv --end 2018-12-23 >"$work/import2.out" 2>"$work/import2.err" || rc=$?
check "import after space returned" "$rc" "$(tail -3 "$work/import2.err")"
after=$(count)
integrity=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])" "$data/kwi.db")
check "integrity_check: $integrity" "$([ "$integrity" = ok ]; echo $?)" "$integrity"
check "observations before ($before) all kept, import added ($after)" "$([ "$after" -gt "$before" ]; echo $?)" "$after"
res=$(call POST /v1/watchlist '{"keyword":"disk full probe 2","source":"etsy"}')
check "write after space returned: ${res%% *}" "$([[ ${res%% *} == 20? ]]; echo $?)" "$res"
grep -c 'disk holding the database is full\|disk is full' "$work/serve.log" | xargs echo "server log lines naming the full disk:"
if [ "$failures" = 0 ]; then echo "disk full: all checks passed"; else echo "disk full: $failures check(s) failed"; exit 1; fi
