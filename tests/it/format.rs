//! Container: writer/reader round trips, corruption localisation, truncation.

use super::common::*;
use idlat::format::{block, BlockId, BlockKind, Container, ContainerWriter, FormatError, ModelRef, NeuralPayload, VolumeMeta};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// Random container: random dims, kinds and payloads; returns the expected decoded volumes.
pub fn random_container(path: &Path, seed: u64) -> Vec<(VolumeMeta, Vec<Vec<u8>>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut w = ContainerWriter::create(path, true).unwrap();
    w.set_model(ModelRef { hash: "ab".repeat(32), profile: "test".into(), embedded: false }, if rng.random() { Some(b"model-bytes".as_slice()) } else { None });
    let mut out = Vec::new();
    for v in 0..rng.random_range(1..4) {
        let dims = [rng.random_range(1..40), rng.random_range(1..30), rng.random_range(1..20)];
        let bs = rng.random_range(4..17);
        let vid = w.add_volume(volume_meta(&format!("v{v}"), dims, bs)).unwrap();
        let g = idlat::format::BlockGrid::cubic(dims, bs);
        let mut payloads = vec![Vec::new(); g.len()];
        // Blocks in a shuffled order: the writer must accept any order.
        let mut order: Vec<usize> = (0..g.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for b in order {
            let n = g.voxels(BlockId(b as u64));
            let (kind, p) = match rng.random_range(0..4) {
                0 => (BlockKind::Constant, rng.random::<f32>().to_le_bytes().to_vec()),
                1 => (BlockKind::Raw, block::f32s_to_bytes(&(0..n).map(|_| rng.random()).collect::<Vec<f32>>())),
                2 => (BlockKind::Lossless, block::lossless_payload(&(0..n).map(|i| (i % 7) as f32).collect::<Vec<f32>>())),
                _ => {
                    let z: Vec<u8> = (0..rng.random_range(0..20)).map(|_| rng.random()).collect();
                    let y: Vec<u8> = (0..rng.random_range(0..200)).map(|_| rng.random()).collect();
                    (BlockKind::Neural, NeuralPayload::encode(&[&z, &y]))
                }
            };
            w.write_block(vid, BlockId(b as u64), kind, &p).unwrap();
            payloads[b] = p;
        }
        let m = volume_meta(&format!("v{v}"), dims, bs);
        out.push((m, payloads));
    }
    w.finish().unwrap();
    out
}

#[test]
fn random_containers_round_trip() {
    let dir = tmp();
    for seed in 0..30 {
        let p = dir.path().join(format!("r{seed}.idl"));
        let want = random_container(&p, seed);
        let c = Container::open(&p).unwrap();
        assert_eq!(c.meta().volumes.len(), want.len());
        for (i, (m, payloads)) in want.iter().enumerate() {
            let v = idlat::format::VolumeId(i as u32);
            assert_eq!(c.volume(v).unwrap().info.dims, m.info.dims);
            for (b, p) in payloads.iter().enumerate() {
                assert_eq!(c.block(v, BlockId(b as u64)).unwrap().payload, &p[..], "seed {seed} volume {i} block {b}");
            }
        }
    }
}

/// An index entry with nonzero reserved bytes (and a valid index CRC, as a crafted or
/// future file has) fails its own block, through both readers; the others still read.
#[test]
fn nonzero_reserved_entry_bytes_fail_that_block_only() {
    let dir = tmp();
    let p = dir.path().join("c.idl");
    random_container(&p, 11);
    let c = Container::open(&p).unwrap();
    let total: u64 = c.volumes().map(|(_, m)| m.block_count).sum();
    assert!(total >= 2);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    let trailer = &bytes[n - 88..];
    let (off, len) = (u64::from_le_bytes(trailer[24..32].try_into().unwrap()) as usize, u64::from_le_bytes(trailer[32..40].try_into().unwrap()) as usize);
    bytes[off + 20] = 7; // entry 0, reserved byte 20
    let crc = crc32fast::hash(&bytes[off..off + len]);
    bytes[n - 88 + 60..n - 88 + 64].copy_from_slice(&crc.to_le_bytes());
    // The trailer's own CRC (bytes 76..80) covers its bytes 0..76.
    let tcrc = crc32fast::hash(&bytes[n - 88..n - 12]);
    bytes[n - 12..n - 8].copy_from_slice(&tcrc.to_le_bytes());
    let bad = dir.path().join("bad.idl");
    std::fs::write(&bad, &bytes).unwrap();
    let c = Container::open(&bad).unwrap();
    let v = idlat::format::VolumeId(0);
    let pr = c.payload_reader().unwrap();
    for e in [c.block(v, BlockId(0)).err().map(|e| e.to_string()), pr.block(v, BlockId(0)).err().map(|e| e.to_string())] {
        assert!(e.as_deref().is_some_and(|e| e.contains("reserved bytes 17..24")), "{e:?}");
    }
    let ok_blocks = c.volumes().map(|(v, m)| (0..m.block_count).filter(|&b| c.block(v, BlockId(b)).is_ok() && pr.block(v, BlockId(b)).is_ok()).count() as u64).sum::<u64>();
    assert_eq!(ok_blocks, total - 1);
}

#[test]
fn every_flipped_byte_is_detected_and_localised() {
    let dir = tmp();
    let p = dir.path().join("c.idl");
    random_container(&p, 77);
    let clean = std::fs::read(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let positions: Vec<usize> = (0..120).map(|_| rng.random_range(0..clean.len())).collect();
    let bad = dir.path().join("bad.idl");
    for pos in positions {
        let mut b = clean.clone();
        b[pos] ^= 1 << rng.random_range(0..8);
        std::fs::write(&bad, &b).unwrap();
        let out = run(&["verify", s(&bad)]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "flip at {pos} undetected: {text}");
        // Either a section is named or exactly one block, and the other blocks still read.
        if let Ok(c) = Container::open(&bad) {
            let bad_blocks = text.lines().filter(|l| l.contains(" block ")).count();
            assert!(bad_blocks == 1 || text.contains("model section"), "flip at {pos}: {text}");
            let readable = c.volumes().map(|(v, m)| (0..m.block_count).filter(|&b| c.block(v, BlockId(b)).is_ok()).count()).sum::<usize>();
            let total = c.volumes().map(|(_, m)| m.block_count as usize).sum::<usize>();
            assert!(readable + 1 >= total, "flip at {pos} damaged more than one block");
        }
    }
}

#[test]
fn truncated_and_foreign_files_give_clear_errors() {
    let dir = tmp();
    let p = dir.path().join("c.idl");
    random_container(&p, 3);
    let b = std::fs::read(&p).unwrap();
    assert!(b.len() > 240, "the container is big enough to cut past its header");
    for cut in [0, 10, 40, 119, 120, b.len() / 2, b.len() - 1] {
        let t = dir.path().join("t.idl");
        std::fs::write(&t, &b[..cut]).unwrap();
        let e = Container::open(&t).err().expect("truncated file must not open");
        if cut < 120 {
            assert!(matches!(e, FormatError::Truncated { section: "file", need: 120, have } if have == cut as u64), "cut {cut}: {e}");
        } else {
            // A valid header with the end cut off is a truncated file, not a foreign one.
            assert!(matches!(e, FormatError::TruncatedOrDamagedTrailer { len, expected: None } if len == cut as u64), "cut {cut}: {e}");
            let msg = e.to_string();
            assert!(msg.contains("truncated") && msg.contains(&format!("{cut} bytes")) && !msg.contains("not an idlat"), "cut {cut}: {msg}");
        }
    }
    // Bytes appended after the trailer: the message names where the container ends.
    let t = dir.path().join("long.idl");
    std::fs::write(&t, [b.as_slice(), b"junk"].concat()).unwrap();
    let e = Container::open(&t).err().unwrap();
    assert!(matches!(e, FormatError::TruncatedOrDamagedTrailer { expected: Some(n), .. } if n == b.len() as u64), "{e}");
    assert!(e.to_string().contains(&format!("ends at byte {}", b.len())), "{e}");
    // verify: a damaged file is corrupt (exit 1), a missing one is an error (exit 2).
    let out = run(&["verify", s(&t)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["verify", s(&dir.path().join("nothere.idl"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(err.contains("nothere.idl") && err.contains("No such file") && !String::from_utf8_lossy(&out.stdout).contains("CORRUPT"), "{err}");
    let t = dir.path().join("text.idl");
    std::fs::write(&t, vec![b'x'; 500]).unwrap();
    assert!(matches!(Container::open(&t), Err(FormatError::BadMagic { .. })));
    // An unknown major version is refused with a message naming it.
    let mut v = b.clone();
    v[8] = 9;
    let crc = crc32fast::hash(&v[..28]);
    v[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&t, &v).unwrap();
    let e = Container::open(&t).err().unwrap().to_string();
    assert!(e.contains("9.0") && e.contains("not supported"), "{e}");
}

#[test]
fn writer_is_atomic_and_refuses_overwrite() {
    let dir = tmp();
    let p = dir.path().join("a.idl");
    {
        let mut w = ContainerWriter::create(&p, false).unwrap();
        w.add_volume(volume_meta("v", [4, 4, 4], 4)).unwrap();
        // Dropped before finish: nothing under the final name, no temp left.
    }
    assert!(!p.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let mut w = ContainerWriter::create(&p, false).unwrap();
    let v = w.add_volume(volume_meta("v", [4, 4, 4], 4)).unwrap();
    assert!(w.write_block(v, BlockId(1), BlockKind::Constant, &[0; 4]).is_err());
    w.write_block(v, BlockId(0), BlockKind::Constant, &1f32.to_le_bytes()).unwrap();
    assert!(w.write_block(v, BlockId(0), BlockKind::Constant, &1f32.to_le_bytes()).is_err());
    w.finish().unwrap();
    assert!(matches!(ContainerWriter::create(&p, false), Err(FormatError::Exists { .. })));
}

#[test]
fn python_inspector_reads_rust_containers() {
    let dir = tmp();
    let p = dir.path().join("c.idl");
    let want = random_container(&p, 11);
    let out = std::process::Command::new(python()).arg(repo().join("tools/idl_inspect.py")).arg(&p).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["crc_errors"].as_u64(), Some(0));
    assert_eq!(j["volumes"].as_array().unwrap().len(), want.len());
    for (i, (m, payloads)) in want.iter().enumerate() {
        assert_eq!(j["volumes"][i]["blocks"].as_u64(), Some(payloads.len() as u64));
        assert_eq!(j["volumes"][i]["dims"][0].as_u64(), Some(m.info.dims[0] as u64));
    }
    // A flipped payload byte is found by the independent reader too.
    let mut b = std::fs::read(&p).unwrap();
    b[40] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    let out = std::process::Command::new(python()).arg(repo().join("tools/idl_inspect.py")).arg(&p).arg("--json").output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["crc_errors"].as_u64(), Some(1));
}
