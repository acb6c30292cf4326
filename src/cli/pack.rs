//! `idlat pack`: volumes in, one `.idl` container out.

use super::common::{note, progress, DeviceArg, InputArgs};
use super::CmdResult;
use crate::pack::{self, ErrorBound, Event, Inputs, PackError, Plan, Progress, Report, Settings, Sink, Target, Tolerance, VolumeReport, DEFAULT_BATCH};
use std::path::PathBuf;
use std::process::ExitCode;

/// Compress volumes into one .idl container.
///
/// Inputs: raw bricks (with --dims/--dtype/--endian, .gz read transparently), .npy,
/// MetaImage .mhd/.mha, NRRD .nrrd/.nhdr, VTK XML .vti, and datasets of HDF5
/// (.h5 .hdf5 .he5) and NetCDF (.nc .nc4 .cdf) files named FILE:NAME; several
/// inputs (or a glob) become a time series or ensemble sharing one model. An
/// importance map (--importance SPEC, see `idlat importance --help`) decides
/// where bits go.
///
/// HDF5 and NetCDF: `sim.h5:/group/dataset`, `ocean.nc:temp`; FILE alone takes
/// its only volume, and `idlat info FILE` lists them. Any numeric type, chunked
/// and compressed (gzip, shuffle, ...), read a slab at a time. The file's C order
/// (z, y, x) maps to x fastest. A 4-D variable whose first axis is time (NetCDF:
/// unlimited, named time, or axis="T"; HDF5: unlimited) is one volume per step,
/// NAME_tSTEP (FILE:NAME[STEP] takes one); a glob over files (`run*.h5:/rho`)
/// is a series too. _FillValue and missing_value attributes mark missing voxels
/// as --missing does; CF scale_factor/add_offset are applied. Spacing and origin
/// come from NetCDF coordinate variables (a non-uniform one warns and gives its
/// mean spacing) or from `spacing`/`origin` attributes in x, y, z order.
/// Volumes are named STEM_DATASET (groups joined by _).
///
/// Examples (the paper's data, then HDF5 and NetCDF):
///   idlat pack vorts*.data --dims 128x128x128 --importance 'iso:7' -o vortex.idl
///   idlat pack Pf*.bin.gz --dims 500x500x100 --endian big --missing 1e35 --importance 'box:200,180,0:264,244,96' -o isabel.idl
///   idlat pack density.raw --dims 256x256x256 --importance 'value:>10.2' -o nyx.idl
///   idlat pack plt*.h5:/level_0/density --importance 'value:>10.2' -o nyx.idl
///   idlat pack ocean.nc:temp --error-bound 0.01 -o ocean.idl
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Input volumes (globs are expanded; natural sort: t2 before t10); HDF5 and
    /// NetCDF datasets as FILE:NAME.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Output container.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Importance map spec (default uniform:0.5).
    #[arg(long, default_value = "uniform:0.5")]
    pub importance: String,
    /// How importance sets the quantisation step of each 8³ cell: `strict`
    /// (linear, as training does: important voxels far sharper than the
    /// rest) or `wpsnr` (step ∝ importance^-1/2: the best importance-weighted
    /// PSNR for the size, gentler on middling importance such as distance ramps).
    #[arg(long, value_parser = super::common::choice::<crate::codec::hyper::Steer>(), default_value_t = crate::codec::hyper::Steer::Strict)]
    pub steer: crate::codec::hyper::Steer,
    /// Codec: `wavelet` (default; importance-steered CDF 9/7 wavelets, pure Rust,
    /// decodes without libtorch), or the neural profiles `fast` (the shipped model)
    /// and `paper` (the paper's architecture; models/idlat-paper.safetensors).
    #[arg(long, value_enum, default_value_t = Profile::Wavelet)]
    pub profile: Profile,
    /// Tile edge of the wavelet profile (voxels; each tile decodes on its own).
    #[arg(long, default_value_t = crate::codec::wavelet::DEFAULT_TILE as u16, value_parser = clap::value_parser!(u16).range(8..=256))]
    pub tile: u16,
    /// Wavelet decomposition of each tile: `auto` picks per tile the sparsest (L1 of
    /// the detail coefficients in units of their importance-driven steps) of `mallat` (dyadic), `packet` (z first,
    /// then x-y on every z band) and `tensor` (each axis fully on its own; best on
    /// anisotropic or layered fields).
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
    /// Wavelet base step (fraction of the value range at importance 1) when no target is given.
    #[arg(long, conflicts_with_all = ["target_ratio", "target_psnr", "target_wpsnr"])]
    pub step: Option<f32>,
    /// Model file of a neural profile (default: the shipped model of --profile).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Embed the model in the container even when it is the shipped default.
    #[arg(long)]
    pub embed_model: bool,
    /// Reach the ratio R (f32 bytes / stored bytes): within about 1% with the wavelet
    /// profile (which says so when R is out of reach).
    #[arg(long, conflicts_with_all = ["target_psnr", "target_wpsnr"])]
    pub target_ratio: Option<f64>,
    /// Reach P dB PSNR over the value range (wavelet; the neural profiles read it as wPSNR).
    #[arg(long, conflicts_with = "target_wpsnr")]
    pub target_psnr: Option<f64>,
    /// Reach P dB importance-weighted PSNR (paper eq. 14).
    #[arg(long)]
    pub target_wpsnr: Option<f64>,
    /// Guarantee |x - x̂| <= E (data units) wherever importance >= --bound-where:
    /// residuals over the neural prediction are coded for those voxels only.
    #[arg(long, conflicts_with_all = ["error_bound_rel", "lossless"])]
    pub error_bound: Option<f32>,
    /// Like --error-bound, as a fraction R of each volume's value range.
    #[arg(long, conflicts_with = "lossless")]
    pub error_bound_rel: Option<f64>,
    /// Importance threshold of bounded voxels.
    #[arg(long, default_value_t = 0.5)]
    pub bound_where: f32,
    /// Graded bound: every voxel with importance I > 0 gets E / I (capped at --bound-max).
    #[arg(long)]
    pub bound_graded: bool,
    /// Cap of graded bounds (data units).
    #[arg(long, requires = "bound_graded")]
    pub bound_max: Option<f32>,
    /// Store every block exactly (zstd), no neural coding.
    #[arg(long)]
    pub lossless: bool,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Windows per network batch.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Pack each volume tile by tile from its input, never holding it whole (volumes
    /// larger than memory; the wavelet profile and --lossless): `auto` does so for
    /// volumes of 1 GiB and more (as f32) whose input and map allow it, `always`
    /// insists (and says why it cannot), `never` reads volumes whole. The container
    /// is the same bytes either way.
    #[arg(long, value_enum, default_value_t = StreamArg::Auto)]
    pub stream: StreamArg,
    /// Under mpirun: ranks that share each volume's tiles (a team; teams take
    /// volumes in turn). Default: 1 with at least as many volumes as ranks, else
    /// all ranks. Must divide the ranks; memory per rank falls with it.
    #[arg(long)]
    pub ranks_per_volume: Option<usize>,
    /// Decode after packing and print PSNR / wPSNR.
    #[arg(long)]
    pub eval: bool,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bars or per-volume lines.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The codec `pack` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Wavelet,
    Fast,
    Paper,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamArg {
    Auto,
    Always,
    Never,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    Auto,
    Mallat,
    Packet,
    Tensor,
}

impl LayoutArg {
    pub fn layout(self) -> Option<crate::codec::wavelet::Layout> {
        use crate::codec::wavelet::Layout;
        match self {
            LayoutArg::Auto => None,
            LayoutArg::Mallat => Some(Layout::Mallat),
            LayoutArg::Packet => Some(Layout::Packet),
            LayoutArg::Tensor => Some(Layout::Tensor),
        }
    }
}

/// The flags as a checked plan.
impl TryFrom<&Args> for Plan {
    type Error = anyhow::Error;

    fn try_from(a: &Args) -> anyhow::Result<Plan> {
        let tolerance = match (a.error_bound, a.error_bound_rel) {
            (Some(e), _) => Some(Tolerance::Abs(e)),
            (None, Some(r)) => Some(Tolerance::Rel(r)),
            (None, None) => None,
        };
        // A lossless pack ignores the bound flags.
        let bound = match tolerance {
            _ if a.lossless => None,
            Some(tolerance) => Some(ErrorBound { tolerance, min_importance: a.bound_where, graded: a.bound_graded, max: a.bound_max }),
            None => {
                anyhow::ensure!(!a.bound_graded && a.bound_max.is_none(), "--bound-graded/--bound-max need --error-bound or --error-bound-rel");
                None
            }
        };
        let settings = Settings {
            profile: match a.profile {
                Profile::Wavelet => pack::Profile::Wavelet,
                Profile::Fast => pack::Profile::Fast,
                Profile::Paper => pack::Profile::Paper,
            },
            importance: a.importance.clone(),
            steer: a.steer,
            tile: a.tile as usize,
            layout: a.layout.layout(),
            step: a.step,
            model: a.model.clone(),
            embed_model: a.embed_model,
            target: a.target_ratio.map(Target::Ratio).or(a.target_psnr.map(Target::Psnr)).or(a.target_wpsnr.map(Target::WPsnr)),
            bound,
            lossless: a.lossless,
            device: a.device.into(),
            batch: a.batch,
            stream: match a.stream {
                StreamArg::Auto => pack::Stream::Auto,
                StreamArg::Always => pack::Stream::Always,
                StreamArg::Never => pack::Stream::Never,
            },
            ranks_per_volume: a.ranks_per_volume,
            eval: a.eval,
            read: a.input.read_options()?,
        };
        Ok(Plan::new(settings)?)
    }
}

pub fn run(args: Args) -> CmdResult {
    let plan = match Plan::try_from(&args) {
        Ok(p) => p,
        // Every rank of a job meets a bad command line alike: said once.
        Err(e) if crate::dist::launched_ranks().is_some() => return Err(crate::dist::everyone(format!("{e:#}")).into()),
        Err(e) => return Err(e),
    };
    // Re-executes the process, so before anything is said.
    #[cfg(feature = "torch")]
    if plan.neural() && crate::dist::launched_ranks().is_none() {
        super::common::passive_openmp();
    }
    let mut bars = Bars { quiet: args.quiet, bar: None };
    let sink = Sink::File { path: args.output.clone(), overwrite: args.force };
    let report = plan.pack_with(Inputs::Files(args.inputs.clone()), sink, &mut bars).map_err(|e| match e {
        // main prints an agreed failure once, from rank 0.
        PackError::Ranks(a) => anyhow::Error::from(a),
        e => anyhow::Error::from(e),
    })?;
    if report.leader {
        if report.volumes.iter().any(|v| v.importance_scale != 1.0) && !args.quiet {
            for v in &report.volumes {
                eprintln!("  {}: importance scale {:.3}", v.name, v.importance_scale);
            }
        }
        println!("{}", summary(&report, plan.settings().target));
    }
    Ok(ExitCode::SUCCESS)
}

/// The pack's progress on stderr: a bar per volume (hidden with --quiet or off a
/// terminal) and the library's lines.
struct Bars {
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress for Bars {
    fn begin(&mut self, volume: &str, blocks: u64) {
        self.bar = Some(progress(blocks, self.quiet, &format!("pack {volume}")));
    }

    fn advance(&mut self, blocks: u64) {
        if let Some(b) = &self.bar {
            b.inc(blocks);
        }
    }

    fn restart(&mut self) {
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }

    fn end(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Warning(w) => eprintln!("idlat: warning: {w}"),
            _ if self.quiet => {}
            Event::Note(n) => eprintln!("note: {n}"),
            Event::Target { volume, target, step, achieved, met } => eprintln!("{}", target_line(volume, target, step, achieved, met)),
            Event::Scale { volume, scale, ratio, wpsnr, samples, met } => {
                // A ratio target skips the quality probe, so there is no wPSNR estimate then.
                let wpsnr = if wpsnr.is_nan() { "n/a".to_string() } else { format!("{wpsnr:.2} dB") };
                let miss = if met { "" } else { " — target not reachable, using the closest setting" };
                eprintln!("{volume}: importance scale {scale:.3} (estimated ratio {ratio:.1} vs f32, wPSNR {wpsnr} on {samples} sample blocks){miss}");
            }
            Event::Volume(v) => {
                // Under MPI rank 0 reports volumes without a bar.
                let line = volume_line(v);
                match &self.bar {
                    Some(b) => note(b, line),
                    None => eprintln!("{line}"),
                }
            }
        }
    }
}

/// What rate control reached, or why the target is out of reach.
fn target_line(name: &str, t: Target, step: f32, achieved: f64, met: bool) -> String {
    let what = match t {
        Target::Ratio(r) => format!("ratio {r}: estimated {achieved:.1}"),
        Target::Psnr(p) => format!("PSNR {p} dB: reached {achieved:.2} dB (before error-bound corrections)"),
        Target::WPsnr(p) => format!("wPSNR {p} dB: reached {achieved:.2} dB (before error-bound corrections)"),
    };
    if !met {
        let why = match t {
            Target::Ratio(_) if step >= crate::codec::wavelet::tile::MAX_STEP => "the coarsest step cannot compress further",
            Target::Ratio(_) => "even the finest step compresses more than asked",
            _ => "the finest step cannot reach it",
        };
        format!("{name}: target {what} — not reachable: {why}; using the closest setting")
    } else {
        format!("{name}: target {what} with base step {step:.3e}")
    }
}

/// "ratio X vs f32", plus the ratio against the input files when their element
/// type is not f32 (a u8 input is 4x smaller, so the two differ by 4x).
fn ratio_text(f32_bytes: u64, input_bytes: u64, stored: u64, dtypes: &[crate::volume::DType]) -> String {
    let mut t = format!("ratio {:.1} vs f32", f32_bytes as f64 / stored.max(1) as f64);
    if input_bytes != f32_bytes {
        let what = match dtypes {
            [d, rest @ ..] if rest.iter().all(|r| r == d) => format!("the input's {}", d.name()),
            _ => "the input files".to_string(),
        };
        t.push_str(&format!(" ({:.1} vs {what})", input_bytes as f64 / stored.max(1) as f64));
    }
    t
}

/// A volume's line: sizes, ratio, and what an error bound covered.
fn volume_line(v: &VolumeReport) -> String {
    let mut msg = format!("{}: {} → {} bytes ({})", v.name, v.input_bytes, v.stored_bytes, ratio_text(v.f32_bytes, v.input_bytes, v.stored_bytes, &[v.dtype]));
    if let Some(b) = &v.bound {
        let n = v.dims.iter().product::<usize>().max(1);
        msg.push_str(&format!("; error bound {:.4e} on {} voxels ({:.1}%), {} corrected", b.abs, v.bounded, 100.0 * v.bounded as f64 / n as f64, v.corrected));
    }
    msg
}

/// The closing line: sizes, speed, and with evaluation what the full pack achieved.
fn summary(r: &Report, target: Option<Target>) -> String {
    let done = &r.volumes;
    let secs = r.time.as_secs_f64();
    let input: u64 = done.iter().map(|p| p.input_bytes).sum();
    let f32_bytes: u64 = done.iter().map(|p| p.f32_bytes).sum();
    let dtypes: Vec<_> = done.iter().map(|p| p.dtype).collect();
    let without_model = (r.file_bytes - r.model_bytes).max(1);
    let model_note =
        if r.model_bytes > 0 { format!("; without the {:.2} MB embedded model {}", r.model_bytes as f64 / 1e6, ratio_text(f32_bytes, input, without_model, &dtypes)) } else { String::new() };
    let mut line = format!(
        "packed {} volume{}: input {:.2} MB, output {:.2} MB, {}{model_note}; {:.2} MB/s",
        done.len(),
        if done.len() == 1 { "" } else { "s" },
        input as f64 / 1e6,
        r.file_bytes as f64 / 1e6,
        ratio_text(f32_bytes, input, r.file_bytes, &dtypes),
        input as f64 / 1e6 / secs
    );
    if let Some(q) = &r.quality {
        // Over all voxels of all volumes, as `idlat eval` reports overall.
        line.push_str(&format!("; achieved PSNR {:.2} dB, wPSNR {:.2} dB", q.psnr, q.wpsnr));
        if let Some(Target::Psnr(t) | Target::WPsnr(t)) = target {
            line.push_str(&format!(" (target {t:.2} dB)"));
        }
        let checks: Vec<_> = done.iter().filter_map(|v| v.bound_check.as_ref()).collect();
        if !checks.is_empty() {
            let n: u64 = checks.iter().map(|r| r.bounded_voxels).sum();
            let ok: u64 = checks.iter().map(|r| r.within_bound).sum();
            let max = checks.iter().map(|r| r.max_error_bounded).fold(0f64, f64::max);
            line.push_str(&format!(", bounded voxels within bound {ok}/{n}, max error there {max:.4e}"));
        }
    }
    line
}
