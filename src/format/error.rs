//! Container errors: each variant says where the problem is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    // The OS error is in the message and deliberately not a `source`:
    // anyhow's `{:#}` prints the chain, which would repeat it.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("not an idlat container (bad magic in the {section})")]
    BadMagic { section: &'static str },
    #[error("container format version {major}.{minor} is not supported (this build reads major version {supported})")]
    UnsupportedVersion { major: u16, minor: u16, supported: u16 },
    #[error("truncated {section}: need {need} bytes, have {have}")]
    Truncated { section: &'static str, need: u64, have: u64 },
    /// The header is valid but no trailer ends the file: almost always a copy or
    /// download that stopped early, so "not an idlat container" would mislead.
    #[error("{}", damaged_trailer_msg(*.len, *.expected))]
    TruncatedOrDamagedTrailer { len: u64, expected: Option<u64> },
    #[error("checksum mismatch in the {section}")]
    BadCrc { section: &'static str },
    #[error("checksum mismatch in block {block} of volume {volume}")]
    BadBlockCrc { volume: u32, block: u64 },
    #[error("{what} = {value} exceeds the limit {max}")]
    LimitExceeded { what: &'static str, value: u64, max: u64 },
    #[error("invalid {section}: {msg}")]
    Invalid { section: &'static str, msg: String },
    #[error("block {block} of volume {volume}: {msg}")]
    BadBlock { volume: u32, block: u64, msg: String },
    #[error("no volume {0} in this container")]
    NoVolume(u32),
    #[error("{path} exists (use --force to overwrite)")]
    Exists { path: PathBuf },
}

impl From<FormatError> for std::io::Error {
    fn from(e: FormatError) -> std::io::Error {
        let kind = match &e {
            FormatError::Io { err, .. } => err.kind(),
            FormatError::NoVolume(_) => std::io::ErrorKind::NotFound,
            FormatError::Exists { .. } => std::io::ErrorKind::AlreadyExists,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

fn damaged_trailer_msg(len: u64, expected: Option<u64>) -> String {
    match expected {
        Some(e) if e < len => format!("{} bytes follow the trailer: the container ends at byte {e}, the file has {len} bytes", len - e),
        _ => format!("the file is truncated or its trailer is damaged: it starts with a valid idlat header, but its last 88 bytes are not a trailer (file has {len} bytes)"),
    }
}

pub type Result<T> = std::result::Result<T, FormatError>;
