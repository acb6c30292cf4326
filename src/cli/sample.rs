//! `idlat sample`: write synthetic test data.

use super::CmdResult;
use crate::sample::{generate, Kind};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate deterministic synthetic stand-ins for the paper's datasets (vortex, nyx, isabel).
///
/// vortex: vorticity magnitude of a pseudo-spectral Navier-Stokes run (0..12);
/// nyx: log10 density of a Zel'dovich-displaced cosmology-like field (about 8..12);
/// isabel: hurricane pressure perturbation in Pa (Holland profile).
/// Writes f32 in the format the output's extension names (.raw + .mhd, .nhdr with
/// .raw, .npy, .vti; any other name gets raw data plus NAME.mhd). With
/// --steps N, writes OUT_000.EXT ... numbered time steps of one run.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// vortex, nyx or isabel.
    pub kind: String,
    /// Grid size, x fastest.
    #[arg(long, default_value = "64x64x64")]
    pub dims: String,
    /// Random seed: the same seed, dims and step give the same volume.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time step of the run.
    #[arg(long, default_value_t = 0)]
    pub step: usize,
    /// Write this many consecutive steps (from --step) as numbered files.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Output: NAME.raw or NAME.mhd (both written), NAME.nhdr (+ NAME.raw), NAME.npy or NAME.vti.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> CmdResult {
    let kind: Kind = args.kind.parse().map_err(anyhow::Error::msg)?;
    let dims = crate::volume::parse_dims(&args.dims).map_err(anyhow::Error::msg)?;
    if dims.iter().product::<usize>() > 1 << 30 {
        bail!("dims {} exceed the 2^30-voxel limit of the generators", args.dims);
    }
    let outputs: Vec<(PathBuf, usize)> = match args.steps {
        None => vec![(args.output.clone(), args.step)],
        Some(n) => {
            let stem = args.output.file_stem().and_then(|s| s.to_str()).unwrap_or("sample").to_string();
            let ext = if known(&args.output) { args.output.extension().and_then(|e| e.to_str()).unwrap_or("raw").to_string() } else { "raw".into() };
            (0..n).map(|i| (args.output.with_file_name(format!("{stem}_{i:03}.{ext}")), args.step + i)).collect()
        }
    };
    for (path, _) in &outputs {
        // Existing outputs need --force; a FIFO or device is refused even then.
        if known(path) {
            crate::io::check_output(path, args.force)?;
        } else {
            let (data, header) = crate::io::raw_mhd_paths(path);
            for p in [data, header] {
                crate::io::atomic::check_target(&p, args.force)?;
            }
        }
    }
    // All steps are written to temporaries and renamed together at the end: a
    // full disk or an interrupt leaves no partial series.
    let mut staged = crate::io::atomic::Staged::new();
    let mut lines = Vec::new();
    for (path, step) in outputs {
        let t = std::time::Instant::now();
        let mut vol = generate(kind, dims, args.seed, step);
        vol.info.name = path.file_stem().and_then(|s| s.to_str()).unwrap_or(kind.name()).to_string();
        if known(&path) {
            crate::io::stage_volume(&path, &vol, None, args.force, &mut staged).with_context(|| format!("writing {}", path.display()))?;
        } else {
            let (data, header) = crate::io::raw_mhd_paths(&path);
            let data_name = data.file_name().and_then(|n| n.to_str()).unwrap_or("data.raw").to_string();
            staged.write(&data, |w| crate::io::raw::write_samples(w, &vol.data, crate::volume::DType::F32)).with_context(|| format!("writing {}", path.display()))?;
            staged.write_bytes(&header, crate::io::mhd_header(&vol, &data_name).as_bytes()).with_context(|| format!("writing {}", header.display()))?;
        }
        let (lo, hi) = vol.range();
        lines.push(format!("{}: {} {}x{}x{} seed {} step {step}, range {lo:.4}..{hi:.4}, {:.1} s", path.display(), kind.name(), dims[0], dims[1], dims[2], args.seed, t.elapsed().as_secs_f64()));
    }
    staged.commit()?;
    for l in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `write_volume` knows the output's format by its extension.
fn known(path: &std::path::Path) -> bool {
    crate::io::output_files(path).is_some()
}
