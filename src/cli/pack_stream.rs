//! `idlat pack --stream`: a volume packed tile by tile from its input, never held
//! whole (volumes larger than memory). A first pass over slabs of planes finds the
//! value range; then every pass of rate control and the final coding read each
//! tile's box again (`wavelet::stream`). The container is byte-identical to an
//! in-memory pack of the same volume and settings.

use super::common::{note, progress};
use super::pack::{volume_line, Args, Inputs, Packed, StreamArg};
use super::pack_plain::Plan;
use crate::codec::bound::BlockStats;
use crate::codec::wavelet::{self, stream::Stream};
use crate::format::{block, BlockId, BlockKind, ContainerWriter};
use crate::volume::Region;
use anyhow::bail;

/// Volumes this large (as f32) stream under `--stream auto`: an in-memory pack
/// holds about 5x the volume (BENCHMARKS.md, bench_scale), a stream about 1 GiB.
pub const AUTO_BYTES: u64 = 1 << 30;
/// Most bytes one slab of the range pass reads (one plane at least).
const SLAB_BYTES: usize = 64 << 20;

/// Packs volume `i` into `writer` tile by tile when `--stream` asks for it and
/// the input and map allow; `None`: the caller packs it whole.
pub(super) fn volume(args: &Args, ins: &Inputs, i: usize, writer: &mut ContainerWriter) -> anyhow::Result<Option<Packed>> {
    if args.stream == StreamArg::Never {
        return Ok(None);
    }
    let always = args.stream == StreamArg::Always;
    let name = &ins.names[i];
    let whole = |why: String| -> anyhow::Result<Option<Packed>> {
        if always {
            bail!("--stream always: {name} cannot stream: {why}");
        }
        Ok(None)
    };
    if args.target_psnr.or(args.target_wpsnr).is_some() {
        return whole("a quality target (--target-psnr/--target-wpsnr) measures the whole decoded volume; --target-ratio and --step stream".into());
    }
    if !ins.regions_exact() {
        return whole(format!(
            "the importance map '{}' needs the whole volume around each tile (iso: the nearest crossing may lie anywhere; file: and of= are read whole); value, near, tf, box, sphere, uniform, time, grad, var, entropy and their combinations stream",
            ins.spec
        ));
    }
    let path = &ins.paths[i];
    let unread = "its input is read whole (raw bricks, HDF5 and NetCDF are read in parts; .npy, .mhd, .nrrd, .vti, gzip and inputs with missing values are not)";
    // The whole volume's info without its samples: an empty region.
    let Some((mut info, _, _)) = crate::io::read_region(path, &ins.opts, |d| Region::planes(d, 0..0))? else { return whole(unread.into()) };
    info.name = name.clone();
    if !always && (info.len() as u64) * 4 < AUTO_BYTES {
        return Ok(None);
    }
    let Some(survey) = survey(ins, i, info.dims)? else {
        return whole("it holds non-finite values, which a whole read fills in from their neighbours, or a value range f32 cannot span".into());
    };
    let plan = Plan::new(args, ins, i, &info, survey.range)?;
    let g = plan.grid;
    let load = |id: usize| -> Result<(Vec<f32>, Vec<f32>), String> {
        let part = ins.read_part(i, |_| g.region(BlockId(id as u64))).map_err(|e| format!("{e:#}"))?;
        let part = part.ok_or_else(|| format!("{}: tile {id} now holds non-finite values: the input changed while it was packed", path.display()))?;
        let (v, imp) = ins.part_map(i, part, &survey).map_err(|e| format!("{e:#}"))?;
        Ok((v.data, imp))
    };
    let bar = progress(g.len() as u64, args.quiet, &format!("pack {name}"));
    let mut meta = plan.meta.clone();
    let stream = if args.lossless {
        None
    } else {
        // The first pass shows on the bar; rate control's passes (each reads every tile again) do not.
        let s = Stream::new(g, plan.norm, plan.bound, args.layout.layout(), &load, |n| bar.inc(n as u64)).map_err(anyhow::Error::msg)?;
        bar.set_position(0);
        let step = plan.step(args, &s, (&[], &[]), &crate::dist::Local, !args.quiet).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        meta.codec.insert("step".into(), serde_json::json!(step));
        Some((s, step))
    };
    let vid = writer.add_volume(meta.clone())?;
    let (mut stored, mut stats) = (0u64, BlockStats::default());
    let mut put = |id: usize, c: wavelet::Coded| -> Result<(), String> {
        stats = stats + c.stats;
        stored += c.payload.len() as u64 + crate::format::layout::ENTRY_LEN;
        writer.write_block(vid, BlockId(id as u64), c.kind, &c.payload).map_err(|e| e.to_string())?;
        bar.inc(1);
        Ok(())
    };
    match &stream {
        Some((s, step)) => s.code(*step, &mut put),
        None => (0..g.len()).try_for_each(|id| put(id, wavelet::Coded { kind: BlockKind::Lossless, payload: block::lossless_payload(&load(id)?.0), stats: BlockStats::default() })),
    }
    .map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    if !args.quiet {
        note(&bar, volume_line(&meta.info, stored, plan.bound.as_ref(), &stats));
    }
    Ok(Some(Packed::of(&meta)))
}

/// What the map over a tile needs of the whole volume (`importance::Whole`), from
/// slabs of planes (with the planes around them the map needs): the value range,
/// exactly the whole read's (min and max of its finite values), and the maxima of
/// the map's normalised leaves. `None` where a whole read would fill in missing
/// values (a slab with non-finite ones) or the span overflows f32.
fn survey(ins: &Inputs, i: usize, dims: crate::volume::Dims) -> anyhow::Result<Option<crate::importance::Whole>> {
    let per = (SLAB_BYTES / (dims[0] * dims[1] * 4).max(1)).max(1);
    let mut extent = (f32::INFINITY, f32::NEG_INFINITY);
    let mut maxima = vec![0f32; ins.spec.normalised().len()];
    let mut z = 0;
    while z < dims[2] {
        let k = per.min(dims[2] - z);
        let Some(part) = ins.read_part(i, |d| Region::planes(d, z..z + k))? else { return Ok(None) };
        extent = crate::volume::finite_extent(&part.values(), extent);
        for (m, p) in maxima.iter_mut().zip(ins.part_maxima(i, &part)) {
            *m = m.max(p);
        }
        z += k;
    }
    let range = crate::volume::range_of(extent);
    Ok((range.1 - range.0).is_finite().then_some(crate::importance::Whole { range, maxima }))
}
