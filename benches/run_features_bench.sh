#!/usr/bin/env bash
# Demand features for 100,000 series x 156 weeks (15.6 M rows): Rust/Polars vs pandas, one run.
#
#   benches/run_features_bench.sh            # from the repository root
#
# Builds the example with the `perf` profile (optimised, no debug assertions; the same command as
# the load benchmark's build, so one build serves both), runs it (it writes the resampled panel to
# $PANEL once), then runs the pandas script on that same Parquet file, and prints the ratio.
# pandas: pip install -r benches/requirements.txt (or PYTHON=path/to/venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PANEL=${PANEL:-/tmp/kwi_bench_panel.parquet}
SERIES=${SERIES:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
cargo build -q --profile perf -p kwi -p kwi-features --bin kwi --example refserver --example bench_features
BIN="$CARGO_TARGET_DIR/perf/examples/bench_features"
# 1. Build the resampled panel and write it to Parquet (once; also times the features in the same
#    process, whose memory then includes the build's leftovers).
[ -f "$PANEL" ] || "$BIN" --series "$SERIES" --parquet "$PANEL"
# 2. The headline: a fresh process reads the panel and computes every feature in memory.
"$BIN" --from-parquet --parquet "$PANEL" | tee /tmp/kwi_bench_rust.txt
# 3. The same, streaming each batch of features to Arrow IPC files instead of holding them.
"$BIN" --from-parquet --parquet "$PANEL" --mode ipc | tee /tmp/kwi_bench_rust_ipc.txt
"${PYTHON:-python3}" benches/pandas_features.py "$PANEL" | tee /tmp/kwi_bench_pandas.txt
rust=$(sed -n 's/^RESULT rust_seconds=\([0-9.]*\).*/\1/p' /tmp/kwi_bench_rust.txt)
pandas=$(sed -n 's/^RESULT pandas_seconds=\([0-9.]*\).*/\1/p' /tmp/kwi_bench_pandas.txt)
python3 - "$rust" "$pandas" <<'PY'
import sys
rust, pandas = map(float, sys.argv[1:])
print(f"ratio pandas/rust = {pandas / rust:.2f}x  (rust {rust:.2f} s, pandas {pandas:.2f} s)")
PY
