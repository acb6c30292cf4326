//! `pack --stream`: a volume packed tile by tile from its input must give the bytes
//! an in-memory pack gives (raw and HDF5 inputs; ratio targets,
//! error bounds, fixed steps, lossless), and refuse clearly what it cannot stream.

use super::common::*;
use std::path::Path;

/// Packs `input` with `opts` with `--stream never` and `--stream always`; the two
/// files must be the same bytes, and the streamed one must verify.
fn same_bytes(dir: &Path, input: &str, opts: &[&str]) {
    let (a, b) = (dir.join("whole.idl"), dir.join("streamed.idl"));
    for (mode, out) in [("never", &a), ("always", &b)] {
        let mut args = vec!["pack", input, "--stream", mode, "-q", "--force", "-o", s(out)];
        args.extend_from_slice(opts);
        ok(&args);
    }
    let (want, got) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(got == want, "{opts:?}: streamed {} bytes differ from the whole pack's {} (first at {:?})", got.len(), want.len(), got.iter().zip(&want).position(|(x, y)| x != y));
    ok(&["verify", s(&b)]);
}

#[test]
fn a_streamed_pack_is_byte_identical_to_a_whole_one() {
    let d = tmp();
    let raw = sample(d.path(), "nyx", "70x60x50", 5);
    let dims = ["--dims", "70x60x50"];
    for opts in [
        &["--tile", "16", "--target-ratio", "60"][..],
        &["--tile", "32", "--target-ratio", "30", "--importance", "value:>9.5"],
        &["--tile", "16", "--error-bound-rel", "0.01", "--importance", "box:10,10,10:40,40,40"],
        &["--tile", "16", "--target-ratio", "40", "--error-bound-rel", "0.02", "--bound-graded", "--importance", "near:9,w=0.5"],
        &["--tile", "24", "--layout", "tensor", "--step", "0.01", "--importance", "sphere:30,30,25,r=12,world"],
        // Maps that need neighbours (tiles read with the planes and rows around them)
        // and the whole volume's maxima and range (a pass before the tiles).
        &["--tile", "16", "--target-ratio", "50", "--importance", "mix(0.6*grad,0.4*entropy:w=6,bins=16)"],
        &["--tile", "24", "--step", "0.02", "--importance", "max(var:w=5,value:>10)"],
        &["--lossless"],
    ] {
        same_bytes(d.path(), s(&raw), &[&dims[..], opts].concat());
    }
    // HDF5 by hyperslab (big-endian f8, chunked and compressed): boxes across chunks.
    let h5 = d.path().join("f.h5");
    py(
        "import sys, h5py, numpy as np\nv = np.fromfile(sys.argv[1], dtype='<f4').reshape(50, 60, 70)\nwith h5py.File(sys.argv[2], 'w') as f:\n    f.create_dataset('rho', data=v.astype('>f8'), chunks=(7, 11, 13), compression='gzip')\n",
        &[s(&raw), s(&h5)],
    );
    same_bytes(d.path(), &format!("{}:/rho", s(&h5)), &["--tile", "16", "--target-ratio", "50", "--importance", "value:>10"]);
}

#[test]
fn streaming_refuses_what_it_cannot_stream_and_auto_falls_back() {
    let d = tmp();
    let raw = sample(d.path(), "vortex", "40x30x20", 1);
    let out = d.path().join("o.idl");
    let refused = |extra: &[&str], input: &str, why: &str| {
        let mut args = vec!["pack", input, "--stream", "always", "-o", s(&out), "--force"];
        args.extend_from_slice(extra);
        let r = run(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains("cannot stream") && err.contains(why), "{extra:?}: {err}");
        assert!(!out.exists(), "a refused pack leaves no file");
    };
    let dims = ["--dims", "40x30x20"];
    refused(&[&dims[..], &["--importance", "iso:5"]].concat(), s(&raw), "needs the whole volume around each tile");
    refused(&[&dims[..], &["--target-psnr", "40"]].concat(), s(&raw), "quality target");
    let mhd = raw.with_extension("mhd");
    refused(&[], s(&mhd), "read whole");
    // NaN in the data: a whole read would refuse or fill it, a stream cannot see it coming.
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes[4000..4004].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = d.path().join("nan.raw");
    std::fs::write(&nan, &bytes).unwrap();
    refused(&[&dims[..], &["--missing", "0"]].concat(), s(&raw), "read whole");
    refused(&dims, s(&nan), "non-finite");
    // `auto` packs small volumes whole, the same as `never`; an iso map is no error there.
    for mode in ["auto", "never"] {
        ok(&["pack", s(&raw), "--dims", "40x30x20", "--importance", "iso:5", "--stream", mode, "-o", s(&out), "--force", "-q"]);
    }
}
