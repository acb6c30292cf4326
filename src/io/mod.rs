//! Readers and writers for the volume formats scientists have.
//!
//! Entry points used across the crate (signatures are a contract; bodies are
//! filled in by the input-formats work):
//! - [`read_volume`]: any supported input file into a [`Volume`].
//! - [`write_raw_mhd`]: a volume as little-endian f32 `NAME.raw` plus a MetaImage header.

use crate::volume::{Dims, DType, Endian, Volume};
use std::path::{Path, PathBuf};

/// Errors reading or writing volume files; each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Os { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// How to interpret inputs that do not describe themselves (raw bricks).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub dims: Option<Dims>,
    pub dtype: Option<DType>,
    pub endian: Option<Endian>,
    pub header_bytes: u64,
    pub missing: Option<f64>,
}

/// Reads any supported input into a volume (f32, x fastest).
pub fn read_volume(path: &Path, _opts: &ReadOptions) -> Result<Volume, IoError> {
    Err(IoError::Invalid { path: path.to_owned(), msg: "reader not implemented yet".into() })
}

/// Writes `path` (little-endian f32, x fastest) and a MetaImage header beside it
/// (`path` with extension `.mhd`). Returns the header path.
pub fn write_raw_mhd(path: &Path, vol: &Volume) -> Result<PathBuf, IoError> {
    let mut bytes = Vec::with_capacity(vol.data.len() * 4);
    for v in &vol.data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, &bytes).map_err(|e| os_err(path, e))?;
    let mhd = path.with_extension("mhd");
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("data.raw");
    std::fs::write(&mhd, mhd_header(vol, file_name)).map_err(|e| os_err(&mhd, e))?;
    Ok(mhd)
}

/// Wraps an OS error with the file it concerns.
pub fn os_err(path: &Path, source: std::io::Error) -> IoError {
    IoError::Os { path: path.to_owned(), source }
}

/// MetaImage header for little-endian f32 data in `data_file`.
/// `ElementDataFile` must be the last line: ParaView stops parsing there.
pub fn mhd_header(vol: &Volume, data_file: &str) -> String {
    let [nx, ny, nz] = vol.info.dims;
    let s = vol.info.spacing;
    let o = vol.info.origin;
    format!(
        "ObjectType = Image\nNDims = 3\nDimSize = {nx} {ny} {nz}\nElementSpacing = {} {} {}\nOffset = {} {} {}\n\
         ElementType = MET_FLOAT\nBinaryData = True\nBinaryDataByteOrderMSB = False\nElementDataFile = {data_file}\n",
        s[0], s[1], s[2], o[0], o[1], o[2]
    )
}
