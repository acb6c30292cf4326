//! Every input format through the CLI: files written by numpy and VTK are packed
//! (lossless, so values must come back exactly), unpacked, and compared, with
//! dtype, byte order, header bytes, gzip, spacing and origin checked end to end;
//! missing values are filled, recorded and left out by `eval`.
use super::common::*;

/// Packs `input` losslessly (extra flags for raw inputs), unpacks to `out`, and returns info's JSON.
fn pack_unpack(dir: &std::path::Path, input: &str, extra: &[&str], out: &str, unpack_extra: &[&str]) -> serde_json::Value {
    let idl = dir.join("t.idl");
    let mut a = vec!["pack", input, "--lossless", "-o", s(&idl), "--force", "--quiet"];
    a.extend_from_slice(extra);
    ok(&a);
    let mut u = vec!["unpack", s(&idl), "-o", out, "--force", "--quiet"];
    u.extend_from_slice(unpack_extra);
    ok(&u);
    serde_json::from_str(&ok(&["info", s(&idl), "--json"])).unwrap()
}

#[test]
fn raw_dtypes_byte_orders_headers_and_gzip_round_trip() {
    let d = tmp();
    let dir = s(d.path());
    for (dtype, np, endian) in [("u16", ">u2", "big"), ("i8", "i1", "little"), ("f64", "<f8", "little"), ("i32", ">i4", "big")] {
        // 5x4x3 values with a 16-byte header, gzipped.
        let raw = format!("{dir}/in_{dtype}.bin.gz");
        py(
            "import sys, gzip, numpy as np\n\
             a = (np.arange(60).reshape(3, 4, 5) * 3 - 50).astype(sys.argv[2])\n\
             gzip.open(sys.argv[1], 'wb').write(b'H' * 16 + a.tobytes())",
            &[&raw, np],
        );
        let out = format!("{dir}/out_{dtype}.raw");
        let info = pack_unpack(d.path(), &raw, &["--dims", "5x4x3", "--dtype", dtype, "--endian", endian, "--header-bytes", "16"], &out, &["--dtype", "original"]);
        assert_eq!(info["volumes"][0]["dtype"], dtype, "{info}");
        // Unpacked in the original type (little-endian): the values must be exact.
        let same = py(
            "import sys, numpy as np\n\
             a = (np.arange(60) * 3 - 50).astype(sys.argv[2])\n\
             b = np.fromfile(sys.argv[1], np.dtype(sys.argv[2]).newbyteorder('<'))\n\
             print(b.shape == a.shape and bool(np.all(a.astype(float) == b.astype(float))))",
            &[&out, np],
        );
        assert_eq!(same.trim(), "True", "{dtype} {endian}: values differ after the round trip");
    }
}

#[test]
fn self_describing_formats_keep_values_spacing_and_origin() {
    let d = tmp();
    let dir = s(d.path());
    // numpy writes .npy and a MetaImage pair; VTK writes a zlib-compressed .vti and NRRD via text.
    py(
        "import sys, gzip, numpy as np\n\
         d = sys.argv[1]\n\
         a = (np.arange(6*5*4).reshape(4, 5, 6) % 17).astype('<u2')\n\
         np.save(d + '/a.npy', a.astype('<i2'))\n\
         a.tofile(d + '/m.raw')\n\
         open(d + '/m.mhd', 'w').write('ObjectType = Image\\nNDims = 3\\nDimSize = 6 5 4\\nElementSpacing = 0.5 1 2\\nOffset = 1 2 3\\n'\n\
           'ElementType = MET_USHORT\\nBinaryData = True\\nBinaryDataByteOrderMSB = False\\nElementDataFile = m.raw\\n')\n\
         hdr = 'NRRD0004\\ntype: unsigned short\\ndimension: 3\\nsizes: 6 5 4\\nendian: little\\nencoding: gzip\\n'\\\n\
           'space dimension: 3\\nspace directions: (0.5,0,0) (0,1,0) (0,0,2)\\nspace origin: (1,2,3)\\n\\n'\n\
         open(d + '/n.nrrd', 'wb').write(hdr.encode() + gzip.compress(a.tobytes()))\n\
         import vtk\n\
         from vtk.util import numpy_support as ns\n\
         img = vtk.vtkImageData(); img.SetDimensions(6, 5, 4); img.SetSpacing(0.5, 1, 2); img.SetOrigin(1, 2, 3)\n\
         arr = ns.numpy_to_vtk(a.ravel().astype('<f4'), deep=True); arr.SetName('v'); img.GetPointData().SetScalars(arr)\n\
         w = vtk.vtkXMLImageDataWriter(); w.SetFileName(d + '/v.vti'); w.SetInputData(img)\n\
         w.SetCompressorTypeToZLib(); w.SetDataModeToAppended(); w.EncodeAppendedDataOff(); w.Write()",
        &[dir],
    );
    for (input, spaced) in [("a.npy", false), ("m.mhd", true), ("n.nrrd", true), ("v.vti", true)] {
        let out = format!("{dir}/out_{input}.mhd");
        let info = pack_unpack(d.path(), &format!("{dir}/{input}"), &[], &out, &[]);
        let v = &info["volumes"][0];
        assert_eq!(v["dims"], serde_json::json!([6, 5, 4]), "{input}: {info}");
        if spaced {
            assert_eq!(v["spacing"], serde_json::json!([0.5, 1.0, 2.0]), "{input}: {info}");
            assert_eq!(v["origin"], serde_json::json!([1.0, 2.0, 3.0]), "{input}: {info}");
        }
        // The unpacked MetaImage is read back by VTK: same values, same geometry.
        let r = py(
            "import sys, numpy as np, vtk\n\
             from vtk.util import numpy_support as ns\n\
             r = vtk.vtkMetaImageReader(); r.SetFileName(sys.argv[1]); r.Update(); img = r.GetOutput()\n\
             b = ns.vtk_to_numpy(img.GetPointData().GetScalars()).astype(float)\n\
             a = (np.arange(120) % 17).astype(float)\n\
             print(bool(np.array_equal(a, b)), img.GetSpacing(), img.GetOrigin())",
            &[&out],
        );
        assert!(r.starts_with("True"), "{input}: values differ after the round trip: {r}");
        if spaced {
            assert!(r.contains("(0.5, 1.0, 2.0) (1.0, 2.0, 3.0)"), "{input}: geometry lost: {r}");
        }
    }
}

#[test]
fn missing_values_are_filled_recorded_and_left_out_by_eval() {
    let d = tmp();
    let dir = s(d.path());
    let raw = format!("{dir}/isabel.bin");
    // A big-endian field with a 'land' corner marked 1e35, as in Isabel.
    py(
        "import sys, numpy as np\n\
         z, y, x = np.mgrid[0:16, 0:24, 0:32].astype(np.float32)\n\
         a = 1000 + 20 * np.sin(x / 5) * np.cos(y / 7) + z\n\
         a[:, :8, :8] = 1e35\n\
         a.astype('>f4').tofile(sys.argv[1])",
        &[&raw],
    );
    let idl = format!("{dir}/i.idl");
    ok(&["pack", "--profile", "fast", &raw, "--dims", "32x24x16", "--endian", "big", "--missing", "1e35", "--importance", "uniform:1", "--error-bound", "0.5", "-o", &idl, "--quiet"]);
    let info: serde_json::Value = serde_json::from_str(&ok(&["info", &idl, "--json"])).unwrap();
    assert_eq!(info["volumes"][0]["missing"].as_f64(), Some(1e35), "the sentinel is recorded: {info}");
    // eval takes the sentinel from the container and leaves those voxels out.
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", &idl, "--reference", &raw, "--dims", "32x24x16", "--endian", "big", "--json"])).unwrap();
    let v = &ev["volumes"][0];
    assert!(v["max_abs_error"].as_f64().unwrap() <= 0.5, "{ev}");
    assert_eq!(v["voxels"].as_u64(), Some(32 * 24 * 16 - 16 * 8 * 8), "{ev}");
    // The filled voxels decode to values inside the data's range, not to 1e35 or NaN.
    let out = format!("{dir}/i.raw");
    ok(&["unpack", &idl, "-o", &out, "--quiet"]);
    let x = read_f32(std::path::Path::new(&out));
    assert!(x.iter().all(|v| v.is_finite() && (970.0..1040.0).contains(v)), "filled values stay in the data's range");
}
