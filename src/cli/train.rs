//! `idlat train`: fit the codec to volumes (paper section 5.3).

use super::common::{DeviceArg, InputArgs};
use super::CmdResult;
use std::path::PathBuf;

/// Fit the codec to your data (or train the shipped default model).
///
/// Inputs are any files `pack` accepts, plus generated samples with
/// `--sample KIND:SEEDS:STEPS` (e.g. `vortex:1-3:0-2`). Writes a safetensors
/// model file usable with `pack --model`. Validation every `--validate-every`
/// steps uses the real quantiser and entropy coder and reports real bits.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input volumes.
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub input: InputArgs,
    /// Generated training data: KIND:SEEDS:STEPS with ranges, e.g. vortex:1-3:0-2 (repeatable).
    #[arg(long = "sample")]
    pub samples: Vec<String>,
    /// Dims of generated samples.
    #[arg(long, default_value = "64x64x64")]
    pub sample_dims: String,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Architecture profile: fast (default) or paper.
    #[arg(long, default_value = "fast")]
    pub profile: String,
    /// Optimisation steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Training windows sampled (complexity-aware, ~10 high-variance per low-variance).
    #[arg(long, default_value_t = 1000)]
    pub blocks: usize,
    /// Rate-distortion trade-off lambda.
    #[arg(long, default_value_t = 30.0)]
    pub lambda: f64,
    /// Distortion weight exponent a in exp(a * I).
    #[arg(long, default_value_t = 6.0)]
    pub a: f64,
    /// Learning rate of the networks (the density models use 10x).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Random seed of initialisation and batch sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The paper's baseline: same architecture, no importance, no quantisation, no rate loss.
    #[arg(long)]
    pub baseline: bool,
    /// Continue from a model file (weights; optimiser state restarts).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Run validation every N steps.
    #[arg(long, default_value_t = 200)]
    pub validate_every: usize,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Refuse nothing: overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> CmdResult {
    #[cfg(not(feature = "torch"))]
    {
        let _ = args;
        anyhow::bail!("this build has no neural codec (built without the `torch` feature)");
    }
    #[cfg(feature = "torch")]
    {
        use crate::codec::profile::Profile;
        use crate::codec::train::{train, TrainConfig};
        use anyhow::Context;
        use std::process::ExitCode;
        let profile = Profile::by_name(&args.profile).with_context(|| format!("unknown profile '{}' (fast or paper)", args.profile))?;
        if args.output.exists() && !args.force && args.resume.as_deref() != Some(args.output.as_path()) {
            anyhow::bail!("{} exists (use --force to overwrite)", args.output.display());
        }
        let vols = super::common::load_training_volumes(&args.inputs, &args.input, &args.samples, &args.sample_dims)?;
        anyhow::ensure!(!vols.is_empty(), "no training data: give input files or --sample");
        let device = super::common::device(args.device)?;
        let recipe = std::env::args().collect::<Vec<_>>().join(" ");
        let cfg = TrainConfig {
            profile,
            steps: args.steps,
            batch: args.batch,
            blocks: args.blocks,
            lambda: args.lambda,
            a: args.a,
            lr: args.lr,
            lr_density: args.lr * 10.0,
            seed: args.seed,
            baseline: args.baseline,
            out: args.output.clone(),
            resume: args.resume.clone(),
            validate_every: args.validate_every.max(1),
            device,
            recipe,
        };
        let bar = super::common::progress(args.steps as u64, args.quiet, "train");
        let t0 = std::time::Instant::now();
        let trained = train(&vols, &cfg, |step, loss, bpv, psnr, val| {
            bar.set_position(step as u64 + 1);
            bar.set_message(format!("loss {loss:.4} bpv {bpv:.3} psnr {psnr:.1}"));
            match val {
                // The baseline stores no bitstream: its checkpoint line reports training quality.
                Some(_) if cfg.baseline => super::common::note(&bar, format!("step {:>6}: checkpoint, training loss {loss:.5}, PSNR {psnr:.2} dB (baseline: no bitstream to validate)", step + 1)),
                Some(v) => super::common::note(&bar, format!("step {:>6}: validation (real bitstreams) {:.3} bits/voxel, PSNR {:.2} dB, wPSNR {:.2} dB", step + 1, v.bits_per_voxel, v.psnr, v.wpsnr)),
                None => {}
            }
        })
        .map_err(anyhow::Error::msg)?;
        bar.finish_and_clear();
        println!("trained {} ({} steps, {:.0} s): {} sha256 {}", cfg.profile.name, cfg.steps, t0.elapsed().as_secs_f64(), args.output.display(), trained.model.hash);
        Ok(ExitCode::SUCCESS)
    }
}
