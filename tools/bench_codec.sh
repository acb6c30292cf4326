#!/usr/bin/env bash
# The codec's own benchmark (issue 4): speed of the fast and paper profiles in
# the same run, the paper's quality rows as floors, how far importance steers
# the error, and determinism across batch sizes and threads. Writes
# bench/codec.md (a few minutes on 2 cores). Extra flags go to bench_codec.py
# (e.g. --model FILE). The comparison with SZ3 and ZFP is tools/bench.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
mkdir -p bench
exec "$PY" tools/bench_codec.py --bin target/release/idlat --speed-bin target/release/idlat-bench-codec \
  --md bench/codec.md "$@"
