//! HDF5 and NetCDF (issue 19): fixtures written by h5py and netCDF4 are
//! packed, mounted and read through VTK, compared with the file's values
//! within the error bound; `unpack -o FILE.h5` is read back by h5py; each
//! error case gives one clear line and no output.

use super::common::*;
use super::mount::Mount;
use std::path::Path;

/// Error bound of every pack here (the data span about ±3).
const E: f64 = 1e-3;

fn info_json(idl: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["info", s(idl), "--json"])).unwrap()
}

/// Runs idlat expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "idlat {args:?} should fail with exit 2: {err}");
    assert!(!err.contains("panicked") && !err.contains("HDF5-DIAG"), "one clear line, no panic or HDF5 error stack: {err}");
    err
}

/// Files in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// VTK reads `NAME.vti` and `NAME.mhd` from the mount; the script compares
/// them with `want` (a .npy in C order) where `valid` (a .npy of bools, or
/// "-") holds, and prints "dims spacing origin maxerr".
const VTK_CHECK: &str = r#"
import sys, vtk, numpy as np
from vtk.util import numpy_support as ns
mnt, name, want, valid = sys.argv[1:5]
want = np.load(want).astype(np.float64)
valid = np.ones(want.shape, bool) if valid == "-" else np.load(valid)
out = []
for ext, R in [("vti", vtk.vtkXMLImageDataReader), ("mhd", vtk.vtkMetaImageReader)]:
    r = R(); r.SetFileName(f"{mnt}/{name}.{ext}"); r.Update(); i = r.GetOutput()
    a = ns.vtk_to_numpy(i.GetPointData().GetScalars()).astype(np.float64).reshape(want.shape)
    err = float(np.abs(a - want)[valid].max())
    filled = a[~valid]
    inside = bool(np.all(np.isfinite(filled)) and (filled.size == 0 or (filled.min() >= want[valid].min() - 0.01 and filled.max() <= want[valid].max() + 0.01)))
    out.append(f"{ext} {i.GetDimensions()} {tuple(round(v, 6) for v in i.GetSpacing())} {tuple(round(v, 6) for v in i.GetOrigin())} {err:.3e} {int((~valid).sum())} {inside}")
print("\n".join(out))
"#;

/// Checks one mounted volume through VTK: dims, spacing, origin, every valid
/// voxel within `bound`, the missing ones filled with in-range values.
#[allow(clippy::too_many_arguments, reason = "one client check's expectations, spelled out at each call")]
fn vtk_check(mnt: &Path, name: &str, want: &Path, valid: Option<&Path>, dims: &str, spacing: &str, origin: &str, bound: f64, missing: usize) {
    let out = py(VTK_CHECK, &[s(mnt), name, s(want), valid.map_or("-", s)]);
    assert_eq!(out.lines().count(), 2, "{out}");
    for line in out.lines() {
        assert!(line.contains(&format!("{dims} {spacing} {origin} ")), "{name}: geometry: {line} (want {dims} {spacing} {origin})");
        let f: Vec<&str> = line.rsplitn(4, ' ').collect();
        let (inside, n_missing, err) = (f[0], f[1], f[2].parse::<f64>().unwrap());
        // The bound holds on the f32 volume; the file's f64 values differ from it by f32 rounding.
        assert!(err <= bound * (1.0 + 1e-5) + 1e-6, "{name}: max error {err} over the bound {bound}: {line}");
        assert_eq!(n_missing, missing.to_string(), "{line}");
        assert_eq!(inside, "True", "{name}: missing voxels must be filled with values in the data's range: {line}");
    }
}

#[test]
fn hdf5_chunked_gzip_float64_in_a_group_packs_mounts_reads_through_vtk_and_unpacks_to_h5() {
    let d = tmp();
    let (h5, want) = (d.path().join("sim.h5"), d.path().join("want.npy"));
    // Chunked, gzip with shuffle, f64, in a group; spacing/origin attributes (x, y, z).
    let r = py(
        r#"
import sys, h5py, numpy as np
z, y, x = np.mgrid[0:20, 0:24, 0:28].astype(np.float64)
a = np.sin(x / 4) * np.cos(y / 5) + 0.05 * z + 1e-9 * x
with h5py.File(sys.argv[1], "w") as f:
    ds = f.create_group("fields").create_dataset("density", data=a, chunks=(5, 8, 7), compression="gzip", shuffle=True)
    ds.attrs["spacing"] = [0.5, 1.0, 2.0]
    ds.attrs["origin"] = [1.0, 2.0, 3.0]
    print(ds.chunks, ds.compression, ds.shuffle, ds.dtype)
np.save(sys.argv[2], a)
"#,
        &[s(&h5), s(&want)],
    );
    assert_eq!(r.trim(), "(5, 8, 7) gzip True float64", "the fixture is what the test claims");
    let listed = ok(&["info", s(&h5)]);
    assert!(listed.contains("/fields/density (20, 24, 28) f64: volume 28x24x20"), "{listed}");

    let idl = d.path().join("sim.idl");
    ok(&["pack", &format!("{}:/fields/density", s(&h5)), "--importance", "uniform:1", "--error-bound", &E.to_string(), "-o", s(&idl), "--quiet"]);
    let v = &info_json(&idl)["volumes"][0];
    assert_eq!(v["name"], "sim_fields_density", "{v}");
    assert_eq!(v["dtype"], "f64", "{v}");
    assert_eq!(v["dims"], serde_json::json!([28, 24, 20]), "x is the file's last axis: {v}");
    assert_eq!(v["missing"], serde_json::Value::Null, "{v}");

    let m = Mount::new(&idl, &d.path().join("mnt"), &[]);
    vtk_check(&m.dir, "sim_fields_density", &want, None, "(28, 24, 20)", "(0.5, 1.0, 2.0)", "(1.0, 2.0, 3.0)", E, 0);
    drop(m);

    // unpack --format h5 into a directory: NAME.h5 with dataset /NAME and the attributes.
    let out = d.path().join("out");
    ok(&["unpack", s(&idl), "-o", s(&out), "--format", "h5", "--dtype", "original", "--quiet"]);
    let r = py(
        r#"
import sys, h5py, numpy as np
want = np.load(sys.argv[2])
with h5py.File(sys.argv[1]) as f:
    print(sorted(f.keys()))
    ds = f["sim_fields_density"]
    at = ds.attrs
    print(ds.shape, ds.dtype, list(at["dims"]), list(at["spacing"]), list(at["origin"]), at["original_dtype"], "missing_value" in at)
    print(float(np.abs(ds[()] - want).max()))
"#,
        &[s(&out.join("sim_fields_density.h5")), s(&want)],
    );
    let l: Vec<&str> = r.lines().collect();
    assert_eq!(l[0], "['sim_fields_density']", "{r}");
    assert_eq!(
        l[1], "(20, 24, 28) float64 [np.uint64(28), np.uint64(24), np.uint64(20)] [np.float64(0.5), np.float64(1.0), np.float64(2.0)] [np.float64(1.0), np.float64(2.0), np.float64(3.0)] f64 False",
        "{r}"
    );
    assert!(l[2].parse::<f64>().unwrap() <= E * (1.0 + 1e-5) + 1e-6, "{r}");
    // What unpack wrote packs again, geometry and type included.
    let again = d.path().join("again.idl");
    ok(&["pack", &format!("{}:/sim_fields_density", s(&out.join("sim_fields_density.h5"))), "--lossless", "-o", s(&again), "--quiet"]);
    let v2 = &info_json(&again)["volumes"][0];
    for k in ["dims", "spacing", "origin", "dtype"] {
        assert_eq!(v2[k], v[k], "{k}: {v2}");
    }
}

#[test]
fn hdf5_int16_dataset_round_trips_to_its_original_integers() {
    let d = tmp();
    let (h5, want) = (d.path().join("counts.h5"), d.path().join("want.npy"));
    py(
        r#"
import sys, h5py, numpy as np
z, y, x = np.mgrid[0:16, 0:18, 0:20]
a = (3000 * np.sin(x / 3.0) * np.cos(y / 4.0) + 50 * z).astype(np.int16)
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("counts", data=a)
np.save(sys.argv[2], a)
"#,
        &[s(&h5), s(&want)],
    );
    let idl = d.path().join("c.idl");
    // The file's only volume needs no name; a bound under 0.5 makes rounding exact.
    ok(&["pack", s(&h5), "--importance", "uniform:1", "--error-bound", "0.45", "-o", s(&idl), "--quiet"]);
    let v = &info_json(&idl)["volumes"][0];
    assert_eq!((v["name"].as_str(), v["dtype"].as_str()), (Some("counts_counts"), Some("i16")), "{v}");
    let m = Mount::new(&idl, &d.path().join("mnt"), &[]);
    vtk_check(&m.dir, "counts_counts", &want, None, "(20, 18, 16)", "(1.0, 1.0, 1.0)", "(0.0, 0.0, 0.0)", 0.45, 0);
    drop(m);
    let out = d.path().join("c.h5");
    ok(&["unpack", s(&idl), "-o", s(&out), "--dtype", "original", "--quiet"]);
    let r = py(
        r#"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as f:
    ds = f["counts_counts"]
    print(ds.dtype, ds.attrs["original_dtype"], bool(np.array_equal(ds[()], np.load(sys.argv[2]))))
"#,
        &[s(&out), s(&want)],
    );
    assert_eq!(r.trim(), "int16 i16 True", "{r}");
}

#[test]
fn netcdf_time_series_with_fill_values_and_coordinates_packs_mounts_and_reads_through_vtk() {
    let d = tmp();
    let nc = d.path().join("ocean.nc");
    // float32 temp(time, z, y, x), time unlimited with 3 steps, _FillValue over
    // a 'land' corner, uniform coordinate variables (x from 10 by 0.5, ...).
    py(
        r#"
import sys, netCDF4, numpy as np
d = sys.argv[2]
with netCDF4.Dataset(sys.argv[1], "w") as f:
    f.createDimension("time", None)
    for n, k in [("z", 12), ("y", 14), ("x", 16)]:
        f.createDimension(n, k)
    f.createVariable("time", "f8", ("time",))[:] = [0.0, 6.0, 12.0]
    f.createVariable("z", "f8", ("z",))[:] = -5.0 + 2.0 * np.arange(12)
    f.createVariable("y", "f4", ("y",))[:] = 0.1 * np.arange(14, dtype=np.float32)
    f.createVariable("x", "f8", ("x",))[:] = 10.0 + 0.5 * np.arange(16)
    v = f.createVariable("temp", "f4", ("time", "z", "y", "x"), fill_value=-999.0)
    z, y, x = np.mgrid[0:12, 0:14, 0:16].astype(np.float32)
    for t in range(3):
        a = (np.sin(x / 3 + t) + np.cos(y / 4) + 0.1 * z).astype(np.float32)
        a[:, :4, :5] = -999.0
        v[t] = a
        np.save(f"{d}/want{t}.npy", a)
    np.save(f"{d}/valid.npy", a != -999.0)
"#,
        &[s(&nc), s(d.path())],
    );
    let listed = ok(&["info", s(&nc)]);
    assert!(listed.contains("temp (time=3, z=12, y=14, x=16) f32: 3 time steps of 16x14x12"), "{listed}");
    let idl = d.path().join("o.idl");
    ok(&["pack", &format!("{}:temp", s(&nc)), "--importance", "uniform:1", "--error-bound", &E.to_string(), "-o", s(&idl), "--quiet"]);
    let info = info_json(&idl);
    let vols = info["volumes"].as_array().unwrap();
    let names: Vec<&str> = vols.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ocean_temp_t0", "ocean_temp_t1", "ocean_temp_t2"], "one volume per step");
    for v in vols {
        assert_eq!(v["missing"].as_f64(), Some(-999.0), "the _FillValue is recorded: {v}");
        assert_eq!(v["dims"], serde_json::json!([16, 14, 12]), "{v}");
    }
    let missing = 12 * 4 * 5;
    let m = Mount::new(&idl, &d.path().join("mnt"), &[]);
    for t in 0..3 {
        let want = d.path().join(format!("want{t}.npy"));
        vtk_check(&m.dir, &format!("ocean_temp_t{t}"), &want, Some(&d.path().join("valid.npy")), "(16, 14, 12)", "(0.5, 0.1, 2.0)", "(10.0, 0.0, -5.0)", E, missing);
    }
    drop(m);
    // eval reads the same NetCDF as its reference: the fill voxels are left out.
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", s(&idl), "--reference", &format!("{}:temp", s(&nc)), "--json"])).unwrap();
    for v in ev["volumes"].as_array().unwrap() {
        assert_eq!(v["voxels"].as_u64(), Some((16 * 14 * 12 - missing) as u64), "{v}");
        assert!(v["max_abs_error"].as_f64().unwrap() <= E * (1.0 + 1e-5), "{v}");
    }
    // One HDF5 file holding the three steps, read by h5py.
    let out = d.path().join("ocean_out.h5");
    ok(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    let r = py(
        r#"
import sys, h5py, numpy as np
valid = np.load(sys.argv[2] + "/valid.npy")
with h5py.File(sys.argv[1]) as f:
    print(sorted(f.keys()))
    for t in range(3):
        ds = f[f"ocean_temp_t{t}"]
        err = float(np.abs(ds[()] - np.load(sys.argv[2] + f"/want{t}.npy"))[valid].max())
        print(ds.dtype, list(ds.attrs["spacing"].round(6)), list(ds.attrs["origin"]), float(ds.attrs["missing_value"]), err <= 1e-3 * (1 + 1e-5))
"#,
        &[s(&out), s(d.path())],
    );
    let l: Vec<&str> = r.lines().collect();
    assert_eq!(l[0], "['ocean_temp_t0', 'ocean_temp_t1', 'ocean_temp_t2']", "{r}");
    for line in &l[1..] {
        assert_eq!(*line, "float32 [np.float64(0.5), np.float64(0.1), np.float64(2.0)] [np.float64(10.0), np.float64(0.0), np.float64(-5.0)] -999.0 True", "{r}");
    }
    // One step by name.
    let one = d.path().join("one.idl");
    ok(&["pack", &format!("{}:temp[1]", s(&nc)), "--lossless", "-o", s(&one), "--quiet"]);
    assert_eq!(info_json(&one)["volumes"][0]["name"], "ocean_temp_t1");
}

#[test]
fn a_glob_over_hdf5_files_makes_a_series() {
    let d = tmp();
    py(
        r#"
import sys, h5py, numpy as np
for t in [1, 2, 10]:
    with h5py.File(f"{sys.argv[1]}/run{t}.h5", "w") as f:
        f.create_dataset("g/rho", data=np.full((4, 5, 6), float(t), np.float32))
"#,
        &[s(d.path())],
    );
    let idl = d.path().join("r.idl");
    ok(&["pack", &format!("{}/run*.h5:/g/rho", s(d.path())), "--lossless", "-o", s(&idl), "--quiet"]);
    let info = info_json(&idl);
    let got: Vec<(String, f64)> = info["volumes"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap().to_string(), v["value_range"][0].as_f64().unwrap())).collect();
    assert_eq!(got, [("run1_g_rho".to_string(), 1.0), ("run2_g_rho".into(), 2.0), ("run10_g_rho".into(), 10.0)], "natural order");
}

#[test]
fn hdf5_and_netcdf_errors_name_the_problem_and_leave_no_output() {
    let d = tmp();
    let dir = d.path();
    py(
        r#"
import sys, h5py, netCDF4, numpy as np
d = sys.argv[1]
z, y, x = np.mgrid[0:16, 0:16, 0:16].astype(np.float32)
a = np.sin(x / 3) * np.cos(y / 5) + z
with h5py.File(f"{d}/f.h5", "w") as f:
    f.create_dataset("vol", data=a)
    f.create_dataset("grp/other", data=a.astype(np.int32))
    f.create_dataset("plane", data=a[0])
    f.create_dataset("names", data=np.array([b"ab", b"cd"]))
    f.create_dataset("pairs", data=np.zeros((4, 4, 4), dtype=[("a", "<f4"), ("b", "<i4")]))
    f.create_dataset("fields4", data=np.stack([a, a]))
    big = f.create_dataset("big", data=np.stack([a] * 16), chunks=(1, 16, 16, 16), compression="gzip", maxshape=(None, 16, 16, 16))
with h5py.File(f"{d}/g.h5", "w") as f:
    ds = f.create_dataset("vol", data=np.random.default_rng(1).random((64, 64, 64)), chunks=(16, 64, 64), compression="gzip")
    print(ds.id.get_chunk_info(2).byte_offset, ds.id.get_chunk_info(2).size)
with netCDF4.Dataset(f"{d}/n.nc", "w") as f:
    for n in "zyx":
        f.createDimension(n, 16)
    f.createDimension("member", 2)
    f.createVariable("temp", "f4", ("z", "y", "x"))[:] = a
    f.createVariable("ens", "f4", ("member", "z", "y", "x"))[:] = np.stack([a, a])
    f.createVariable("label", str, ("x",))
"#,
        &[s(dir)],
    );
    let h5 = s(&dir.join("f.h5")).to_string();
    let nc = s(&dir.join("n.nc")).to_string();
    let out = dir.join("out.idl");
    let o = s(&out);
    let pack = |input: &str| fails(&["pack", input, "-o", o, "--quiet"]);

    // A missing dataset or variable lists the volumes there are.
    let e = pack(&format!("{h5}:/nope"));
    assert!(e.contains("no dataset '/nope'") && e.contains("/vol (16, 16, 16) f32: volume 16x16x16") && e.contains("/grp/other (16, 16, 16) i32"), "{e}");
    assert!(!e.contains("/plane ("), "only volumes are offered: {e}");
    let e = pack(&format!("{nc}:salt"));
    assert!(e.contains("no variable 'salt'") && e.contains("temp (z=16, y=16, x=16) f32"), "{e}");
    // A file with several volumes needs a name.
    let e = pack(&h5);
    assert!(e.contains("holds several volumes") && e.contains(":NAME"), "{e}");
    // Not 3-D.
    let e = pack(&format!("{h5}:/plane"));
    assert!(e.contains("'/plane' cannot be read as a volume: it is 2-D"), "{e}");
    let e = pack(&format!("{h5}:/fields4"));
    assert!(e.contains("4-D, and its first axis is not time"), "{e}");
    let e = pack(&format!("{nc}:ens"));
    assert!(e.contains("4-D, and its first axis is not time ('member' is neither unlimited nor named time)"), "{e}");
    // An unlimited first axis is a series; a step past its end is named.
    let e = pack(&format!("{h5}:/big[16]"));
    assert!(e.contains("has 16 time steps; step 16 is past the last"), "{e}");
    // Unsupported types.
    let e = pack(&format!("{h5}:/names"));
    assert!(e.contains("'/names' cannot be read as a volume") && e.contains("string"), "{e}");
    let e = pack(&format!("{h5}:/pairs"));
    assert!(e.contains("'/pairs' cannot be read as a volume: it is of compound type"), "{e}");
    let e = pack(&format!("{nc}:label"));
    assert!(e.contains("'label' cannot be read as a volume"), "{e}");

    // Corrupt files: truncated, garbage with the extension, a garbled
    // compressed chunk found only while reading (after the header checks).
    let bytes = std::fs::read(dir.join("f.h5")).unwrap();
    std::fs::write(dir.join("cut.h5"), &bytes[..bytes.len() / 3]).unwrap();
    let e = pack(&format!("{}:/vol", s(&dir.join("cut.h5"))));
    assert!(e.contains("cut.h5: cannot open as HDF5 (not an HDF5 file, or corrupt)"), "{e}");
    std::fs::write(dir.join("junk.nc"), vec![7u8; 4096]).unwrap();
    let e = pack(&format!("{}:temp", s(&dir.join("junk.nc"))));
    assert!(e.contains("junk.nc: cannot open as NetCDF"), "{e}");
    let e = fails(&["info", s(&dir.join("junk.nc"))]);
    assert!(e.contains("junk.nc: cannot open as NetCDF"), "{e}");
    let chunk = py("import sys, h5py\nc = h5py.File(sys.argv[1])['vol'].id.get_chunk_info(2)\nprint(c.byte_offset, c.size)", &[s(&dir.join("g.h5"))]);
    let (off, size): (usize, usize) = {
        let v: Vec<usize> = chunk.split_whitespace().map(|x| x.parse().unwrap()).collect();
        (v[0], v[1])
    };
    let mut g = std::fs::read(dir.join("g.h5")).unwrap();
    for b in &mut g[off + size / 4..off + size / 2] {
        *b ^= 0x5a;
    }
    std::fs::write(dir.join("g.h5"), &g).unwrap();
    let e = pack(&format!("{}:/vol", s(&dir.join("g.h5"))));
    assert!(e.contains("g.h5: reading '/vol' (planes"), "a corrupt chunk is named: {e}");

    // None of these left an output or a temporary behind.
    assert!(listing(dir).iter().all(|n| !n.contains("out.idl")), "{:?}", listing(dir));

    // unpack to HDF5: an existing file is kept without --force; nothing else is written.
    let idl = dir.join("ok.idl");
    ok(&["pack", &format!("{h5}:/vol"), "--lossless", "-o", s(&idl), "--quiet"]);
    let target = dir.join("keep.h5");
    std::fs::write(&target, b"precious").unwrap();
    let e = fails(&["unpack", s(&idl), "-o", s(&target), "--quiet"]);
    assert!(e.contains("exists (use --force to overwrite)"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(listing(dir).iter().all(|n| !n.contains(".tmp-")), "{:?}", listing(dir));
}
