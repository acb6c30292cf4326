//! Shared helpers: the built binary, the project venv, temp dirs, sample data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_idlat"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project venv's python; a missing venv fails the test (never skips).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("IDLAT_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "project venv missing at {} — run tools/setup.sh", venv.display());
    py
}

/// The binary of a build without the `torch` feature, the front end of
/// target/bin/idlat (built once, cached in target/notorch).
pub fn torch_free_bin() -> PathBuf {
    let target = repo().join("target/notorch");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--no-default-features", "--features", "mpi", "--bin", "idlat", "--target-dir"])
        .arg(&target)
        .current_dir(repo())
        .status()
        .expect("cargo build --no-default-features");
    assert!(st.success(), "the torch-free build failed");
    target.join("release/idlat")
}

pub fn run(args: &[&str]) -> Output {
    let out = Command::new(bin()).args(args).output().expect("run idlat");
    out
}

/// Runs idlat and requires success, returning stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "idlat {args:?} failed:\nstdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs a python snippet with the venv; requires success, returns stdout.
pub fn py(code: &str, args: &[&str]) -> String {
    let out = Command::new(python()).arg("-c").arg(code).args(args).output().expect("run python");
    assert!(out.status.success(), "python failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).expect("read").chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("idlat-test").tempdir().expect("tempdir")
}

/// Writes a sample volume and returns the .raw path.
pub fn sample(dir: &Path, kind: &str, dims: &str, seed: u64) -> PathBuf {
    let p = dir.join(format!("{kind}{seed}.raw"));
    ok(&["sample", kind, "--dims", dims, "--seed", &seed.to_string(), "-o", p.to_str().unwrap()]);
    p
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Volume metadata for hand-built containers.
pub fn volume_meta(name: &str, dims: [usize; 3], block: usize) -> idlat::format::VolumeMeta {
    idlat::format::VolumeMeta {
        info: idlat::volume::VolumeInfo::new(name, dims),
        value_range: (-2.0, 3.0),
        norm: idlat::format::Normalisation { offset: -2.0, scale: 0.2 },
        block: [block; 3],
        halo: 0,
        importance: Some("uniform:1".into()),
        time: None,
        units: None,
        attributes: Default::default(),
        codec: Default::default(),
        index_first: 0,
        block_count: 0,
    }
}
