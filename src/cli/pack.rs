//! `idlat pack`: volumes in, one `.idl` container out.

use super::common::{DeviceArg, InputArgs};
use super::CmdResult;
use crate::volume::Region;
use anyhow::{bail, Context};
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
    #[arg(long, value_enum, default_value_t = crate::codec::hyper::Steer::Strict)]
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

/// Block edge of `--lossless` packs (no model sets it).
pub(super) const LOSSLESS_BLOCK: usize = 32;

/// The codec `pack` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Wavelet,
    Fast,
    Paper,
}

/// The error bound asked for, resolved against a volume's value range.
pub(super) fn bound_for(args: &Args, lo: f32, hi: f32) -> anyhow::Result<Option<crate::codec::bound::BoundSpec>> {
    let abs = match (args.error_bound, args.error_bound_rel) {
        (Some(e), _) => e,
        (None, Some(r)) => (r * (hi as f64 - lo as f64)) as f32,
        (None, None) => {
            anyhow::ensure!(!args.bound_graded && args.bound_max.is_none(), "--bound-graded/--bound-max need --error-bound or --error-bound-rel");
            return Ok(None);
        }
    };
    anyhow::ensure!((0.0..=1.0).contains(&args.bound_where), "--bound-where {} must be in [0, 1]", args.bound_where);
    let b = crate::codec::bound::BoundSpec { abs, min_importance: args.bound_where, graded: args.bound_graded, max: args.bound_max };
    b.check(lo, hi).map_err(anyhow::Error::msg)?;
    Ok(Some(b))
}

/// Per-volume figures for the summary.
pub(super) struct Packed {
    pub name: String,
    pub input_bytes: u64,
    /// The volume as f32, the reference of every ratio idlat reports (spec, bench, --target-ratio).
    pub f32_bytes: u64,
    pub dtype: crate::volume::DType,
    pub scale: f32,
}

impl Packed {
    /// A volume's figures as its metadata gives them (no importance scale).
    pub fn of_info(info: &crate::volume::VolumeInfo) -> Packed {
        let voxels = info.dims.iter().product::<usize>() as u64;
        Packed { name: info.name.clone(), input_bytes: voxels * info.dtype.size() as u64, f32_bytes: voxels * 4, dtype: info.dtype, scale: 1.0 }
    }

    pub fn of(meta: &crate::format::VolumeMeta) -> Packed {
        Packed::of_info(&meta.info)
    }
}

/// "ratio X vs f32", plus the ratio against the input files when their element
/// type is not f32 (a u8 input is 4x smaller, so the two differ by 4x).
pub(super) fn ratio_text(f32_bytes: u64, input_bytes: u64, stored: u64, dtypes: &[crate::volume::DType]) -> String {
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

pub fn run(args: Args) -> CmdResult {
    if args.lossless || (args.profile == Profile::Wavelet && args.model.is_none()) {
        let neural_only: Vec<&str> = [
            (args.steer != crate::codec::hyper::Steer::Strict, "--steer"),
            (args.device != DeviceArg::Auto, "--device"),
            (args.batch != DEFAULT_BATCH, "--batch"),
            (args.embed_model, "--embed-model"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if !neural_only.is_empty() {
            eprintln!("idlat: warning: {} only apply to the neural profiles (--profile fast or paper); ignored", neural_only.join(", "));
        }
        return super::pack_plain::run(args);
    }
    if let Some(n) = crate::dist::launched_ranks() {
        return Err(crate::dist::everyone(format!("the {:?} profile packs in one process; across {n} MPI ranks only the wavelet profile (the default) and --lossless run", args.profile)).into());
    }
    #[cfg(not(feature = "torch"))]
    {
        bail!("the {:?} profile needs the neural codec, which this build lacks (built without the `torch` feature); the default wavelet profile works", args.profile);
    }
    #[cfg(feature = "torch")]
    {
        super::common::passive_openmp();
        if args.layout != LayoutArg::Auto {
            eprintln!("idlat: warning: --layout only applies to the wavelet profile; ignored");
        }
        if args.stream == StreamArg::Always {
            bail!("--stream always: the {:?} profile codes a volume held whole; the wavelet profile (the default) and --lossless stream", args.profile);
        }
        run_torch(args)
    }
}

#[cfg(feature = "torch")]
fn run_torch(args: Args) -> CmdResult {
    use super::common::{device, note, progress};
    use crate::codec::blocks::Norm;
    use crate::codec::modelfile::{default_model_path, ModelFile};
    use crate::codec::pipeline::{BlockData, Codec, EncodeOptions};
    use crate::codec::rate::{search, subsample, Target};
    use crate::format::{block, BlockId, BlockKind, ContainerWriter, ModelRef, NeuralPayload};
    use crate::importance;

    let t0 = std::time::Instant::now();
    let ins = Inputs::resolve(&args)?;
    // Model: the shipped default is referenced by hash unless --embed-model.
    let default_path = default_model_path().ok();
    let dev = device(args.device)?;
    // A lossless pack stores no neural block and needs no model.
    let (codec, model_bytes) = if args.lossless {
        (None, Vec::new())
    } else {
        let model_path = match (&args.model, args.profile) {
            (Some(p), _) => p.clone(),
            (None, Profile::Paper) => default_path
                .as_ref()
                .and_then(|d| d.parent())
                .map(|d| d.join("idlat-paper.safetensors"))
                .filter(|p| p.is_file())
                .context("the paper profile's model (idlat-paper.safetensors) was not found beside the default model")?,
            (None, _) => default_path.clone().context("no --model given and the shipped default model was not found")?,
        };
        let model_bytes = std::fs::read(&model_path).with_context(|| format!("reading model {}", model_path.display()))?;
        let model = ModelFile::from_bytes(&model_bytes).with_context(|| format!("model {}", model_path.display()))?;
        (Some(Codec::load(model, dev).map_err(anyhow::Error::msg)?), model_bytes)
    };
    let is_default = default_path.as_deref().and_then(|d| std::fs::read(d).ok()).is_some_and(|b| b == model_bytes);
    let embed = codec.is_some() && (args.embed_model || !is_default);
    let core = codec.as_ref().map_or(LOSSLESS_BLOCK, |c| c.core());
    let mut writer = ContainerWriter::create(&args.output, args.force)?;
    if let Some(c) = &codec {
        writer.set_model(ModelRef { hash: c.model.hash.clone(), profile: c.model.profile.name.clone(), embedded: embed }, embed.then_some(&model_bytes[..]));
    }
    let mut done = Vec::new();
    for i in 0..ins.paths.len() {
        let (vol, mut imp) = ins.load(i)?;
        let (lo, hi) = vol.range();
        let norm = Norm::from_range(lo, hi);
        let dims = vol.dims();
        let grid = crate::format::BlockGrid::cubic(dims, core);
        let bound = bound_for(&args, lo, hi)?;
        if bound.is_some() {
            writer.require(crate::format::Feature::ErrorBoundResidual);
        }
        let eopts = EncodeOptions { batch: args.batch, lossless: false, steer: args.steer };
        let mut scale = 1.0f32;
        if let (Some(target), Some(codec)) = (args.target_ratio.map(Target::Ratio).or(args.target_psnr.or(args.target_wpsnr).map(Target::WPsnr)), &codec) {
            let sample = subsample(grid.len(), 48);
            let choice = search(codec, &vol.data, dims, &imp, norm, eopts, target, &sample, bound.as_ref());
            scale = choice.scale;
            // A ratio target skips the quality probe, so there is no wPSNR estimate then.
            let wpsnr = if choice.est_wpsnr.is_nan() { "n/a".to_string() } else { format!("{:.2} dB", choice.est_wpsnr) };
            let msg = format!(
                "{}: importance scale {:.3} (estimated ratio {:.1} vs f32, wPSNR {wpsnr} on {} sample blocks){}",
                vol.info.name,
                choice.scale,
                choice.est_ratio,
                sample.len(),
                if choice.met { "" } else { " — target not reachable, using the closest setting" }
            );
            if !args.quiet {
                eprintln!("{msg}");
            }
            importance::apply_scale(&mut imp, scale);
        }
        let mut meta = volume_meta(&vol.info, vol.range(), i, norm, [core; 3], codec.as_ref().map_or(0, |c| c.model.profile.halo_vox), &ins.spec);
        meta.codec.insert("importance_scale".into(), serde_json::json!(scale));
        if let Some(b) = &bound {
            meta.codec.insert("error_bound".into(), serde_json::to_value(b)?);
        }
        if let Some(c) = &codec {
            meta.codec.insert("profile".into(), serde_json::json!(c.model.profile.name));
        }
        let vid = writer.add_volume(meta)?;
        let bar = progress(grid.len() as u64, args.quiet, &format!("pack {}", vol.info.name));
        let mut stored = 0u64;
        let mut sink = |id: usize, d: BlockData| -> anyhow::Result<()> {
            let (kind, payload) = match d {
                BlockData::Constant(v) => (BlockKind::Constant, v.to_le_bytes().to_vec()),
                BlockData::Lossless(v) => (BlockKind::Lossless, block::lossless_payload(&v)),
                BlockData::Neural { z, y, levels, residual } => {
                    // write_block requires the features the payload uses.
                    match residual {
                        None => (BlockKind::Neural, NeuralPayload::encode(&[&z, &y, &levels])),
                        Some(r) => (BlockKind::Neural, NeuralPayload::encode(&[&z, &y, &levels, &r])),
                    }
                }
            };
            stored += payload.len() as u64 + crate::format::layout::ENTRY_LEN;
            writer.write_block(vid, BlockId(id as u64), kind, &payload)?;
            bar.inc(1);
            Ok(())
        };
        let mut bstats = crate::codec::bound::BlockStats::default();
        match (&codec, &bound) {
            (Some(c), Some(b)) => c.encode_volume_bounded(&vol.data, dims, &imp, norm, eopts, b, &mut bstats, sink)?,
            (Some(c), None) => c.encode_volume(&vol.data, dims, &imp, norm, eopts, sink)?,
            (None, _) => {
                for id in 0..grid.len() {
                    let (o, sz) = grid.extent(BlockId(id as u64));
                    sink(id, BlockData::Lossless(crate::format::grid::cut(&vol.data, dims, Region { origin: o, size: sz })))?;
                }
            }
        }
        bar.finish_and_clear();
        if !args.quiet {
            note(&bar, volume_line(&vol.info, stored, bound.as_ref(), &bstats));
        }
        done.push(Packed { scale, ..Packed::of_info(&vol.info) });
    }
    let stats = writer.finish()?;
    report(&args, &ins, &done, stats, t0, codec.as_ref())
}

/// The inputs of a pack, resolved: files, volume names, read options, importance spec,
/// and every volume preloaded when the importance spec refers to others (`of=NAME`).
pub(super) struct Inputs {
    pub paths: Vec<PathBuf>,
    pub names: Vec<String>,
    pub opts: crate::io::ReadOptions,
    pub spec: crate::importance::Spec,
    pub all: Vec<crate::volume::Volume>,
}

impl Inputs {
    pub fn resolve(args: &Args) -> anyhow::Result<Inputs> {
        if args.output.exists() && !args.force {
            bail!("{} exists (use --force to overwrite)", args.output.display());
        }
        if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            anyhow::ensure!(dir.is_dir(), "output directory {} does not exist", dir.display());
        }
        let spec = crate::importance::parse(&args.importance).map_err(|e| anyhow::anyhow!("{e}"))?;
        let opts = args.input.pack_read_options(args.lossless)?;
        let mut paths = crate::io::expand_inputs(&args.inputs)?;
        if args.inputs.iter().any(|a| a.contains(['*', '?'])) {
            crate::io::names::natural_sort(&mut paths);
        }
        let paths = super::common::skip_header_data_files(paths, args.quiet);
        let names = crate::io::names::volume_names(&paths);
        let all = if args.importance.contains("of=") { paths.iter().map(|p| crate::io::read_volume(p, &opts)).collect::<Result<_, _>>()? } else { Vec::new() };
        Ok(Inputs { paths, names, opts, spec, all })
    }

    /// Volume `i`, named, with its importance map.
    pub fn load(&self, i: usize) -> anyhow::Result<(crate::volume::Volume, Vec<f32>)> {
        let path = &self.paths[i];
        let mut vol = if self.all.is_empty() { crate::io::read_volume(path, &self.opts)? } else { self.all[i].clone() };
        vol.info.name = self.names[i].clone();
        let others: Vec<(&str, &crate::volume::Volume)> = self.all.iter().zip(&self.names).map(|(v, n)| (n.as_str(), v)).collect();
        let ctx = crate::importance::Context { volume: &vol, others: &others, time_index: i, time_count: self.paths.len(), origin: [0; 3], whole: None };
        let imp = crate::importance::compute(&self.spec, &ctx).with_context(|| format!("importance for {}", path.display()))?;
        Ok((vol, imp))
    }

    /// Part of volume `i` (an MPI rank's slab, a streaming pack's tile): the region
    /// `region(dims)` (`dims` the whole volume's) read with the box around it that its
    /// map needs (`Spec::support`), without the rest; `None` where that cannot give
    /// what `load` gives: the input (`io::read_region`) or a map that needs the whole
    /// volume or other volumes.
    pub fn read_part(&self, i: usize, region: impl FnOnce(crate::volume::Dims) -> Region) -> anyhow::Result<Option<Part>> {
        if !self.all.is_empty() {
            return Ok(None);
        }
        let mut asked = None;
        let box_of = |d| {
            let r = region(d);
            let s = self.spec.support(r, d);
            asked = Some((r, s.is_some()));
            // Nothing to read where the map needs the whole volume.
            s.unwrap_or(Region::planes(d, 0..0))
        };
        let Some((mut info, support, data)) = crate::io::read_region(&self.paths[i], &self.opts, box_of)? else { return Ok(None) };
        let Some((region, true)) = asked else { return Ok(None) };
        let dims = info.dims;
        info.name = self.names[i].clone();
        info.dims = support.size;
        Ok(Some(Part { dims, region, support, vol: crate::volume::Volume::new(info, data) }))
    }

    /// The maxima of the map's normalised leaves over a part (`importance::maxima`):
    /// the largest over every part of a volume make its `Whole::maxima`.
    pub fn part_maxima(&self, i: usize, p: &Part) -> Vec<f32> {
        if self.spec.normalised().is_empty() {
            return Vec::new();
        }
        crate::importance::maxima(&self.spec, &self.context(i, &p.vol, p.support.origin, None), p.keep())
    }

    /// A part's region as a volume (whole info but its own dims) with its importance
    /// map, equal to the whole map there given what the map needs of the whole.
    pub fn part_map(&self, i: usize, p: Part, whole: &crate::importance::Whole) -> anyhow::Result<(crate::volume::Volume, Vec<f32>)> {
        let keep = p.keep();
        let Part { region, support, mut vol, .. } = p;
        let imp = crate::importance::compute(&self.spec, &self.context(i, &vol, support.origin, Some(whole))).with_context(|| format!("importance for {}", self.paths[i].display()))?;
        if support == region {
            return Ok((vol, imp));
        }
        let imp = crate::format::grid::cut(&imp, support.size, keep);
        vol.data = crate::format::grid::cut(&vol.data, support.size, keep);
        vol.info.dims = region.size;
        Ok((vol, imp))
    }

    fn context<'a>(&'a self, i: usize, vol: &'a crate::volume::Volume, origin: [usize; 3], whole: Option<&'a crate::importance::Whole>) -> crate::importance::Context<'a> {
        crate::importance::Context { volume: vol, others: &[], time_index: i, time_count: self.paths.len(), origin, whole }
    }

    /// Whether parts of a volume can get the whole map's values (`read_part`): no
    /// other volumes, and a map that needs a bounded box around each part.
    pub fn regions_exact(&self) -> bool {
        self.all.is_empty() && self.spec.support(Region::whole([1; 3]), [1; 3]).is_some()
    }
}

/// Part of a volume and the input around it (`Inputs::read_part`).
pub struct Part {
    /// The whole volume's dims.
    dims: crate::volume::Dims,
    /// The box asked for.
    pub region: Region,
    /// The box read: the region and what its map needs around it.
    support: Region,
    /// The samples of the box read (the whole volume's info, the box's dims).
    vol: crate::volume::Volume,
}

impl Part {
    /// Where the region lies in the box read.
    fn keep(&self) -> Region {
        Region { origin: [0, 1, 2].map(|a| self.region.origin[a] - self.support.origin[a]), size: self.region.size }
    }

    /// The whole volume's info.
    pub fn info(&self) -> crate::volume::VolumeInfo {
        crate::volume::VolumeInfo { dims: self.dims, ..self.vol.info.clone() }
    }

    /// The region's own samples (borrowed where nothing was read around them).
    pub fn values(&self) -> std::borrow::Cow<'_, [f32]> {
        if self.support == self.region {
            return self.vol.data.as_slice().into();
        }
        crate::format::grid::cut(&self.vol.data, self.support.size, self.keep()).into()
    }
}

/// A volume's line in the pack summary: sizes, ratio, and what an error bound covered.
pub(super) fn volume_line(info: &crate::volume::VolumeInfo, stored: u64, bound: Option<&crate::codec::bound::BoundSpec>, st: &crate::codec::bound::BlockStats) -> String {
    let p = Packed::of_info(info);
    let mut msg = format!("{}: {} → {} bytes ({})", info.name, p.input_bytes, stored, ratio_text(p.f32_bytes, p.input_bytes, stored, &[info.dtype]));
    if let Some(b) = bound {
        let n = info.dims.iter().product::<usize>().max(1);
        msg.push_str(&format!("; error bound {:.4e} on {} voxels ({:.1}%), {} corrected", b.abs, st.bounded, 100.0 * st.bounded as f64 / n as f64, st.corrected));
    }
    msg
}

/// The metadata every profile writes for a volume; the caller adds codec extras.
pub(super) fn volume_meta(
    info: &crate::volume::VolumeInfo,
    (lo, hi): (f32, f32),
    i: usize,
    norm: crate::codec::blocks::Norm,
    block: [usize; 3],
    halo: usize,
    spec: &crate::importance::Spec,
) -> crate::format::VolumeMeta {
    crate::format::VolumeMeta {
        info: info.clone(),
        value_range: (lo, hi),
        norm: crate::format::Normalisation { offset: norm.offset, scale: norm.scale },
        block,
        halo,
        importance: Some(spec.to_string()),
        time: Some(i as f64),
        units: None,
        attributes: Default::default(),
        codec: Default::default(),
        index_first: 0,
        block_count: 0,
    }
}

/// The closing line (sizes, speed, and with --eval or a quality target what the full
/// pack achieved, decoded as any reader will).
pub(super) fn report(args: &Args, ins: &Inputs, done: &[Packed], stats: crate::format::FinishStats, t0: std::time::Instant, codec: Option<&super::common::MaybeCodecInner>) -> CmdResult {
    let secs = t0.elapsed().as_secs_f64();
    let input: u64 = done.iter().map(|p| p.input_bytes).sum();
    let f32_bytes: u64 = done.iter().map(|p| p.f32_bytes).sum();
    let dtypes: Vec<_> = done.iter().map(|p| p.dtype).collect();
    let without_model = (stats.file_bytes - stats.model_bytes).max(1);
    let model_note =
        if stats.model_bytes > 0 { format!("; without the {:.2} MB embedded model {}", stats.model_bytes as f64 / 1e6, ratio_text(f32_bytes, input, without_model, &dtypes)) } else { String::new() };
    let mut line = format!(
        "packed {} volume{}: input {:.2} MB, output {:.2} MB, {}{model_note}; {:.2} MB/s",
        done.len(),
        if done.len() == 1 { "" } else { "s" },
        input as f64 / 1e6,
        stats.file_bytes as f64 / 1e6,
        ratio_text(f32_bytes, input, stats.file_bytes, &dtypes),
        input as f64 / 1e6 / secs
    );
    // A quality target is only estimated on sample blocks: report what the full pack achieved.
    if args.eval || args.target_psnr.is_some() || args.target_wpsnr.is_some() {
        let c = crate::format::Container::open(&args.output)?;
        let mut q = crate::metrics::Sums::default();
        let mut reports = Vec::new();
        for (i, path) in ins.paths.iter().enumerate() {
            let (vol, mask) = crate::io::read_volume_with_mask(path, &ins.opts)?;
            let others: Vec<(&str, &crate::volume::Volume)> = ins.all.iter().zip(&ins.names).map(|(v, n)| (n.as_str(), v)).collect();
            let imp = crate::importance::compute(&ins.spec, &crate::importance::Context { volume: &vol, others: &others, time_index: i, time_count: ins.paths.len(), origin: [0; 3], whole: None })?;
            let rec = super::common::decode(codec, &c, crate::format::VolumeId(i as u32), 16, |_, _| {})?;
            q = q.merge(&crate::metrics::sums(&vol.data, &rec, Some(&imp), mask.as_deref()));
            if let Some(b) = bound_for(args, vol.range().0, vol.range().1)? {
                let mut scaled = imp.clone();
                crate::importance::apply_scale(&mut scaled, done[i].scale);
                reports.push(crate::codec::bound::report(&b, &vol.data, &rec, &scaled, mask.as_deref()));
            }
        }
        // Over all voxels of all volumes, as `idlat eval` reports overall.
        let q = q.quality();
        line.push_str(&format!("; achieved PSNR {:.2} dB, wPSNR {:.2} dB", q.psnr, q.wpsnr));
        if let Some(t) = args.target_psnr.or(args.target_wpsnr) {
            line.push_str(&format!(" (target {t:.2} dB)"));
        }
        if !reports.is_empty() {
            let n: u64 = reports.iter().map(|r| r.bounded_voxels).sum();
            let ok: u64 = reports.iter().map(|r| r.within_bound).sum();
            let max = reports.iter().map(|r| r.max_error_bounded).fold(0f64, f64::max);
            line.push_str(&format!(", bounded voxels within bound {ok}/{n}, max error there {max:.4e}"));
        }
    }
    if done.iter().any(|p| p.scale != 1.0) && !args.quiet {
        for p in done {
            eprintln!("  {}: importance scale {:.3}", p.name, p.scale);
        }
    }
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// Windows per network batch unless `--batch` says otherwise.
const DEFAULT_BATCH: usize = 8;

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
