#!/usr/bin/env bash
# Benchmarks from scratch: codec speed (fast vs paper profile, same run), then
# rate-distortion and speed of idlat (neural, +bound, +graded) against SZ3 and
# ZFP on the benchmark samples with the paper's importance maps, and the
# paper's Table 2 (IDLat vs a baseline autoencoder) when the baseline model exists. Writes
# bench/results.csv, bench/plots/*.png and BENCHMARKS.md (about 20 minutes on
# 2 cores). `--quick` runs a 1-minute subset into bench/quick/ instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
if [[ "${1:-}" == "--quick" ]]; then
  exec "$PY" tools/bench.py --bin target/release/idlat --out bench/quick --quick
fi
# The Table 2 baseline ships beside the default model (tools/train_default.sh --baseline).
BASE=models/idlat-fast-baseline.safetensors
extra=()
[ -f "$BASE" ] && extra=(--baseline-bin target/release/idlat-bench-baseline --baseline-model "$BASE")
exec "$PY" tools/bench.py --bin target/release/idlat --speed-bin target/release/idlat-bench-codec \
  "${extra[@]}" --out bench --md BENCHMARKS.md "$@"
