//! `idlat importance`.

use super::common::InputArgs;
use super::CmdResult;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compute an importance map and write it as .raw + .mhd to inspect in ParaView.
///
/// SPEC grammar (full reference: docs/IMPORTANCE.md). Each kind maps every voxel to [0, 1]:
///   iso:V[,k=0.2][,fn=exp|inv][,world]   distance d to the isosurface V: exp(-k d) or 1/(1+k d)
///   value:>T | value:<T | value:A..B     thresholds and ranges
///   near:V,w=W                           exp(-((v-V)/W)^2)
///   tf:v0=o0,v1=o1,...                   piecewise-linear transfer function
///   box:x0,y0,z0:x1,y1,z1[,soft=S][,world]   half-open box (voxels, or world units)
///   sphere:x,y,z,r=R[,soft=S][,world]
///   grad | var:w=5 | entropy:w=8[,bins=32]    statistics, normalised to [0, 1]
///   uniform:V | file:PATH | time:t0=w0,t1=w1 | of=NAME:SPEC
///   max(A,B,...) min(...) mul(...) mix(0.5*A,0.5*B) scale(S,A) clamp(LO,HI,A)
/// The paper's examples:
///   Vortex: iso:7        Nyx: value:>10.2        Isabel: box:200,180,0:264,244,96
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Input volume (any format pack reads).
    pub input: PathBuf,
    /// The importance spec (grammar above).
    #[arg(long)]
    pub importance: String,
    /// Output map: NAME.raw (f32, plus NAME.mhd beside it) or NAME.mhd (plus NAME.raw).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub read: InputArgs,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> CmdResult {
    let spec = crate::importance::parse(&args.importance).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (data, header) = crate::io::raw_mhd_paths(&args.output);
    for p in [data, header] {
        // Existing outputs need --force; a FIFO or device is refused even then.
        crate::io::atomic::check_target(&p, args.force)?;
    }
    let vol = crate::io::read_volume(&args.input, &args.read.read_options()?)?;
    let t = std::time::Instant::now();
    let map = crate::importance::compute(&spec, &crate::importance::Context::single(&vol)).context("computing the map")?;
    let secs = t.elapsed().as_secs_f64();
    let (above, mean) = crate::importance::summary(&map);
    let mut out = crate::volume::Volume::new(vol.info.clone(), map);
    out.info.name = "importance".into();
    crate::io::write_raw_mhd(&args.output, &out)?;
    println!("{}: {spec}: {:.1}% of voxels above 0.5, mean {:.4} ({:.2} s)", args.output.display(), above * 100.0, mean, secs);
    Ok(ExitCode::SUCCESS)
}
