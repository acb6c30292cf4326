//! Streaming packs: a volume packed tile by tile from its input, never held
//! whole (volumes larger than memory). A first pass over slabs of planes finds the
//! value range; then every pass of rate control and the final coding read each
//! tile's box again (`wavelet::stream`). The container is byte-identical to an
//! in-memory pack of the same volume and settings.

use super::inputs::Resolved;
use super::plain::VolumePlan;
use super::{chain, Job, PackError, Progress, Stream, Target, VolumeReport};
use crate::codec::bound::BlockStats;
use crate::codec::wavelet::{self, stream::Stream as Tiles};
use crate::format::{block, BlockId, BlockKind, ContainerWriter};
use crate::volume::Region;

/// Volumes this large (as f32) stream under `Stream::Auto`: an in-memory pack
/// holds about 5x the volume (BENCHMARKS.md, bench_scale), a stream about 1 GiB.
pub const AUTO_BYTES: u64 = 1 << 30;
/// Most bytes one slab of the range pass reads (one plane at least).
const SLAB_BYTES: usize = 64 << 20;

/// Packs volume `i` into `writer` tile by tile when the settings ask for it and
/// the input and map allow; `None`: the caller packs it whole.
pub(super) fn volume(job: &Job, ins: &Resolved, i: usize, writer: &mut ContainerWriter, progress: &mut dyn Progress) -> Result<Option<VolumeReport>, PackError> {
    let s = job.settings();
    if s.stream == Stream::Never {
        return Ok(None);
    }
    let always = s.stream == Stream::Always;
    let name = &ins.names[i];
    let whole = |why: String| -> Result<Option<VolumeReport>, PackError> {
        if always {
            return Err(PackError::Invalid(format!("--stream always: {name} cannot stream: {why}")));
        }
        Ok(None)
    };
    if matches!(s.target, Some(Target::Psnr(_) | Target::WPsnr(_))) {
        return whole("a quality target (--target-psnr/--target-wpsnr) measures the whole decoded volume; --target-ratio and --step stream".into());
    }
    if !ins.regions_exact() {
        return whole(format!(
            "the importance map '{}' needs the whole volume around each tile (iso: the nearest crossing may lie anywhere; file: and of= are read whole); value, near, tf, box, sphere, uniform, time, grad, var, entropy and their combinations stream",
            ins.spec
        ));
    }
    let Some(path) = ins.path(i) else { return whole("it is given in memory".into()) };
    let unread = "its input is read whole (raw bricks, HDF5 and NetCDF are read in parts; .npy, .mhd, .nrrd, .vti, gzip and inputs with missing values are not)";
    let Some(info) = ins.info(i)? else { return whole(unread.into()) };
    if !always && (info.len() as u64) * 4 < AUTO_BYTES {
        return Ok(None);
    }
    let Some(survey) = survey(ins, i, info.dims)? else {
        return whole("it holds non-finite values, which a whole read fills in from their neighbours, or a value range f32 cannot span".into());
    };
    let plan = VolumePlan::new(job, ins, i, &info, survey.range)?;
    let g = plan.grid;
    let load = |id: usize| -> Result<(Vec<f32>, Vec<f32>), String> {
        let part = ins.read_part(i, |_| g.region(BlockId(id as u64))).map_err(|e| chain(&e))?;
        let part = part.ok_or_else(|| format!("{}: tile {id} now holds non-finite values: the input changed while it was packed", path.display()))?;
        let (v, imp) = ins.part_map(i, part, &survey).map_err(|e| chain(&e))?;
        Ok((v.data, imp))
    };
    progress.begin(name, g.len() as u64);
    let mut meta = plan.meta.clone();
    let stream = if s.lossless {
        None
    } else {
        // The first pass counts on the progress; rate control's passes (each reads every tile again) do not.
        let shared = std::cell::RefCell::new(&mut *progress);
        let t = Tiles::new(g, plan.norm, plan.bound, s.layout, &load, |n| shared.borrow_mut().advance(n as u64))?;
        progress.restart();
        let step = plan.step(s, &t, (&[], &[]), &crate::dist::Local, Some(&mut *progress)).map_err(|e| PackError::Invalid(format!("{name}: {e}")))?;
        meta.codec.insert("step".into(), serde_json::json!(step));
        Some((t, step))
    };
    let vid = writer.add_volume(meta.clone())?;
    let (mut stored, mut stats) = (0u64, BlockStats::default());
    let mut put = |id: usize, c: wavelet::Coded| -> Result<(), String> {
        stats = stats + c.stats;
        stored += c.payload.len() as u64 + crate::format::layout::ENTRY_LEN;
        writer.write_block(vid, BlockId(id as u64), c.kind, &c.payload).map_err(|e| e.to_string())?;
        progress.advance(1);
        Ok(())
    };
    match &stream {
        Some((t, step)) => t.code(*step, &mut put),
        None => (0..g.len()).try_for_each(|id| put(id, wavelet::Coded { kind: BlockKind::Lossless, payload: block::lossless_payload(&load(id)?.0), stats: BlockStats::default() })),
    }?;
    progress.end();
    let v = VolumeReport { bound: plan.bound, bounded: stats.bounded, corrected: stats.corrected, ..VolumeReport::new(&meta.info, stored) };
    progress.event(super::Event::Volume(&v));
    Ok(Some(v))
}

/// What the map over a tile needs of the whole volume (`importance::Whole`), from
/// slabs of planes (with the planes around them the map needs): the value range,
/// exactly the whole read's (min and max of its finite values), and the maxima of
/// the map's normalised leaves. `None` where a whole read would fill in missing
/// values (a slab with non-finite ones) or the span overflows f32.
fn survey(ins: &Resolved, i: usize, dims: crate::volume::Dims) -> Result<Option<crate::importance::Whole>, PackError> {
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
