//! Command-line interface: clap structs, validated into configs, dispatched to
//! the library. `anyhow` lives here and in `main.rs` only.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod cluster;
pub mod common;
pub mod eval;
pub mod importance;
pub mod info;
pub mod isosim;
pub mod latents;
#[cfg(not(feature = "torch"))]
pub mod lean;
pub mod mount;
pub mod pack;
pub mod sample;
pub mod train;
pub mod tsne;
pub mod unpack;
pub mod verify;

/// Importance-driven learned compression for 3D scientific volumes.
///
/// Pack volumes into one `.idl` container with a learned codec that keeps the
/// regions you mark important sharp, then mount the container and open the
/// volumes in ParaView or VTK as if they were never compressed.
#[derive(Parser, Debug)]
#[command(name = "idlat", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Pack(pack::Args),
    Unpack(unpack::Args),
    Info(info::Args),
    Verify(verify::Args),
    Eval(eval::Args),
    Mount(mount::Args),
    Train(train::Args),
    Importance(importance::Args),
    Latents(latents::Args),
    Cluster(cluster::Args),
    Tsne(tsne::Args),
    Isosim(isosim::Args),
    Sample(sample::Args),
}

/// Outcome of a subcommand: `Ok(code)` for a normal exit (e.g. verify's 1 on corruption).
pub type CmdResult = anyhow::Result<ExitCode>;

pub fn run(cli: Cli) -> CmdResult {
    // Every rank of an MPI job runs the same command line: only pack, unpack and eval share the work
    // out; anything else would run N times over the same output.
    if let Some(n) = crate::dist::launched_ranks() {
        if !matches!(cli.command, Command::Pack(_) | Command::Unpack(_) | Command::Eval(_)) {
            return Err(
                crate::dist::everyone(format!("started by an MPI launcher with {n} ranks, but only `idlat pack`, `unpack` and `eval` run across ranks; run this command as one process")).into()
            );
        }
    }
    match cli.command {
        Command::Pack(a) => pack::run(a),
        Command::Unpack(a) => unpack::run(a),
        Command::Info(a) => info::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Mount(a) => mount::run(a),
        Command::Train(a) => train::run(a),
        Command::Importance(a) => importance::run(a),
        Command::Latents(a) => latents::run(a),
        Command::Cluster(a) => cluster::run(a),
        Command::Tsne(a) => tsne::run(a),
        Command::Isosim(a) => isosim::run(a),
        Command::Sample(a) => sample::run(a),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The torch-free build hands what needs libtorch to the full build, before
    // anything is written; delegate() returns only when there is none.
    #[cfg(not(feature = "torch"))]
    if let Some(why) = lean::needs_torch(&cli) {
        eprintln!("idlat: error: {:#}", lean::delegate(&why));
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        // Rank 0 of an MPI job prints what all ranks agreed failed.
        Err(e) if e.downcast_ref::<crate::dist::Agreed>().is_some_and(|a| a.quiet) => ExitCode::from(2),
        Err(e) => {
            // An error one rank met alone names the rank (the others may not have met it).
            match crate::dist::launched_rank().filter(|_| crate::dist::launched_ranks().is_some() && !e.is::<crate::dist::Agreed>()) {
                Some(r) => eprintln!("idlat: error: rank {r}: {e:#}"),
                None => eprintln!("idlat: error: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}
