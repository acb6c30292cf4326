//! Flags shared by several subcommands.

use clap::Args as ClapArgs;

/// How to read input volumes (raw bricks need these; self-describing formats ignore them).
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct InputArgs {
    /// Grid size of raw inputs, x fastest: `128x128x128`.
    #[arg(long)]
    pub dims: Option<String>,
    /// Element type of raw inputs: f32 f64 u8 i8 u16 i16 u32 i32.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Byte order of raw inputs: little or big.
    #[arg(long)]
    pub endian: Option<String>,
    /// Bytes to skip at the start of each raw input.
    #[arg(long, default_value_t = 0)]
    pub header_bytes: u64,
    /// Value marking missing voxels (e.g. 1e35 for land in Isabel); HDF5/NetCDF
    /// inputs also take theirs from _FillValue and missing_value attributes.
    #[arg(long)]
    pub missing: Option<f64>,
}

/// What a latent table holds (docs/ANALYSIS.md).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatentUnits {
    /// y_hat divided by its cell's quantisation step: the paper's
    /// importance-driven latents (unimportant regions shrink towards zero).
    #[default]
    Step,
    /// Dequantised y_hat, the synthesis transform's input (importance only
    /// changes its precision).
    Value,
}

impl LatentUnits {
    pub fn of(self, l: &crate::codec::hyper::Latents) -> Vec<f32> {
        match self {
            LatentUnits::Step => l.in_steps(),
            LatentUnits::Value => l.y_hat.clone(),
        }
    }

    /// The name the command line accepts (clap derives it from the variant).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }
}

/// Where the codec runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceArg {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl InputArgs {
    /// Checked read options.
    pub fn read_options(&self) -> anyhow::Result<crate::io::ReadOptions> {
        Ok(crate::io::ReadOptions {
            dims: self.dims.as_deref().map(crate::volume::parse_dims).transpose().map_err(anyhow::Error::msg)?,
            dtype: self.dtype.as_deref().map(str::parse).transpose().map_err(anyhow::Error::msg)?,
            endian: self.endian.as_deref().map(str::parse).transpose().map_err(anyhow::Error::msg)?,
            header_bytes: self.header_bytes,
            missing: self.missing,
            nonfinite: Default::default(),
        })
    }
}

/// A progress bar on stderr, hidden with --quiet or when stderr is not a terminal.
pub fn progress(len: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}")).expect("static template"));
    bar
}

/// A status line: above the bar when one is shown, else on stderr (logs, CI).
pub fn note(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

#[cfg(feature = "torch")]
pub fn device(d: DeviceArg) -> anyhow::Result<tch::Device> {
    crate::codec::engine::select_device(d.into()).map_err(anyhow::Error::msg)
}

impl From<DeviceArg> for crate::codec::DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => crate::codec::DeviceChoice::Auto,
            DeviceArg::Cpu => crate::codec::DeviceChoice::Cpu,
            DeviceArg::Cuda => crate::codec::DeviceChoice::Cuda,
        }
    }
}

/// A flag parser for a library enum (`crate::choice::Choice`): its names, with
/// their help, are the flag's possible values.
pub fn choice<T: crate::choice::Choice>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let value = |v: &T| match v.help() {
        "" => PossibleValue::new(v.name()),
        h => PossibleValue::new(v.name()).help(h),
    };
    PossibleValuesParser::new(T::ALL.iter().map(value)).try_map(|s| T::from_name(&s))
}

/// Parses `a-b` or `a,b,c` or `a` into a list of integers.
fn parse_list(s: &str) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
            anyhow::ensure!(a <= b && b - a < 10_000, "bad range '{part}'");
            out.extend(a..=b);
        } else {
            out.push(part.trim().parse()?);
        }
    }
    Ok(out)
}

/// Training inputs: files read like `pack` inputs plus generated samples.
pub fn load_training_volumes(inputs: &[String], input: &InputArgs, samples: &[String], sample_dims: &str) -> anyhow::Result<Vec<crate::volume::Volume>> {
    use anyhow::Context;
    let opts = input.read_options()?;
    let mut vols = Vec::new();
    for p in inputs {
        vols.push(crate::io::read_volume(std::path::Path::new(p), &opts)?);
    }
    let dims = crate::volume::parse_dims(sample_dims).map_err(anyhow::Error::msg)?;
    for spec in samples {
        let parts: Vec<&str> = spec.split(':').collect();
        anyhow::ensure!(parts.len() == 3, "--sample '{spec}': expected KIND:SEEDS:STEPS, e.g. vortex:1-3:0-2");
        let kind: crate::sample::Kind = parts[0].parse().map_err(|e| anyhow::anyhow!("--sample '{spec}': {e}"))?;
        let seeds = parse_list(parts[1]).with_context(|| format!("--sample '{spec}': seeds"))?;
        let steps = parse_list(parts[2]).with_context(|| format!("--sample '{spec}': steps"))?;
        let steps: Vec<usize> = steps.iter().map(|&s| s as usize).collect();
        for seed in seeds {
            vols.extend(crate::sample::generate_series(kind, dims, seed, &steps));
        }
    }
    Ok(vols)
}

/// Before libtorch's OpenMP starts: without `OMP_WAIT_POLICY`, libgomp spin-waits
/// between the many small parallel regions of per-block synthesis, which on shared
/// CPUs made neural decodes 3-7x slower (docs/MOUNT.md). The variable is read when
/// the library initialises, so the process re-executes itself once with it set
/// (same PID, same arguments). Only neural paths call this, and only before they have
/// written anything (a re-run must not find its own outputs); if exec fails, it goes on.
#[cfg(feature = "torch")]
pub fn passive_openmp_for(c: &crate::format::Container) {
    if crate::codec::needs_neural(c) {
        passive_openmp();
    }
}

#[cfg(feature = "torch")]
pub fn passive_openmp() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    let err = std::process::Command::new("/proc/self/exe").args(std::env::args_os().skip(1)).env("OMP_WAIT_POLICY", "PASSIVE").exec();
    eprintln!("idlat: note: could not re-execute with OMP_WAIT_POLICY=PASSIVE ({err}); continuing");
    std::env::set_var("OMP_WAIT_POLICY", "ACTIVE");
}

/// The library reader over an opened container, with the decoder its blocks
/// need (model resolved, device chosen). It keeps no decoded blocks: these
/// commands read whole volumes (which bypass the cache) or each block once.
pub fn reader(c: &std::sync::Arc<crate::format::Container>, model: Option<&std::path::Path>, device: DeviceArg, batch: usize) -> anyhow::Result<crate::reader::Container> {
    let opts = crate::reader::Options { model: model.map(Into::into), device: device.into(), batch, cache_bytes: 0 };
    Ok(crate::reader::Container::with_source(c.clone(), crate::reader::decoder(c, &opts)?, 0))
}

/// Synthesis batch of whole-volume decodes (memory, not results, depends on it).
pub const DECODE_BATCH: usize = 16;

/// Bytes of memory this process may still use: MemAvailable + SwapFree from
/// /proc/meminfo, lowered to the cgroup's remaining memory.max when one is
/// set. None when unknown (no /proc): the check is then skipped.
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()).map(|kb| kb * 1024);
    let mut avail = field("MemAvailable:")? + field("SwapFree:").unwrap_or(0);
    let cg = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok().and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(max), Some(cur)) = (cg("memory.max"), cg("memory.current")) {
        avail = avail.min(max.saturating_sub(cur));
    }
    Some(avail)
}

/// Whole-volume commands (unpack, verify --decode) hold one decoded volume as
/// f32 in memory. A container may declare up to 2^40 voxels per volume (spec
/// §7) in a few KB of constant blocks, so the size is checked against the
/// memory available before anything is allocated: a clear error, never an
/// allocation abort. (`idlat mount` reads such volumes block by block.)
pub fn check_decodable(meta: &crate::format::VolumeMeta) -> anyhow::Result<()> {
    let [nx, ny, nz] = meta.info.dims;
    let bytes = (nx as u64).saturating_mul(ny as u64).saturating_mul(nz as u64).saturating_mul(4);
    if let Some(avail) = memory_available() {
        anyhow::ensure!(
            bytes <= avail,
            "volume '{}' ({nx}x{ny}x{nz}) decodes to {:.1} GiB of f32, more than the {:.1} GiB of memory available; `idlat mount` reads it block by block",
            meta.info.name,
            bytes as f64 / (1u64 << 30) as f64,
            avail as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}
