//! `idlat train`.

use super::{CmdResult, NotImplemented};

/// Fit the codec to your data (or train the shipped default model).
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
