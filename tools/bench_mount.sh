#!/usr/bin/env bash
# Mount benchmark (same run, same volume), for the page-cache mode (default)
# and --direct-io:
#   - cold sequential read through the mount vs `idlat unpack`;
#   - warm sequential read vs the same bytes in /dev/shm (goal >= 0.5x);
#   - random preads (4 KiB and 1 MiB) cold and warm, median and p99;
#   - peak RSS (VmHWM) of the daemon with 16 concurrent readers on a volume
#     larger than the cache, for several --cache-mb, against the documented
#     bound (docs/MOUNT.md): idle RSS + cache + (threads+1) x per-piece buffers;
#   - with root, the bdi read_ahead_kb raised to 1 MiB (page-cache mode).
# Writes bench/mount.md (a BENCHMARKS.md section; tools/bench.py keeps it).
# Env: IDLAT_BIN (binary to measure), DIMS, SAMPLE, IDLAT_BENCH_DIR, SKIP_SETUP=1.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bench_env.sh" target/release/idlat
DIMS=${DIMS:-256x256x128}
SAMPLE=${SAMPLE:-nyx}
mkdir -p "$WORK/mnt" bench
# A failure half-way (the Python part) must not leave the mount behind.
trap 'fusermount3 -u "$WORK/mnt" 2>/dev/null || true' EXIT
[ -f "$WORK/mb-$SAMPLE-$DIMS.raw" ] || $IDLAT sample $SAMPLE --dims $DIMS --seed 2 -o "$WORK/mb-$SAMPLE-$DIMS.raw" --force
[ -f "$WORK/mb-$SAMPLE-$DIMS.idl" ] || $IDLAT pack "$WORK/mb-$SAMPLE-$DIMS.raw" --dims $DIMS -o "$WORK/mb-$SAMPLE-$DIMS.idl" --force --quiet
"$PY" - "$IDLAT" "$WORK" "$SAMPLE" "$DIMS" <<'PY'
import os, random, statistics, subprocess, sys, threading, time
idlat, work, sample, dims = sys.argv[1:5]
mnt = os.path.join(work, "mnt"); idl = os.path.join(work, f"mb-{sample}-{dims}.idl")
name = f"mb-{sample}-{dims}"
raw = os.path.join(mnt, name + ".raw")
THREADS = 4

def mount(*extra):
    p = subprocess.Popen([idlat, "mount", idl, mnt, "-f", "--threads", str(THREADS), *extra], stderr=subprocess.DEVNULL)
    while not os.path.exists(os.path.join(mnt, ".idlat-stats")):
        time.sleep(0.05)
    return p

def umount(p):
    subprocess.run(["fusermount3", "-u", mnt]); p.wait()

def drop_caches():
    # Page-cache mode keeps pages across opens; a cold read needs them gone (root only).
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f: f.write("1\n")
    except OSError:
        pass

def seq(path):
    t = time.time(); n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            n += len(b)
    return n / 1e6 / (time.time() - t)

def preads(path, size_each, k=300, seed=7):
    size = os.path.getsize(path); fd = os.open(path, os.O_RDONLY); lat = []
    rnd = random.Random(seed)
    for _ in range(k):
        off = rnd.randrange(0, size - size_each)
        t = time.perf_counter(); os.pread(fd, size_each, off); lat.append((time.perf_counter() - t) * 1e3)
    os.close(fd); lat.sort()
    return statistics.median(lat), lat[int(0.99 * len(lat)) - 1]

def status(pid, key):
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith(key)][0].split()[1]) / 1024

def readers16(path, per=40):
    size = os.path.getsize(path)
    def one(i):
        rnd = random.Random(100 + i); fd = os.open(path, os.O_RDONLY)
        for _ in range(per):
            n = rnd.choice([4096, 65536, 1 << 20]); os.pread(fd, n, rnd.randrange(0, size - n))
        os.close(fd)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    t = time.time(); [x.start() for x in ts]; [x.join() for x in ts]
    return time.time() - t

lines = []
def out(s):
    print(s); lines.append(s)

t = time.time(); subprocess.run([idlat, "unpack", idl, "-o", os.path.join(work, "mb_unpacked.raw"), "--force", "--quiet"], check=True)
unpack_s = time.time() - t
shm = "/dev/shm/idlat-bench.raw"
subprocess.run(["cp", os.path.join(work, "mb_unpacked.raw"), shm]); seq(shm)
shm_mbs = max(seq(shm) for _ in range(3)); os.remove(shm)
size = os.path.getsize(os.path.join(work, "mb_unpacked.raw")) / 1e6
out(f"volume {sample} {dims}: {size:.1f} MB f32, {os.path.getsize(idl) / 1e6:.2f} MB packed; {os.cpu_count()} cores; binary {idlat}")
out(f"idlat unpack: {unpack_s:.2f} s; /dev/shm warm sequential read: {shm_mbs:.0f} MB/s")
out("")
out("| mode | cold seq read (s) | vs unpack | warm seq (MB/s) | warm / shm | 4 KiB pread cold median / p99 (ms) | warm median / p99 (ms) | 1 MiB pread warm median (ms) |")
out("|---|---|---|---|---|---|---|---|")
help_text = subprocess.run([idlat, "mount", "--help"], capture_output=True, text=True).stdout
modes = [("page cache (default)", [])]
if "--direct-io" in help_text:
    modes.append(("--direct-io", ["--direct-io"]))
else:
    modes = [("direct I/O (before: no page cache)", [])]
for label, extra in modes:
    drop_caches(); p = mount("--cache-mb", "512", *extra)
    t = time.time(); seq(raw); cold_s = time.time() - t
    warm = max(seq(raw) for _ in range(3))
    umount(p)
    drop_caches(); p = mount("--cache-mb", "512", *extra)
    c = preads(raw, 4096); w = preads(raw, 4096); w1 = preads(raw, 1 << 20, k=60)
    umount(p)
    out(f"| {label} | {cold_s:.2f} | {cold_s / unpack_s:.2f} | {warm:.0f} | {warm / shm_mbs:.2f} | {c[0]:.2f} / {c[1]:.2f} | {w[0]:.3f} / {w[1]:.3f} | {w1[0]:.2f} |")

# Kernel read-ahead window (bdi read_ahead_kb; root only): 1 MiB instead of the default.
p = mount("--cache-mb", "512")
dev = os.stat(raw).st_dev
bdi = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
try:
    old = open(bdi).read().strip()
    with open(bdi, "w") as f: f.write("1024\n")
    drop_caches(); t = time.time(); seq(raw); cold_ra = time.time() - t
    warm_ra = max(seq(raw) for _ in range(3))
    out("")
    out(f"read_ahead_kb {old} -> 1024 (page cache): cold {cold_ra:.2f} s, warm {warm_ra:.0f} MB/s ({warm_ra / shm_mbs:.2f}x shm)")
except OSError as e:
    out(""); out(f"read_ahead_kb not adjustable here ({e.strerror})")
umount(p)

# Peak RSS with 16 concurrent readers (4 KiB, 64 KiB and 1 MiB preads at random offsets).
out("")
out(f"Peak RSS (VmHWM) with 16 concurrent random readers, {THREADS} FUSE threads, volume {size:.0f} MB:")
out("")
out("| --cache-mb | effective cache (MiB) | idle RSS (MiB) | peak RSS (MiB) | peak - idle (MiB) | bound: idle + cache + (threads+1) x 4 + 48 (MiB) | 16 readers x 40 reads (s) |")
out("|---|---|---|---|---|---|---|")
import json
for cache_mb in [1, 16, 64]:
    # Direct I/O: every read reaches the daemon (the worst case for its memory).
    p = mount("--cache-mb", str(cache_mb), *(["--direct-io"] if "--direct-io" in help_text else []))
    time.sleep(0.5)
    idle = status(p.pid, "VmRSS")
    secs = readers16(raw)
    peak = status(p.pid, "VmHWM")
    st = json.load(open(os.path.join(mnt, ".idlat-stats")))
    cap = st["cache_capacity_bytes"] / 2**20
    bound = idle + cap + (THREADS + 1) * 4 + 48  # docs/MOUNT.md
    umount(p)
    out(f"| {cache_mb} | {cap:.1f} | {idle:.0f} | {peak:.0f} | {peak - idle:.0f} | {bound:.0f} | {secs:.1f} |")
open("bench/mount.md", "w").write("## Mount (`tools/bench_mount.sh`)\n\n" + "\n".join(lines) + "\n")
print("wrote bench/mount.md")
PY
