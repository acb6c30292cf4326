#!/usr/bin/env bash
# Iso-distance importance map of a 256^3 volume: idlat's exact distance to the
# sub-voxel crossing points (three row scans + five F-H passes, see
# src/importance/edt.rs) against scipy.ndimage.distance_transform_edt on the
# thresholded mask (a voxel-centre distance, two EDTs), in the same run.
# Reports both times and their ratio.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
WORK=${IDLAT_BENCH_DIR:-$ROOT/bench/work}
mkdir -p "$WORK"
N=${N:-256}
[ -f "$WORK/nyx$N.raw" ] || target/release/idlat sample nyx --dims ${N}x${N}x${N} -o "$WORK/nyx$N.raw" --force
out=$(target/release/idlat importance "$WORK/nyx$N.raw" --dims ${N}x${N}x${N} --importance 'iso:9.5' -o "$WORK/iso.raw" --force)
echo "$out"
idlat_s=$(echo "$out" | sed -E 's/.*\(([0-9.]+) s\)/\1/')
"$PY" - "$WORK/nyx$N.raw" "$N" "$idlat_s" <<'PY'
import sys, time, numpy as np
from scipy import ndimage
n = int(sys.argv[2]); x = np.fromfile(sys.argv[1], '<f4').reshape(n, n, n)
t = time.time()
m = x > 9.5
d = np.where(m, ndimage.distance_transform_edt(m), ndimage.distance_transform_edt(~m))
s = time.time() - t
i = float(sys.argv[3])
print(f"scipy distance_transform_edt (both sides of the mask): {s:.2f} s; idlat iso map incl. exp: {i:.2f} s; scipy/idlat = {s / i:.2f}x")
PY
