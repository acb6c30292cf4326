#!/usr/bin/env bash
# Benchmarks from scratch: codec speed (fast vs paper profile, same run), then
# rate-distortion and speed of idlat (neural, +bound, +graded) against SZ3 and
# ZFP on the benchmark samples with the paper's importance maps, and the
# paper's Table 2 (IDLat vs a baseline autoencoder) when the baseline model exists. Writes
# bench/results.csv, bench/plots/*.png and BENCHMARKS.md (about 20 minutes on
# 2 cores). Before that, tools/bench_peers.py measures the default (wavelet)
# profile against SPERR, SZ3, ZFP and the importance-aware SZ3/SPERR at equal
# ratio (issue 21; bench/peers.csv, about 10 minutes) and its section is put at
# the top of BENCHMARKS.md. `--quick` runs a 1-minute subset into bench/quick/ instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
if [[ "${1:-}" == "--quick" ]]; then
  "$PY" tools/bench_peers.py --bin target/release/idlat --out bench/quick --quick
  "$PY" tools/bench.py --bin target/release/idlat --out bench/quick --quick
  # bench.py rewrites the whole file: put the peers section back at the top
  exec "$PY" tools/bench_peers.py --md bench/quick/BENCHMARKS.md --insert bench/quick/peers.md
fi
# Wavelet profile vs SPERR, SZ3, ZFP, SZ3-imp, SPERR-imp at equal ratio (issue 21).
"$PY" tools/bench_peers.py --bin target/release/idlat --out bench --md BENCHMARKS.md
# The Table 2 baseline ships beside the default model (tools/train_default.sh --baseline).
BASE=models/idlat-fast-baseline.safetensors
extra=()
[ -f "$BASE" ] && extra=(--baseline-bin target/release/idlat-bench-baseline --baseline-model "$BASE")
"$PY" tools/bench.py --bin target/release/idlat --speed-bin target/release/idlat-bench-codec \
  "${extra[@]}" --out bench --md BENCHMARKS.md "$@"
# bench.py rewrites the whole file: put the peers section back at the top
exec "$PY" tools/bench_peers.py --md BENCHMARKS.md --insert bench/peers.md
