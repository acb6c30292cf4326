//! `idlat verify`.

use super::common::DeviceArg;
use super::CmdResult;
use crate::format::{BlockId, Container};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check every checksum and bound of a container; exit 1 naming each bad block or section.
///
/// Sections (header, trailer, metadata, index, model) and every block payload
/// are checked. With --decode every block is also decoded (neural blocks with
/// the container's model).
#[derive(clap::Args, Debug)]
pub struct Args {
    pub input: PathBuf,
    /// Also decode every block.
    #[arg(long)]
    pub decode: bool,
    /// Model file, if the container references one that is not installed.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

pub fn run(args: Args) -> CmdResult {
    let c = match Container::open(&args.input) {
        Ok(c) => std::sync::Arc::new(c),
        // A file that cannot be read at all is a usage error (exit 2), not corruption.
        Err(e @ crate::format::FormatError::Io { .. }) => return Err(e.into()),
        Err(e) => {
            println!("{}: CORRUPT: {e}", args.input.display());
            return Ok(ExitCode::from(1));
        }
    };
    #[cfg(feature = "torch")]
    if args.decode {
        super::common::passive_openmp_for(&c);
    }
    let mut bad = 0usize;
    if let Err(e) = c.embedded_model() {
        println!("model section: {e}");
        bad += 1;
    }
    let mut blocks = 0u64;
    for (v, m) in c.volumes() {
        for b in 0..m.block_count {
            blocks += 1;
            if let Err(e) = c.block(v, BlockId(b)) {
                println!("volume {} ({}) block {b}: {e}", v.0, m.info.name);
                bad += 1;
            }
        }
    }
    if args.decode && bad == 0 {
        let reader = super::common::reader(&c, args.model.as_deref(), args.device, super::common::DECODE_BATCH)?;
        // Too large to hold in memory is not corruption: a usage error (exit 2)
        // before any decoding, never an allocation abort.
        for (_, m) in c.volumes() {
            super::common::check_decodable(m)?;
        }
        for (v, m) in c.volumes() {
            if let Err(e) = reader.volume_by_id(v).and_then(|r| r.read_all(|_, _| {})) {
                println!("volume {} ({}): decode failed: {e}", v.0, m.info.name);
                bad += 1;
            }
        }
    }
    if bad > 0 {
        println!("{}: CORRUPT ({bad} problem{} in {blocks} blocks)", args.input.display(), if bad == 1 { "" } else { "s" });
        return Ok(ExitCode::from(1));
    }
    println!("{}: OK ({} volumes, {blocks} blocks{})", args.input.display(), c.meta().volumes.len(), if args.decode { ", all decoded" } else { "" });
    Ok(ExitCode::SUCCESS)
}
