//! `idlat pack` with the wavelet profile or `--lossless`: pure Rust, no model,
//! no libtorch (the torch-free build packs this way too).

use super::pack::{bound_for, report, volume_line, volume_meta, Args, Inputs, Packed};
use super::CmdResult;
use crate::codec::blocks::Norm;
use crate::codec::wavelet::{self, Target};
use crate::format::{BlockGrid, BlockId, BlockKind, ContainerWriter, ModelRef};

pub fn run(args: Args) -> CmdResult {
    let t0 = std::time::Instant::now();
    if let Some(s) = args.step {
        anyhow::ensure!(s.is_finite() && s > 0.0, "--step {s} must be a positive number");
    }
    let ins = Inputs::resolve(&args)?;
    let mut writer = ContainerWriter::create(&args.output, args.force)?;
    let profile = if args.lossless { "lossless" } else { "wavelet" };
    writer.set_model(ModelRef { hash: String::new(), profile: profile.into(), embedded: false }, None);
    let tile = if args.lossless { super::pack::LOSSLESS_BLOCK } else { args.tile as usize };
    let mut done = Vec::new();
    for i in 0..ins.paths.len() {
        let (vol, imp) = ins.load(i)?;
        let input_bytes = (vol.data.len() * vol.info.dtype.size()) as u64;
        let (lo, hi) = vol.range();
        let norm = Norm::from_range(lo, hi);
        let dims = vol.dims();
        let grid = BlockGrid::cubic(dims, tile);
        let bound = if args.lossless { None } else { bound_for(&args, lo, hi)? };
        let mut meta = volume_meta(&vol, i, norm, [tile; 3], 0, &ins.spec);
        meta.codec.insert("profile".into(), serde_json::json!(profile));
        if let Some(b) = &bound {
            meta.codec.insert("error_bound".into(), serde_json::to_value(b)?);
        }
        let bar = super::common::progress(grid.len() as u64, args.quiet, &format!("pack {}", vol.info.name));
        let coded: Vec<wavelet::Coded> = if args.lossless {
            (0..grid.len())
                .map(|id| {
                    let (o, sz) = grid.extent(BlockId(id as u64));
                    let mut b = vec![0f32; sz.iter().product()];
                    crate::format::grid::gather(&vol.data, dims, o, sz, &mut b);
                    wavelet::Coded { kind: BlockKind::Lossless, payload: crate::format::block::lossless_payload(&b), stats: Default::default() }
                })
                .collect()
        } else {
            let mut prepared = wavelet::prepare(&vol.data, &imp, &grid, norm, bound.as_ref().map(|b| (b, &imp[..])), args.layout.layout());
            let target = args.target_ratio.map(Target::Ratio).or(args.target_psnr.map(Target::Psnr)).or(args.target_wpsnr.map(Target::WPsnr));
            let step = match target {
                None => {
                    let step = args.step.unwrap_or(wavelet::DEFAULT_STEP);
                    if args.layout == super::pack::LayoutArg::Auto {
                        wavelet::relayout(&mut prepared, step, norm);
                    }
                    step
                }
                Some(t) => {
                    // This volume's share of the container: header and trailer, its metadata.
                    let meta_bytes = zstd::bulk::compress(&serde_json::to_vec(&meta)?, 19).map_or(1024, |z| z.len() as u64);
                    let overhead = (120 + 200) / ins.paths.len() as u64 + meta_bytes;
                    let mut c = wavelet::search(&prepared, &grid, norm, &vol.data, &imp, None, t, overhead, None).map_err(anyhow::Error::msg)?;
                    // The layouts chosen at the step the target needs, then the step again for them.
                    if args.layout == super::pack::LayoutArg::Auto && wavelet::relayout(&mut prepared, c.step, norm) > 0 {
                        c = wavelet::search(&prepared, &grid, norm, &vol.data, &imp, None, t, overhead, Some(c.step)).map_err(anyhow::Error::msg)?;
                    }
                    let what = match t {
                        Target::Ratio(r) => format!("ratio {r}: estimated {:.1}", c.achieved),
                        Target::Psnr(p) => format!("PSNR {p} dB: reached {:.2} dB (before error-bound corrections)", c.achieved),
                        Target::WPsnr(p) => format!("wPSNR {p} dB: reached {:.2} dB (before error-bound corrections)", c.achieved),
                    };
                    if !c.met {
                        let why = match t {
                            Target::Ratio(_) if c.step >= wavelet::tile::MAX_STEP => "the coarsest step cannot compress further",
                            Target::Ratio(_) => "even the finest step compresses more than asked",
                            _ => "the finest step cannot reach it",
                        };
                        eprintln!("{}: target {what} — not reachable: {why}; using the closest setting", vol.info.name);
                    } else if !args.quiet {
                        eprintln!("{}: target {what} with base step {:.3e}", vol.info.name, c.step);
                    }
                    c.step
                }
            };
            meta.codec.insert("step".into(), serde_json::json!(step));
            wavelet::code_all(&prepared, step, norm).map_err(anyhow::Error::msg)?
        };
        if let Some(m) = coded.iter().enumerate().map(|(id, c)| wavelet::required_minor(c, grid.extent(BlockId(id as u64)).1)).max().filter(|&m| m > 0) {
            writer.require_minor(m);
        }
        let vid = writer.add_volume(meta)?;
        let mut stored = 0u64;
        let mut bounded = 0usize;
        let mut corrected = 0usize;
        for (id, c) in coded.iter().enumerate() {
            stored += c.payload.len() as u64 + crate::format::layout::ENTRY_LEN;
            bounded += c.stats.bounded;
            corrected += c.stats.corrected;
            writer.write_block(vid, BlockId(id as u64), c.kind, &c.payload)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        if !args.quiet {
            super::common::note(&bar, volume_line(&vol, input_bytes, stored, bound.as_ref(), &crate::codec::bound::BlockStats { bounded, corrected }));
        }
        done.push(Packed { name: vol.info.name.clone(), input_bytes, f32_bytes: (vol.data.len() * 4) as u64, dtype: vol.info.dtype, scale: 1.0 });
    }
    let stats = writer.finish()?;
    report(&args, &ins, &done, stats, t0, None)
}
