//! Arbitrary bytes as a container: open must return an error or a reader
//! whose every block access is checked; no panic, no hang, no huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("idlat-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("c.idl");
    if std::fs::write(&p, data).is_err() {
        return;
    }
    if let Ok(c) = idlat::format::Container::open(&p) {
        let _ = c.embedded_model();
        for (v, m) in c.volumes() {
            let g = c.grid(v).unwrap();
            // Drain every block (bounded: the reader validated counts against the index size).
            for b in 0..m.block_count.min(1 << 16) {
                if let Ok(r) = c.block(v, idlat::format::BlockId(b)) {
                    let n = g.voxels(idlat::format::BlockId(b));
                    if r.kind == idlat::format::BlockKind::Neural {
                        let _ = idlat::format::NeuralPayload::parse(r.payload);
                    } else if n <= 1 << 22 {
                        let _ = idlat::format::block::decode_simple(r.kind, r.payload, n);
                    }
                }
            }
        }
    }
});
