#!/usr/bin/env bash
# Scaling benchmark (issue 18): `idlat pack` on 1, 2 and 4 MPI ranks, same run,
# same inputs, same settings (--target-ratio 100, a value map, so every rank
# reads only its slab):
#   - one large volume (512³ f32: its tiles are shared among the ranks);
#   - a series (20 steps of 256³: whole volumes per rank);
# wall time, MB/s, speed-up against the 1-rank time of the same run, peak RSS
# of every rank (GNU time), and whether the container is byte-identical to the
# 1-rank one. Ranks x threads never exceed the cores (RAYON_NUM_THREADS), so the
# speed-up compares the same hardware, not more of it.
# Then `pack --stream always` of one 1024³ f32 volume (4 GiB, the 512³ sample tiled
# 2x2x2): peak RSS (goal: under 1.5 GiB) under a memory limit of that size where
# this machine lets a cgroup be made (else measured without one, and said so).
# Writes bench/scale.md and puts it into BENCHMARKS.md (its own section).
# Env: IDLAT_BIN, IDLAT_BENCH_DIR, BIG (512x512x512), SERIES (256x256x256),
# STEPS (20), RANKS ("1 2 4"), STREAM (1024x1024x1024, a multiple of BIG), STREAM_LIMIT_MIB
# (1536), BENCH_MD (BENCHMARKS.md), SKIP_SETUP=1. `--quick`: 320³ (8 tiles), 6 steps of
# 128³, a 640³ stream.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bench_env.sh" target/bin/idlat
BIG=${BIG:-512x512x512}; SERIES=${SERIES:-256x256x256}; STEPS=${STEPS:-20}; RANKS=${RANKS:-1 2 4}
STREAM=${STREAM:-1024x1024x1024}; STREAM_LIMIT_MIB=${STREAM_LIMIT_MIB:-1536}
MD=${BENCH_MD:-BENCHMARKS.md}
if [[ "${1:-}" == "--quick" ]]; then BIG=320x320x320; SERIES=128x128x128; STEPS=6; STREAM=640x640x640; MD=bench/quick-scale-BENCHMARKS.md; fi
command -v mpirun >/dev/null || { echo "bench_scale: mpirun missing (tools/setup.sh installs openmpi-bin)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_scale: GNU time missing (tools/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$WORK" bench
[ -f "$WORK/big-$BIG.raw" ] || "$IDLAT" sample nyx --dims "$BIG" --seed 3 -o "$WORK/big-$BIG.raw" --force >/dev/null
for t in $(seq 0 $((STEPS - 1))); do
  f=$(printf '%s/series-%s-%03d.raw' "$WORK" "$SERIES" "$t")
  [ -f "$f" ] || "$IDLAT" sample vortex --dims "$SERIES" --seed 4 --step "$t" -o "$f" --force >/dev/null
done
"$PY" - "$IDLAT" "$WORK" "$BIG" "$SERIES" "$STEPS" "$RANKS" "$MD" "$STREAM" "$STREAM_LIMIT_MIB" <<'PY'
import datetime, filecmp, glob, os, platform, subprocess, sys, time
import numpy as np
idlat, work, big, series, steps, ranks, md, stream, limit_mib = sys.argv[1:10]
ranks = [int(r) for r in ranks.split()]
cores = os.cpu_count()
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
cases = [
    (f"one {big} volume (tiles shared)", [os.path.join(work, f"big-{big}.raw")], big),
    (f"{steps} steps of {series} (volumes shared)", sorted(glob.glob(os.path.join(work, f"series-{series}-*.raw")))[: int(steps)], series),
]
lines = []
out = lines.append
out("## Scaling across MPI ranks (`tools/bench_scale.sh`, issue 18)")
out("")
out(f"{datetime.date.today()}, {platform.node()}, {cores} cores; Open MPI `mpirun --oversubscribe`. `pack --target-ratio 100 --importance value:>9` (a pointwise map: each rank reads only its planes).")
out("Threads per rank = cores / ranks (at least 1), so 1 rank and N ranks use the same cores; beyond the cores, ranks share them.")
out("")
out("| input | ranks | threads/rank | wall (s) | MB/s | vs 1 rank | peak RSS per rank (MiB) | bytes identical to 1 rank |")
out("|---|---|---|---|---|---|---|---|")
for what, inputs, dims in cases:
    mb = sum(os.path.getsize(p) for p in inputs) / 1e6
    base_t = None
    base_file = None
    for n in ranks:
        threads = max(1, cores // n)
        o = os.path.join(work, f"scale-{n}.idl")
        rss = os.path.join(work, "rss")
        for f in glob.glob(rss + ".*"):
            os.remove(f)
        pack = [idlat, "pack", *inputs, "--dims", dims, "--target-ratio", "100", "--importance", "value:>9", "-o", o, "--force", "-q"]
        timed = ["sh", "-c", '/usr/bin/time -f %M -o "$0.${OMPI_COMM_WORLD_RANK:-0}" "$@"', rss, *pack]
        cmd = timed if n == 1 else ["mpirun", "--oversubscribe", "-np", str(n), "-x", "RAYON_NUM_THREADS", *timed]
        t = time.time()
        subprocess.run(cmd, check=True, env=dict(env, RAYON_NUM_THREADS=str(threads)), stdout=subprocess.DEVNULL)
        t = time.time() - t
        peaks = [int(open(f).read().split()[-1]) / 1024 for f in sorted(glob.glob(rss + ".*"))]
        if base_t is None:
            base_t, base_file = t, os.path.join(work, "scale-base.idl")
            os.replace(o, base_file)
            same = "(reference)"
        else:
            same = "yes" if filecmp.cmp(o, base_file, shallow=False) else "**NO**"
        out(f"| {what} | {n} | {threads} | {t:.1f} | {mb / t:.1f} | {base_t / t:.2f}x | {max(peaks):.0f} (of {len(peaks)}: {', '.join(f'{p:.0f}' for p in peaks)}) | {same} |")
        print(lines[-1], flush=True)
out("")

# One volume larger than an in-memory pack could hold here, packed tile by tile.
sdims = [int(v) for v in stream.split("x")]
bdims = [int(v) for v in big.split("x")]
if any(s % b for s, b in zip(sdims, bdims)):
    sys.exit(f"bench_scale: STREAM {stream} is not a multiple of BIG {big} (it is BIG tiled)")
src = os.path.join(work, f"stream-{stream}.raw")
if not os.path.exists(src) or os.path.getsize(src) != 4 * np.prod(sdims):
    b = np.fromfile(os.path.join(work, f"big-{big}.raw"), dtype="<f4").reshape(bdims[::-1])
    m = np.memmap(src + ".tmp", mode="w+", dtype="<f4", shape=tuple(sdims[::-1]))
    reps = [s // d for s, d in zip(sdims[::-1], bdims[::-1])]
    for k in range(reps[0]):  # written through the map: only BIG is held in memory
        for j in range(reps[1]):
            for i in range(reps[2]):
                m[k * bdims[2]:(k + 1) * bdims[2], j * bdims[1]:(j + 1) * bdims[1], i * bdims[0]:(i + 1) * bdims[0]] = b
    m.flush()
    del m
    os.replace(src + ".tmp", src)
limit = int(limit_mib) << 20
cg = None
for root, knob in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"), ("/sys/fs/cgroup", "memory.max")):
    d = os.path.join(root, f"idlat-bench-{os.getpid()}")
    try:
        os.mkdir(d)
    except OSError:
        continue
    try:
        open(os.path.join(d, knob), "w").write(str(limit))
        cg = d
        break
    except OSError:
        os.rmdir(d)
o = os.path.join(work, "stream.idl")
rss = os.path.join(work, "rss-stream")
pack = [idlat, "pack", src, "--dims", stream, "--stream", "always", "--target-ratio", "100", "--importance", "value:>9", "-o", o, "--force", "-q"]
enter = f'echo $$ > {cg}/cgroup.procs && ' if cg else ""
t = time.time()
r = subprocess.run(["sh", "-c", enter + 'exec /usr/bin/time -f %M -o "$0" "$@"', rss, *pack], env=env)
t = time.time() - t
if cg:
    os.rmdir(cg)
gib = os.path.getsize(src) / 2**30
peak = int(open(rss).read().split()[-1]) / 1024 if os.path.exists(rss) and open(rss).read().split() else float("nan")
ratio = os.path.getsize(src) / os.path.getsize(o) if r.returncode == 0 else float("nan")
where = f"under a cgroup memory limit of {limit_mib} MiB" if cg else "with no memory limit (this machine let no cgroup be made), RSS from GNU time"
out(f"### One volume larger than memory: `pack --stream always` ({stream} f32, {gib:.1f} GiB: the {big} sample tiled)")
out("")
out(f"One process, {cores} threads, {where}; same map and ratio target as above. Goal: peak RSS under 1.5 GiB.")
out("")
out("| input | wall (s) | MB/s | peak RSS (MiB) | RSS / input | ratio | exit |")
out("|---|---|---|---|---|---|---|")
out(f"| {stream} f32 | {t:.0f} | {os.path.getsize(src) / 1e6 / t:.1f} | {peak:.0f} | {peak / (gib * 1024):.3f} | {ratio:.1f} | {r.returncode}{' (killed at the limit)' if r.returncode and cg else ''} |")
print(lines[-1], flush=True)
out("")
out("Ranks x threads stay within the cores: a speed-up above 1 comes from ranks working at once where one process's threads wait on each other (its sequential parts), not from more hardware; on a cluster each rank brings its own cores (docs/SCALING.md). Memory: a rank holds its slab, the map over it and its tiles prepared for the rate search, 4-10x the slab's f32 bytes (a one-tile 256³ volume prepares three layouts at once). A stream holds each tile's layout state, the size histogram and one group of tiles (a 1 GiB budget), not the volume; it reads every tile once per rate-control pass, so it trades input reads for memory.")
section = "\n".join(lines) + "\n"
open("bench/scale.md", "w").write(section)
BEGIN, END = "<!-- bench_scale: begin -->", "<!-- bench_scale: end -->"
text = open(md).read() if os.path.exists(md) else "# Benchmarks\n"
block = f"{BEGIN}\n{section}{END}"
if BEGIN in text and END in text:
    text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(md, "w").write(text)
print(f"wrote bench/scale.md and its section in {md}")
PY
