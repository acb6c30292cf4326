//! spec/vectors: tiny containers with their decoded arrays. The reader must
//! decode each to the committed values, and the writer must reproduce each
//! file byte for byte (a format change shows up here and in the spec together).
//! Regenerate with IDLAT_WRITE_VECTORS=1 after an intended format change.

use super::common::*;
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
    ]
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
            match block::decode_simple(r.kind, r.payload, g.voxels(BlockId(b))) {
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

#[test]
fn vectors_decode_and_writer_reproduces_them() {
    let regen = std::env::var_os("IDLAT_WRITE_VECTORS").is_some();
    let t = tmp();
    for (name, write) in vectors() {
        let fresh = t.path().join(name);
        write(&fresh);
        let committed = dir().join(name);
        if regen {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::copy(&fresh, &committed).unwrap();
            let (json, dump) = describe(&committed);
            std::fs::write(committed.with_extension("expected.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
            let hex = std::process::Command::new("xxd").arg(&committed).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
            std::fs::write(committed.with_extension("dump.txt"), format!("{dump}\n{hex}")).unwrap();
        }
        assert!(std::fs::read(&fresh).unwrap() == std::fs::read(&committed).unwrap(), "{name}: writer output differs from the committed vector");
        let (json, _) = describe(&committed);
        let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(committed.with_extension("expected.json")).unwrap()).unwrap();
        assert_eq!(json, want, "{name}: decoded values differ from the expected ones");
    }
}
