//! End-to-end CLI: sample → pack (shipped model) → info/verify/unpack/eval, and
//! error paths a user hits first.

use super::common::*;

#[test]
fn help_lists_every_subcommand() {
    let h = ok(&["--help"]);
    for c in ["pack", "unpack", "info", "verify", "eval", "mount", "train", "importance", "latents", "cluster", "tsne", "isosim", "sample"] {
        assert!(h.contains(c), "--help lacks {c}");
    }
}

#[test]
fn sample_writes_a_header_vtk_opens() {
    let d = tmp();
    let p = sample(d.path(), "vortex", "64x64x64", 1);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 1 << 20);
    let out = py(
        "import sys, vtk\nr = vtk.vtkMetaImageReader(); r.SetFileName(sys.argv[1]); r.Update()\n\
         i = r.GetOutput(); print(i.GetDimensions(), i.GetScalarRange())",
        &[s(&p.with_extension("mhd"))],
    );
    assert!(out.starts_with("(64, 64, 64)"), "{out}");
    let range: Vec<f64> = out.split(['(', ')', ',']).filter_map(|t| t.trim().parse().ok()).collect();
    let data = read_f32(&p);
    let hi = data.iter().cloned().fold(f32::MIN, f32::max) as f64;
    assert!((range[4] - hi).abs() < 1e-4, "{out} vs max {hi}");
}

#[test]
fn pack_unpack_eval_round_trip_with_the_shipped_model() {
    let d = tmp();
    let raw = sample(d.path(), "vortex", "48x40x36", 2);
    let raw2 = sample(d.path(), "vortex", "48x40x36", 5);
    let idl = d.path().join("v.idl");
    let out = ok(&["pack", "--profile", "fast", s(&raw), s(&raw2), "--dims", "48x40x36", "--importance", "iso:6", "-o", s(&idl), "--quiet"]);
    assert!(out.contains("packed 2 volumes") && out.contains("ratio"), "{out}");
    let info = ok(&["info", s(&idl), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(j["volumes"][0]["dims"], serde_json::json!([48, 40, 36]));
    assert_eq!(j["model"]["embedded"], serde_json::json!(false), "the shipped model is referenced by hash");
    assert!(ok(&["verify", s(&idl), "--decode"]).contains("OK"));
    let rec = d.path().join("rec");
    ok(&["unpack", s(&idl), "-o", s(&rec), "--quiet"]);
    let (rec1, rec2) = (rec.join("vortex2.raw"), rec.join("vortex5.raw"));
    let (a, b) = (read_f32(&raw), read_f32(&rec1));
    assert_eq!(a.len(), b.len());
    // eval's numbers, per volume and overall, equal an independent numpy
    // computation (the importance maps come from `idlat importance`, the
    // weighting and sums from numpy).
    let (map1, map2) = (d.path().join("m2.raw"), d.path().join("m5.raw"));
    for (r, m) in [(&raw, &map1), (&raw2, &map2)] {
        ok(&["importance", s(r), "--dims", "48x40x36", "--importance", "iso:6", "-o", s(m)]);
    }
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&idl), "--reference", s(&raw), s(&raw2), "--dims", "48x40x36", "--importance", "iso:6", "--json"])).unwrap();
    let np = py(
        "import sys, numpy as np\n\
         f = lambda p: np.fromfile(p, '<f4').astype(np.float64)\n\
         vols = [(f(sys.argv[1]), f(sys.argv[2]), f(sys.argv[3])), (f(sys.argv[4]), f(sys.argv[5]), f(sys.argv[6]))]\n\
         p = lambda r, m: 10 * np.log10(r * r / m)\n\
         se = wse = w = n = 0.0; lo = np.inf; hi = -np.inf; mx = 0.0\n\
         for a, b, i in vols:\n\
         \x20   e = (a - b) ** 2; r = a.max() - a.min()\n\
         \x20   print(p(r, e.mean()), p(r, (i * e).sum() / i.sum()), (i * e).sum() / i.sum(), np.abs(a - b).max())\n\
         \x20   se += e.sum(); wse += (i * e).sum(); w += i.sum(); n += e.size; lo = min(lo, a.min()); hi = max(hi, a.max()); mx = max(mx, np.abs(a - b).max())\n\
         print(p(hi - lo, se / n), p(hi - lo, wse / w), wse / w, mx)",
        &[s(&raw), s(&rec1), s(&map1), s(&raw2), s(&rec2), s(&map2)],
    );
    let rows: Vec<Vec<f64>> = np.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    let close = |got: &serde_json::Value, want: f64, what: &str| {
        let g = got.as_f64().unwrap_or_else(|| panic!("{what} missing"));
        assert!((g - want).abs() <= 1e-6 * want.abs().max(1.0), "{what}: eval {g} vs numpy {want}");
    };
    for (q, v) in [(&ev["volumes"][0], &rows[0]), (&ev["volumes"][1], &rows[1]), (&ev["overall"], &rows[2])] {
        close(&q["psnr"], v[0], "psnr");
        close(&q["wpsnr"], v[1], "wpsnr");
        close(&q["wmse"], v[2], "wmse");
        close(&q["max_abs_error"], v[3], "max_abs_error");
        assert!(q["lsr"].as_f64().unwrap() > 10.0, "ratio {q}");
    }
    assert_eq!(ev["overall"]["voxels"].as_u64(), Some(2 * 48 * 40 * 36));
    let text = ok(&["eval", s(&idl), "--reference", s(&raw), s(&raw2), "--dims", "48x40x36", "--importance", "iso:6"]);
    assert!(text.lines().any(|l| l.starts_with("overall ") && l.contains(&format!("{:.2}", rows[2][1]))), "{text}");
}

#[test]
fn importance_steers_bits() {
    // Same volume: a map that marks everything important costs more bytes than
    // one that marks nothing, and the important region is reconstructed better.
    let d = tmp();
    let raw = sample(d.path(), "nyx", "64x64x64", 3);
    let size = |spec: &str| {
        let idl = d.path().join("n.idl");
        ok(&["pack", "--profile", "fast", s(&raw), "--dims", "64x64x64", "--importance", spec, "-o", s(&idl), "--force", "--quiet"]);
        std::fs::metadata(&idl).unwrap().len()
    };
    let (lo, hi) = (size("uniform:0"), size("uniform:1"));
    assert!(hi as f64 > lo as f64 * 1.3, "uniform:1 {hi} bytes vs uniform:0 {lo}");
}

#[test]
fn important_voxels_stay_sharp_inside_every_block() {
    // A thin isosurface passes through every 32³ block of this volume, so a
    // per-block step could not steer at all. Per-cell levels must: under the
    // map the important voxels' error is below the rest's, and below what a
    // uniform map of the same file size gives the same voxels.
    let d = tmp();
    let dims = "96x96x96";
    let raw = sample(d.path(), "vortex", dims, 5);
    let map = d.path().join("map.raw");
    ok(&["importance", s(&raw), "--dims", dims, "--importance", "iso:7", "-o", s(&map)]);
    let important: Vec<bool> = read_f32(&map).iter().map(|&i| i >= 0.5).collect();
    let x = read_f32(&raw);
    let split = |spec: &str, extra: &[&str]| {
        let (idl, rec) = (d.path().join("s.idl"), d.path().join("r.raw"));
        let mut a = vec!["pack", "--profile", "fast", s(&raw), "--dims", dims, "--importance", spec, "-o", s(&idl), "--force", "--quiet"];
        a.extend_from_slice(extra);
        ok(&a);
        ok(&["unpack", s(&idl), "-o", s(&rec), "--force", "--quiet"]);
        let ratio = (x.len() * 4) as f64 / std::fs::metadata(&idl).unwrap().len() as f64;
        let (mut se, mut n) = ([0f64; 2], [0usize; 2]);
        for ((a, b), &imp) in x.iter().zip(read_f32(&rec)).zip(&important) {
            se[imp as usize] += ((a - b) as f64).powi(2);
            n[imp as usize] += 1;
        }
        (ratio, (se[1] / n[1] as f64).sqrt(), (se[0] / n[0] as f64).sqrt())
    };
    let (ratio, imp, rest) = split("iso:7", &[]);
    assert!(imp < 0.9 * rest, "iso:7 (ratio {ratio:.0}): RMSE important {imp} vs elsewhere {rest}");
    let (uratio, uimp, _) = split("uniform:1", &["--target-ratio", &format!("{ratio:.2}")]);
    assert!(uratio > 0.9 * ratio, "the uniform pack must be at least about as small: {uratio:.0} vs {ratio:.0}");
    assert!(imp < 0.8 * uimp, "important voxels: RMSE {imp} under iso:7 vs {uimp} under a uniform map of ratio {uratio:.0}");
}

#[test]
fn wpsnr_steer_trades_contrast_for_weighted_quality() {
    // `--steer wpsnr` keeps finer steps on middling importance (the ramp of a
    // distance map): at scale 1 it spends more bytes for a higher wPSNR, at
    // equal size it is no worse than `strict`, and it reaches a wPSNR that
    // `strict` cannot reach at any scale.
    let d = tmp();
    let dims = "96x96x96";
    let raw = sample(d.path(), "vortex", dims, 5);
    let pack = |steer: &str, extra: &[&str]| {
        let idl = d.path().join(format!("{steer}.idl"));
        let mut a = vec!["pack", "--profile", "fast", s(&raw), "--dims", dims, "--importance", "iso:7", "--steer", steer, "-o", s(&idl), "--force", "--quiet"];
        a.extend_from_slice(extra);
        ok(&a);
        let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&idl), "--reference", s(&raw), "--dims", dims, "--importance", "iso:7", "--json"])).unwrap();
        (ev["overall"]["lsr"].as_f64().unwrap(), ev["overall"]["wpsnr"].as_f64().unwrap())
    };
    let (rs, qs) = pack("strict", &[]);
    let (rw, qw) = pack("wpsnr", &[]);
    assert!(rw < 0.9 * rs && qw > qs + 1.0, "scale 1: strict {rs:.0} @ {qs:.2} dB, wpsnr {rw:.0} @ {qw:.2} dB");
    let (re, qe) = pack("wpsnr", &["--target-ratio", &format!("{rs:.2}")]);
    assert!(re > 0.95 * rs && qe > qs - 0.3, "equal size: strict {rs:.0} @ {qs:.2} dB, wpsnr {re:.0} @ {qe:.2} dB");
    let (_, qs_max) = pack("strict", &["--target-psnr", "60"]);
    let (_, qw_max) = pack("wpsnr", &["--target-psnr", "60"]);
    assert!(qw_max > qs_max + 0.3, "best wPSNR: strict {qs_max:.2} dB, wpsnr {qw_max:.2} dB");
}

#[test]
fn paper_profile_model_packs_and_unpacks_end_to_end() {
    // The shipped paper-profile model (24³ windows, self-contained 16³ blocks):
    // selectable with --model, embedded since it is not the default, the same
    // container for any batch size, and decoded without naming the model again.
    let d = tmp();
    let dims = "40x36x32";
    let raw = sample(d.path(), "vortex", dims, 3);
    let model = repo().join("models/idlat-paper.safetensors");
    let pack = |batch: &str, name: &str| {
        let idl = d.path().join(name);
        ok(&["pack", s(&raw), "--dims", dims, "--importance", "iso:7", "--model", s(&model), "--batch", batch, "-o", s(&idl), "--quiet"]);
        idl
    };
    let (a, b) = (pack("1", "a.idl"), pack("64", "b.idl"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "batch 1 and 64 give the same container");
    let j: serde_json::Value = serde_json::from_str(&ok(&["info", s(&a), "--json"])).unwrap();
    assert_eq!(j["model"]["profile"], "paper");
    assert_eq!(j["model"]["embedded"], true);
    assert_eq!(j["volumes"][0]["block"], serde_json::json!([16, 16, 16]), "{}", j["volumes"][0]);
    let rec = d.path().join("r.raw");
    ok(&["unpack", s(&a), "-o", s(&rec), "--quiet"]);
    let (x, y) = (read_f32(&raw), read_f32(&rec));
    let range = x.iter().cloned().fold(f32::MIN, f32::max) - x.iter().cloned().fold(f32::MAX, f32::min);
    let mse = x.iter().zip(&y).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / x.len() as f64;
    let psnr = 10.0 * ((range as f64).powi(2) / mse).log10();
    assert!(psnr > 15.0, "paper profile reconstructs at {psnr:.1} dB");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tmp();
    let raw = sample(d.path(), "isabel", "16x16x8", 1);
    let o = d.path().join("x.idl");
    let e = run(&["pack", s(&raw), "--dims", "16x16x9", "-o", s(&o)]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && msg.contains("8192") && msg.contains("9216"), "{msg}");
    let e = run(&["pack", s(&raw), "--dims", "16x16x8", "--dtype", "f16", "-o", s(&o)]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("unknown dtype 'f16'"));
    let e = run(&["pack", s(&raw), "--dims", "16x16x8", "--importance", "iso:3,q=1", "-o", s(&o)]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("^"), "spec errors point at the character");
    let e = run(&["pack", s(&raw), "-o", s(&o)]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--dims"));
    ok(&["pack", s(&raw), "--dims", "16x16x8", "-o", s(&o), "--quiet"]);
    let e = run(&["pack", s(&raw), "--dims", "16x16x8", "-o", s(&o)]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--force"), "refuses to overwrite");
    let e = run(&["pack", s(&raw), "--dims", "16x16x8", "-o", "/nonexistent-dir/x.idl"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("does not exist"));
}

#[test]
fn time_series_of_many_inputs_share_one_container() {
    let d = tmp();
    for step in [0, 1, 10] {
        ok(&["sample", "isabel", "--dims", "32x32x8", "--step", &step.to_string(), "-o", s(&d.path().join(format!("Pf{step}.raw")))]);
    }
    let idl = d.path().join("s.idl");
    ok(&["pack", &format!("{}/Pf*.raw", d.path().display()), "--dims", "32x32x8", "-o", s(&idl), "--quiet"]);
    let j: serde_json::Value = serde_json::from_str(&ok(&["info", s(&idl), "--json"])).unwrap();
    let names: Vec<&str> = j["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Pf0", "Pf1", "Pf10"], "natural sort");
}

#[test]
fn lossless_pack_is_exact() {
    let d = tmp();
    let raw = sample(d.path(), "nyx", "20x17x9", 4);
    let idl = d.path().join("l.idl");
    ok(&["pack", s(&raw), "--dims", "20x17x9", "--lossless", "-o", s(&idl), "--quiet"]);
    let rec = d.path().join("l.npy");
    ok(&["unpack", s(&idl), "-o", s(&rec), "--quiet"]);
    let out = py("import sys, numpy as np\na = np.fromfile(sys.argv[1], '<f4').reshape(9, 17, 20); b = np.load(sys.argv[2])\nprint(np.array_equal(a, b))", &[s(&raw), s(&rec)]);
    assert_eq!(out.trim(), "True");
}

#[test]
fn latents_come_straight_from_the_bitstreams() {
    let d = tmp();
    let raw = sample(d.path(), "vortex", "64x64x32", 3);
    let idl = d.path().join("v.idl");
    ok(&["pack", "--profile", "fast", s(&raw), "--dims", "64x64x32", "--importance", "iso:8", "-o", s(&idl), "--quiet"]);
    let npy = d.path().join("lat.npy");
    ok(&["latents", s(&idl), "-o", s(&npy)]);
    // 2x2x1 blocks of 32^3, each 3 coordinates + M channels x 4^3 latents (M from the model).
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(npy.with_extension("json")).unwrap()).unwrap();
    assert_eq!(side["latent_edge"], 4);
    let width = 3 + side["channels"].as_u64().unwrap() * 64;
    let out = py("import sys, numpy as np\na = np.load(sys.argv[1]); print(a.shape, sorted(set(map(tuple, a[:, :3].astype(int).tolist()))))", &[s(&npy)]);
    assert_eq!(out.trim(), format!("(4, {width}) [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]"));
    // Same latents as the decoder sees: a corrupt stream is an error, not garbage.
    let csv = d.path().join("lat.csv");
    ok(&["latents", s(&idl), "-o", s(&csv), "--csv"]);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 5);
}

#[test]
fn error_bound_holds_on_every_bounded_voxel() {
    // Importance-driven bound: every voxel with importance >= 0.5 within E after
    // unpack, whatever the decode batch and thread count; eval reports 100%.
    let d = tmp();
    let dims = "50x37x29"; // not a multiple of the block edge: clipped blocks too
    let raw = sample(d.path(), "vortex", dims, 4);
    let idl = d.path().join("b.idl");
    let e = 0.02f64;
    let out = ok(&["pack", "--profile", "fast", s(&raw), "--dims", dims, "--importance", "iso:6", "--error-bound", &e.to_string(), "-o", s(&idl), "--quiet"]);
    assert!(out.contains("packed 1 volume"), "{out}");
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", s(&idl), "--json"])).unwrap();
    let version = info["format_version"].as_str().unwrap();
    assert!(["1.1", "1.2", "1.3"].contains(&version), "bounded files are format 1.1 or later: {version}");
    assert_eq!(info["volumes"][0]["codec"]["error_bound"]["abs"].as_f64().unwrap() as f32, e as f32);
    let map = d.path().join("map.raw");
    ok(&["importance", s(&raw), "--dims", dims, "--importance", "iso:6", "-o", s(&map)]);
    let (x, imp) = (read_f32(&raw), read_f32(&map));
    let bounded = imp.iter().filter(|&&i| i >= 0.5).count();
    assert!(bounded > x.len() / 50 && bounded < x.len(), "{bounded} bounded voxels: the test needs both kinds");
    let mut unbounded_err = 0f64;
    for (threads, batch) in [("1", "1"), ("2", "7")] {
        let rec = d.path().join(format!("rec{threads}.raw"));
        let o = std::process::Command::new(bin())
            .args(["unpack", s(&idl), "-o", s(&rec), "--quiet", "--force", "--batch", batch])
            .env("RAYON_NUM_THREADS", threads)
            .env("OMP_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let y = read_f32(&rec);
        for i in 0..x.len() {
            let err = (x[i] as f64 - y[i] as f64).abs();
            if imp[i] >= 0.5 {
                assert!(err <= e, "voxel {i}: |err| {err} > {e} (threads {threads})");
            } else {
                unbounded_err = unbounded_err.max(err);
            }
        }
    }
    assert!(unbounded_err > e, "unbounded voxels are left to the neural codec ({unbounded_err})");
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&idl), "--reference", s(&raw), "--dims", dims, "--json"])).unwrap();
    let b = &ev["volumes"][0]["error_bound"];
    assert_eq!(b["bounded_voxels"].as_u64().unwrap() as usize, bounded, "{b}");
    assert_eq!(b["share_within_pct"].as_f64().unwrap(), 100.0, "{b}");
    // A bound below what f32 and the decoder margin allow is refused up front.
    let bad = run(&["pack", "--profile", "fast", s(&raw), "--dims", dims, "--importance", "iso:6", "--error-bound", "1e-7", "-o", s(&d.path().join("x.idl"))]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("below"), "{bad:?}");
}

#[test]
fn rate_control_reaches_for_the_target_ratio() {
    // --target-ratio searches the importance scale on a subsample, then packs once:
    // a higher target gives a smaller file, and the achieved ratio is near the target.
    let d = tmp();
    let raw = sample(d.path(), "vortex", "64x64x64", 6);
    let ratio = |target: &str| {
        let idl = d.path().join(format!("t{target}.idl"));
        let o = run(&["pack", "--profile", "fast", s(&raw), "--dims", "64x64x64", "--importance", "iso:7", "--target-ratio", target, "-o", s(&idl)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("importance scale"), "the chosen scale is reported");
        assert!(err.contains("wPSNR n/a") && !err.contains("NaN"), "a ratio target has no wPSNR estimate: {err}");
        let j: serde_json::Value = serde_json::from_str(&ok(&["info", s(&idl), "--json"])).unwrap();
        j["volumes"][0]["ratio_vs_f32"].as_f64().unwrap()
    };
    let (lo, hi) = (ratio("60"), ratio("400"));
    assert!(hi > lo * 1.5, "target 400 gave ratio {hi}, target 60 gave {lo}");
    assert!(lo >= 60.0 * 0.7, "target 60 achieved only {lo}");
}

#[test]
fn mhd_output_name_keeps_the_data_beside_the_header() {
    // `-o NAME.mhd` used to write the data to NAME.mhd, then overwrite it with the header.
    let d = tmp();
    let mhd = d.path().join("s.mhd");
    ok(&["sample", "vortex", "--dims", "12x10x8", "-o", s(&mhd)]);
    let raw = d.path().join("s.raw");
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 12 * 10 * 8 * 4);
    assert!(std::fs::read_to_string(&mhd).unwrap().contains("ElementDataFile = s.raw"));
    let v = idlat::io::read_volume(&mhd, &Default::default()).unwrap();
    assert_eq!(v.data, read_f32(&raw));
    let e = run(&["sample", "vortex", "--dims", "12x10x8", "-o", s(&mhd)]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("--force"));

    let map = d.path().join("m.mhd");
    ok(&["importance", s(&mhd), "--importance", "uniform:0.5", "-o", s(&map)]);
    assert!(std::fs::read_to_string(&map).unwrap().contains("ElementDataFile = m.raw"));
    let m = idlat::io::read_volume(&map, &Default::default()).unwrap();
    assert!(m.data.len() == 960 && m.data.iter().all(|&x| x == 0.5));
    let e = run(&["importance", s(&mhd), "--importance", "uniform:0.5", "-o", s(&d.path().join("m.raw"))]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("--force"), "m.raw and m.mhd exist");
}

#[test]
fn closed_stdout_pipe_ends_quietly_instead_of_panicking() {
    // `idlat info --json | head -1` used to panic on EPIPE (exit 101).
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let d = tmp();
    let idl = d.path().join("c.idl");
    super::format::random_container(&idl, 3);
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two fresh descriptors that we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just opened by pipe() and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read); // the reader is gone before idlat writes anything
    let out = std::process::Command::new(bin()).args(["info", s(&idl), "--json"]).stdout(write).stderr(std::process::Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && out.status.code() != Some(101), "{:?}: {err}", out.status);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "ends like other Unix filters: {:?} {err}", out.status);
}

#[test]
fn target_psnr_reports_what_the_full_pack_achieved() {
    let d = tmp();
    let raw = sample(d.path(), "vortex", "64x64x64", 6);
    let idl = d.path().join("p.idl");
    let o = run(&["pack", "--profile", "fast", s(&raw), "--dims", "64x64x64", "--importance", "iso:7", "--target-psnr", "30", "-o", s(&idl)]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(err.contains("importance scale") && err.contains("wPSNR") && !err.contains("NaN"), "the estimate is reported: {err}");
    // The summary gives the wPSNR the full pack reached, which is what eval measures.
    let achieved: f64 = out.split("wPSNR ").nth(1).and_then(|t| t.split(" dB").next()).and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no achieved wPSNR in: {out}"));
    assert!(out.contains("(target 30.00 dB)") && out.contains("achieved"), "{out}");
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&idl), "--reference", s(&raw), "--dims", "64x64x64", "--importance", "iso:7", "--json"])).unwrap();
    let measured = ev["overall"]["wpsnr"].as_f64().unwrap();
    assert!((achieved - measured).abs() < 0.006, "pack reports {achieved} dB, eval measures {measured}");
    // The fast model tops out below 30 dB on this field: then pack must say so.
    assert!(achieved > 29.0 || err.contains("target not reachable"), "target 30 dB, achieved {achieved}, no warning: {err}");
    // An unreachable target ends at the largest scale, where s·I clamps at 1. The estimate
    // must still weigh errors by the map as given (as eval does): with all 8 blocks sampled
    // it equals what the pack achieved. It used to weigh by the clamped map.
    let o = run(&["pack", "--profile", "fast", s(&raw), "--dims", "64x64x64", "--importance", "iso:7", "--target-psnr", "60", "-o", s(&idl), "--force"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(err.contains("importance scale 8.000") && err.contains("target not reachable"), "{err}");
    let db = |text: &str, after: &str| -> f64 { text.split(after).nth(1).and_then(|t| t.split(" dB").next()).and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no '{after}' in: {text}")) };
    let (est, achieved) = (db(&err, "wPSNR "), db(&out, "wPSNR "));
    assert!((est - achieved).abs() < 0.05, "estimated {est} dB on every block, achieved {achieved} dB");
}

#[test]
fn ratios_say_what_they_count() {
    // A u8 input is 4x smaller than its f32 form: both ratios are shown, labelled.
    let d = tmp();
    let raw = d.path().join("b.raw");
    std::fs::write(&raw, (0..16 * 16 * 16).map(|i| (i % 7) as u8).collect::<Vec<u8>>()).unwrap();
    let idl = d.path().join("b.idl");
    let o = run(&["pack", s(&raw), "--dims", "16x16x16", "--dtype", "u8", "--lossless", "-o", s(&idl)]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(out.contains(" vs f32 (") && out.contains(" vs the input's u8)"), "{out}");
    let line = err.lines().find(|l| l.starts_with("b: ")).unwrap_or_else(|| panic!("no per-volume line: {err}"));
    assert!(line.contains(" vs f32 (") && line.contains(" vs the input's u8)"), "{line}");
}

#[test]
fn unpack_checks_the_output_before_decoding() {
    // A damaged block would fail the decode; a bad -o must be reported first.
    let d = tmp();
    let raw = sample(d.path(), "nyx", "16x16x16", 2);
    let idl = d.path().join("l.idl");
    ok(&["pack", s(&raw), "--dims", "16x16x16", "--lossless", "-o", s(&idl), "--quiet"]);
    let e = {
        let c = idlat::format::Container::open(&idl).unwrap();
        c.entry(idlat::format::VolumeId(0), idlat::format::BlockId(0)).unwrap()
    };
    let mut b = std::fs::read(&idl).unwrap();
    b[(e.offset + e.len as u64 / 2) as usize] ^= 0x5a;
    std::fs::write(&idl, b).unwrap();
    let out = run(&["unpack", s(&idl), "-o", s(&d.path().join("x.txt")), "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("unknown output type") && !err.contains("checksum"), "{err}");
    let taken = d.path().join("taken.npy");
    std::fs::write(&taken, b"x").unwrap();
    let out = run(&["unpack", s(&idl), "-o", s(&taken), "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("--force") && !err.contains("checksum"), "{err}");
    // With a valid output the damaged block is what fails.
    let out = run(&["unpack", s(&idl), "-o", s(&d.path().join("ok.npy")), "--quiet"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("checksum"), "{out:?}");
}

#[test]
fn every_option_of_the_core_commands_has_help() {
    use clap::CommandFactory;
    let cli = idlat::cli::Cli::command();
    let mut missing = Vec::new();
    for name in ["pack", "unpack", "info", "verify", "eval", "mount", "train", "importance", "latents", "sample"] {
        let sub = cli.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {name}"));
        for a in sub.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_positional() || a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{name} --{id}"));
            }
        }
    }
    assert!(missing.is_empty(), "options without help: {missing:?}");
}

#[test]
fn os_errors_are_printed_once() {
    // The OS error used to appear twice: in the message and again as its cause.
    let d = tmp();
    let nope = d.path().join("nope.raw");
    for args in [vec!["pack", s(&nope), "--dims", "4x4x4", "-o", "x.idl"], vec!["info", s(&nope)], vec!["unpack", s(&nope), "-o", "x.raw"]] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.matches("No such file").count(), 1, "{args:?}: {err}");
    }
}
