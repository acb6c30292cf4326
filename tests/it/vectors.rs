//! spec/vectors: tiny containers with their decoded arrays. The reader must
//! decode each to the committed values, and the writer must reproduce each
//! file byte for byte (a format change shows up here and in the spec together).
//! Regenerate with `cargo test --release --test tests -- --ignored write_vectors`
//! after an intended format or encoder change.

use super::common::*;
use idlat::format::version::{block_features, minor_for};
use idlat::format::{block, BlockId, BlockKind, Container, ContainerWriter, NeuralPayload, VolumeId};
use std::path::{Path, PathBuf};

/// (file name, writer) pairs; each writer is deterministic.
fn vectors() -> Vec<(&'static str, fn(&Path))> {
    vec![
        ("constant-3x2x1.idl", |p| {
            let mut w = ContainerWriter::create(p, true).unwrap();
            let v = w.add_volume(volume_meta("c", [3, 2, 1], 2)).unwrap();
            w.write_block(v, BlockId(0), BlockKind::Constant, &1.5f32.to_le_bytes()).unwrap();
            w.write_block(v, BlockId(1), BlockKind::Constant, &(-2f32).to_le_bytes()).unwrap();
            w.finish().unwrap();
        }),
        ("kinds-5x3x2.idl", |p| {
            let mut w = ContainerWriter::create(p, true).unwrap();
            let v = w.add_volume(volume_meta("k", [5, 3, 2], 4)).unwrap();
            // Block 0: 4x3x2 raw, block 1: 1x3x2 lossless; a second volume with a neural payload.
            let raw: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
            w.write_block(v, BlockId(0), BlockKind::Raw, &block::f32s_to_bytes(&raw)).unwrap();
            w.write_block(v, BlockId(1), BlockKind::Lossless, &block::lossless_payload(&[3.0, 2.0, 1.0, 0.0, -1.0, -2.0])).unwrap();
            let n = w.add_volume(volume_meta("n", [2, 2, 2], 2)).unwrap();
            w.write_block(n, BlockId(0), BlockKind::Neural, &NeuralPayload::encode(&[&[1, 2, 3, 4], &[5, 6, 7, 8, 9, 10, 11, 12], &[0xf8]])).unwrap();
            w.finish().unwrap();
        }),
        ("wavelet-20x12x9.idl", |p| {
            // Two wavelet tiles (16³ grid, clipped), steered by a half-volume importance map,
            // the second tile with an error bound on its important voxels (stream 1).
            use idlat::codec::{blocks::Norm, bound::BoundSpec, wavelet};
            let dims = [20, 12, 9];
            let n = 20 * 12 * 9;
            let data: Vec<f32> = (0..n).map(|i| ((i % 20) as f32 * 0.4).sin() * 3.0 + ((i / 240) as f32 * 0.7).cos() + (i / 20 % 12) as f32 * 0.1).collect();
            let imp: Vec<f32> = (0..n).map(|i| if i % 20 >= 10 { 1.0 } else { 0.05 }).collect();
            let g = idlat::format::BlockGrid::cubic(dims, 16);
            let (lo, hi) = data.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let norm = Norm::from_range(lo, hi);
            let bimp: Vec<f32> = (0..n).map(|i| if i % 20 >= 16 { 1.0 } else { 0.0 }).collect();
            let spec = BoundSpec { abs: 0.01, min_importance: 0.5, graded: false, max: None };
            let coded = wavelet::code_all(&wavelet::prepare(&data, &imp, &g, norm, Some((&spec, &bimp)), Some(wavelet::Layout::Mallat)), 0.01, norm).unwrap();
            let mut meta = volume_meta("w", dims, 16);
            meta.norm = idlat::format::Normalisation { offset: norm.offset, scale: norm.scale };
            meta.value_range = (lo, hi);
            let mut w = ContainerWriter::create(p, true).unwrap();
            let v = w.add_volume(meta).unwrap();
            for (b, c) in coded.iter().enumerate() {
                assert_eq!(c.kind, BlockKind::Wavelet);
                w.write_block(v, BlockId(b as u64), c.kind, &c.payload).unwrap();
            }
            w.finish().unwrap();
        }),
        ("wavelet-layouts-32x16x12.idl", |p| {
            // Two 16-voxel tiles with two levels, the first in the packet layout and the
            // second in the tensor layout (format 1.5), steered by an importance ramp.
            use idlat::codec::{blocks::Norm, wavelet};
            let dims = [32, 16, 12];
            let n = 32 * 16 * 12;
            let data: Vec<f32> = (0..n).map(|i| ((i % 32) as f32 * 0.3).sin() * 2.0 + ((i / 512) as f32 * 1.3).sin() * 4.0 + (i / 32 % 16) as f32 * 0.05).collect();
            let imp: Vec<f32> = (0..n).map(|i| (i % 32) as f32 / 31.0).collect();
            let g = idlat::format::BlockGrid::cubic(dims, 16);
            let (lo, hi) = data.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let norm = Norm::from_range(lo, hi);
            let code = |l| wavelet::code_all(&wavelet::prepare(&data, &imp, &g, norm, None, Some(l)), 0.02, norm).unwrap();
            let (packet, tensor) = (code(wavelet::Layout::Packet), code(wavelet::Layout::Tensor));
            let mut meta = volume_meta("l", dims, 16);
            meta.norm = idlat::format::Normalisation { offset: norm.offset, scale: norm.scale };
            meta.value_range = (lo, hi);
            let mut w = ContainerWriter::create(p, true).unwrap();
            let v = w.add_volume(meta).unwrap();
            for (b, c) in [&packet[0], &tensor[1]].into_iter().enumerate() {
                assert_eq!((c.kind, minor_for(block_features(c.kind, &c.payload, [16, 16, 12]))), (BlockKind::Wavelet, 5));
                w.write_block(v, BlockId(b as u64), c.kind, &c.payload).unwrap();
            }
            w.finish().unwrap();
        }),
        ("wavelet-levels-128x4x4.idl", |p| {
            // One 128-voxel tile coded with 4 levels where a 1.5 reader expects 5 (format 1.6).
            let n = 128 * 16;
            let data: Vec<f32> = (0..n).map(|i| ((i % 128) as f32 * 0.11).sin() * 3.0 + (i / 128) as f32 * 0.25).collect();
            let imp: Vec<f32> = (0..n).map(|i| if i % 128 < 48 { 1.0 } else { 0.05 }).collect();
            one_tile(p, "t", [128, 4, 4], &data, &imp, (0, 4, "levels"), 6);
        }),
        ("wavelet-slices-4x4x128.idl", |p| {
            // One tile 128 planes deep: coded in two slices of 64 (format 1.7).
            let n = 16 * 128;
            let data: Vec<f32> = (0..n).map(|i| ((i / 16) as f32 * 0.13).sin() * 3.0 + (i % 16) as f32 * 0.2).collect();
            let imp: Vec<f32> = (0..n).map(|i| if i / 16 < 40 { 1.0 } else { 0.05 }).collect();
            one_tile(p, "s", [4, 4, 128], &data, &imp, (2, 2, "slice count"), 7);
        }),
    ]
}

/// A container of one volume that is one 128-edge Mallat wavelet tile at step 0.01, with
/// byte `at.0` of its tile stream checked to be `at.1` (the feature the vector shows) and
/// stamped `minor`.
fn one_tile(p: &Path, name: &str, dims: [usize; 3], data: &[f32], imp: &[f32], at: (usize, u8, &str), minor: u16) {
    use idlat::codec::{blocks::Norm, wavelet};
    let g = idlat::format::BlockGrid::cubic(dims, 128);
    let (lo, hi) = data.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let norm = Norm::from_range(lo, hi);
    let coded = wavelet::code_all(&wavelet::prepare(data, imp, &g, norm, None, Some(wavelet::Layout::Mallat)), 0.01, norm).unwrap();
    // The stream table of one stream takes 8 bytes before the tile stream.
    assert_eq!(coded[0].payload[8 + at.0], at.1, "{} byte of the tile stream", at.2);
    let mut meta = volume_meta(name, dims, 128);
    meta.norm = idlat::format::Normalisation { offset: norm.offset, scale: norm.scale };
    meta.value_range = (lo, hi);
    let mut w = ContainerWriter::create(p, true).unwrap();
    assert_eq!(minor_for(block_features(coded[0].kind, &coded[0].payload, dims)), minor);
    let v = w.add_volume(meta).unwrap();
    w.write_block(v, BlockId(0), coded[0].kind, &coded[0].payload).unwrap();
    w.finish().unwrap();
    // The writer stamps what its blocks use.
    assert_eq!(Container::open(p).unwrap().minor_version(), minor);
}

fn dir() -> PathBuf {
    repo().join("spec/vectors")
}

/// Decoded non-neural volumes and a text dump of the structure.
fn describe(p: &Path) -> (serde_json::Value, String) {
    let c = Container::open(p).unwrap();
    let mut vols = Vec::new();
    let mut dump = format!("{}: {} bytes, format 1.{}\n", p.file_name().unwrap().to_string_lossy(), c.file_len(), c.minor_version());
    for (v, m) in c.volumes() {
        let g = c.grid(v).unwrap();
        let mut data = vec![0f32; m.info.dims.iter().product()];
        let mut decodable = true;
        for b in 0..m.block_count {
            let e = c.entry(v, BlockId(b)).unwrap();
            let r = c.block(v, BlockId(b)).unwrap();
            dump.push_str(&format!("  volume {} '{}' block {b}: kind {} offset {} length {} crc {:08x}\n", v.0, m.info.name, r.kind.name(), e.offset, e.len, e.crc));
            let norm = idlat::codec::blocks::Norm { offset: m.norm.offset, scale: m.norm.scale };
            match idlat::codec::wavelet::decode_plain(r.kind, r.payload, g.extent(BlockId(b)).1, norm) {
                Ok(d) => {
                    let (o, s) = g.extent(BlockId(b));
                    idlat::format::grid::scatter(&mut data, g.dims, o, s, &d);
                }
                Err(_) => {
                    let streams: Vec<usize> = NeuralPayload::parse(r.payload).unwrap().streams.iter().map(|s| s.len()).collect();
                    dump.push_str(&format!("    neural streams {streams:?}\n"));
                    decodable = false;
                }
            }
        }
        vols.push(serde_json::json!({"name": m.info.name, "dims": m.info.dims, "values": if decodable { serde_json::json!(data) } else { serde_json::Value::Null }}));
    }
    let _ = VolumeId(0);
    (serde_json::json!({"volumes": vols}), dump)
}

fn as_f32(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => serde_json::json!((n.as_f64().unwrap() as f32).to_bits()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(as_f32).collect()),
        serde_json::Value::Object(o) => serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), as_f32(v))).collect()),
        other => other.clone(),
    }
}

/// Whole `idlat pack` runs on `idlat sample` volumes (the benchmark's samples, smaller):
/// (name, sample kind, dims, pack flags). Together they reach rate control, importance
/// maps, layout choice, sliced tiles, error bounds and the neural profile, so a
/// refactor that changes one output byte of any of them shows here.
const PACKS: &[(&str, &str, &str, &[&str])] = &[
    ("vortex-iso", "vortex", "64x64x64", &["--importance", "iso:7", "--target-ratio", "100"]),
    ("nyx-value", "nyx", "64x64x64", &["--importance", "value:>10.2", "--target-ratio", "200"]),
    ("isabel-box", "isabel", "96x96x24", &["--importance", "box:30,30,0:60,60,24", "--target-ratio", "200"]),
    ("vortex-sliced", "vortex", "48x32x160", &["--importance", "uniform:1", "--target-ratio", "100"]),
    ("nyx-bound", "nyx", "40x40x40", &["--importance", "value:>10.2", "--error-bound-rel", "0.002", "--step", "0.01"]),
    ("vortex-fast", "vortex", "32x32x32", &["--profile", "fast", "--importance", "iso:7", "--step", "1"]),
];

/// Where the packs' digests are committed.
fn packs_file() -> PathBuf {
    dir().join("packs.txt")
}

/// One line per pack: name, CRC-32 of the sample it packed, CRC-32 and length of the
/// container (the sample's digest too: a generator change is a failure of its own).
fn pack_digests() -> String {
    let t = tmp();
    let mut out = String::from("# name sample-crc32 container-crc32 container-bytes (tests/it/vectors.rs: PACKS)\n");
    for (name, kind, dims, flags) in PACKS {
        let d = t.path().join(name);
        std::fs::create_dir(&d).unwrap();
        let raw = sample(&d, kind, dims, 1);
        let idl = d.join("out.idl");
        let mut args = vec!["pack", s(&raw), "--dims", dims, "-o", s(&idl), "--quiet"];
        args.extend_from_slice(flags);
        ok(&args);
        let (input, file) = (std::fs::read(&raw).unwrap(), std::fs::read(&idl).unwrap());
        out += &format!("{name} {:08x} {:08x} {}\n", crc32fast::hash(&input), crc32fast::hash(&file), file.len());
    }
    out
}

#[test]
fn packs_of_the_samples_are_byte_identical_to_the_committed_digests() {
    let want = std::fs::read_to_string(packs_file()).unwrap();
    let got = pack_digests();
    for (w, g) in want.lines().zip(got.lines()) {
        assert_eq!(g, w, "a pack differs from its committed digest (a changed sample-crc32 means the sample generator changed; after an intended encoder change: cargo test --release --test tests -- --ignored write_vectors)");
    }
    assert_eq!(want.lines().count(), got.lines().count(), "packs.txt lists other packs than PACKS");
}

#[test]
fn vectors_decode_and_writer_reproduces_them() {
    let t = tmp();
    for (name, write) in vectors() {
        let fresh = t.path().join(name);
        write(&fresh);
        let committed = dir().join(name);
        assert!(
            std::fs::read(&fresh).unwrap() == std::fs::read(&committed).unwrap(),
            "{name}: writer output differs from the committed vector (after an intended change: cargo test --release --test tests -- --ignored write_vectors)"
        );
        let (json, _) = describe(&committed);
        let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(committed.with_extension("expected.json")).unwrap()).unwrap();
        // serde_json's default float parser may miss the last bit of an f64: compare as f32.
        assert_eq!(as_f32(&json), as_f32(&want), "{name}: decoded values differ from the expected ones");
    }
}

/// Rewrites spec/vectors (the files, their decoded values and dumps) from the writers
/// above: a separate command, so the check above never compares a file with itself.
#[test]
#[ignore = "writes spec/vectors; run after an intended format or encoder change"]
fn write_vectors() {
    std::fs::create_dir_all(dir()).unwrap();
    for (name, write) in vectors() {
        let committed = dir().join(name);
        write(&committed);
        let (json, dump) = describe(&committed);
        std::fs::write(committed.with_extension("expected.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
        let hex = std::process::Command::new("xxd").arg(&committed).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
        std::fs::write(committed.with_extension("dump.txt"), format!("{dump}\n{hex}")).unwrap();
    }
    std::fs::write(packs_file(), pack_digests()).unwrap();
}
