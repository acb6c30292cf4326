#!/usr/bin/env bash
# Codec benchmark: speed of the fast and paper profiles (same run, ratio), then
# quality and speed of the shipped model against SZ3 and ZFP at equal ratio on
# held-out samples with the paper's importance maps. `--quick` runs a subset.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
WORK=${IDLAT_BENCH_DIR:-$ROOT/bench/work}
mkdir -p "$WORK"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "== synthesis/analysis speed (MB/s of decoded f32), fast vs paper profile"
target/release/idlat-bench-codec "${IDLAT_BENCH_DEVICE:-cpu}"
echo "== quality at equal ratio (wPSNR uses the same importance map for every codec)"
"$PY" tools/bench_codec.py target/release/idlat "$WORK" "$@"
