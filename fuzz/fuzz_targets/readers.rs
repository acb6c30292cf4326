//! Input readers on hostile files: .npy, MetaImage, NRRD, VTI and raw(.gz).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("idlat-fuzz-r-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let Some((&sel, body)) = data.split_first() else { return };
    let ext = ["npy", "mhd", "mha", "nrrd", "nhdr", "vti", "raw.gz", "raw"][sel as usize % 8];
    let p = dir.join(format!("f.{ext}"));
    if std::fs::write(&p, body).is_err() {
        return;
    }
    // A detached data file the headers may point at.
    let _ = std::fs::write(dir.join("f.raw"), body);
    let opts = idlat::io::ReadOptions { dims: Some([4, 4, 4]), ..Default::default() };
    let _ = idlat::io::read_volume(&p, &opts);
});
