#!/usr/bin/env bash
# Mount benchmark (same run, same volume): cold sequential read through the
# mount vs `idlat unpack`; warm sequential read vs the same bytes in /dev/shm;
# random 4 KiB preads cold and warm (median, p99); peak RSS of the daemon with
# a cache smaller than the volume.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
tools/setup.sh
PY=${IDLAT_VENV:-$ROOT/.venv}/bin/python
IDLAT=$ROOT/target/release/idlat
WORK=${IDLAT_BENCH_DIR:-$ROOT/bench/work}
DIMS=${DIMS:-128x128x128}
mkdir -p "$WORK/mnt"
[ -f "$WORK/vb.raw" ] || $IDLAT sample vortex --dims $DIMS --seed 2 -o "$WORK/vb.raw" --force
$IDLAT pack "$WORK/vb.raw" --dims $DIMS --importance iso:7 -o "$WORK/vb.idl" --force --quiet
"$PY" - "$IDLAT" "$WORK" <<'PY'
import os, random, statistics, subprocess, sys, time
idlat, work = sys.argv[1], sys.argv[2]
mnt = os.path.join(work, "mnt"); idl = os.path.join(work, "vb.idl")

def mount(cache_mb):
    p = subprocess.Popen([idlat, "mount", idl, mnt, "-f", "--cache-mb", str(cache_mb)], stderr=subprocess.DEVNULL)
    while not os.path.exists(os.path.join(mnt, ".idlat-stats")):
        time.sleep(0.05)
    return p

def umount(p):
    subprocess.run(["fusermount3", "-u", mnt]); p.wait()

def seq(path):
    t = time.time(); n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            n += len(b)
    return n / 1e6 / (time.time() - t)

def preads(path, k=300):
    size = os.path.getsize(path); fd = os.open(path, os.O_RDONLY); lat = []
    rnd = random.Random(7)
    for _ in range(k):
        off = rnd.randrange(0, size - 4096)
        t = time.perf_counter(); os.pread(fd, 4096, off); lat.append((time.perf_counter() - t) * 1e3)
    os.close(fd); lat.sort()
    return statistics.median(lat), lat[int(0.99 * len(lat)) - 1]

t = time.time(); subprocess.run([idlat, "unpack", idl, "-o", os.path.join(work, "vb_unpacked.raw"), "--force", "--quiet"], check=True)
unpack_s = time.time() - t
raw = os.path.join(mnt, "vb.raw")
p = mount(512)
size = os.path.getsize(raw) / 1e6
t = time.time(); seq(raw); cold_s = time.time() - t
warm = seq(raw)
umount(p)
shm = "/dev/shm/idlat-bench.raw"
subprocess.run(["cp", os.path.join(work, "vb_unpacked.raw"), shm]); seq(shm)
shm_mbs = seq(shm); os.remove(shm)
p = mount(512); cold_lat = preads(raw); warm_lat = preads(raw); umount(p)
# Peak RSS with a cache of 2 MiB (volume is larger): sample VmHWM after a full read.
p = mount(2); seq(raw)
hwm = int([l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
umount(p)
print(f"volume {size:.1f} MB")
print(f"cold sequential read through the mount: {cold_s:.2f} s vs idlat unpack {unpack_s:.2f} s (ratio {cold_s / unpack_s:.2f}, target <= 1.1)")
print(f"warm sequential read: {warm:.0f} MB/s vs /dev/shm {shm_mbs:.0f} MB/s (ratio {warm / shm_mbs:.2f}, target >= 0.5)")
print(f"random 4 KiB preads: cold median {cold_lat[0]:.2f} ms p99 {cold_lat[1]:.2f} ms; warm median {warm_lat[0]:.3f} ms p99 {warm_lat[1]:.3f} ms")
print(f"peak RSS with --cache-mb 2 after reading the whole volume: {hwm:.0f} MiB (includes libtorch and the model)")
PY
