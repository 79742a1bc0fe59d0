#!/usr/bin/env bash
# Executes every notebook end to end against a live server, so they never rot (called by .ci/run).
#  - Python: a venv (KWI_VENV, default ~/.cache/kwi-venv) with notebooks/requirements.txt (pinned).
#  - Server: the built `kwi serve` on the embedded default (sample data) on a free port.
#  - Training run for 02: `kwi-train evaluate` on the Google Trends reference file (holdout 13).
# Executed copies (with outputs) are kept in $KWI_NB_OUT (default $CARGO_TARGET_DIR/notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/debug"
VENV=${KWI_VENV:-$HOME/.cache/kwi-venv}
OUT=${KWI_NB_OUT:-$TARGET/notebooks}
for b in kwi kwi-train; do
  [ -x "$BIN/$b" ] || { echo "FATAL: $BIN/$b is not built (cargo build --workspace)" >&2; exit 1; }
done
if ! "$VENV/bin/python" -c 'import polars, pyarrow, matplotlib, nbclient' 2>/dev/null \
   || ! cmp -s notebooks/requirements.txt "$VENV/.requirements.txt"; then
  echo "notebooks: installing notebooks/requirements.txt into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r notebooks/requirements.txt
  cp notebooks/requirements.txt "$VENV/.requirements.txt"
fi
tmp=$(mktemp -d)
# An analyst's API key for the notebooks (made before the server starts: no server needed).
KEY=$(env -u KWI_DATABASE_URL -u KWI_REDIS_URL KWI_DATA_DIR="$tmp/data" RUST_LOG=warn \
  "$BIN/kwi" users create --email notebooks@kwi.test --role analyst --plan business | tail -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u KWI_DATABASE_URL -u KWI_REDIS_URL KWI_DATA_DIR="$tmp/data" RUST_LOG=warn \
  "$BIN/kwi" serve --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "127.0.0.1:$port/readyz" >/dev/null || { echo "FATAL: kwi serve did not become ready" >&2; exit 1; }
echo "notebooks: training run for 02_training_report"
"$BIN/kwi-train" evaluate --train data/samples/gtrends_pt_weekly_topics.csv --holdout 13 \
  --metric-season 52 --steps 300 --out "$tmp/run" >/dev/null
mkdir -p "$OUT"
KWI_URL="http://127.0.0.1:$port" KWI_API_KEY="$KEY" KWI_RUN_DIR="$tmp/run" "$VENV/bin/python" - "$OUT" notebooks/*.ipynb <<'PY'
import sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient
out = Path(sys.argv[1])
for path in sys.argv[2:]:
    t = time.time()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
    nbformat.write(nb, out / Path(path).name)
    print(f"notebooks: {path} ran in {time.time() - t:.1f}s")
PY
echo "notebooks: all executed; copies with outputs in $OUT"
