//! `idlat latents`: per-block latent vectors straight from the bitstreams.

use super::common::LatentUnits;
use super::CmdResult;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

/// Entropy-decode per-block latent vectors straight from the bitstreams (no synthesis network).
///
/// Writes an (N, 3 + D) float32 .npy: block coordinates (bx, by, bz) then the
/// block's latents (D = M × L³, channel-major; `--units`); with --z the
/// side-info symbols are appended. Wavelet tiles give their low band on a 4³
/// grid (M = 1, L = 4; no --z). Constant and lossless blocks are skipped. --csv writes the same table as CSV.
///
/// Beside the table, OUTPUT with extension .json records the grid (dims, block
/// size, spacing, latent shape, source container): `idlat cluster` and `idlat
/// tsne` read it to lay labels over the volume (docs/ANALYSIS.md).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container file.
    pub input: PathBuf,
    /// Output table file (.npy, or CSV text with --csv).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Volume name (default: the first).
    #[arg(short, long)]
    pub volume: Option<String>,
    /// Units of the latents: `step` (y_hat over its cell's quantisation step,
    /// the paper's importance-driven latents) or `value` (y_hat as the decoder sees it).
    #[arg(long, value_enum, default_value_t = LatentUnits::Step)]
    pub units: LatentUnits,
    /// Append the hyper-latent (z) symbols.
    #[arg(long)]
    pub z: bool,
    /// Write the table as CSV text instead of .npy.
    #[arg(long)]
    pub csv: bool,
    /// Model file, if the container references one that is not installed.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

/// Per-block rows (block coordinates, then latents) and the latent shape (M, L, extra columns).
type Rows = (Vec<Vec<f32>>, usize, usize, usize);

/// The analysis blocks of a wavelet grid of `block` tiles (64³ for the default 128³ tiles).
pub fn analysis_block(block: &[usize; 3]) -> [usize; 3] {
    block.map(crate::codec::wavelet::tile::analysis_edge)
}

/// Wavelet tiles: the low band of each tile, entropy-decoded only, on a 4³ grid per
/// analysis block of at most 64³ (M = 1, L = 4).
fn wavelet_rows(args: &Args, c: &crate::format::Container, v: crate::format::VolumeId) -> anyhow::Result<Rows> {
    use crate::format::{BlockId, BlockKind, StreamTable};
    if args.z {
        bail!("--z: wavelet tiles have no hyper-latents");
    }
    let g = c.grid(v)?;
    let sub = analysis_block(&g.block);
    let per: [usize; 3] = std::array::from_fn(|a| g.block[a] / sub[a]);
    let mut rows = Vec::new();
    for b in 0..g.len() {
        let r = c.block(v, BlockId(b as u64))?;
        if r.kind != BlockKind::Wavelet {
            continue;
        }
        let t = StreamTable::parse(r.payload, 1, 2).map_err(|e| anyhow::anyhow!("block {b}: {e}"))?;
        let ls = crate::codec::wavelet::tile::latents(t.streams[0], g.extent(BlockId(b as u64)).1, args.units == LatentUnits::Step, sub).map_err(|e| anyhow::anyhow!("block {b}: {e}"))?;
        let co = g.coords(BlockId(b as u64));
        for (k, l) in ls {
            let mut row: Vec<f32> = (0..3).map(|a| (co[a] * per[a] + k[a]) as f32).collect();
            row.extend(l);
            rows.push(row);
        }
    }
    Ok((rows, 1, crate::codec::wavelet::tile::LATENT_EDGE, 0))
}

#[cfg(feature = "torch")]
fn neural_rows(args: &Args, c: &crate::format::Container, v: crate::format::VolumeId) -> anyhow::Result<Rows> {
    use crate::codec::hyper::EntropyCodec;
    use crate::codec::pipeline::{BlockStore, NeuralStreams};
    let mf = crate::codec::store::resolve_model(c, args.model.as_deref()).map_err(anyhow::Error::msg)?;
    // Entropy decoding only: the pure-Rust half of the codec, no libtorch.
    let codec = EntropyCodec::from_model(&mf)?;
    let store = crate::codec::store::ContainerStore::new(c, v).map_err(anyhow::Error::msg)?;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for b in 0..store.grid.len() {
        let Some(NeuralStreams { z, y, levels, .. }) = store.neural_streams(b).map_err(anyhow::Error::msg)? else { continue };
        let l = codec.decode(z, y, levels).with_context(|| format!("block {b}"))?;
        let co = store.grid.coords(crate::format::BlockId(b as u64));
        let mut row = vec![co[0] as f32, co[1] as f32, co[2] as f32];
        row.extend(args.units.of(&l));
        if args.z {
            row.extend(l.z.iter().map(|&s| s as f32));
        }
        rows.push(row);
    }
    Ok((rows, mf.profile.m, mf.profile.latent_core(), if args.z { mf.profile.z_symbols() } else { 0 }))
}

pub fn run(args: Args) -> CmdResult {
    if args.output.exists() && !args.force {
        bail!("{} exists (use --force to overwrite)", args.output.display());
    }
    let t = std::time::Instant::now();
    let c = crate::format::Container::open(&args.input)?;
    let v = match &args.volume {
        Some(n) => c.find_volume(n).with_context(|| format!("no volume '{n}'"))?,
        None => crate::format::VolumeId(0),
    };
    let neural = crate::codec::needs_neural(&c);
    let (rows, channels, latent_edge, extra) = if neural {
        #[cfg(feature = "torch")]
        {
            neural_rows(&args, &c, v)?
        }
        #[cfg(not(feature = "torch"))]
        bail!("neural latents need the full build (the `torch` feature); this build reads wavelet latents")
    } else {
        wavelet_rows(&args, &c, v)?
    };
    let width = rows.first().map_or(0, |r| r.len());
    if args.csv {
        let mut s = String::from("bx,by,bz");
        for i in 3..width {
            s.push_str(&format!(",l{}", i - 3));
        }
        s.push('\n');
        for r in &rows {
            s.push_str(&r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
            s.push('\n');
        }
        std::fs::write(&args.output, s)?;
    } else {
        use npyz::WriterBuilder;
        let f = std::io::BufWriter::new(std::fs::File::create(&args.output)?);
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[rows.len() as u64, width as u64]).writer(f).begin_nd()?;
        w.extend(rows.iter().flatten().copied())?;
        w.finish()?;
    }
    let vm = c.volume(v)?;
    let block = if neural { vm.block } else { analysis_block(&vm.block) };
    let sidecar = crate::analysis::table::LatentsMeta {
        container: std::fs::canonicalize(&args.input).unwrap_or_else(|_| args.input.clone()),
        volume: vm.info.name.clone(),
        dims: vm.info.dims,
        spacing: vm.info.spacing,
        origin: vm.info.origin,
        block,
        channels,
        latent_edge,
        extra,
        value_range: vm.value_range,
        importance: vm.importance.clone(),
        units: Some(args.units.name()),
        rows: rows.len(),
        blocks: (0..3).map(|a| vm.info.dims[a].div_ceil(block[a])).product(),
    };
    let sc = crate::analysis::table::LatentsMeta::sidecar_path(&args.output);
    std::fs::write(&sc, serde_json::to_string_pretty(&sidecar)?).with_context(|| format!("writing {}", sc.display()))?;
    println!("{}: {} blocks × {} values ({} latents each) in {:.3} s", args.output.display(), rows.len(), width, width.saturating_sub(3), t.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
