//! The library read API (`idlat::Container`): regions and spans against the
//! whole volume and the CLI's unpack, read order, errors naming their cause.

use super::common::{ok, read_f32, s, sample, tmp};
use idlat::reader::ReadError;

/// Packs a sample with the default (wavelet) profile at a small block size so
/// a region spans several blocks; returns (container, unpacked f32 values).
fn packed(dir: &std::path::Path, kind: &str, dims: &str, extra: &[&str]) -> (std::path::PathBuf, Vec<f32>) {
    let raw = sample(dir, kind, dims, 3);
    let idl = dir.join(format!("{kind}.idl"));
    let mut args = vec!["pack", s(&raw), "--dims", dims, "-o", s(&idl), "--quiet"];
    args.extend_from_slice(extra);
    ok(&args);
    let out = dir.join(format!("{kind}-out.raw"));
    ok(&["unpack", s(&idl), "-o", s(&out), "--quiet"]);
    (idl, read_f32(&out))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn regions_and_spans_are_the_unpacked_voxels_in_any_order() {
    let d = tmp();
    let (idl, want) = packed(d.path(), "vortex", "70x52x45", &["--tile", "32", "--target-ratio", "40"]);
    let c = idlat::Container::open(&idl).unwrap();
    assert_eq!(c.names().collect::<Vec<_>>(), ["vortex3"]);
    let v = c.volume("vortex3").unwrap();
    let [nx, ny, nz] = v.info().dims;
    assert_eq!([nx, ny, nz], [70, 52, 45]);
    assert!(v.grid().len() > 8, "the test needs a region across several blocks");
    assert_eq!(bits(&v.read_all(|_, _| {}).unwrap().data), bits(&want), "read_all is unpack's output");
    // Boxes across block faces, at the volume's edges, one voxel, the whole; read twice in reverse order too.
    let boxes = [([0, 0, 0], [nx, ny, nz]), ([31, 30, 29], [3, 5, 7]), ([5, 40, 40], [65, 12, 5]), ([69, 51, 44], [1, 1, 1]), ([0, 17, 3], [70, 1, 40])];
    let check = |origin: [usize; 3], size: [usize; 3]| {
        let r = v.read_region(origin, size).unwrap();
        assert_eq!(r.info.dims, size);
        let mut exp = Vec::new();
        for z in origin[2]..origin[2] + size[2] {
            for y in origin[1]..origin[1] + size[1] {
                let at = (z * ny + y) * nx + origin[0];
                exp.extend_from_slice(&want[at..at + size[0]]);
            }
        }
        assert_eq!(bits(&r.data), bits(&exp), "region {origin:?} {size:?}");
        assert_eq!(r.info.origin[0], v.info().origin[0] + origin[0] as f64 * v.info().spacing[0], "the region's world origin is its first voxel");
    };
    for (o, sz) in boxes.iter().chain(boxes.iter().rev()) {
        check(*o, *sz);
    }
    // Spans in file order, as the mount reads byte ranges.
    let total = (nx * ny * nz) as u64;
    for (a, b) in [(0, total), (69, 71), (nx as u64 * 33 + 5, nx as u64 * ny as u64 * 20 + 1), (total - 1, total), (10, 10)] {
        assert_eq!(bits(&v.read_span(a, b).unwrap()), bits(&want[a as usize..b as usize]), "span {a}..{b}");
    }
}

#[test]
fn bad_requests_and_a_corrupt_block_are_errors_that_name_them() {
    let d = tmp();
    let (idl, want) = packed(d.path(), "nyx", "64x64x40", &["--lossless"]);
    {
        let c = idlat::Container::open(&idl).unwrap();
        assert!(matches!(c.volume("nope"), Err(ReadError::NoVolume(n)) if n == "nope"));
        let v = c.volume("nyx3").unwrap();
        for (o, sz) in [([0, 0, 0], [65, 1, 1]), ([0, 0, 39], [1, 1, 2]), ([3, 3, 3], [0, 1, 1]), ([usize::MAX, 0, 0], [2, 1, 1])] {
            let e = v.read_region(o, sz).unwrap_err();
            assert!(matches!(e, ReadError::OutOfBounds { .. }), "{o:?} {sz:?}: {e}");
            assert!(e.to_string().contains("nyx3"), "{e}");
        }
        assert!(matches!(v.read_span(5, 64 * 64 * 40 + 1), Err(ReadError::OutOfBounds { .. })));
    }
    // Damage block 1 (x 32..64, y 0..32, z 0..32): reads touching it fail naming it; the rest reads exactly.
    let e = idlat::format::Container::open(&idl).unwrap().entry(idlat::format::VolumeId(0), idlat::format::BlockId(1)).unwrap();
    let mut bytes = std::fs::read(&idl).unwrap();
    bytes[(e.offset + e.len as u64 / 2) as usize] ^= 0x5a;
    std::fs::write(&idl, &bytes).unwrap();
    let c = idlat::Container::open(&idl).unwrap();
    let v = c.volume("nyx3").unwrap();
    let err = v.read_region([30, 0, 0], [4, 4, 4]).unwrap_err();
    assert!(matches!(err, ReadError::Block { block: 1, .. }), "{err}");
    assert!(err.to_string().contains("block 1"), "{err}");
    assert!(v.read_all(|_, _| {}).is_err(), "a whole-volume read holding the bad block fails");
    let good = v.read_region([0, 0, 0], [32, 64, 40]).unwrap();
    let exp: Vec<f32> = (0..40 * 64).flat_map(|row| want[row * 64..row * 64 + 32].to_vec()).collect();
    assert_eq!(bits(&good.data), bits(&exp), "blocks beside the bad one read exactly");
}
