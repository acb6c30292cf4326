//! Hostile inputs and environments (issue 22): crafted containers with valid
//! CRCs, special files as outputs, full disks, signals, odd values and names.
//! Each test is named after the defect it guards against.

use super::common::*;
use idlat::format::layout::{Section, Trailer, TRAILER_LEN};
use idlat::format::{block, BlockId, BlockKind, Container, ContainerWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs idlat with a deadline (a regression that blocks, e.g. opening a FIFO
/// for writing, fails the test instead of hanging it).
fn run_within(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(bin()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run idlat");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("idlat {args:?} still running after {secs} s (stderr: {})", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs idlat under a file-size limit of `kib` KiB with SIGXFSZ ignored, so
/// writes past it fail with EFBIG the way a full disk fails them with ENOSPC.
fn run_disk_limited(kib: u64, args: &[&str]) -> Output {
    let script = format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"");
    Command::new("bash").arg("-c").arg(script).arg(bin()).args(args).output().expect("run idlat under bash")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Files in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn temps_in(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.contains(".tmp-")).collect()
}

fn write_f32(path: &Path, v: &[f32]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// Deterministic noise (incompressible, so lossless packs are slow and big).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

fn is_fifo(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

/// A one-volume container of constant blocks written by the library writer.
fn constant_container(path: &Path, name: &str, dims: [usize; 3], edge: usize) {
    let mut w = ContainerWriter::create(path, true).unwrap();
    let v = w.add_volume(volume_meta(name, dims, edge)).unwrap();
    for b in 0..idlat::format::BlockGrid::cubic(dims, edge).len() {
        w.write_block(v, BlockId(b as u64), BlockKind::Constant, &1.5f32.to_le_bytes()).unwrap();
    }
    w.finish().unwrap();
}

/// Copies a container with its metadata JSON changed by `edit`, every CRC and
/// offset recomputed, so only the rule the edit breaks can fail.
fn rewrite_meta(src: &Path, dst: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let b = std::fs::read(src).unwrap();
    let t = Trailer::parse(&b[b.len() - TRAILER_LEN as usize..]).unwrap();
    let at = |s: Section| &b[s.offset as usize..(s.offset + s.len) as usize];
    let mut j: serde_json::Value = serde_json::from_slice(&zstd::decode_all(at(t.meta)).unwrap()).unwrap();
    edit(&mut j);
    let json = serde_json::to_vec(&j).unwrap();
    let z = zstd::bulk::compress(&json, 3).unwrap();
    let index = at(t.index).to_vec();
    // Writers put payloads and the model before the metadata: keep those bytes.
    let mut out = b[..t.meta.offset as usize].to_vec();
    let meta = Section { offset: out.len() as u64, len: z.len() as u64, crc: crc32fast::hash(&z) };
    out.extend_from_slice(&z);
    let idx = Section { offset: out.len() as u64, len: index.len() as u64, crc: crc32fast::hash(&index) };
    out.extend_from_slice(&index);
    let minor = u16::from_le_bytes([b[10], b[11]]);
    out.extend_from_slice(&Trailer { meta, meta_raw_len: json.len() as u64, index: idx, model: t.model }.to_bytes(minor));
    std::fs::write(dst, out).unwrap();
}

fn renamed(src: &Path, dst: &Path, name: &str) {
    rewrite_meta(src, dst, |j| j["volumes"][0]["info"]["name"] = serde_json::json!(name));
}

// ------------------------------------------------------------ 1. volume names

#[test]
fn unpack_refuses_traversal_names() {
    let d = tmp();
    let root = d.path().join("a/b");
    std::fs::create_dir_all(&root).unwrap();
    let good = d.path().join("good.idl");
    constant_container(&good, "victim", [4, 4, 4], 4);
    let abs_target = d.path().join("abs/victim");
    std::fs::create_dir_all(d.path().join("abs")).unwrap();
    for (i, name) in ["../../evil", s(&abs_target), "..", ".idlat-stats", "a/b", &"n".repeat(251)].iter().enumerate() {
        let bad = d.path().join(format!("bad{i}.idl"));
        renamed(&good, &bad, name);
        let out = root.join("out");
        let o = run(&["unpack", s(&bad), "-o", s(&out), "--force", "--quiet"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {t}");
        assert!(t.contains("volume name") && t.contains("volume 0"), "{name}: the error names the volume and the rule: {t}");
        assert!(!out.exists(), "{name}: nothing written");
        // Nothing written outside the output directory either.
        assert!(!d.path().join("a/evil.raw").exists() && !d.path().join("abs/victim.raw").exists() && !d.path().join("a/b/..raw").exists(), "{name}");
        assert_eq!(listing(&d.path().join("abs")), Vec::<String>::new(), "{name}");
        // verify calls it corrupt (exit 1) and info refuses it (exit 2).
        let v = run(&["verify", s(&bad)]);
        assert_eq!(v.status.code(), Some(1), "{name}: {}", text(&v));
        assert!(text(&v).contains("CORRUPT") && text(&v).contains("volume name"), "{}", text(&v));
        let inf = run(&["info", s(&bad)]);
        assert_eq!(inf.status.code(), Some(2), "{name}: {}", text(&inf));
        assert!(text(&inf).contains("volume name"), "{}", text(&inf));
    }
    // Duplicate names are refused as well.
    let two = d.path().join("two.idl");
    let mut w = ContainerWriter::create(&two, true).unwrap();
    for n in ["p", "q"] {
        let v = w.add_volume(volume_meta(n, [2, 2, 2], 2)).unwrap();
        w.write_block(v, BlockId(0), BlockKind::Constant, &0f32.to_le_bytes()).unwrap();
    }
    w.finish().unwrap();
    let dup = d.path().join("dup.idl");
    rewrite_meta(&two, &dup, |j| j["volumes"][1]["info"]["name"] = serde_json::json!("p"));
    let e = Container::open(&dup).err().expect("duplicate names rejected").to_string();
    assert!(e.contains("unique"), "{e}");
    // The untouched container unpacks, so the errors above are the names'.
    ok(&["unpack", s(&good), "-o", s(&root.join("fine")), "--quiet"]);
    assert!(root.join("fine/victim.raw").exists());
}

#[test]
fn writer_refuses_names_the_reader_rejects() {
    let d = tmp();
    for name in ["../x", "/abs", ".hidden", "", "a b"] {
        let mut w = ContainerWriter::create(&d.path().join("w.idl"), true).unwrap();
        let e = w.add_volume(volume_meta(name, [2, 2, 2], 2)).unwrap_err().to_string();
        assert!(e.contains("volume name"), "{name:?}: {e}");
    }
    let mut w = ContainerWriter::create(&d.path().join("w.idl"), true).unwrap();
    w.add_volume(volume_meta("same", [2, 2, 2], 2)).unwrap();
    assert!(w.add_volume(volume_meta("same", [2, 2, 2], 2)).is_err(), "duplicate name");
    drop(w);
    assert_eq!(temps_in(d.path()), Vec::<String>::new(), "an abandoned writer leaves no temporary");
}

// ------------------------------------------------- 2. special files as outputs

#[test]
fn pack_refuses_fifo_output_even_with_force() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(8 * 8 * 8, 1));
    let fifo = d.path().join("out.idl");
    mkfifo(&fifo);
    let o = run_within(&["pack", s(&raw), "--dims", "8x8x8", "--lossless", "-o", s(&fifo), "--force", "--quiet"], 120);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a regular file") && text(&o).contains("FIFO"), "{}", text(&o));
    assert!(is_fifo(&fifo), "the FIFO is still a FIFO");
    // A directory in the output's place is refused the same way (it used to leave a temporary).
    let dir = d.path().join("dir.idl");
    std::fs::create_dir(&dir).unwrap();
    let o = run_within(&["pack", s(&raw), "--dims", "8x8x8", "--lossless", "-o", s(&dir), "--force", "--quiet"], 120);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("directory"), "{}", text(&o));
    assert!(dir.is_dir());
    assert_eq!(temps_in(d.path()), Vec::<String>::new());
}

#[test]
fn unpack_sample_importance_refuse_fifo_outputs_even_with_force() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(8 * 8 * 8, 2));
    let idl = d.path().join("v.idl");
    ok(&["pack", s(&raw), "--dims", "8x8x8", "--lossless", "-o", s(&idl), "--quiet"]);
    let fifo_raw = d.path().join("f.raw");
    mkfifo(&fifo_raw);
    let fifo_mhd = d.path().join("g.mhd");
    mkfifo(&fifo_mhd);
    let g_raw = d.path().join("g.raw");
    let cases: Vec<(Vec<&str>, &Path)> = vec![
        (vec!["unpack", s(&idl), "-o", s(&fifo_raw), "--force", "--quiet"], &fifo_raw),
        (vec!["unpack", s(&idl), "-o", s(&g_raw), "--force", "--quiet"], &fifo_mhd),
        (vec!["sample", "vortex", "--dims", "8x8x8", "-o", s(&fifo_raw), "--force"], &fifo_raw),
        (vec!["sample", "vortex", "--dims", "8x8x8", "-o", s(&g_raw), "--force"], &fifo_mhd),
        (vec!["importance", s(&raw), "--dims", "8x8x8", "--importance", "uniform:1", "-o", s(&fifo_raw), "--force"], &fifo_raw),
    ];
    for (args, fifo) in cases {
        let o = run_within(&args, 120);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("not a regular file"), "{args:?}: {}", text(&o));
        assert!(is_fifo(fifo), "{args:?}");
    }
    // Nothing else was written: the data half of a pair is not left behind either.
    assert_eq!(listing(d.path()), ["f.raw", "g.mhd", "v.idl", "v.raw"]);
    // A directory where unpack's file goes is refused the same way.
    let dir = d.path().join("h.npy");
    std::fs::create_dir(&dir).unwrap();
    let o = run_within(&["unpack", s(&idl), "-o", s(&dir), "--force", "--quiet"], 120);
    assert!(text(&o).contains("directory"), "{}", text(&o));
}

// ---------------------------------------------------- 3. declared sizes

#[test]
fn huge_declared_dims_give_a_clear_error_not_an_abort() {
    let d = tmp();
    // 65536 x 65536 x 16 (256 GiB decoded) in 65,536 constant blocks of edge 256.
    let idl = d.path().join("huge.idl");
    constant_container(&idl, "huge", [65536, 65536, 16], 256);
    assert!(std::fs::metadata(&idl).unwrap().len() < 4 << 20);
    for args in [vec!["unpack", s(&idl), "-o", s(&d.path().join("out.raw")), "--quiet"], vec!["verify", s(&idl), "--decode"]] {
        let o = run_within(&args, 120);
        assert_eq!(o.status.code(), Some(2), "{args:?} must fail cleanly (not abort): {}", text(&o));
        assert!(text(&o).contains("decodes to 256.0 GiB") && text(&o).contains("memory available"), "{args:?}: {}", text(&o));
    }
    assert!(!d.path().join("out.raw").exists());
    // Without decoding, the container is fine: its metadata is within the spec.
    assert!(ok(&["verify", s(&idl)]).contains("OK"));
}

#[test]
fn block_edge_beyond_the_cap_is_rejected_before_allocating() {
    let d = tmp();
    let small = d.path().join("s.idl");
    constant_container(&small, "c", [8, 8, 8], 8);
    // One 4-byte constant block claiming 1024^3 voxels (4 GiB decoded).
    let bad = d.path().join("edge.idl");
    rewrite_meta(&small, &bad, |j| {
        j["volumes"][0]["info"]["dims"] = serde_json::json!([1024, 1024, 1024]);
        j["volumes"][0]["block"] = serde_json::json!([1024, 1024, 1024]);
    });
    let e = Container::open(&bad).err().expect("rejected").to_string();
    assert!(e.contains("block size [1024, 1024, 1024] outside 1..=256"), "{e}");
    for args in [vec!["unpack", s(&bad), "-o", s(&d.path().join("o.raw"))], vec!["verify", s(&bad), "--decode"], vec!["info", s(&bad)]] {
        let o = run_within(&args, 60);
        assert!(o.status.code().is_some_and(|c| c == 1 || c == 2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("outside 1..=256"), "{args:?}: {}", text(&o));
    }
    // A block count that disagrees with the index is rejected too.
    let count = d.path().join("count.idl");
    rewrite_meta(&small, &count, |j| j["volumes"][0]["info"]["dims"] = serde_json::json!([16, 8, 8]));
    assert!(Container::open(&count).err().expect("rejected").to_string().contains("does not match its grid"));
}

#[test]
fn container_from_bytes_validates_like_open() {
    let d = tmp();
    let p = d.path().join("c.idl");
    constant_container(&p, "c", [5, 3, 2], 2);
    let bytes = std::fs::read(&p).unwrap();
    let c = Container::from_bytes(bytes.clone()).unwrap();
    let f = Container::open(&p).unwrap();
    assert_eq!(c.meta(), f.meta());
    assert_eq!(c.block(idlat::format::VolumeId(0), BlockId(3)).unwrap().payload, &1.5f32.to_le_bytes());
    // Hostile metadata in memory gives the same errors as on disk.
    let bad = d.path().join("bad.idl");
    renamed(&p, &bad, "../../x");
    let e = Container::from_bytes(std::fs::read(&bad).unwrap()).err().expect("rejected").to_string();
    assert!(e.contains("volume name"), "{e}");
    assert!(Container::from_bytes(bytes[..bytes.len() - 1].to_vec()).is_err());
    assert!(Container::from_bytes(Vec::new()).is_err());
}

// ------------------------------------------------------------ 10. NaN and Inf

#[test]
fn lossless_pack_keeps_nan_and_inf_bit_exactly() {
    let d = tmp();
    let dims = [40, 9, 7];
    let n = dims.iter().product::<usize>();
    // All NaN (with distinct payloads and signs), and a mix with ±Inf.
    let all_nan: Vec<f32> = (0..n).map(|i| f32::from_bits(0x7fc0_0000 | (i as u32 & 0x3f_ffff) | if i % 2 == 1 { 0x8000_0000 } else { 0 })).collect();
    let mut mixed = noise(n, 3);
    for (i, v) in mixed.iter_mut().enumerate() {
        match i % 11 {
            0 => *v = f32::NAN,
            3 => *v = f32::INFINITY,
            5 => *v = f32::NEG_INFINITY,
            7 => *v = f32::from_bits(0x7f80_0001), // a signalling NaN
            _ => {}
        }
    }
    for (label, data) in [("all_nan", &all_nan), ("mixed", &mixed)] {
        let raw = d.path().join(format!("{label}.raw"));
        write_f32(&raw, data);
        let idl = d.path().join(format!("{label}.idl"));
        ok(&["pack", s(&raw), "--dims", "40x9x7", "--lossless", "-o", s(&idl), "--quiet"]);
        let out = d.path().join(format!("{label}_out.raw"));
        ok(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
        let got = std::fs::read(&out).unwrap();
        let want = std::fs::read(&raw).unwrap();
        assert!(got == want, "{label}: unpacked bytes differ from the input (first at byte {:?})", got.iter().zip(&want).position(|(a, b)| a != b));
    }
}

#[test]
fn lossy_pack_refuses_nan_with_a_clear_message() {
    let d = tmp();
    let mut v = noise(16 * 16 * 16, 4);
    v[16 * 16 + 3] = f32::NAN;
    v[100 + 16 * 16] = f32::INFINITY;
    v[4000] = f32::NAN;
    let raw = d.path().join("v.raw");
    write_f32(&raw, &v);
    let idl = d.path().join("v.idl");
    let o = run(&["pack", s(&raw), "--dims", "16x16x16", "-o", s(&idl), "--quiet"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("3 non-finite values") && t.contains("at voxel (3, 0, 1)") && t.contains("--missing") && t.contains("--lossless"), "{t}");
    assert!(!idl.exists());
    assert_eq!(temps_in(d.path()), Vec::<String>::new());
    // With --missing they are missing voxels, the existing handling: the pack succeeds.
    ok(&["pack", s(&raw), "--dims", "16x16x16", "--missing", "1e35", "-o", s(&idl), "--quiet"]);
    let out = d.path().join("o.raw");
    ok(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    assert!(read_f32(&out).iter().all(|x| x.is_finite()));
}

// --------------------------------------------------- 11. f32-overflowing range

#[test]
fn volume_whose_range_overflows_f32_packs_losslessly_and_lossy_refuses() {
    let d = tmp();
    let n = 40 * 40 * 40;
    let v: Vec<f32> = noise(n, 5).iter().map(|x| (x * 2.0 - 1.0) * 3e38).collect();
    assert!((v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min)).is_infinite(), "the span overflows f32");
    let raw = d.path().join("big.raw");
    write_f32(&raw, &v);
    let idl = d.path().join("big.idl");
    ok(&["pack", s(&raw), "--dims", "40x40x40", "--lossless", "-o", s(&idl), "--quiet"]);
    let out = d.path().join("out.raw");
    ok(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&raw).unwrap(), "lossless is exact");
    // Lossy: a clear refusal, not 8 constant blocks at 50% error with verify OK.
    let lossy = d.path().join("lossy.idl");
    let o = run(&["pack", s(&raw), "--dims", "40x40x40", "-o", s(&lossy), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("wider than f32") && text(&o).contains("--lossless"), "{}", text(&o));
    assert!(!lossy.exists());
}

#[test]
fn normalisation_of_an_f32_overflowing_range_is_finite() {
    let n = idlat::codec::blocks::Norm::from_range(-3e38, 3e38);
    assert!(n.scale.is_finite() && n.scale > 0.0 && n.offset == -3e38f32 as f64);
    assert_eq!(n.forward(3e38), 1.0);
    assert_eq!(n.forward(-3e38), 0.0);
    assert_eq!(n.inverse(1.0), 3e38);
    assert!(n.inverse(0.5).abs() < 1e30, "the middle of the range maps back near 0");
}

// ----------------------------------------------------------- 13. temporaries

#[test]
fn pack_interrupted_by_sigterm_or_sigint_leaves_no_temp_file() {
    let d = tmp();
    let raw = d.path().join("big.raw");
    // 64 MB of noise: zstd takes seconds over it, long enough to interrupt.
    write_f32(&raw, &noise(256 * 256 * 256, 6));
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let idl = d.path().join("out.idl");
        let mut child = Command::new(bin()).args(["pack", s(&raw), "--dims", "256x256x256", "--lossless", "-o", s(&idl), "--quiet"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let tmp_path = d.path().join(format!(".out.idl.tmp-{}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !tmp_path.exists() {
            assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "pack never wrote its temporary");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signalling our own child process by its PID.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(code), "signal {sig}: {st:?}");
        assert!(!idl.exists(), "no output");
        assert_eq!(temps_in(d.path()), Vec::<String>::new(), "signal {sig}: the temporary is removed");
    }
}

#[test]
fn stale_temp_of_a_killed_pack_is_removed_by_the_next_pack() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(8 * 8 * 8, 7));
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let stale = d.path().join(format!(".out.idl.tmp-{pid}"));
    std::fs::write(&stale, b"partial container of a SIGKILLed run").unwrap();
    // A temporary of a live process (this test) is not touched.
    let live = d.path().join(format!(".out.idl.tmp-{}", std::process::id()));
    std::fs::write(&live, b"in use").unwrap();
    ok(&["pack", s(&raw), "--dims", "8x8x8", "--lossless", "-o", s(&d.path().join("out.idl")), "--quiet"]);
    assert!(!stale.exists(), "stale temporary removed");
    assert!(live.exists(), "a live process's temporary is kept");
}

#[test]
fn pack_on_a_full_disk_leaves_no_temp_file() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    // 512 KB of noise: the whole container fits the writer's 1 MiB buffer, so
    // the write fails in finish() (which used to skip the cleanup).
    write_f32(&raw, &noise(64 * 64 * 32, 8));
    let idl = d.path().join("out.idl");
    let o = run_disk_limited(200, &["pack", s(&raw), "--dims", "64x64x32", "--lossless", "-o", s(&idl), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("too large") || text(&o).contains("File too large"), "{}", text(&o));
    assert!(!idl.exists());
    assert_eq!(temps_in(d.path()), Vec::<String>::new());
    // The same with a larger input, failing while blocks stream out.
    let big = d.path().join("big.raw");
    write_f32(&big, &noise(128 * 128 * 64, 9));
    let o = run_disk_limited(2000, &["pack", s(&big), "--dims", "128x128x64", "--lossless", "-o", s(&idl), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(temps_in(d.path()), Vec::<String>::new());
}

// ------------------------------------------------------- 14. atomic outputs

#[test]
fn unpack_sample_importance_on_a_full_disk_leave_no_partial_output() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(64 * 64 * 64, 10));
    let idl = d.path().join("v.idl");
    ok(&["pack", s(&raw), "--dims", "64x64x64", "--lossless", "-o", s(&idl), "--quiet"]);
    let before = listing(d.path());
    // The limit is per file (RLIMIT_FSIZE): 1 MiB volumes against 600 KiB.
    for args in [
        vec!["unpack", s(&idl), "-o", s(&d.path().join("u.raw")), "--quiet"],
        vec!["unpack", s(&idl), "-o", s(&d.path().join("u.nhdr")), "--quiet"],
        vec!["sample", "vortex", "--dims", "64x64x64", "-o", s(&d.path().join("s.raw"))],
        vec!["sample", "vortex", "--dims", "64x64x64", "--steps", "2", "-o", s(&d.path().join("t.raw"))],
        vec!["importance", s(&raw), "--dims", "64x64x64", "--importance", "uniform:1", "-o", s(&d.path().join("i.raw"))],
    ] {
        let o = run_disk_limited(600, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert_eq!(listing(d.path()), before, "{args:?}: no partial output and no temporary");
        // A rerun with room succeeds (it used to refuse: the partial file "exists").
        ok(&args);
        for f in listing(d.path()) {
            if !before.contains(&f) {
                std::fs::remove_file(d.path().join(f)).unwrap();
            }
        }
    }
}

#[test]
fn multi_volume_unpack_with_one_corrupt_volume_writes_nothing() {
    let d = tmp();
    let raws: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("v{i}.raw"))).collect();
    for (i, r) in raws.iter().enumerate() {
        write_f32(r, &noise(40 * 40 * 40, 20 + i as u64));
    }
    let idl = d.path().join("m.idl");
    let mut args = vec!["pack"];
    args.extend(raws.iter().map(|p| s(p)));
    args.extend(["--dims", "40x40x40", "--lossless", "-o", s(&idl), "--quiet"]);
    ok(&args);
    // One byte of a payload of the last volume (volumes are written in order).
    let c = Container::open(&idl).unwrap();
    let e = c.entry(idlat::format::VolumeId(2), BlockId(1)).unwrap();
    drop(c);
    let mut b = std::fs::read(&idl).unwrap();
    b[e.offset as usize + e.len as usize / 2] ^= 0x40;
    std::fs::write(&idl, b).unwrap();
    let out = d.path().join("out");
    let o = run(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("checksum mismatch in block 1 of volume 2") && text(&o).contains("v2"), "{}", text(&o));
    assert!(!out.exists() || listing(&out).is_empty(), "nothing written: {:?}", listing(&out));
    // Into an existing directory: still nothing, and no temporaries.
    std::fs::create_dir_all(&out).unwrap();
    let o = run(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(listing(&out), Vec::<String>::new());
    // Lossless blocks whose payload decodes wrong (CRC recomputed) fail at
    // decode time, after earlier volumes were decoded: still nothing written.
    let idl2 = d.path().join("m2.idl");
    ok(&["pack", s(&raws[0]), s(&raws[1]), "--dims", "40x40x40", "--lossless", "-o", s(&idl2), "--quiet"]);
    let c = Container::open(&idl2).unwrap();
    let e = c.entry(idlat::format::VolumeId(1), BlockId(0)).unwrap();
    drop(c);
    let mut b = std::fs::read(&idl2).unwrap();
    let bad = block::lossless_payload(&[1.0; 3]); // a frame of the wrong length
    assert!(bad.len() <= e.len as usize);
    let at = e.offset as usize;
    b[at..at + bad.len()].copy_from_slice(&bad);
    // Pad the rest of the frame with a skippable zstd frame so the payload stays the same length.
    let pad = e.len as usize - bad.len();
    assert!(pad >= 8, "room for a skippable frame");
    b[at + bad.len()..at + bad.len() + 4].copy_from_slice(&0x184D2A50u32.to_le_bytes());
    b[at + bad.len() + 4..at + bad.len() + 8].copy_from_slice(&((pad - 8) as u32).to_le_bytes());
    let crc = crc32fast::hash(&b[at..at + e.len as usize]);
    // Index entry of volume 1 block 0: after volume 0's entries.
    let t = Trailer::parse(&b[b.len() - 88..]).unwrap();
    let nblocks0 = 2 * 2 * 2; // 40^3 in 32^3 blocks
    let ent = t.index.offset as usize + nblocks0 * 24;
    b[ent + 12..ent + 16].copy_from_slice(&crc.to_le_bytes());
    let icrc = crc32fast::hash(&b[t.index.offset as usize..(t.index.offset + t.index.len) as usize]);
    let tl = b.len() - 88;
    b[tl + 60..tl + 64].copy_from_slice(&icrc.to_le_bytes());
    let tcrc = crc32fast::hash(&b[tl..tl + 76]);
    b[tl + 76..tl + 80].copy_from_slice(&tcrc.to_le_bytes());
    std::fs::write(&idl2, b).unwrap();
    let out2 = d.path().join("out2");
    let o = run(&["unpack", s(&idl2), "-o", s(&out2), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("v1"), "{}", text(&o));
    assert!(!out2.exists(), "nothing written, the created directory removed again");
}

// ---------------------------------------------------------------- 15. depth

#[test]
fn deeply_nested_importance_spec_is_an_error_not_a_stack_overflow() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(8 * 8 * 8, 11));
    let spec = format!("{}uniform:1{}", "max(".repeat(10_000), ")".repeat(10_000));
    let o = run_within(&["importance", s(&raw), "--dims", "8x8x8", "--importance", &spec, "-o", s(&d.path().join("i.raw"))], 60);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr).chars().take(300).collect::<String>());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nested more than 64 levels"));
}

// ------------------------------------------------------------ 16. small ones

#[test]
fn long_stem_is_capped_and_unpack_nhdr_writes_every_file() {
    let d = tmp();
    let stem = "s".repeat(251);
    let raw = d.path().join(format!("{stem}.raw"));
    write_f32(&raw, &noise(8 * 8 * 8, 12));
    let idl = d.path().join("l.idl");
    ok(&["pack", s(&raw), "--dims", "8x8x8", "--lossless", "-o", s(&idl), "--quiet"]);
    let c = Container::open(&idl).unwrap();
    let name = c.meta().volumes[0].info.name.clone();
    assert_eq!(name, "s".repeat(200), "the name is cut to the 200-byte cap");
    let out = d.path().join("out");
    ok(&["unpack", s(&idl), "-o", s(&out), "--format", "nhdr", "--quiet"]);
    assert_eq!(listing(&out), [format!("{name}.nhdr"), format!("{name}.raw")]);
    // An output whose file name is too long is refused before anything is written.
    let long = d.path().join(format!("{}.nhdr", "x".repeat(251)));
    let o = run(&["unpack", s(&idl), "-o", s(&long), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("255"), "{}", text(&o));
    assert!(!d.path().join(format!("{}.raw", "x".repeat(251))).exists() && temps_in(d.path()).is_empty());
}

#[test]
fn pack_over_sample_output_skips_the_headers_data_files() {
    let d = tmp();
    for i in 1..=2 {
        ok(&["sample", "vortex", "--dims", "8x8x8", "--seed", &i.to_string(), "-o", s(&d.path().join(format!("t{i}.raw")))]);
    }
    let idl = d.path().join("t.idl");
    let pattern = format!("{}/t*", d.path().display());
    let o = run(&["pack", &pattern, "--dims", "8x8x8", "--lossless", "-o", s(&idl)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("skipping") && text(&o).contains("t1.raw") && text(&o).contains("t1.mhd"), "{}", text(&o));
    let c = Container::open(&idl).unwrap();
    let names: Vec<&str> = c.meta().volumes.iter().map(|v| v.info.name.as_str()).collect();
    assert_eq!(names, ["t1", "t2"], "each volume once");
    // A raw file with no header among the inputs is still packed.
    let o = ok(&["pack", s(&d.path().join("t1.raw")), "--dims", "8x8x8", "--lossless", "-o", s(&d.path().join("one.idl")), "--quiet"]);
    assert!(o.contains("packed 1 volume"), "{o}");
}

#[test]
fn vtk_default_xml_writer_output_is_readable() {
    let d = tmp();
    // vtkXMLImageDataWriter defaults (appended, base64), plus the zlib and
    // UInt32-header variants and raw appended data.
    py(
        "import sys, os, vtk\nimport numpy as np\nfrom vtk.util import numpy_support as ns\n\
         d = sys.argv[1]\n\
         a = (np.arange(7*5*6, dtype=np.float32) * 0.37 - 3).reshape(6, 5, 7)\n\
         img = vtk.vtkImageData(); img.SetDimensions(7, 5, 6); img.SetSpacing(0.5, 2, 1); img.SetOrigin(1, 2, 3)\n\
         arr = ns.numpy_to_vtk(a.ravel(), deep=1); arr.SetName('f'); img.GetPointData().SetScalars(arr)\n\
         b = vtk.vtkImageData(); b.SetDimensions(7, 5, 6); b.SetSpacing(0.5, 2, 1); b.SetOrigin(1, 2, 3)\n\
         g = ns.numpy_to_vtk(a.ravel() * 2, deep=1); g.SetName('g'); b.GetPointData().AddArray(g)\n\
         f = ns.numpy_to_vtk(a.ravel(), deep=1); f.SetName('f'); b.GetPointData().SetScalars(f)\n\
         def w(name, data=img, **kw):\n\
         \x20   x = vtk.vtkXMLImageDataWriter(); x.SetFileName(os.path.join(d, name)); x.SetInputData(data)\n\
         \x20   for k, v in kw.items(): getattr(x, k)(*v)\n\
         \x20   assert x.Write() == 1\n\
         w('default.vti')\n\
         w('two.vti', b)\n\
         w('zlib.vti', SetCompressorTypeToZLib=())\n\
         w('zlib32.vti', SetCompressorTypeToZLib=(), SetHeaderTypeToUInt32=())\n\
         w('plain.vti', SetCompressorTypeToNone=())\n\
         w('plain32.vti', SetCompressorTypeToNone=(), SetHeaderTypeToUInt32=())\n\
         w('rawapp.vti', SetEncodeAppendedData=(0,))\n\
         w('inline.vti', SetDataModeToBinary=())\n",
        &[s(d.path())],
    );
    let want: Vec<f32> = (0..7 * 5 * 6).map(|i| i as f32 * 0.37 - 3.0).collect();
    let default = std::fs::read_to_string(d.path().join("default.vti")).unwrap_or_default();
    assert!(default.contains("encoding=\"base64\"") && default.contains("format=\"appended\""), "VTK's default is appended base64");
    for f in ["default.vti", "two.vti", "zlib.vti", "zlib32.vti", "plain.vti", "plain32.vti", "rawapp.vti", "inline.vti"] {
        let v = idlat::io::read_volume(&d.path().join(f), &Default::default()).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(v.info.dims, [7, 5, 6], "{f}");
        assert_eq!((v.info.spacing, v.info.origin), ([0.5, 2.0, 1.0], [1.0, 2.0, 3.0]), "{f}");
        for (i, (a, b)) in v.data.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-6, "{f}: voxel {i}: {a} vs {b}");
        }
    }
}

#[test]
fn metaimage_element_data_file_list_is_reported_as_unsupported() {
    let d = tmp();
    let p = d.path().join("l.mhd");
    std::fs::write(&p, "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_FLOAT\nElementDataFile = LIST\ns0.raw\ns1.raw\n").unwrap();
    let e = idlat::io::read_volume(&p, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("LIST") && e.contains("not supported"), "{e}");
    assert!(!e.contains("No such file"), "{e}");
}

#[test]
fn importance_file_map_with_nan_or_out_of_range_values_is_refused() {
    let d = tmp();
    let raw = d.path().join("v.raw");
    write_f32(&raw, &noise(4 * 4 * 4, 13));
    for (bad, what) in [(f32::NAN, "NaN"), (2.0, "2")] {
        let map = d.path().join("m.raw");
        let mut m = vec![0.25f32; 64];
        m[10] = bad;
        write_f32(&map, &m);
        let spec = format!("file:{}", map.display());
        let o = run(&["importance", s(&raw), "--dims", "4x4x4", "--importance", &spec, "-o", s(&d.path().join("i.raw")), "--force"]);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", text(&o));
        assert!(text(&o).contains("outside [0, 1]") && text(&o).contains(&format!("first {what} at index 10")), "{what}: {}", text(&o));
    }
    // uniform:2 is refused likewise (the rule the map now follows).
    let o = run(&["importance", s(&raw), "--dims", "4x4x4", "--importance", "uniform:2", "-o", s(&d.path().join("i.raw")), "--force"]);
    assert_eq!(o.status.code(), Some(2));
}
