//! Packing across MPI ranks with a real `mpirun` (Open MPI): the container must be
//! byte-identical to a single process's, and failures must name the rank and leave
//! nothing behind.

use super::common::*;
use idlat::volume::Region;
use std::path::Path;
use std::process::{Command, Output};

/// `mpirun -np N BIN ARGS` (oversubscribed: CI has 2 cores; as root, as CI runs).
fn mpirun(n: usize, bin: &Path, args: &[&str]) -> Output {
    Command::new("mpirun")
        .args(["--oversubscribe", "-np", &n.to_string()])
        .arg(bin)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun (openmpi-bin; tools/setup.sh installs it)")
}

fn mpi_ok(n: usize, bin: &Path, args: &[&str]) {
    let out = mpirun(n, bin, args);
    assert!(out.status.success(), "mpirun -np {n} idlat {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Packs `inputs` with `opts` once in one process and under mpirun at each of
/// `ranks`, and requires identical bytes.
fn same_bytes(dir: &Path, bin: &Path, inputs: &[&str], opts: &[&str], ranks: &[usize]) {
    let one = dir.join("one.idl");
    let mut args: Vec<&str> = vec!["pack"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-q", "--force", "-o"]);
    let mut single = args.clone();
    single.push(s(&one));
    let st = Command::new(bin).args(&single).output().expect("run idlat");
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let want = std::fs::read(&one).unwrap();
    for &n in ranks {
        let many = dir.join(format!("ranks{n}.idl"));
        let mut a = args.clone();
        a.push(s(&many));
        mpi_ok(n, bin, &a);
        let got = std::fs::read(&many).unwrap();
        assert!(got == want, "{opts:?} on {n} ranks: {} bytes differ from the single-process pack's {} (first at {:?})", got.len(), want.len(), got.iter().zip(&want).position(|(a, b)| a != b));
        // And it reads back: verify checks every CRC.
        ok(&["verify", s(&many)]);
    }
}

#[test]
fn a_time_series_packs_byte_identically_across_ranks() {
    let d = tmp();
    let steps: Vec<String> = (0..3).map(|t| s(&sample(d.path(), "vortex", "48x40x32", t)).to_string()).collect();
    let inputs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let dims = ["--dims", "48x40x32"];
    // Volumes over ranks: 2 ranks (1 + 2 volumes) and 3 (one each).
    same_bytes(d.path(), &bin(), &inputs, &[&dims[..], &["--target-ratio", "80", "--importance", "iso:6"]].concat(), &[2, 3]);
    // The README's binary: the torch-free front end runs MPI packs itself.
    same_bytes(d.path(), &torch_free_bin(), &inputs, &[&dims[..], &["--step", "0.02"]].concat(), &[2]);
}

#[test]
fn one_volume_packs_byte_identically_split_by_tiles() {
    let d = tmp();
    let v = sample(d.path(), "nyx", "96x80x72", 1);
    let dims = ["--dims", "96x80x72"];
    for opts in [
        // Shared rate search (proxy, estimates), tiles of unequal sizes.
        &["--target-ratio", "120", "--tile", "32", "--importance", "value:>10"][..],
        // Error bounds: the search codes for real, residual streams, graded bounds.
        &["--target-ratio", "40", "--tile", "40", "--error-bound-rel", "0.005", "--bound-graded"][..],
        // A fixed step, and a lossless pack.
        &["--step", "0.01", "--tile", "24"][..],
        &["--lossless"][..],
    ] {
        same_bytes(d.path(), &bin(), &[s(&v)], &[&dims[..], opts].concat(), &[2, 3]);
    }
    // Teams: 4 ranks, 2 per volume (two volumes), the tiles of each shared in its team.
    let w = sample(d.path(), "nyx", "96x80x72", 2);
    same_bytes(d.path(), &bin(), &[s(&v), s(&w)], &[&dims[..], &["--target-ratio", "90", "--tile", "32", "--ranks-per-volume", "2"]].concat(), &[4]);
    // More ranks than tiles: some ranks code nothing.
    same_bytes(d.path(), &bin(), &[s(&v)], &[&dims[..], &["--target-ratio", "100", "--tile", "64"]].concat(), &[3]);
}

#[test]
fn a_failing_rank_is_named_and_leaves_no_output() {
    let d = tmp();
    let a = sample(d.path(), "vortex", "32x32x32", 1);
    // The second volume is short: only the rank that reads it fails.
    let short = d.path().join("short.raw");
    std::fs::write(&short, vec![0u8; 1000]).unwrap();
    let out = d.path().join("o.idl");
    let r = mpirun(2, &bin(), &["pack", s(&a), s(&short), "--dims", "32x32x32", "-o", s(&out)]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("rank 1") && err.contains("short.raw"), "{err}");
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.contains("o.idl")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // In a team of ranks sharing a volume (ranks 2 and 3 on the short one): said once, naming rank 2.
    let r = mpirun(4, &bin(), &["pack", s(&a), s(&short), "--dims", "32x32x32", "--ranks-per-volume", "2", "-o", s(&out)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.matches("rank 2: ").count() == 1 && err.contains("short.raw") && !err.contains("rank 2: rank"), "{err}");
    assert!(!out.exists());
    let r = mpirun(4, &bin(), &["pack", s(&a), "--dims", "32x32x32", "--ranks-per-volume", "3", "-o", s(&out)]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("--ranks-per-volume 3 must divide the 4 ranks"));
    // A quality target cannot be shared over tiles: said before anything is written.
    let r = mpirun(2, &bin(), &["pack", s(&a), "--dims", "32x32x32", "--target-psnr", "40", "-o", s(&out)]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("quality target"), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!out.exists());
    // Commands that do not share work refuse to run N times over.
    let r = mpirun(2, &bin(), &["info", s(&a)]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("only `idlat pack`, `unpack` and `eval` run across ranks"));
}

/// A rank reads only the planes of its tiles where the input and the map allow (a
/// streaming pack its tiles' boxes): those must be exactly what a whole read gives
/// (raw bricks at offsets, HDF5 by hyperslab), and the packs stay byte-identical.
#[test]
fn regions_read_alone_equal_the_whole_read_and_pack_the_same() {
    let d = tmp();
    let raw = sample(d.path(), "nyx", "40x36x50", 2);
    let h5 = d.path().join("f.h5");
    py(
        "import sys, h5py, numpy as np\nv = np.fromfile(sys.argv[1], dtype='<f4').reshape(50, 36, 40)\nwith h5py.File(sys.argv[2], 'w') as f:\n    f.create_dataset('rho', data=v.astype('>f8'), chunks=(7, 36, 40), compression='gzip')\n",
        &[s(&raw), s(&h5)],
    );
    let h5ref = format!("{}:/rho", s(&h5));
    let opts = idlat::io::ReadOptions { dims: Some([40, 36, 50]), nonfinite: idlat::io::NonFinite::Refuse, ..Default::default() };
    for input in [s(&raw), h5ref.as_str()] {
        let path = Path::new(input);
        let whole = idlat::io::read_volume(path, &opts).unwrap();
        // Slabs (a rank's planes) and boxes (a streaming pack's tiles).
        let slab = |z: std::ops::Range<usize>| Region::planes([40, 36, 50], z);
        for r in [
            slab(0..0),
            slab(0..50),
            slab(3..17),
            slab(49..50),
            Region { origin: [5, 7, 9], size: [16, 16, 16] },
            Region { origin: [0, 20, 34], size: [40, 16, 16] },
            Region { origin: [39, 0, 0], size: [1, 36, 50] },
        ] {
            let (info, got, samples) = idlat::io::read_region(path, &opts, |_| r).unwrap().expect("raw and HDF5 read by regions");
            assert_eq!(info.dims, whole.info.dims, "{input}");
            assert_eq!(got, r);
            assert_eq!(info.spacing, whole.info.spacing);
            let mut want = vec![0f32; r.len()];
            idlat::format::grid::gather(&whole.data, [40, 36, 50], r.origin, r.size, &mut want);
            assert!(samples.iter().map(|v| v.to_bits()).eq(want.iter().map(|v| v.to_bits())), "{input} region {r:?}");
        }
        for r in [slab(40..51), Region { origin: [30, 0, 0], size: [11, 1, 1] }] {
            assert!(idlat::io::read_region(path, &opts, |_| r).is_err(), "{r:?}: a region past the end is an error");
        }
    }
    // Pointwise maps in voxel and world coordinates, on slabs of 2 and 3 ranks.
    let dims = ["--dims", "40x36x50"];
    // Then maps that need the planes around a slab and the whole volume's maxima and range.
    for imp in ["value:>10", "max(box:2,3,20:30,30,31,sphere:20,18,40,r=9)", "mix(0.5*grad,0.3*var:w=3,0.2*entropy:w=8)"] {
        same_bytes(d.path(), &bin(), &[s(&raw)], &[&dims[..], &["--target-ratio", "50", "--tile", "16", "--importance", imp]].concat(), &[2, 3]);
    }
    same_bytes(d.path(), &bin(), &[&h5ref], &["--step", "0.01", "--tile", "16", "--importance", "value:>10"], &[3]);
    // A map that needs the whole volume (a distance field): every rank reads it whole, same bytes.
    same_bytes(d.path(), &bin(), &[s(&raw)], &[&dims[..], &["--target-ratio", "50", "--tile", "16", "--importance", "iso:10"]].concat(), &[2]);
}

/// `unpack` across ranks writes the bytes one process writes: whole volumes per
/// rank for a series, layers of tiles of one volume into one raw file otherwise.
#[test]
fn unpack_across_ranks_writes_the_same_files() {
    let d = tmp();
    let v = sample(d.path(), "nyx", "64x48x70", 3);
    let one = d.path().join("one.idl");
    ok(&["pack", s(&v), "--dims", "64x48x70", "--tile", "16", "--target-ratio", "40", "-o", s(&one), "-q"]);
    let (_, series) = series(d.path(), &["--step", "0.01"]);
    for (idl, out, extra) in [(&one, "n.raw", &["--dtype", "u16"][..]), (&one, "n.nhdr", &[][..]), (&series, "dir", &[][..])] {
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        for dir in [&a, &b] {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir(dir).unwrap();
        }
        let target = |dir: &Path| if out == "dir" { dir.join("all") } else { dir.join(out) };
        let (ta, tb) = (target(&a), target(&b));
        let mut single = vec!["unpack", s(idl), "-o", s(&ta), "-q"];
        single.extend_from_slice(extra);
        ok(&single);
        let mut many = vec!["unpack", s(idl), "-o", s(&tb), "-q"];
        many.extend_from_slice(extra);
        mpi_ok(3, &torch_free_bin(), &many);
        let files = |dir: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = walk(dir);
            v.sort();
            v
        };
        let (fa, fb) = (files(&a), files(&b));
        assert!(!fa.is_empty());
        assert_eq!(fa.iter().map(|f| &f.0).collect::<Vec<_>>(), fb.iter().map(|f| &f.0).collect::<Vec<_>>(), "{out}: same file names");
        assert!(fa == fb, "{out}: the files differ");
    }
    // A shared volume goes to raw data with a header; one HDF5 file is one process's.
    let r = mpirun(2, &bin(), &["unpack", s(&one), "-o", s(&d.path().join("x.npy"))]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("--format raw or nhdr"));
    let r = mpirun(2, &bin(), &["unpack", s(&series), "-o", s(&d.path().join("x.h5"))]);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("one HDF5 file"));
}

/// Every file under `dir` (relative name, bytes).
fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p).into_iter().map(|(n, b)| (format!("{}/{n}", p.file_name().unwrap().to_string_lossy()), b)));
        } else {
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// `eval` across ranks prints what one process prints (volumes split among ranks,
/// gathered on rank 0, overall sums merged in volume order); decode times aside.
#[test]
fn eval_across_ranks_prints_the_same_figures() {
    let d = tmp();
    let (steps, idl) = series(d.path(), &["--target-ratio", "30"]);
    let mut e = vec!["eval", s(&idl), "--dims", "24x24x24", "--importance", "iso:6", "--json", "--reference"];
    e.extend(steps.iter().map(String::as_str));
    let strip = |out: &str| {
        let mut v: serde_json::Value = serde_json::from_str(out).unwrap();
        v["volumes"].as_array_mut().unwrap().iter_mut().for_each(|r| r["decode_seconds"] = serde_json::Value::Null);
        v
    };
    let want = strip(&ok(&e));
    let r = mpirun(2, &bin(), &e);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(strip(&String::from_utf8_lossy(&r.stdout)), want);
}

/// Three 24³ vortex steps in `dir`, packed by one process with `opts`: their paths and the container.
fn series(dir: &Path, opts: &[&str]) -> (Vec<String>, std::path::PathBuf) {
    let steps: Vec<String> = (0..3).map(|t| s(&sample(dir, "vortex", "24x24x24", t)).to_string()).collect();
    let idl = dir.join("series.idl");
    let mut a = vec!["pack"];
    a.extend(steps.iter().map(String::as_str));
    a.extend(["--dims", "24x24x24", "-o", s(&idl), "-q"]);
    a.extend_from_slice(opts);
    ok(&a);
    (steps, idl)
}
