//! `idlat unpack`: decode volumes to files.

use super::common::DeviceArg;
use super::CmdResult;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

/// Decode volumes from a container to .raw+.mhd, .npy, .nhdr, .vti or HDF5.
///
/// The output type follows the extension of -o. With several volumes (and no
/// -v), -o names a directory that receives NAME.EXT for each (default .raw),
/// except an -o ending in .h5 or .hdf5: one HDF5 file holding every volume.
///
/// HDF5 output: one dataset /NAME per volume, shape (nz, ny, nx) (C order, x
/// last), f32 unless --dtype says otherwise, with attributes dims, spacing and
/// origin (x, y, z order), original_dtype and, when the input had missing
/// values, missing_value. `idlat pack FILE.h5:/NAME` reads it back.
#[derive(clap::Args, Debug)]
pub struct Args {
    pub input: PathBuf,
    /// Output file, or directory for several volumes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only this volume (by name).
    #[arg(short, long)]
    pub volume: Option<String>,
    /// Extension for volumes written into a directory: raw, npy, nhdr, vti, h5.
    #[arg(long, default_value = "raw")]
    pub format: String,
    /// `original` restores the input's element type (raw/mhd and HDF5 output),
    /// or a type by name (f32 f64 u8 i8 u16 i16 u32 i32); default f32.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Model file, if the container references one that is not installed.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Blocks per synthesis batch (bounds memory; results do not depend on it).
    #[arg(long, default_value_t = super::common::DECODE_BATCH)]
    pub batch: usize,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
    /// No progress bars or per-volume lines.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> CmdResult {
    let t0 = std::time::Instant::now();
    let c = crate::format::Container::open(&args.input)?;
    #[cfg(feature = "torch")]
    super::common::passive_openmp_for(&c);
    let vols: Vec<crate::format::VolumeId> = match &args.volume {
        Some(n) => vec![c.find_volume(n).with_context(|| format!("no volume '{n}' in {}", args.input.display()))?],
        None => c.volumes().map(|(v, _)| v).collect(),
    };
    // An .h5 -o is one file for every volume; otherwise one file per volume.
    let h5_file = is_h5(&args.output);
    let single = h5_file || (vols.len() == 1 && args.output.extension().is_some());
    // Every output is checked (type, --force, --dtype, name length, not a
    // special file) before any decoding, so a bad -o fails in a second rather
    // than after minutes of decoding, and before anything is written.
    let mut plan = Vec::new();
    for v in vols {
        let meta = c.volume(v)?;
        // The reader enforced the name rule (spec §4); checked again here because
        // this name becomes a path: it must never leave the output directory.
        crate::format::meta::check_volume_name(&meta.info.name).map_err(|e| anyhow::anyhow!("volume {}: {e}", v.0))?;
        let out = if single { args.output.clone() } else { args.output.join(format!("{}.{}", meta.info.name, args.format)) };
        let dtype = match args.dtype.as_deref() {
            None | Some("f32") | Some("float") => None,
            Some("original") => Some(meta.info.dtype),
            Some(d) => Some(d.parse().map_err(anyhow::Error::msg)?),
        };
        if dtype.is_some() && !matches!(out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(), Some("raw" | "mhd" | "h5" | "hdf5")) {
            bail!("--dtype applies to .raw/.mhd and HDF5 output only");
        }
        super::common::check_decodable(meta)?;
        crate::io::check_output(&out, args.force)?;
        plan.push((v, meta, out, dtype));
    }
    // All or nothing: every block's checksum first (cheap, no decoding), so a
    // corrupt volume fails the command before any decoding or writing.
    for (v, meta, _, _) in &plan {
        for b in 0..meta.block_count {
            c.block(*v, crate::format::BlockId(b)).with_context(|| format!("volume '{}'", meta.info.name))?;
        }
    }
    let codec = super::common::codec_for(&c, args.model.as_deref(), args.device)?;
    // A directory this command creates is removed again if it fails (when still empty).
    let created_dir = !single && !args.output.exists();
    if !single {
        std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    }
    let result = decode_all(&args, &c, codec.as_ref(), plan);
    if result.is_err() && created_dir {
        let _ = std::fs::remove_dir(&args.output);
    }
    let bytes = result?;
    let s = t0.elapsed().as_secs_f64();
    if !args.quiet {
        println!("decoded {:.2} MB in {:.2} s ({:.2} MB/s)", bytes as f64 / 1e6, s, bytes as f64 / 1e6 / s);
    }
    Ok(ExitCode::SUCCESS)
}

type Plan<'a> = Vec<(crate::format::VolumeId, &'a crate::format::VolumeMeta, PathBuf, Option<crate::volume::DType>)>;

/// Decodes every planned volume into temporaries beside their targets, then
/// renames them all into place: a failure (a corrupt block, a full disk)
/// leaves no output at all. Returns the decoded f32 bytes.
fn decode_all(args: &Args, c: &crate::format::Container, codec: Option<&super::common::MaybeCodecInner>, plan: Plan<'_>) -> anyhow::Result<u64> {
    let mut staged = crate::io::atomic::Staged::new();
    let mut bytes = 0u64;
    let mut lines = Vec::new();
    // All volumes into one HDF5 file: written in place in its temporary.
    let mut h5 = match is_h5(&args.output) {
        true => Some(crate::io::h5::Writer::create(&staged.reserve(&args.output)?)?),
        false => None,
    };
    for (v, meta, out, dtype) in plan {
        let bar = super::common::progress(meta.block_count, args.quiet, &format!("unpack {}", meta.info.name));
        let data = super::common::decode(codec, c, v, args.batch, |d, _| bar.set_position(d as u64)).with_context(|| format!("volume '{}'", meta.info.name))?;
        bar.finish_and_clear();
        let vol = crate::volume::Volume::new(meta.info.clone(), data);
        let files = match h5.as_mut() {
            Some(w) => {
                w.add(&vol, dtype)?;
                vec![PathBuf::from(format!("{}:/{}", out.display(), vol.info.name))]
            }
            None => crate::io::stage_volume(&out, &vol, dtype, args.force, &mut staged)?,
        };
        bytes += (vol.data.len() * 4) as u64;
        lines.push(format!("{} → {}", meta.info.name, files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
    }
    if let Some(w) = h5 {
        w.close()?;
    }
    staged.commit()?;
    if !args.quiet {
        for l in lines {
            println!("{l}");
        }
    }
    Ok(bytes)
}

fn is_h5(p: &std::path::Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("h5") || e.eq_ignore_ascii_case("hdf5"))
}
