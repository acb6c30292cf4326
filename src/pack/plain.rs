//! The wavelet profile and lossless packs: pure Rust, no model, no libtorch (the
//! torch-free build packs this way too). Under `mpirun` the volumes, or the tiles
//! of each volume, are shared among the ranks (`ranks`), and the container is
//! byte-identical to a single process's.

use super::inputs::Resolved;
#[cfg(feature = "mpi")]
use super::{chain, Stream};
use super::{volume_meta, Event, Job, PackError, Progress, Report, Settings, VolumeReport};
use crate::codec::blocks::Norm;
use crate::codec::bound::{BlockStats, BoundSpec};
use crate::codec::wavelet::{self, Target};
use crate::dist::Reduce;
#[cfg(feature = "mpi")]
use crate::format::version::{block_features, Feature};
use crate::format::{BlockGrid, BlockId, BlockKind, ContainerWriter, ModelRef, VolumeMeta};
use crate::volume::Region;
#[cfg(feature = "mpi")]
use std::ops::Range;

pub(super) fn run(job: &Job, progress: &mut dyn Progress) -> Result<Report, PackError> {
    match crate::dist::launched_ranks() {
        Some(_) => ranks(job, progress),
        None => single(job, progress),
    }
}

fn tile_edge(s: &Settings) -> usize {
    if s.lossless {
        super::LOSSLESS_BLOCK
    } else {
        s.tile
    }
}

fn model_ref(s: &Settings) -> ModelRef {
    ModelRef { hash: String::new(), profile: if s.lossless { "lossless" } else { "wavelet" }.into(), embedded: false }
}

/// A volume's report from its metadata and what its blocks took.
fn volume_report(meta: &VolumeMeta, stored: u64, bound: Option<BoundSpec>, stats: BlockStats) -> VolumeReport {
    VolumeReport { bound, bounded: stats.bounded, corrected: stats.corrected, ..VolumeReport::new(&meta.info, stored) }
}

fn single(job: &Job, progress: &mut dyn Progress) -> Result<Report, PackError> {
    let t0 = std::time::Instant::now();
    let s = job.settings();
    let ins = Resolved::resolve(job, progress)?;
    let mut writer = ContainerWriter::create(job.out, job.overwrite)?;
    writer.set_model(model_ref(s), None);
    let mut done = Vec::new();
    for i in 0..ins.len() {
        let t = std::time::Instant::now();
        if let Some(mut v) = super::stream::volume(job, &ins, i, &mut writer, progress)? {
            v.time = Some(t.elapsed());
            done.push(v);
            continue;
        }
        let (vol, imp) = ins.load(i)?;
        let plan = VolumePlan::new(job, &ins, i, &vol.info, vol.range())?;
        let part = wavelet::Part { data: &vol.data, imp: &imp, region: Region::whole(vol.info.dims), ids: 0..plan.grid.len() };
        progress.begin(&vol.info.name, plan.grid.len() as u64);
        let out = plan.code(s, &part, &crate::dist::Local, Some(&mut *progress))?;
        let vid = writer.add_volume(out.meta.clone())?;
        for (id, c) in out.coded.iter().enumerate() {
            writer.write_block(vid, BlockId(id as u64), c.kind, &c.payload)?;
            progress.advance(1);
        }
        progress.end();
        let mut v = volume_report(&out.meta, wavelet::stored_bytes(&out.coded), plan.bound, out.stats);
        v.time = Some(t.elapsed());
        progress.event(Event::Volume(&v));
        done.push(v);
    }
    let stats = writer.finish()?;
    super::eval::report(job, &ins, done, stats, t0, None)
}

/// What a volume is packed with, decided before any tile is coded (no collectives:
/// every rank decides the same, and an error here is every rank's).
pub(super) struct VolumePlan {
    pub grid: BlockGrid,
    pub norm: Norm,
    pub bound: Option<BoundSpec>,
    pub meta: VolumeMeta,
    target: Option<Target>,
    /// This volume's share of the container besides its blocks (header, trailer, metadata).
    overhead: u64,
}

impl VolumePlan {
    /// `info`, `range`: the whole volume's (every rank of a shared volume plans alike).
    pub(super) fn new(job: &Job, ins: &Resolved, i: usize, info: &crate::volume::VolumeInfo, (lo, hi): (f32, f32)) -> Result<VolumePlan, PackError> {
        let s = job.settings();
        let norm = Norm::from_range(lo, hi);
        let tile = tile_edge(s);
        let grid = BlockGrid::cubic(info.dims, tile);
        let bound = if s.lossless { None } else { job.bound(lo, hi)? };
        let mut meta = volume_meta(info, (lo, hi), i, norm, [tile; 3], 0, &ins.spec);
        meta.codec.insert("profile".into(), serde_json::json!(model_ref(s).profile));
        if let Some(b) = &bound {
            meta.codec.insert("error_bound".into(), serde_json::to_value(b)?);
        }
        let meta_bytes = zstd::bulk::compress(&serde_json::to_vec(&meta)?, 19).map_or(1024, |z| z.len() as u64);
        let overhead = (120 + 200) / ins.len() as u64 + meta_bytes;
        Ok(VolumePlan { grid, norm, bound, meta, target: s.target, overhead })
    }

    /// Codes the tiles of `part` (all of them in one process; a rank's share under
    /// MPI, whose sizes `red` sums across ranks). `speak`: where rate control's outcome goes.
    fn code(&self, s: &Settings, part: &wavelet::Part, red: &dyn Reduce, speak: Option<&mut dyn Progress>) -> Result<Coded, String> {
        let VolumePlan { grid, norm, .. } = self;
        let norm = *norm;
        let mut meta = self.meta.clone();
        let coded: Vec<wavelet::Coded> = if s.lossless {
            part.ids
                .clone()
                .map(|id| wavelet::Coded { kind: BlockKind::Lossless, payload: crate::format::block::lossless_payload(&part.tile(grid, id, part.data)), stats: Default::default() })
                .collect()
        } else {
            let bound = self.bound.as_ref().map(|b| (b, part.imp));
            let prepared = wavelet::prepare_part(part, grid, norm, bound, s.layout);
            let step = self.step(s, prepared.as_slice(), (part.data, part.imp), red, speak)?;
            meta.codec.insert("step".into(), serde_json::json!(step));
            wavelet::code_all(&prepared, step, norm)?
        };
        let stats = coded.iter().fold(BlockStats::default(), |s, c| s + c.stats);
        Ok(Coded { meta, coded, stats })
    }

    /// The base step: the settings' (or the default), or what rate control finds for
    /// the target over `ps` (`data`, `imp`: the volume, for a quality target).
    pub(super) fn step<T: wavelet::Tiles + ?Sized>(&self, s: &Settings, ps: &T, (data, imp): (&[f32], &[f32]), red: &dyn Reduce, speak: Option<&mut dyn Progress>) -> Result<f32, String> {
        let Some(target) = self.target else {
            return Ok(s.step.unwrap_or(wavelet::DEFAULT_STEP));
        };
        let c = wavelet::search(ps, &wavelet::Searched { grid: &self.grid, norm: self.norm, data, imp, valid: None, overhead: self.overhead }, target, red)?;
        if let Some(p) = speak {
            p.event(Event::Target { volume: &self.meta.info.name, target, step: c.step, achieved: c.achieved, met: c.met });
        }
        Ok(c.step)
    }
}

/// A volume's coded tiles (or a rank's share of them) and what the container needs to know.
struct Coded {
    /// Complete (the step included) on every rank that codes a share.
    meta: VolumeMeta,
    coded: Vec<wavelet::Coded>,
    stats: BlockStats,
}

#[cfg(not(feature = "mpi"))]
fn ranks(_: &Job, _: &mut dyn Progress) -> Result<Report, PackError> {
    Err(crate::dist::no_mpi().into())
}

/// What a rank tells the others about the tiles it coded (JSON; payloads stay put).
#[cfg(feature = "mpi")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Shard {
    volume: usize,
    /// On the rank that reports the volume: its metadata.
    meta: Option<VolumeMeta>,
    first: u64,
    /// (kind, payload bytes, CRC-32) per tile from `first` on.
    blocks: Vec<(u8, u64, u32)>,
    /// The format features those tiles use (rank 0 places them unseen).
    features: Vec<Feature>,
    bounded: usize,
    corrected: usize,
}

/// The pack under MPI. Ranks form teams (`ranks_per_volume`, by default one rank
/// each with at least as many volumes as ranks, else one team of all); each team
/// packs a contiguous run of volumes, its ranks sharing every volume's tiles
/// (contiguous id ranges), with rate control summing their sizes. Payloads go
/// straight into rank 0's temporary with MPI-IO at offsets every rank computes
/// from everyone's sizes; rank 0 writes header, metadata, index and trailer and
/// renames the file into place. Failures that every rank can see are agreed on
/// (each rank exits with the failed rank's error, nothing is left behind); one
/// inside a shared rate search aborts the job (the temporary of a killed rank 0
/// is removed by the next pack, as any stale temporary).
#[cfg(feature = "mpi")]
fn ranks(job: &Job, progress: &mut dyn Progress) -> Result<Report, PackError> {
    let t0 = std::time::Instant::now();
    let s = job.settings();
    let world = crate::dist::World::init()?;
    let (rank, size) = (world.rank(), world.size());
    let fail = |e: PackError| chain(&e);
    let ins = world.agree(Resolved::resolve(job, progress).map_err(fail))?;
    let n = ins.len();
    if s.stream == Stream::Always {
        let why = "--stream always packs in one process; under mpirun, ranks share a large volume's tiles instead, each reading only its slab (--ranks-per-volume)".to_string();
        return Err(crate::dist::everyone(why).into());
    }
    // Teams of `per` ranks; team t packs its share of the volumes, its ranks sharing each one's tiles.
    let per = team_size(s.ranks_per_volume, n, size)?;
    if per > 1 && matches!(s.target, Some(Target::Psnr(_) | Target::WPsnr(_))) {
        let why = "a quality target (--target-psnr/--target-wpsnr) needs every tile of a volume in one process, and here ranks share each volume's tiles: use --target-ratio or --step, or --ranks-per-volume 1 (whole volumes per rank)".to_string();
        return Err(crate::dist::everyone(why).into());
    }
    let writer = (rank == 0).then(|| ContainerWriter::create(job.out, job.overwrite).map_err(|e| e.to_string())).transpose();
    let mut writer = world.agree(writer)?;
    if let Some(w) = writer.as_mut() {
        w.set_model(model_ref(s), None);
    }
    let tmp = world.path_of_rank0(writer.as_ref().map(|w| w.temp_path()));

    let (teams, t) = (size / per, rank / per);
    let team = world.split(t);
    let coded: Result<Vec<(usize, Coded, Range<usize>)>, crate::dist::Said> = (|| {
        let mut all = Vec::new();
        for i in crate::dist::share(n, t, teams) {
            if per == 1 {
                // A whole volume: no other rank is involved until the exchange below.
                let (vol, imp) = ins.load(i).map_err(fail)?;
                let plan = VolumePlan::new(job, &ins, i, &vol.info, vol.range()).map_err(fail)?;
                let ids = 0..plan.grid.len();
                let part = wavelet::Part { data: &vol.data, imp: &imp, region: Region::whole(vol.info.dims), ids: ids.clone() };
                let out = plan.code(s, &part, &crate::dist::Local, Some(&mut *progress)).map_err(|e| format!("{}: {e}", vol.info.name))?;
                all.push((i, out, ids));
                continue;
            }
            // The team goes through its volumes together, so each step is agreed on in it.
            let (info, range, data, imp, region) = match slab(&team, s, &ins, i)? {
                Some(s) => s,
                None => {
                    let (vol, imp) = team.agree(ins.load(i).map_err(fail))?;
                    let range = vol.range();
                    let region = Region::whole(vol.info.dims);
                    (vol.info, range, vol.data, imp, region)
                }
            };
            let plan = team.agree(VolumePlan::new(job, &ins, i, &info, range).map_err(fail))?;
            let ids = crate::dist::share(plan.grid.len(), team.rank(), per);
            let part = wavelet::Part { data: &data, imp: &imp, region, ids: ids.clone() };
            // The search's collectives cannot be left half-way by one rank: abort the job.
            let speak = (team.rank() == 0).then_some(&mut *progress as &mut dyn Progress);
            let out = plan.code(s, &part, &team, speak).unwrap_or_else(|e| team.abort(&format!("{}: {e}", info.name)));
            all.push((i, out, ids));
        }
        Ok(all)
    })();
    let coded = world.agree(coded)?;

    // Every rank learns every tile's size, so all compute the same offsets.
    let shards: Vec<Shard> = coded
        .iter()
        .map(|(i, c, ids)| {
            let grid = BlockGrid::new(c.meta.info.dims, c.meta.block);
            let mut features: Vec<Feature> = c.coded.iter().zip(ids.clone()).flat_map(|(b, id)| block_features(b.kind, &b.payload, grid.extent(BlockId(id as u64)).1)).collect();
            features.sort_unstable();
            features.dedup();
            Shard {
                volume: *i,
                meta: (team.rank() == 0).then(|| c.meta.clone()),
                first: ids.start as u64,
                blocks: c.coded.iter().map(|b| (b.kind as u8, b.payload.len() as u64, crc32fast::hash(&b.payload))).collect(),
                features,
                bounded: c.stats.bounded,
                corrected: c.stats.corrected,
            }
        })
        .collect();
    let all: Vec<Vec<Shard>> = world.all_gather_bytes(&serde_json::to_vec(&shards)?).iter().map(|b| serde_json::from_slice(b)).collect::<Result<_, _>>()?;
    // (volume, first tile, rank, shard of that rank), in the container's order.
    let mut order: Vec<(usize, u64, usize, usize)> = all.iter().enumerate().flat_map(|(r, ss)| ss.iter().enumerate().map(move |(k, s)| (s.volume, s.first, r, k))).collect();
    order.sort_unstable();
    let mut pos = crate::format::layout::HEADER_LEN;
    let mut pieces: Vec<(u64, &[u8])> = Vec::new();
    for &(_, _, r, k) in &order {
        for (j, b) in all[r][k].blocks.iter().enumerate() {
            if r == rank {
                pieces.push((pos, &coded[k].1.coded[j].payload));
            }
            pos += b.1;
        }
    }
    let mut done = Vec::new();
    let placed = match writer.as_mut() {
        None => Ok(()),
        Some(w) => (|| -> Result<(), PackError> {
            let mut at = order.iter().peekable();
            for v in 0..n {
                let parts: Vec<&Shard> = std::iter::from_fn(|| at.next_if(|o| o.0 == v)).map(|&(_, _, r, k)| &all[r][k]).collect();
                let meta = parts.iter().find_map(|s| s.meta.clone()).ok_or_else(|| PackError::Invalid(format!("no rank reported volume {v}")))?;
                parts.iter().flat_map(|s| &s.features).for_each(|&f| w.require(f));
                let vid = w.add_volume(meta.clone())?;
                let mut stats = BlockStats::default();
                let mut stored = 0;
                for s in &parts {
                    for (j, &(kind, len, crc)) in s.blocks.iter().enumerate() {
                        let kind = BlockKind::from_u8(kind).ok_or_else(|| PackError::Invalid(format!("block kind {kind}")))?;
                        w.place_block(vid, BlockId(s.first + j as u64), kind, len, crc)?;
                        stored += len + crate::format::layout::ENTRY_LEN;
                    }
                    stats = stats + BlockStats { bounded: s.bounded, corrected: s.corrected };
                }
                let bound: Option<BoundSpec> = meta.codec.get("error_bound").and_then(|b| serde_json::from_value(b.clone()).ok());
                let v = volume_report(&meta, stored, bound, stats);
                progress.event(Event::Volume(&v));
                done.push(v);
            }
            Ok(())
        })()
        .map_err(fail),
    };
    world.agree(placed)?;
    let written = world.write_at(&tmp, &pieces);
    world.agree(written)?;
    let finished = writer.map(|w| w.finish().map_err(|e| e.to_string())).transpose();
    let stats = world.agree(finished)?;
    match stats {
        Some(stats) => super::eval::report(job, &ins, done, stats, t0, None),
        None => Ok(Report::follower()),
    }
}

/// (info, value range, values, importance, where the slab lies): what `slab` returns.
#[cfg(feature = "mpi")]
type Slab = (crate::volume::VolumeInfo, (f32, f32), Vec<f32>, Vec<f32>, Region);

/// A volume's whole info and value range, this rank's slab of it (the planes of its
/// share of the tiles) with their importance and where the slab starts: read
/// without the rest of the volume (but the planes around it the map needs) where
/// the input and the map allow it on every rank (`Resolved::read_part`), else `None`
/// (every rank then reads it whole).
#[cfg(feature = "mpi")]
fn slab(world: &crate::dist::Comm, s: &Settings, ins: &Resolved, i: usize) -> Result<Option<Slab>, crate::dist::Agreed> {
    let fail = |e: PackError| chain(&e);
    // The planes of this rank's share of the tiles (the same share `VolumePlan` gives it).
    let planes = |dims| {
        let g = BlockGrid::cubic(dims, tile_edge(s));
        Region::planes(dims, g.planes(crate::dist::share(g.len(), world.rank(), world.size())))
    };
    let got = world.agree(ins.read_part(i, planes).map_err(fail))?;
    // A slab may hold what only a whole read handles (non-finite values): then no rank reads slabs.
    let mut missing = [got.is_none() as u64];
    world.sum_u64(&mut missing);
    let Some(part) = got.filter(|_| missing[0] == 0) else { return Ok(None) };
    // The whole volume's range and the maxima its map normalises by, as a whole read
    // has them: exact (minima and maxima of floats).
    let (lo, hi) = crate::volume::finite_extent(&part.values(), (f32::INFINITY, f32::NEG_INFINITY));
    let range = crate::volume::range_of(world.min_max(lo, hi));
    if !(range.1 - range.0).is_finite() {
        // A span f32 cannot hold: the whole read says so, as one process would.
        return Ok(None);
    }
    let mut maxima = ins.part_maxima(i, &part);
    world.max_f32(&mut maxima);
    let (info, region) = (part.info(), part.region);
    let (slab, imp) = world.agree(ins.part_map(i, part, &crate::importance::Whole { range, maxima }).map_err(fail))?;
    Ok(Some((info, range, slab.data, imp, region)))
}

/// Ranks per team (`ranks_per_volume`, else 1 with at least as many volumes as
/// ranks, else all of them); it must divide the ranks.
#[cfg(feature = "mpi")]
fn team_size(asked: Option<usize>, volumes: usize, ranks: usize) -> Result<usize, PackError> {
    let per = asked.unwrap_or(if volumes >= ranks { 1 } else { ranks });
    if per == 0 || per > ranks || ranks % per != 0 {
        return Err(crate::dist::everyone(format!("--ranks-per-volume {per} must divide the {ranks} ranks")).into());
    }
    Ok(per)
}
