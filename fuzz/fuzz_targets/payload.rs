//! Block payload parsing: neural stream tables, the simple kinds and the
//! error-bound residual stream, decoded twice into fresh buffers to catch
//! state leaking between calls.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
