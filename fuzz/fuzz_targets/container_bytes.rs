//! Arbitrary bytes as an in-memory container (`Container::from_bytes`): no file
//! system in the loop, so every run reaches the header, trailer, metadata
//! (`validate_meta`: names, dims, block edges, index consistency) and block
//! checks. Must return an error or a reader whose every access is checked; no
//! panic, no hang, no huge allocation.
#![no_main]
use idlat::format::{block, BlockId, BlockKind, Container, NeuralPayload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Container::from_bytes(data.to_vec()) else { return };
    let _ = c.embedded_model();
    for (v, m) in c.volumes() {
        // Validated names are safe file names (spec §4).
        assert!(idlat::format::meta::check_volume_name(&m.info.name).is_ok());
        let g = c.grid(v).expect("a validated volume has a grid");
        // Bounded: the reader checked block counts against the index size.
        for b in 0..m.block_count.min(1 << 16) {
            let Ok(r) = c.block(v, BlockId(b)) else { continue };
            let n = g.voxels(BlockId(b));
            if r.kind == BlockKind::Neural {
                let _ = NeuralPayload::parse(r.payload);
            } else if n <= 1 << 22 {
                let _ = block::decode_simple(r.kind, r.payload, n);
            }
        }
    }
});
