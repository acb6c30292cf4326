//! The inputs of a pack, resolved: files or volumes in memory, their names, read
//! options, the importance spec, and every volume preloaded when the spec refers
//! to others (`of=NAME`).

use super::{Event, Inputs, PackError, Progress};
use crate::volume::{Region, Volume};
use std::path::{Path, PathBuf};

pub(super) enum Source {
    File(PathBuf),
    Memory(Volume),
}

pub(super) struct Resolved {
    pub sources: Vec<Source>,
    pub names: Vec<String>,
    pub opts: crate::io::ReadOptions,
    pub spec: crate::importance::Spec,
    pub all: Vec<Volume>,
}

impl Resolved {
    /// `out`: the container's path, checked unless `overwrite`.
    pub fn resolve(job: &super::Job, progress: &mut dyn Progress) -> Result<Resolved, PackError> {
        let s = job.settings();
        if job.out.exists() && !job.overwrite {
            return Err(crate::io::IoError::Exists { path: job.out.to_owned() }.into());
        }
        if let Some(dir) = job.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(PackError::Invalid(format!("output directory {} does not exist", dir.display())));
            }
        }
        let spec = job.plan.spec.clone();
        // A lossless pack keeps NaN/±Inf bit-exactly, a lossy one refuses them unless `missing` marks them.
        let nonfinite = if s.lossless { crate::io::NonFinite::Keep } else { crate::io::NonFinite::Refuse };
        let opts = crate::io::ReadOptions { nonfinite, ..s.read.clone() };
        let preload = s.importance.contains("of=");
        let (sources, names, all) = match job.inputs {
            Inputs::Files(inputs) => {
                let mut paths = crate::io::expand_inputs(inputs)?;
                if inputs.iter().any(|a| a.contains(['*', '?'])) {
                    crate::io::names::natural_sort(&mut paths);
                }
                let (paths, skipped) = crate::io::skip_header_data_files(paths);
                for (data, header) in skipped {
                    progress.event(Event::Note(format!("skipping {}: it is the data file of {}, which is also an input", data.display(), header.display())));
                }
                let names = crate::io::names::volume_names(&paths);
                let all = if preload { paths.iter().map(|p| crate::io::read_volume(p, &opts)).collect::<Result<_, _>>()? } else { Vec::new() };
                (paths.into_iter().map(Source::File).collect(), names, all)
            }
            Inputs::Volumes(vols) => {
                let names: Vec<String> = vols.iter().enumerate().map(|(i, v)| if v.info.name.is_empty() { format!("volume{i}") } else { v.info.name.clone() }).collect();
                for (v, name) in vols.iter().zip(&names) {
                    check_memory(v, name, s.lossless)?;
                }
                let all = if preload { vols.clone() } else { Vec::new() };
                (vols.iter().cloned().map(Source::Memory).collect(), names, all)
            }
        };
        Ok(Resolved { sources, names, opts, spec, all })
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// The file of volume `i`, if it comes from one.
    pub fn path(&self, i: usize) -> Option<&Path> {
        match &self.sources[i] {
            Source::File(p) => Some(p),
            Source::Memory(_) => None,
        }
    }

    /// Volume `i` in messages: its file, else its name.
    fn what(&self, i: usize) -> String {
        self.path(i).map_or_else(|| self.names[i].clone(), |p| p.display().to_string())
    }

    /// Volume `i` as read (with its valid-voxel mask when missing values are marked).
    pub fn read(&self, i: usize) -> Result<(Volume, Option<Vec<bool>>), PackError> {
        Ok(match &self.sources[i] {
            Source::File(p) => crate::io::read_volume_with_mask(p, &self.opts)?,
            Source::Memory(v) => (v.clone(), None),
        })
    }

    /// Volume `i`, named, with its importance map.
    pub fn load(&self, i: usize) -> Result<(Volume, Vec<f32>), PackError> {
        let mut vol = if !self.all.is_empty() { self.all[i].clone() } else { self.read(i)?.0 };
        vol.info.name = self.names[i].clone();
        let imp = self.map(i, &vol)?;
        Ok((vol, imp))
    }

    /// The importance map of volume `i` (read as `vol`).
    pub fn map(&self, i: usize, vol: &Volume) -> Result<Vec<f32>, PackError> {
        let others: Vec<(&str, &Volume)> = self.all.iter().zip(&self.names).map(|(v, n)| (n.as_str(), v)).collect();
        let ctx = crate::importance::Context { volume: vol, others: &others, time_index: i, time_count: self.len(), origin: [0; 3], whole: None };
        crate::importance::compute(&self.spec, &ctx).map_err(|source| PackError::Importance { what: self.what(i), source })
    }

    /// The whole volume's info without its samples, where its input reads in parts.
    pub fn info(&self, i: usize) -> Result<Option<crate::volume::VolumeInfo>, PackError> {
        let Some(path) = self.path(i) else { return Ok(None) };
        Ok(crate::io::read_region(path, &self.opts, |d| Region::planes(d, 0..0))?.map(|(mut info, _, _)| {
            info.name = self.names[i].clone();
            info
        }))
    }

    /// Part of volume `i` (an MPI rank's slab, a streaming pack's tile): the region
    /// `region(dims)` (`dims` the whole volume's) read with the box around it that its
    /// map needs (`Spec::support`), without the rest; `None` where that cannot give
    /// what `load` gives: the input (`io::read_region`; volumes in memory) or a map
    /// that needs the whole volume or other volumes.
    pub fn read_part(&self, i: usize, region: impl FnOnce(crate::volume::Dims) -> Region) -> Result<Option<Part>, PackError> {
        let Some(path) = self.path(i).filter(|_| self.all.is_empty()) else { return Ok(None) };
        let mut asked = None;
        let box_of = |d| {
            let r = region(d);
            let s = self.spec.support(r, d);
            asked = Some((r, s.is_some()));
            // Nothing to read where the map needs the whole volume.
            s.unwrap_or(Region::planes(d, 0..0))
        };
        let Some((mut info, support, data)) = crate::io::read_region(path, &self.opts, box_of)? else { return Ok(None) };
        let Some((region, true)) = asked else { return Ok(None) };
        let dims = info.dims;
        info.name = self.names[i].clone();
        info.dims = support.size;
        Ok(Some(Part { dims, region, support, vol: Volume::new(info, data) }))
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
    pub fn part_map(&self, i: usize, p: Part, whole: &crate::importance::Whole) -> Result<(Volume, Vec<f32>), PackError> {
        let keep = p.keep();
        let Part { region, support, mut vol, .. } = p;
        let imp = crate::importance::compute(&self.spec, &self.context(i, &vol, support.origin, Some(whole))).map_err(|source| PackError::Importance { what: self.what(i), source })?;
        if support == region {
            return Ok((vol, imp));
        }
        let imp = crate::format::grid::cut(&imp, support.size, keep);
        vol.data = crate::format::grid::cut(&vol.data, support.size, keep);
        vol.info.dims = region.size;
        Ok((vol, imp))
    }

    fn context<'a>(&'a self, i: usize, vol: &'a Volume, origin: [usize; 3], whole: Option<&'a crate::importance::Whole>) -> crate::importance::Context<'a> {
        crate::importance::Context { volume: vol, others: &[], time_index: i, time_count: self.len(), origin, whole }
    }

    /// Whether parts of a volume can get the whole map's values (`read_part`): no
    /// other volumes, and a map that needs a bounded box around each part.
    pub fn regions_exact(&self) -> bool {
        self.all.is_empty() && self.spec.support(Region::whole([1; 3]), [1; 3]).is_some()
    }
}

/// A volume given in memory holds what a file read would pass: a lossy pack
/// refuses non-finite values and a span f32 cannot hold (`io::NonFinite::Refuse`).
fn check_memory(v: &Volume, name: &str, lossless: bool) -> Result<(), PackError> {
    if v.data.len() != v.info.len() {
        return Err(PackError::Invalid(format!("{name}: {} samples for dims {:?}", v.data.len(), v.info.dims)));
    }
    if lossless {
        return Ok(());
    }
    if let Some(n) = Some(v.data.iter().filter(|x| !x.is_finite()).count()).filter(|&n| n > 0) {
        return Err(PackError::Invalid(format!("{name}: {n} non-finite values (NaN or ±Inf); lossy packing cannot store them: pack losslessly to keep them exactly")));
    }
    let (lo, hi) = v.range();
    if !(hi - lo).is_finite() {
        return Err(PackError::Invalid(format!("{name}: values span {lo:e}..{hi:e}, a range wider than f32 can hold; lossy packing cannot represent it: pack losslessly")));
    }
    Ok(())
}

/// Part of a volume and the input around it (`Resolved::read_part`).
pub(super) struct Part {
    /// The whole volume's dims.
    dims: crate::volume::Dims,
    /// The box asked for.
    pub region: Region,
    /// The box read: the region and what its map needs around it.
    support: Region,
    /// The samples of the box read (the whole volume's info, the box's dims).
    vol: Volume,
}

impl Part {
    /// Where the region lies in the box read.
    fn keep(&self) -> Region {
        Region { origin: [0, 1, 2].map(|a| self.region.origin[a] - self.support.origin[a]), size: self.region.size }
    }

    /// The whole volume's info.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code, reason = "the MPI slab reads use it"))]
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
