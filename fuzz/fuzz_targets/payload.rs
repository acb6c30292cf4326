//! Block payload parsing: neural stream tables, the simple kinds, the
//! error-bound residual stream, wavelet payloads and tile streams (sliced ones too), and real ANS decoding of z/y streams with the
//! shipped model's tables; each decoded twice into fresh buffers to catch state
//! leaking between calls.
#![no_main]
use idlat::codec::hyper::EntropyCodec;
use idlat::codec::modelfile::ModelFile;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The shipped model, built into the target so every run decodes garbage with
/// the tables real containers use (pure Rust: no libtorch).
static MODEL: &[u8] = include_bytes!("../../models/idlat-fast.safetensors");

fn codec() -> &'static EntropyCodec {
    static CODEC: OnceLock<EntropyCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        let mf = ModelFile::from_bytes(MODEL).expect("the shipped model parses");
        EntropyCodec::from_model(&mf).expect("the shipped model has entropy tables")
    })
}

/// Input: a selector (its low bit picks a one-byte or a per-cell level
/// stream, taken from the front of the rest), z length (u16 LE, modulo what
/// is left), z bytes, y bytes.
fn ans_decode(data: &[u8]) {
    let [sel, l0, l1, rest @ ..] = data else { return };
    let ll = if sel & 1 == 0 { 1 } else { 1 + codec().profile.latent_core().pow(3).div_ceil(2) };
    let (levels, rest) = rest.split_at(ll.min(rest.len()));
    let zl = u16::from_le_bytes([*l0, *l1]) as usize % (rest.len() + 1);
    let (z, y) = rest.split_at(zl);
    let run = || codec().decode(z, y, levels).map(|l| (l.z, l.levels, l.y_hat.iter().map(|f| f.to_bits()).collect::<Vec<_>>())).map_err(|e| e.to_string());
    assert_eq!(run(), run());
}

fuzz_target!(|data: &[u8]| {
    ans_decode(data);
    let a = idlat::format::NeuralPayload::parse(data).map(|p| p.streams.iter().map(|s| s.len()).collect::<Vec<_>>());
    let b = idlat::format::NeuralPayload::parse(data).map(|p| p.streams.iter().map(|s| s.len()).collect::<Vec<_>>());
    assert_eq!(a, b);
    if let [a, b, c, rest @ ..] = data {
        // Residual stream over a small block whose shape comes from the input.
        let sz = [1 + (*a as usize % 16), 1 + (*b as usize % 16), 1 + (*c as usize % 16)];
        let run = || {
            let mut p = vec![1.5f32; sz[0] * sz[1] * sz[2]];
            idlat::codec::bound::apply(rest, &mut p, sz).map(|_| p.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(run(), run());
        // A wavelet payload (stream table, tile stream, optional residual stream) for a
        // tile of the same shape, decoded twice.
        let norm = idlat::codec::blocks::Norm { offset: -1.0, scale: 0.5 };
        let wav = || idlat::codec::wavelet::decode_payload(rest, sz, norm).map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
        assert_eq!(wav(), wav());
        // And a bare tile stream whose header is well formed, so the fuzzer reaches the
        // coefficient decoder: levels and step patched to what this shape accepts.
        if rest.len() >= idlat::codec::wavelet::tile::HEADER {
            let mut t = rest.to_vec();
            t[0] = idlat::codec::wavelet::lift::levels_for(sz, idlat::codec::wavelet::tile::MAX_LEVELS) as u8;
            t[1..4].fill(0);
            t[4..8].copy_from_slice(&(1e-3f32).to_le_bytes());
            let tile = || idlat::codec::wavelet::tile::decode(&t, sz).map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
            assert_eq!(tile(), tile());
            // The same bytes as a sliced stream (format 1.7) of a thin tile 128-199 deep:
            // slice lengths and segments from the input, decoded in parallel, twice.
            let deep = [1 + (*a as usize % 4), 1 + (*b as usize % 4), 128 + (*c as usize % 72)];
            t[0] = idlat::codec::wavelet::lift::levels_for(deep, 4) as u8;
            t[2] = idlat::codec::wavelet::tile::slices(deep).len() as u8;
            let sliced = || idlat::codec::wavelet::tile::decode(&t, deep).map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
            assert_eq!(sliced(), sliced());
        }
    }
    if let Some((&k, rest)) = data.split_first() {
        if let Some(kind) = idlat::format::BlockKind::from_u8(k % 3) {
            let n = rest.first().copied().unwrap_or(0) as usize * 64;
            let x = idlat::format::block::decode_simple(kind, rest, n);
            let y = idlat::format::block::decode_simple(kind, rest, n);
            assert_eq!(x.map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()), y.map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()));
        }
    }
});
