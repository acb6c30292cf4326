//! Readers against files written by independent tools (numpy, VTK), and the
//! writers' round trips.

use super::common::*;
use idlat::io::{read_volume, read_volume_with_mask, write_volume, ReadOptions};
use idlat::volume::{DType, Endian, Volume, VolumeInfo};

fn expected(dims: [usize; 3]) -> Vec<f32> {
    (0..dims[0] * dims[1] * dims[2]).map(|i| ((i * 37) % 101) as f32 - 20.0).collect()
}

/// numpy writes the same field in many layouts; every one reads back identical.
#[test]
fn npy_and_raw_layouts_from_numpy() {
    let d = tmp();
    let dir = d.path();
    py(
        "import sys, numpy as np, os\nd = sys.argv[1]\n\
         a = ((np.arange(7*5*6) * 37) % 101 - 20).reshape(6, 5, 7)\n\
         np.save(os.path.join(d, 'c.npy'), a.astype('<f4'))\n\
         np.save(os.path.join(d, 'f.npy'), np.asfortranarray(a.transpose(2, 1, 0).astype('>f8')))\n\
         np.save(os.path.join(d, 'i.npy'), a.astype('<i2'))\n\
         a.astype('>f4').tofile(os.path.join(d, 'be.raw'))\n\
         open(os.path.join(d, 'hdr.raw'), 'wb').write(b'H' * 16 + a.astype('<u2').tobytes())\n\
         import gzip; open(os.path.join(d, 'g.raw.gz'), 'wb').write(gzip.compress(a.astype('<f4').tobytes()))",
        &[s(dir)],
    );
    let want = expected([7, 5, 6]);
    let raw = |dtype, endian, hb| ReadOptions { dims: Some([7, 5, 6]), dtype: Some(dtype), endian: Some(endian), header_bytes: hb, missing: None, ..Default::default() };
    for (f, o) in [("c.npy", ReadOptions::default()), ("i.npy", ReadOptions::default()), ("be.raw", raw(DType::F32, Endian::Big, 0)), ("g.raw.gz", raw(DType::F32, Endian::Little, 0))] {
        let v = read_volume(&dir.join(f), &o).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(v.info.dims, [7, 5, 6], "{f}");
        assert_eq!(v.data, want, "{f}");
    }
    // Fortran order of the transposed array is the same x-fastest layout.
    let v = read_volume(&dir.join("f.npy"), &ReadOptions::default()).unwrap();
    assert_eq!((v.info.dims, v.info.dtype), ([7, 5, 6], DType::F64));
    assert_eq!(v.data, want);
    // u16 with a 16-byte header: negative values wrapped exactly as numpy did.
    let v = read_volume(&dir.join("hdr.raw"), &raw(DType::U16, Endian::Little, 16)).unwrap();
    assert_eq!(v.data[0], (-20i32).rem_euclid(65536) as f32);
    // Wrong sizes name both numbers.
    let e = read_volume(&dir.join("be.raw"), &ReadOptions { dims: Some([7, 5, 7]), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("840") && e.contains("980"), "{e}");
    let e = read_volume(&dir.join("g.raw.gz"), &ReadOptions { dims: Some([7, 5, 5]), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("longer"), "{e}");
    assert!(read_volume(&dir.join("nope.raw"), &raw(DType::F32, Endian::Little, 0)).is_err());
}

/// VTK writes MetaImage, NRRD-compatible and XML image data; idlat reads each with spacing and origin.
#[test]
fn vtk_written_files() {
    let d = tmp();
    let dir = d.path();
    py(
        "import sys, os, vtk, numpy as np\nfrom vtk.util import numpy_support as ns\nd = sys.argv[1]\n\
         a = ((np.arange(7*5*6) * 37) % 101 - 20).astype(np.float32)\n\
         img = vtk.vtkImageData(); img.SetDimensions(7, 5, 6); img.SetSpacing(0.5, 2.0, 1.5); img.SetOrigin(-1.0, 3.0, 10.0)\n\
         arr = ns.numpy_to_vtk(a); arr.SetName('pressure'); img.GetPointData().SetScalars(arr)\n\
         w = vtk.vtkMetaImageWriter(); w.SetFileName(os.path.join(d, 'm.mhd')); w.SetRAWFileName(os.path.join(d, 'm.raw')); w.SetCompression(False); w.SetInputData(img); w.Write()\n\
         w = vtk.vtkMetaImageWriter(); w.SetFileName(os.path.join(d, 'z.mha')); w.SetCompression(True); w.SetInputData(img); w.Write()\n\
         for name, mode, comp in [('app.vti', 'a', None), ('b64.vti', 'b', None), ('zl.vti', 'a', 'z'), ('zb.vti', 'b', 'z'), ('asc.vti', 'c', None)]:\n\
         \x20   w = vtk.vtkXMLImageDataWriter(); w.SetFileName(os.path.join(d, name)); w.SetInputData(img)\n\
         \x20   w.SetHeaderTypeToUInt64() if name != 'b64.vti' else w.SetHeaderTypeToUInt32()\n\
         \x20   (w.SetDataModeToAppended(), w.EncodeAppendedDataOff()) if mode == 'a' else (w.SetDataModeToBinary() if mode == 'b' else w.SetDataModeToAscii())\n\
         \x20   w.SetCompressorTypeToZLib() if comp else w.SetCompressorTypeToNone()\n\
         \x20   w.Write()\n",
        &[s(dir)],
    );
    let want = expected([7, 5, 6]);
    for f in ["m.mhd", "z.mha", "app.vti", "b64.vti", "zl.vti", "zb.vti", "asc.vti"] {
        let v = read_volume(&dir.join(f), &ReadOptions::default()).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(v.info.dims, [7, 5, 6], "{f}");
        assert_eq!(v.info.spacing, [0.5, 2.0, 1.5], "{f}");
        assert_eq!(v.info.origin, [-1.0, 3.0, 10.0], "{f}");
        assert_eq!(v.data, want, "{f}");
    }
}

#[test]
fn writers_round_trip_and_vtk_reads_them() {
    let d = tmp();
    // VTK's NRRD reader takes a first axis shorter than 10 for vector components: keep x >= 10.
    let mut info = VolumeInfo::new("t", [16, 4, 3]);
    info.spacing = [0.25, 1.0, 4.0];
    info.origin = [1.0, -2.0, 0.5];
    let vol = Volume::new(info, expected([16, 4, 3]));
    for f in ["a.raw", "b.nhdr", "c.npy", "d.vti"] {
        let p = d.path().join(f);
        write_volume(&p, &vol, None, false).unwrap();
        assert!(write_volume(&p, &vol, None, false).is_err(), "{f}: refuses overwrite");
        let back_path = if f == "a.raw" { p.with_extension("mhd") } else { p.clone() };
        let back = read_volume(&back_path, &ReadOptions::default()).unwrap();
        assert_eq!(back.data, vol.data, "{f}");
        if f != "c.npy" {
            assert_eq!((back.info.spacing, back.info.origin), (vol.info.spacing, vol.info.origin), "{f}");
        }
    }
    // Original dtype restored: rounding and clamping into u8.
    let p = d.path().join("u.raw");
    write_volume(&p, &vol, Some(DType::U8), false).unwrap();
    let u = read_volume(&p.with_extension("mhd"), &ReadOptions::default()).unwrap();
    assert_eq!(u.info.dtype, DType::U8);
    assert_eq!(u.data[0], 0.0); // -20 clamps to 0
                                // VTK opens the .nhdr and .vti with the same values and placement.
    let out = py(
        "import sys, vtk\nfrom vtk.util import numpy_support as ns\n\
         for f, R in [(sys.argv[1], vtk.vtkNrrdReader), (sys.argv[2], vtk.vtkXMLImageDataReader)]:\n\
         \x20   r = R(); r.SetFileName(f); r.Update(); i = r.GetOutput()\n\
         \x20   a = ns.vtk_to_numpy(i.GetPointData().GetScalars()).ravel()\n\
         \x20   print(i.GetDimensions(), i.GetSpacing(), i.GetOrigin(), float(a[0]), float(a[-1]))",
        &[s(&d.path().join("b.nhdr")), s(&d.path().join("d.vti"))],
    );
    for line in out.lines() {
        assert!(line.starts_with("(16, 4, 3) (0.25, 1.0, 4.0) (1.0, -2.0, 0.5)"), "{line}");
        assert!(line.ends_with(&format!("{:?} {:?}", vol.data[0] as f64, *vol.data.last().unwrap() as f64)), "{line}");
    }
}

#[test]
fn missing_values_are_filled_and_masked() {
    let d = tmp();
    let p = d.path().join("pf.raw");
    let mut v: Vec<f32> = (0..64).map(|i| i as f32).collect();
    v[5] = 1e35;
    v[6] = 1e35;
    std::fs::write(&p, v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>()).unwrap();
    let (vol, mask) = read_volume_with_mask(&p, &ReadOptions { dims: Some([4, 4, 4]), endian: Some(Endian::Big), missing: Some(1e35), ..Default::default() }).unwrap();
    let mask = mask.unwrap();
    assert!(!mask[5] && !mask[6] && mask[4]);
    assert!(vol.data.iter().all(|x| x.abs() < 100.0), "sentinels replaced");
    assert_eq!(vol.info.missing, Some(1e35));
}

/// NRRD headers as teem and pynrrd write them: a detached header ends right
/// after `data file:`, with no blank line (it used to be rejected); attached
/// .nrrd data follows a blank line, raw or gzip.
#[test]
fn nrrd_detached_header_without_blank_line_and_attached_encodings() {
    use std::io::Write;
    let d = tmp();
    let dir = d.path();
    let want = expected([7, 5, 6]);
    let data: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(dir.join("d.raw"), &data).unwrap();
    std::fs::write(dir.join("d.raw.gz"), gz(&data)).unwrap();
    let head = |enc: &str| {
        format!(
            "NRRD0004\n# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n\
             type: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 7 5 6\n\
             space directions: (0.5,0,0) (0,2,0) (0,0,1)\nkinds: domain domain domain\nendian: little\nencoding: {enc}\n\
             space origin: (1,2,3)\n"
        )
    };
    let cases = [
        ("teem.nhdr", format!("{}data file: d.raw\n", head("raw")).into_bytes()),
        ("no_newline.nhdr", format!("{}data file: d.raw", head("raw")).into_bytes()),
        ("gzip.nhdr", format!("{}data file: d.raw.gz\n", head("gzip")).into_bytes()),
        ("blank.nhdr", format!("{}data file: d.raw\n\n", head("raw")).into_bytes()),
        ("attached.nrrd", [format!("{}\n", head("raw")).into_bytes(), data.clone()].concat()),
        ("attached_gz.nrrd", [format!("{}\n", head("gzip")).into_bytes(), gz(&data)].concat()),
    ];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let v = read_volume(&p, &ReadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.info.dims, [7, 5, 6], "{name}");
        assert_eq!((v.info.spacing, v.info.origin), ([0.5, 2.0, 1.0], [1.0, 2.0, 3.0]), "{name}");
        assert_eq!(v.data, want, "{name}");
    }
    // Attached data still needs the blank line: without it the header runs to EOF.
    let p = dir.join("cut.nrrd");
    std::fs::write(&p, head("raw")).unwrap();
    let e = read_volume(&p, &ReadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("blank line"), "{e}");
}

/// `.npy.gz` is gunzipped and read as .npy (it used to be taken for a raw brick).
#[test]
fn gzipped_npy_is_read_as_npy() {
    let d = tmp();
    let dir = d.path();
    py(
        "import sys, os, gzip, io, numpy as np\nd = sys.argv[1]\n\
         a = ((np.arange(7*5*6) * 37) % 101 - 20).reshape(6, 5, 7).astype('<i2')\n\
         b = io.BytesIO(); np.save(b, a); open(os.path.join(d, 'a.npy.gz'), 'wb').write(gzip.compress(b.getvalue()))\n\
         open(os.path.join(d, 'bad.npy.gz'), 'wb').write(gzip.compress(b'not an npy'))",
        &[s(dir)],
    );
    let v = read_volume(&dir.join("a.npy.gz"), &ReadOptions::default()).unwrap();
    assert_eq!((v.info.dims, v.info.dtype), ([7, 5, 6], DType::I16));
    assert_eq!(v.data, expected([7, 5, 6]));
    let e = read_volume(&dir.join("bad.npy.gz"), &ReadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not a valid .npy"), "{e}");
}

/// A .npy header length is checked against the file (and a 1 MiB cap) before
/// anything is allocated for it: a version-3 length field of ~4 GiB made the
/// reader allocate it (found by the `readers` fuzz target). A gzipped .npy is
/// inflated no further than its header's shape needs.
#[test]
fn npy_header_and_gzip_lengths_are_checked_before_allocating() {
    use std::io::Write;
    let d = tmp();
    let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4, 4), }";
    let npy = |version: u8, len_field: &[u8], data: &[u8]| {
        let mut b = b"\x93NUMPY".to_vec();
        b.extend_from_slice(&[version, 0]);
        b.extend_from_slice(len_field);
        b.extend_from_slice(dict);
        b.extend_from_slice(data);
        b
    };
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("huge3.npy", npy(3, &0xffff_ff76u32.to_le_bytes(), &[0; 256]), "header of 4294967158 bytes is longer than the file"),
        ("long1.npy", npy(1, &0x7000u16.to_le_bytes(), &[0; 256]), "header of 28672 bytes is longer than the file"),
        ("v9.npy", npy(9, &[0, 0], &[]), "unknown format version 9"),
        ("short.npy", b"\x93NUM".to_vec(), "shorter than its magic"),
        (
            "digits.npy",
            {
                let d = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, ), }}", "9".repeat(5000));
                let mut b = b"\x93NUMPY\x01\x00".to_vec();
                b.extend_from_slice(&(d.len() as u16).to_le_bytes());
                b.extend_from_slice(d.as_bytes());
                b
            },
            "longer than 20 digits",
        ),
        ("deep.npy", npy(1, &[0xff, 0x00], &[b'('; 255]).into_iter().take(10 + 255).collect(), "nests deeper than 8"),
    ];
    for (name, bytes, want) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_volume(&p, &ReadOptions::default()).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
    // A well-formed file with the same header reads (the checks are not too strict).
    let ok_path = d.path().join("ok.npy");
    let len = (dict.len() as u16).to_le_bytes();
    std::fs::write(&ok_path, npy(1, &len, &[0; 256])).unwrap();
    assert_eq!(read_volume(&ok_path, &ReadOptions::default()).unwrap().info.dims, [4, 4, 4]);
    // Gzip: 64 MiB of zeros behind a 4x4x4 header read as the 64 values it
    // declares; a shape past the inflated data is an error naming both sizes.
    for (name, shape, want) in [("bomb.npy.gz", "(4, 4, 4)", None), ("big.npy.gz", "(1024, 1024, 1024)", Some("needs 4294967296 bytes of data"))] {
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut raw = b"\x93NUMPY\x01\x00".to_vec();
        raw.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        raw.extend_from_slice(dict.as_bytes());
        let p = d.path().join(name);
        let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap();
        match (read_volume(&p, &ReadOptions::default()), want) {
            (Ok(v), None) => assert_eq!((v.info.dims, v.data.len()), ([4, 4, 4], 64)),
            (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
            (r, w) => panic!("{name}: {:?} (wanted {w:?})", r.map(|v| v.info.dims)),
        }
    }
}
