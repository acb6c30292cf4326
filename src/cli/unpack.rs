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
    if crate::dist::launched_ranks().is_some() {
        return ranks(args);
    }
    let t0 = std::time::Instant::now();
    let c = std::sync::Arc::new(crate::format::Container::open(&args.input)?);
    let plan = plan(&args, &c)?;
    // Built after `plan`, so a bad -o fails before a model loads.
    let reader = super::common::reader(&c, args.model.as_deref(), args.device, args.batch)?;
    let single = is_single(&args, &plan);
    // A directory this command creates is removed again if it fails (when still empty).
    let created_dir = !single && !args.output.exists();
    if !single {
        std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    }
    let result = decode_all(&args, &reader, plan).and_then(|(staged, bytes, lines)| {
        staged.commit()?;
        Ok((bytes, lines))
    });
    if result.is_err() && created_dir {
        let _ = std::fs::remove_dir(&args.output);
    }
    let (bytes, lines) = result?;
    if !args.quiet {
        for l in lines {
            println!("{l}");
        }
    }
    decoded_line(&args, bytes, t0);
    Ok(ExitCode::SUCCESS)
}

fn decoded_line(args: &Args, bytes: u64, t0: std::time::Instant) {
    let s = t0.elapsed().as_secs_f64();
    if !args.quiet {
        println!("decoded {:.2} MB in {:.2} s ({:.2} MB/s)", bytes as f64 / 1e6, s, bytes as f64 / 1e6 / s);
    }
}

/// One file for everything (an .h5 -o, or one volume to a file name), else a directory.
fn is_single(args: &Args, plan: &Plan<'_>) -> bool {
    is_h5(&args.output) || (plan.len() == 1 && args.output.extension().is_some())
}

/// The volumes to decode and where each goes. Every output is checked (type,
/// --force, --dtype, name length, not a special file), and every block's checksum
/// (cheap, no decoding), before anything is decoded or written: a bad -o or a
/// corrupt volume fails in a second, not after minutes of decoding.
fn plan<'c>(args: &Args, c: &'c crate::format::Container) -> anyhow::Result<Plan<'c>> {
    #[cfg(feature = "torch")]
    super::common::passive_openmp_for(c);
    let vols: Vec<crate::format::VolumeId> = match &args.volume {
        Some(n) => vec![c.find_volume(n).with_context(|| format!("no volume '{n}' in {}", args.input.display()))?],
        None => c.volumes().map(|(v, _)| v).collect(),
    };
    // An .h5 -o is one file for every volume; otherwise one file per volume.
    let single = is_h5(&args.output) || (vols.len() == 1 && args.output.extension().is_some());
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
        if dtype.is_some() && !matches!(extension(&out).as_deref(), Some("raw" | "mhd" | "h5" | "hdf5")) {
            bail!("--dtype applies to .raw/.mhd and HDF5 output only");
        }
        super::common::check_decodable(meta)?;
        crate::io::check_output(&out, args.force)?;
        plan.push((v, meta, out, dtype));
    }
    for (v, meta, _, _) in &plan {
        for b in 0..meta.block_count {
            c.block(*v, crate::format::BlockId(b)).with_context(|| format!("volume '{}'", meta.info.name))?;
        }
    }
    Ok(plan)
}

fn extension(p: &std::path::Path) -> Option<String> {
    p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase)
}

type Plan<'a> = Vec<(crate::format::VolumeId, &'a crate::format::VolumeMeta, PathBuf, Option<crate::volume::DType>)>;

/// Decodes every planned volume into temporaries beside their targets, for the
/// caller to rename them all into place (`Staged::commit`): a failure (a corrupt
/// block, a full disk) leaves no output at all. Returns them, the decoded f32
/// bytes and a line per volume.
fn decode_all(args: &Args, reader: &crate::reader::Container, plan: Plan<'_>) -> anyhow::Result<(crate::io::atomic::Staged, u64, Vec<String>)> {
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
        let vol = reader.volume_by_id(v)?.read_all(|d, _| bar.set_position(d as u64))?;
        bar.finish_and_clear();
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
    Ok((staged, bytes, lines))
}

#[cfg(not(feature = "mpi"))]
fn ranks(_: Args) -> CmdResult {
    Err(crate::dist::no_mpi().into())
}

/// `unpack` under MPI. With at least as many volumes as ranks, each rank decodes a
/// contiguous run of whole volumes into its own files; otherwise the ranks share
/// each volume by layers of tiles, and each writes its planes' bytes with MPI-IO
/// into the one data file rank 0 staged (raw data with a .mhd or .nhdr header).
/// Outputs appear together once every rank succeeded, or not at all.
#[cfg(feature = "mpi")]
fn ranks(args: Args) -> CmdResult {
    let t0 = std::time::Instant::now();
    let world = crate::dist::World::init().map_err(anyhow::Error::msg)?;
    let (rank, size) = (world.rank(), world.size());
    let everyone = |e: anyhow::Error| crate::dist::everyone(format!("{e:#}"));
    let c = std::sync::Arc::new(crate::format::Container::open(&args.input).map_err(|e| everyone(e.into()))?);
    let plan = plan(&args, &c).map_err(everyone)?;
    if is_h5(&args.output) {
        return Err(
            everyone(anyhow::anyhow!("one HDF5 file for every volume is written by one process: across ranks, unpack to a directory (--format raw, nhdr, npy or vti) or run without mpirun")).into()
        );
    }
    if !is_single(&args, &plan) {
        std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display())).map_err(everyone)?;
    }
    let fail = |e: anyhow::Error| format!("{e:#}");
    let n = plan.len();
    let (staged, bytes, lines) = if n >= size {
        let mine: Plan<'_> = plan.into_iter().enumerate().filter(|(k, _)| crate::dist::share(n, rank, size).contains(k)).map(|(_, p)| p).collect();
        let done = super::common::reader(&c, args.model.as_deref(), args.device, args.batch).and_then(|reader| decode_all(&args, &reader, mine));
        world.agree(done.map_err(fail))?
    } else {
        if crate::codec::needs_neural(&c) {
            return Err(everyone(anyhow::anyhow!(
                "a volume shared by ranks must hold no neural blocks (wavelet, lossless, raw and constant decode by layers); with neural blocks, run with at most {} ranks",
                plan.len()
            ))
            .into());
        }
        let mut staged = crate::io::atomic::Staged::new();
        let mut bytes = 0;
        let mut lines = Vec::new();
        for (v, meta, out, dtype) in plan {
            let ext = extension(&out).unwrap_or_default();
            if !matches!(ext.as_str(), "raw" | "mhd" | "nhdr") {
                return Err(everyone(anyhow::anyhow!("{}: a volume shared by ranks is written as raw data with a .mhd or .nhdr header (--format raw or nhdr), not .{ext}", out.display())).into());
            }
            let dt = if ext == "nhdr" { crate::volume::DType::F32 } else { dtype.unwrap_or(crate::volume::DType::F32) };
            let targets = crate::io::check_output(&out, args.force).map_err(|e| everyone(e.into()))?;
            // Rank 0 stages the data file (sized, written by every rank) and the header.
            let staged_tmp = (rank == 0)
                .then(|| -> anyhow::Result<std::path::PathBuf> {
                    let tmp = staged.reserve(&targets[0])?;
                    let total = meta.info.dims.iter().map(|&d| d as u64).product::<u64>() * dt.size() as u64;
                    std::fs::File::create_new(&tmp).and_then(|f| f.set_len(total)).with_context(|| format!("creating {}", tmp.display()))?;
                    let raw_name = targets[0].file_name().and_then(|n| n.to_str()).unwrap_or("data.raw");
                    staged.write_bytes(&targets[1], crate::io::detached_header(&ext, &meta.info, raw_name, dt).as_bytes())?;
                    Ok(tmp)
                })
                .transpose();
            let tmp = world.agree(staged_tmp.map_err(fail))?;
            let tmp = world.path_of_rank0(tmp.as_deref());
            let mine = layers(&c, v, rank, size).map_err(|e| format!("volume '{}': {e}", meta.info.name));
            let (z0, slab) = world.agree(mine)?;
            let plane = meta.info.dims[0] * meta.info.dims[1];
            let mut buf = Vec::with_capacity(slab.len() * dt.size());
            crate::io::raw::write_samples(&mut buf, &slab, dt).map_err(|e| everyone(e.into()))?;
            let written = world.write_at(&tmp, &[((z0 * plane * dt.size()) as u64, &buf)]);
            world.agree(written)?;
            // Counted once (rank 0), as the sum over ranks below counts whole volumes once each.
            bytes += if rank == 0 { (plane * meta.info.dims[2] * 4) as u64 } else { 0 };
            lines.push(format!("{} → {}", meta.info.name, targets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
        }
        (staged, bytes, lines)
    };
    let committed = staged.commit().map_err(|e| e.to_string());
    world.agree(committed)?;
    let mut total = [bytes];
    crate::dist::Reduce::sum_u64(&*world, &mut total);
    if !args.quiet {
        // Whole volumes: each rank names its own; shared ones: rank 0 names them.
        for l in lines.iter().filter(|_| rank == 0 || n >= size) {
            println!("{l}");
        }
    }
    if rank == 0 {
        decoded_line(&args, total[0], t0);
    }
    Ok(ExitCode::SUCCESS)
}

/// This rank's share of a volume's layers of tiles, decoded: the first plane and
/// the planes' samples (x fastest).
#[cfg(feature = "mpi")]
fn layers(c: &crate::format::Container, v: crate::format::VolumeId, rank: usize, size: usize) -> Result<(usize, Vec<f32>), String> {
    let g = c.grid(v).map_err(|e| e.to_string())?;
    let counts = g.counts();
    let mine = crate::dist::share(counts[2], rank, size);
    let z0 = g.planes(mine.start * counts[0] * counts[1]..mine.end * counts[0] * counts[1]).start;
    Ok((z0, crate::codec::wavelet::decode_layers(c, v, mine, |_, _| {})?))
}

fn is_h5(p: &std::path::Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("h5") || e.eq_ignore_ascii_case("hdf5"))
}
