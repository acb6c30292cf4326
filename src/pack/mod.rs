//! Packing as a library: checked settings ([`Plan`]), volumes in ([`Inputs`]),
//! one `.idl` container out ([`Sink`]), figures back ([`Report`]). `idlat pack`
//! is a thin layer over this; the library prints nothing, it tells a
//! [`Progress`] what happens. [`Plan`] has an example.

mod eval;
mod inputs;
#[cfg(feature = "torch")]
mod neural;
mod plain;
mod stream;

pub use crate::codec::bound::BoundSpec;
pub use crate::codec::hyper::Steer;
pub use crate::codec::wavelet::{Layout, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The codec a pack uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Importance-steered CDF 9/7 wavelets: pure Rust, decodes without libtorch.
    #[default]
    Wavelet,
    /// The shipped neural model (feature `torch`).
    Fast,
    /// The paper's architecture (models/idlat-paper.safetensors; feature `torch`).
    Paper,
}

/// Where a neural codec runs (the readers' choice too).
pub use crate::codec::DeviceChoice as Device;

/// Whether volumes are packed tile by tile from their input, never held whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stream {
    /// Volumes of [`STREAM_AUTO_BYTES`] and more (as f32) whose input and map allow it.
    #[default]
    Auto,
    /// Every volume; one that cannot stream is an error.
    Always,
    Never,
}

/// Volumes this large (as f32) stream under [`Stream::Auto`].
pub const STREAM_AUTO_BYTES: u64 = stream::AUTO_BYTES;

/// An error bound's size: in data units, or as a fraction of each volume's value range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    Abs(f32),
    Rel(f64),
}

/// A guaranteed |x - x̂| wherever importance reaches `min_importance` (or, graded,
/// E / I for every voxel of importance I > 0, capped at `max`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorBound {
    pub tolerance: Tolerance,
    pub min_importance: f32,
    pub graded: bool,
    pub max: Option<f32>,
}

impl ErrorBound {
    /// The bound in data units for a volume of range `lo..hi`, checked against it.
    fn resolve(&self, lo: f32, hi: f32) -> Result<BoundSpec, PackError> {
        let abs = match self.tolerance {
            Tolerance::Abs(e) => e,
            Tolerance::Rel(r) => (r * (hi as f64 - lo as f64)) as f32,
        };
        let b = BoundSpec { abs, min_importance: self.min_importance, graded: self.graded, max: self.max };
        b.check(lo, hi).map_err(PackError::Invalid)?;
        Ok(b)
    }
}

/// Windows per network batch by default.
pub const DEFAULT_BATCH: usize = 8;
/// Block edge of lossless packs (no model sets it).
pub const LOSSLESS_BLOCK: usize = 32;

/// What a pack is asked to do; [`Plan::new`] checks it. The defaults are `idlat pack`'s.
#[derive(Clone, Debug)]
pub struct Settings {
    pub profile: Profile,
    /// Importance map spec (`idlat importance --help`).
    pub importance: String,
    /// How importance sets a neural block's quantisation steps.
    pub steer: Steer,
    /// Tile edge of the wavelet profile (8 to 256 voxels).
    pub tile: usize,
    /// Wavelet decomposition of every tile; `None` picks per tile.
    pub layout: Option<Layout>,
    /// Wavelet base step when no target is given (default `wavelet::DEFAULT_STEP`).
    pub step: Option<f32>,
    /// Model file of a neural profile (default: the shipped model of the profile);
    /// with the wavelet profile it selects the neural codec.
    pub model: Option<PathBuf>,
    /// Embed the model even when it is the shipped default.
    pub embed_model: bool,
    /// Rate control's aim (the neural profiles read PSNR as wPSNR).
    pub target: Option<Target>,
    pub bound: Option<ErrorBound>,
    /// Every block stored exactly (zstd).
    pub lossless: bool,
    pub device: Device,
    /// Windows per network batch.
    pub batch: usize,
    pub stream: Stream,
    /// Under mpirun: ranks sharing each volume's tiles (default: see `idlat pack --help`).
    pub ranks_per_volume: Option<usize>,
    /// Decode after packing and measure PSNR / wPSNR (also done for a quality target).
    pub eval: bool,
    /// How to read file inputs that do not describe themselves (raw bricks); how
    /// non-finite values are handled follows `lossless`.
    pub read: crate::io::ReadOptions,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            profile: Profile::Wavelet,
            importance: "uniform:0.5".into(),
            steer: Steer::Strict,
            tile: crate::codec::wavelet::DEFAULT_TILE,
            layout: None,
            step: None,
            model: None,
            embed_model: false,
            target: None,
            bound: None,
            lossless: false,
            device: Device::Auto,
            batch: DEFAULT_BATCH,
            stream: Stream::Auto,
            ranks_per_volume: None,
            eval: false,
            read: Default::default(),
        }
    }
}

/// Settings that cannot make a pack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("{0}")]
    Importance(crate::importance::SpecError),
    #[error("--step {0} must be a positive number")]
    Step(f32),
    #[error("--step and a target exclude each other")]
    StepAndTarget,
    #[error("--tile {0} must be in 8..=256")]
    Tile(usize),
    #[error("--batch must be at least 1")]
    Batch,
    #[error("--bound-where {0} must be in [0, 1]")]
    BoundWhere(f32),
    #[error("an error bound and --lossless exclude each other")]
    BoundAndLossless,
    #[error("--stream always: the {0:?} profile codes a volume held whole; the wavelet profile (the default) and --lossless stream")]
    StreamNeural(Profile),
}

/// Why a pack failed. Messages say what and where (file, volume); `Ranks` is a
/// failure every MPI rank agreed on (`dist::Agreed`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    #[error("importance for {what}")]
    Importance { what: String, source: crate::importance::ImportanceError },
    #[error("{what}")]
    Model { what: String, source: crate::codec::modelfile::ModelError },
    #[error("{what}")]
    ModelFile { what: String, source: std::io::Error },
    /// Inputs or an output this pack cannot take, a codec's or rate control's failure.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Ranks(#[from] crate::dist::Agreed),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<String> for PackError {
    fn from(e: String) -> PackError {
        PackError::Invalid(e)
    }
}

/// An error with its causes, as one line (what MPI ranks exchange).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut at = e.source();
    while let Some(c) = at {
        s.push_str(&format!(": {c}"));
        at = c.source();
    }
    s
}

/// The volumes of a pack.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// Input files as `idlat pack` takes them: globs (natural sort), `FILE:NAME`
    /// datasets, series; read with `Settings::read`.
    Files(Vec<String>),
    /// Volumes in memory, named by their `info.name` (`volumeN` when empty).
    Volumes(Vec<crate::volume::Volume>),
}

impl From<Vec<crate::volume::Volume>> for Inputs {
    fn from(v: Vec<crate::volume::Volume>) -> Inputs {
        Inputs::Volumes(v)
    }
}

impl Inputs {
    pub fn files<S: Into<String>>(f: impl IntoIterator<Item = S>) -> Inputs {
        Inputs::Files(f.into_iter().map(Into::into).collect())
    }
}

/// Where the container goes.
pub enum Sink<'a> {
    /// A file, written beside it and renamed into place (`io::atomic`); an existing
    /// one is replaced only with `overwrite`.
    File { path: PathBuf, overwrite: bool },
    /// Any writer, given the container once it is complete (single process only).
    Writer(&'a mut dyn std::io::Write),
}

impl From<&Path> for Sink<'_> {
    fn from(p: &Path) -> Self {
        Sink::File { path: p.to_owned(), overwrite: false }
    }
}

impl From<PathBuf> for Sink<'_> {
    fn from(path: PathBuf) -> Self {
        Sink::File { path, overwrite: false }
    }
}

/// What a pack tells its caller as it goes (the CLI draws bars and prints lines).
/// Every method defaults to nothing.
pub trait Progress {
    /// A volume's blocks begin: `advance` counts up to `blocks`.
    fn begin(&mut self, _volume: &str, _blocks: u64) {}
    fn advance(&mut self, _blocks: u64) {}
    /// The count starts again (a streaming pack's first pass counts too).
    fn restart(&mut self) {}
    /// The volume's blocks are done.
    fn end(&mut self) {}
    fn event(&mut self, _e: Event<'_>) {}
}

/// A [`Progress`] that ignores everything.
pub struct Silent;
impl Progress for Silent {}

/// Something worth saying during a pack.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A setting is ignored, or similar.
    Warning(String),
    /// An input skipped, or similar.
    Note(String),
    /// Wavelet rate control's outcome for a volume.
    Target { volume: &'a str, target: Target, step: f32, achieved: f64, met: bool },
    /// Neural rate control's outcome: the importance scale found on `samples` blocks
    /// (`wpsnr` NaN for a ratio target, which skips the quality probe).
    Scale { volume: &'a str, scale: f32, ratio: f64, wpsnr: f64, samples: usize, met: bool },
    /// A volume is in the container.
    Volume(&'a VolumeReport),
}

/// One volume's figures.
#[derive(Clone, Debug)]
pub struct VolumeReport {
    pub name: String,
    pub dims: crate::volume::Dims,
    /// The input's element type (f32 for volumes given in memory unless set).
    pub dtype: crate::volume::DType,
    /// The volume in its input element type.
    pub input_bytes: u64,
    /// The volume as f32, the reference of every ratio idlat reports.
    pub f32_bytes: u64,
    /// Its blocks' payloads and index entries in the container.
    pub stored_bytes: u64,
    /// Neural rate control's importance scale (1 otherwise).
    pub importance_scale: f32,
    pub bound: Option<BoundSpec>,
    /// Voxels with a finite bound, and those a residual corrected.
    pub bounded: usize,
    pub corrected: usize,
    /// Time from reading to the last block written (`None` under MPI).
    pub time: Option<Duration>,
    /// With evaluation: what decoding it gives.
    pub quality: Option<crate::metrics::Quality>,
    pub bound_check: Option<crate::codec::bound::Report>,
}

impl VolumeReport {
    fn new(info: &crate::volume::VolumeInfo, stored_bytes: u64) -> VolumeReport {
        let voxels = info.dims.iter().product::<usize>() as u64;
        VolumeReport {
            name: info.name.clone(),
            dims: info.dims,
            dtype: info.dtype,
            input_bytes: voxels * info.dtype.size() as u64,
            f32_bytes: voxels * 4,
            stored_bytes,
            importance_scale: 1.0,
            bound: None,
            bounded: 0,
            corrected: 0,
            time: None,
            quality: None,
            bound_check: None,
        }
    }

    /// f32 bytes / stored bytes.
    pub fn ratio(&self) -> f64 {
        self.f32_bytes as f64 / self.stored_bytes.max(1) as f64
    }
}

/// A pack's figures.
#[derive(Clone, Debug)]
pub struct Report {
    pub volumes: Vec<VolumeReport>,
    pub file_bytes: u64,
    /// The embedded model's share of `file_bytes`.
    pub model_bytes: u64,
    /// From start to the container in place (evaluation not included).
    pub time: Duration,
    /// With evaluation (`Settings::eval` or a quality target): over every voxel of every volume.
    pub quality: Option<crate::metrics::Quality>,
    /// False on MPI ranks other than 0, whose report is empty (rank 0 reports the pack).
    pub leader: bool,
}

impl Report {
    /// f32 bytes of all volumes / container bytes.
    pub fn ratio(&self) -> f64 {
        self.volumes.iter().map(|v| v.f32_bytes).sum::<u64>() as f64 / self.file_bytes.max(1) as f64
    }

    #[cfg(feature = "mpi")]
    fn follower() -> Report {
        Report { volumes: Vec::new(), file_bytes: 0, model_bytes: 0, time: Duration::ZERO, quality: None, leader: false }
    }
}

/// Checked settings, ready to pack any number of times.
///
/// A volume in memory packed into a file, evaluated:
///
/// ```
/// use idlat::pack::{Inputs, Plan, Settings, Sink, Target};
/// use idlat::sample::{generate, Kind};
///
/// let mut vol = generate(Kind::Vortex, [32, 32, 32], 1, 0);
/// vol.info.name = "vortex".into();
/// let plan = Plan::new(Settings { importance: "iso:7".into(), target: Some(Target::Ratio(50.0)), eval: true, ..Settings::default() })?;
/// let dir = tempfile::tempdir()?;
/// let out = dir.path().join("vortex.idl");
/// let report = plan.pack(Inputs::from(vec![vol]), Sink::from(out.as_path()))?;
/// assert_eq!(report.volumes[0].name, "vortex");
/// assert_eq!(report.volumes[0].dims, [32, 32, 32]);
/// assert_eq!(report.file_bytes, std::fs::metadata(&out)?.len());
/// assert!(report.ratio() > 10.0);
/// assert!(report.quality.unwrap().psnr > 20.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    settings: Settings,
    spec: crate::importance::Spec,
}

impl Plan {
    pub fn new(settings: Settings) -> Result<Plan, PlanError> {
        let s = &settings;
        let spec = crate::importance::parse(&s.importance).map_err(PlanError::Importance)?;
        if let Some(step) = s.step {
            if s.target.is_some() {
                return Err(PlanError::StepAndTarget);
            }
            if !(step.is_finite() && step > 0.0) {
                return Err(PlanError::Step(step));
            }
        }
        if !(8..=256).contains(&s.tile) {
            return Err(PlanError::Tile(s.tile));
        }
        if s.batch == 0 {
            return Err(PlanError::Batch);
        }
        if let Some(b) = &s.bound {
            if s.lossless {
                return Err(PlanError::BoundAndLossless);
            }
            if !(0.0..=1.0).contains(&b.min_importance) {
                return Err(PlanError::BoundWhere(b.min_importance));
            }
        }
        let plan = Plan { settings, spec };
        if plan.neural() && plan.settings.stream == Stream::Always {
            return Err(PlanError::StreamNeural(plan.settings.profile));
        }
        Ok(plan)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the neural codec (libtorch) packs: a neural profile or a model, not lossless.
    pub fn neural(&self) -> bool {
        let s = &self.settings;
        !(s.lossless || (s.profile == Profile::Wavelet && s.model.is_none()))
    }

    /// Packs `inputs` into `sink`, silently.
    pub fn pack<'a>(&self, inputs: Inputs, sink: impl Into<Sink<'a>>) -> Result<Report, PackError> {
        self.pack_with(inputs, sink, &mut Silent)
    }

    /// Packs `inputs` into `sink`, telling `progress` as it goes. Started by an MPI
    /// launcher (`mpirun`), every rank calls this alike and they share the work.
    pub fn pack_with<'a>(&self, inputs: Inputs, sink: impl Into<Sink<'a>>, progress: &mut dyn Progress) -> Result<Report, PackError> {
        match sink.into() {
            Sink::File { path, overwrite } => self.pack_to(inputs, &path, overwrite, progress),
            Sink::Writer(w) => {
                if crate::dist::launched_ranks().is_some() {
                    return Err(crate::dist::everyone("under mpirun a pack goes to a file every rank can reach, not a writer".into()).into());
                }
                let dir = tempfile::tempdir().map_err(|e| crate::io::os_err(&std::env::temp_dir(), e))?;
                let path = dir.path().join("pack.idl");
                let report = self.pack_to(inputs, &path, false, progress)?;
                let mut f = std::fs::File::open(&path).map_err(|e| crate::io::os_err(&path, e))?;
                std::io::copy(&mut f, w).map_err(|e| PackError::Invalid(format!("writing the container: {e}")))?;
                Ok(report)
            }
        }
    }

    fn pack_to(&self, inputs: Inputs, out: &Path, overwrite: bool, progress: &mut dyn Progress) -> Result<Report, PackError> {
        let s = &self.settings;
        let job = Job { plan: self, inputs: &inputs, out, overwrite };
        if !self.neural() {
            let ignored: Vec<&str> = [(s.steer != Steer::Strict, "--steer"), (s.device != Device::Auto, "--device"), (s.batch != DEFAULT_BATCH, "--batch"), (s.embed_model, "--embed-model")]
                .into_iter()
                .filter_map(|(set, name)| set.then_some(name))
                .collect();
            if !ignored.is_empty() {
                progress.event(Event::Warning(format!("{} only apply to the neural profiles (--profile fast or paper); ignored", ignored.join(", "))));
            }
            return plain::run(&job, progress);
        }
        if let Some(n) = crate::dist::launched_ranks() {
            return Err(crate::dist::everyone(format!("the {:?} profile packs in one process; across {n} MPI ranks only the wavelet profile (the default) and --lossless run", s.profile)).into());
        }
        #[cfg(not(feature = "torch"))]
        {
            Err(PackError::Invalid(format!("the {:?} profile needs the neural codec, which this build lacks (built without the `torch` feature); the default wavelet profile works", s.profile)))
        }
        #[cfg(feature = "torch")]
        {
            if s.layout.is_some() {
                progress.event(Event::Warning("--layout only applies to the wavelet profile; ignored".into()));
            }
            neural::run(&job, progress)
        }
    }
}

/// One pack: the plan, its inputs and output.
struct Job<'a> {
    plan: &'a Plan,
    inputs: &'a Inputs,
    out: &'a Path,
    overwrite: bool,
}

impl Job<'_> {
    fn settings(&self) -> &Settings {
        &self.plan.settings
    }

    /// Whether the pack decodes what it wrote (`--eval`, or a quality target).
    fn evaluates(&self) -> bool {
        self.settings().eval || matches!(self.settings().target, Some(Target::Psnr(_) | Target::WPsnr(_)))
    }

    /// The error bound for a volume of range `lo..hi`.
    fn bound(&self, lo: f32, hi: f32) -> Result<Option<BoundSpec>, PackError> {
        self.settings().bound.as_ref().map(|b| b.resolve(lo, hi)).transpose()
    }
}

/// The metadata every profile writes for a volume; the caller adds codec extras.
fn volume_meta(
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
        norm,
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
