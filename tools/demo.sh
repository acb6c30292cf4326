#!/usr/bin/env bash
# The main job end to end on the shipped default model and a generated sample:
# generate a 128^3 vortex-like volume, pack it with an isosurface importance
# map, mount the container, read it through the mount with VTK (as ParaView
# would), report ratio, PSNR and timings, unmount.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
IDLAT=$ROOT/target/bin/idlat   # the front end: wavelet containers need no libtorch
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
WORK=${IDLAT_DEMO_DIR:-$(mktemp -d /tmp/idlat-demo.XXXXXX)}
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() { fusermount3 -u "$MNT" 2>/dev/null || true; }
trap cleanup EXIT
t() { date +%s.%N; }

echo "== 1. sample data (synthetic Navier-Stokes vorticity, 128^3)"
$IDLAT sample vortex --dims 128x128x128 --seed 1 -o "$WORK/vorts01.raw" --force

echo "== 2. pack with importance near the isosurface 7 (paper's Vortex map)"
t0=$(t)
$IDLAT pack "$WORK/vorts01.raw" --dims 128x128x128 --importance 'iso:7' -o "$WORK/vortex.idl" --force
t1=$(t)
$IDLAT info "$WORK/vortex.idl"

echo "== 3. quality (paper eq. 13-14: wPSNR weights errors by the importance map)"
$IDLAT eval "$WORK/vortex.idl" --reference "$WORK/vorts01.raw" --dims 128x128x128 --importance 'iso:7'

echo "== 4. mount and read through VTK, as ParaView would"
$IDLAT mount "$WORK/vortex.idl" "$MNT" --log "$WORK/mount.log"
ls -l "$MNT"
t2=$(t)
"$PY" - "$MNT/vorts01.mhd" "$WORK/vorts01.raw" <<'PY'
import sys, time, numpy as np, vtk
from vtk.util import numpy_support as ns
t = time.time()
r = vtk.vtkMetaImageReader(); r.SetFileName(sys.argv[1]); r.Update()
img = r.GetOutput()
a = ns.vtk_to_numpy(img.GetPointData().GetScalars()).ravel()
dt = time.time() - t
ref = np.fromfile(sys.argv[2], '<f4')
rng = ref.max() - ref.min()
psnr = 10 * np.log10(rng ** 2 / np.mean((a.astype(np.float64) - ref) ** 2))
print(f"VTK read {sys.argv[1]}: dims {img.GetDimensions()}, range {a.min():.3f}..{a.max():.3f}, "
      f"{a.nbytes / 1e6:.1f} MB in {dt:.2f} s ({a.nbytes / 1e6 / dt:.1f} MB/s), PSNR vs original {psnr:.2f} dB")
PY
t3=$(t)
echo "mount statistics:"; cat "$MNT/.idlat-stats"
echo "== 5. the same pack on 2 MPI ranks (tiles shared): byte-identical to the one above"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 2 $IDLAT pack "$WORK/vorts01.raw" --dims 128x128x128 --importance 'iso:7' --tile 64 -o "$WORK/vortex-mpi.idl" --force --quiet
$IDLAT pack "$WORK/vorts01.raw" --dims 128x128x128 --importance 'iso:7' --tile 64 -o "$WORK/vortex-1.idl" --force --quiet
cmp "$WORK/vortex-1.idl" "$WORK/vortex-mpi.idl" && echo "2 ranks and 1 process wrote the same $(stat -c %s "$WORK/vortex-mpi.idl") bytes"
echo "== timings: pack $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s, cold read through the mount $(awk "BEGIN{printf \"%.2f\", $t3 - $t2}") s"
echo "== demo files in $WORK"
