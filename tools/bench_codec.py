#!/usr/bin/env python3
"""Codec quality benchmark: idlat (shipped model) vs SZ3 (pysz) and ZFP (zfpy)
on held-out synthetic samples (seed 1; the model trains on seeds 101-103),
with the paper's importance maps. SZ3 and ZFP are tuned to idlat's ratio
(bisection on the absolute error bound / accuracy) so wPSNR is compared at
equal ratio. Prints a markdown table; writes bench/codec.csv.
Usage: bench_codec.py IDLAT_BINARY WORKDIR [--quick]"""
import csv, json, os, subprocess, sys, time
import numpy as np
import pysz, zfpy

idlat, work = sys.argv[1], sys.argv[2]
quick = "--quick" in sys.argv
os.makedirs(work, exist_ok=True)
cases = [("vortex", "128x128x128", ["iso:7", "iso:5", "uniform:1"]),
         ("nyx", "128x128x128", ["value:>10.2", "uniform:1"]),
         ("isabel", "256x256x48", ["box:100,90,0:164,154,48", "uniform:1"])]
if quick:
    cases = [("vortex", "64x64x64", ["iso:7"])]


def run(*a):
    return subprocess.run([idlat, *a], check=True, capture_output=True, text=True).stdout


def wpsnr(x, y, w):
    e = (x.astype(np.float64) - y) ** 2
    v = float(x.max() - x.min())
    return 10 * np.log10(v * v / (np.sum(w * e) / np.sum(w))), 10 * np.log10(v * v / e.mean()), float(np.abs(x - y).max())


def sz3(x, eb):
    c = pysz.szConfig(x.shape); c.errorBoundMode = pysz.szErrorBoundMode.ABS; c.absErrorBound = eb
    t = time.time(); comp, ratio = pysz.sz.compress(x, c); te = time.time() - t
    t = time.time(); y, _ = pysz.sz.decompress(comp, np.float32, x.shape); td = time.time() - t
    return x.nbytes / comp.nbytes, y, te, td


def zfp(x, tol):
    t = time.time(); comp = zfpy.compress_numpy(x, tolerance=tol); te = time.time() - t
    t = time.time(); y = zfpy.decompress_numpy(comp); td = time.time() - t
    return x.nbytes / len(comp), y, te, td


def match(f, x, target, lo, hi):
    """Bisection in log space on a tolerance so the ratio reaches the target."""
    best = None
    for _ in range(22):
        mid = (lo * hi) ** 0.5
        r = f(x, mid)
        if best is None or abs(np.log(r[0] / target)) < abs(np.log(best[0] / target)):
            best = r
        if r[0] < target:
            lo = mid
        else:
            hi = mid
    return best


rows = []
for kind, dims, maps in cases:
    raw = os.path.join(work, f"{kind}.raw")
    if not os.path.exists(raw):
        run("sample", kind, "--dims", dims, "--seed", "1", "-o", raw, "--force")
    nx, ny, nz = map(int, dims.split("x"))
    x = np.fromfile(raw, "<f4").reshape(nz, ny, nx)
    rng = float(x.max() - x.min())
    for spec in maps:
        idl = os.path.join(work, "b.idl")
        t = time.time(); run("pack", raw, "--dims", dims, "--importance", spec, "-o", idl, "--force", "--quiet"); te = time.time() - t
        rec = os.path.join(work, "rec.raw")
        t = time.time(); run("unpack", idl, "-o", rec, "--force", "--quiet"); td = time.time() - t
        y = np.fromfile(rec, "<f4").reshape(x.shape)
        mp = os.path.join(work, "map.raw")
        run("importance", raw, "--dims", dims, "--importance", spec, "-o", mp, "--force")
        w = np.fromfile(mp, "<f4").reshape(x.shape).astype(np.float64)
        ratio = x.nbytes / os.path.getsize(idl)
        wp, p, me = wpsnr(x, y, w)
        mb = x.nbytes / 1e6
        rows.append(dict(dataset=kind, map=spec, codec="idlat", ratio=ratio, wpsnr=wp, psnr=p, max_err=me, enc_mbs=mb / te, dec_mbs=mb / td))
        for name, f, lo, hi in [("sz3", sz3, rng * 1e-6, rng), ("zfp", zfp, rng * 1e-6, rng * 4)]:
            r, yy, te2, td2 = match(f, x, ratio, lo, hi)
            wp2, p2, me2 = wpsnr(x, yy, w)
            rows.append(dict(dataset=kind, map=spec, codec=name, ratio=r, wpsnr=wp2, psnr=p2, max_err=me2, enc_mbs=mb / te2, dec_mbs=mb / td2))

os.makedirs(os.path.join(work), exist_ok=True)
with open(os.path.join(work, "codec.csv"), "w", newline="") as f:
    wr = csv.DictWriter(f, fieldnames=list(rows[0].keys())); wr.writeheader(); wr.writerows(rows)
print("| dataset | map | codec | ratio | wPSNR dB | PSNR dB | max err | enc MB/s | dec MB/s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['dataset']} | `{r['map']}` | {r['codec']} | {r['ratio']:.1f} | {r['wpsnr']:.2f} | {r['psnr']:.2f} | {r['max_err']:.3g} | {r['enc_mbs']:.1f} | {r['dec_mbs']:.1f} |")
