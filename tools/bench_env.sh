# Sourced by tools/bench_mount.sh and tools/bench_scale.sh, with the default binary
# (under the repository root) as its argument: the root as working directory, the
# set-up unless SKIP_SETUP=1, the venv's python ($PY), the binary to measure
# ($IDLAT: IDLAT_BIN, else the argument) and the work directory ($WORK:
# IDLAT_BENCH_DIR, else bench/work).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ "${SKIP_SETUP:-0}" = 1 ] || tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
IDLAT=${IDLAT_BIN:-$ROOT/$1}
WORK=${IDLAT_BENCH_DIR:-$ROOT/bench/work}
