//! HDF5 and NetCDF inputs: naming a dataset inside a file, listing what a file
//! holds, and the shared hyperslab reader (`h5` and `nc` are the two libraries).
//!
//! An input names a dataset as `FILE:NAME` (`sim.h5:/fields/density`,
//! `ocean.nc:temp`). The split is at a ':' whose left part is an existing file
//! that is HDF5 or NetCDF by extension (`.h5 .hdf5 .he5`, `.nc .nc4 .cdf
//! .netcdf`) or signature, tried from the right, so plain paths with ':' keep
//! working. `FILE` alone picks the file's only volume. A 4-D variable whose
//! first dimension is time (NetCDF: unlimited or named `time`/`t`, or with
//! `axis = "T"`; HDF5: unlimited) is a series: `FILE:NAME` expands to
//! `FILE:NAME[0]` … `FILE:NAME[T-1]`, one volume per step.
//!
//! Axis order: both formats are C order (slowest first, shape (nz, ny, nx)),
//! as .npy: the last axis is x. Values become f32, the file's type is kept as
//! the original dtype (64-bit integers are recorded as f64, the nearest type a
//! container records). `_FillValue` and `missing_value` attributes mark missing
//! voxels, compared exactly in the file's values before the f32 conversion.
//!
//! Data are read a slab of z-planes at a time into the output volume, so memory
//! is the volume plus one slab (at most `SLAB_BYTES`, or one plane).
//!
//! Neither Debian's libhdf5 nor libnetcdf is thread-safe, and libnetcdf calls
//! libhdf5 behind the hdf5 crate's lock: every call goes through `lock()`.

use super::{inv, IoError};
use crate::volume::{DType, Dims, Region, Volume, VolumeInfo};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which library reads a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hdf5,
    NetCdf,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hdf5 => "HDF5",
            Kind::NetCdf => "NetCDF",
        }
    }
}

const H5_EXT: [&str; 3] = ["h5", "hdf5", "he5"];
const NC_EXT: [&str; 4] = ["nc", "nc4", "cdf", "netcdf"];
const H5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// The kind a file name's extension says, without looking at the file.
pub fn kind_by_name(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if H5_EXT.contains(&ext.as_str()) {
        Some(Kind::Hdf5)
    } else if NC_EXT.contains(&ext.as_str()) {
        Some(Kind::NetCdf)
    } else {
        None
    }
}

/// The kind of an existing regular file, by extension, else by signature
/// (HDF5's at 0 or at a user-block offset 512, 1024, …; NetCDF classic `CDF\1|2|5`).
pub fn detect(path: &Path) -> Option<Kind> {
    if !path.is_file() {
        return None;
    }
    if let Some(k) = kind_by_name(path) {
        return Some(k);
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 8];
    let n = f.read(&mut head).ok()?;
    if n >= 4 && &head[..3] == b"CDF" && matches!(head[3], 1 | 2 | 5) {
        return Some(Kind::NetCdf);
    }
    let mut off = 0u64;
    while off <= 1 << 16 {
        if f.seek(SeekFrom::Start(off)).is_err() || f.read_exact(&mut head).is_err() {
            break;
        }
        if &head == H5_MAGIC {
            return Some(Kind::Hdf5);
        }
        off = if off == 0 { 512 } else { off * 2 };
    }
    None
}

/// A dataset or variable in an HDF5/NetCDF file, as an input names it.
#[derive(Clone, Debug, PartialEq)]
pub struct SciRef {
    pub file: PathBuf,
    pub kind: Kind,
    /// The dataset path or variable name; None: the file's only volume.
    pub name: Option<String>,
}

impl SciRef {
    /// `input` as `FILE` or `FILE:NAME` (module docs), or None when it is not
    /// an HDF5/NetCDF input (a plain path, perhaps with ':' in it).
    pub fn parse(input: &Path) -> Option<SciRef> {
        if input.is_file() {
            return detect(input).map(|kind| SciRef { file: input.to_owned(), kind, name: None });
        }
        let s = input.to_str()?;
        for (i, _) in s.rmatch_indices(':') {
            let file = Path::new(&s[..i]);
            if let Some(kind) = detect(file) {
                let name = Some(s[i + 1..].to_string()).filter(|n| !n.is_empty());
                return Some(SciRef { file: file.to_owned(), kind, name });
            }
        }
        None
    }

    /// The input text naming `name` in this file.
    pub fn with_name(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}:{}", self.file.display(), name))
    }
}

/// Splits a pattern argument `GLOB:NAME` whose file part is an HDF5/NetCDF glob
/// (`run*.h5:/density`); None for anything else.
pub fn split_glob(arg: &str) -> Option<(&str, &str)> {
    for (i, _) in arg.rmatch_indices(':') {
        let (file, name) = (&arg[..i], &arg[i + 1..]);
        if file.contains(['*', '?', '[']) && kind_by_name(Path::new(file)).is_some() {
            return Some((file, name));
        }
    }
    None
}

/// What a dataset is to idlat.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A 3-D volume.
    Volume,
    /// A 4-D variable whose first axis is time: that many volumes.
    Series(usize),
}

/// One dataset/variable of a file, for listings and error messages.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    /// The file's shape, slowest axis first.
    pub shape: Vec<usize>,
    /// Dimension names (NetCDF), empty for HDF5.
    pub dim_names: Vec<String>,
    /// The file's element type in words (`f64`, `i16`, `string`, `compound`).
    pub dtype: String,
    /// What idlat makes of it, or why it cannot read it.
    pub shape_kind: Result<Shape, String>,
}

impl Entry {
    pub fn describe(&self) -> String {
        let shape = if self.dim_names.len() == self.shape.len() && !self.shape.is_empty() {
            format!("({})", self.dim_names.iter().zip(&self.shape).map(|(n, s)| format!("{n}={s}")).collect::<Vec<_>>().join(", "))
        } else {
            format!("({})", self.shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "))
        };
        let what = match &self.shape_kind {
            Ok(Shape::Volume) => format!("volume {}", dims_text(&self.shape[self.shape.len() - 3..])),
            Ok(Shape::Series(n)) => format!("{n} time steps of {}", dims_text(&self.shape[1..])),
            Err(why) => format!("not readable: {why}"),
        };
        format!("{} {shape} {}: {what}", self.name, self.dtype)
    }

    /// Volume dims (x fastest) of a readable entry.
    pub fn dims(&self) -> Option<Dims> {
        let n = self.shape.len();
        match self.shape_kind {
            Ok(_) if n >= 3 => Some([self.shape[n - 1], self.shape[n - 2], self.shape[n - 3]]),
            _ => None,
        }
    }
}

/// `NXxNYxNZ` (x fastest) of a C-order (z, y, x) shape.
fn dims_text(zyx: &[usize]) -> String {
    zyx.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>().join("x")
}

/// Every dataset/variable of the file (at most `MAX_ENTRIES`).
pub fn list(file: &Path, kind: Kind) -> Result<Vec<Entry>, IoError> {
    let _g = lock();
    match kind {
        Kind::Hdf5 => super::h5::list(file),
        Kind::NetCdf => super::nc::list(file),
    }
}

/// Most datasets a listing walks (a file can link groups into cycles).
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// The shape rule shared by both formats: 3-D is a volume, 4-D with a time
/// first axis a series; anything else says why not.
pub(crate) fn classify(shape: &[usize], time_first: bool, time_why: &str) -> Result<Shape, String> {
    match shape.len() {
        3 => Ok(Shape::Volume),
        4 if time_first => Ok(Shape::Series(shape[0])),
        4 => Err(format!("4-D, and its first axis is not time ({time_why}); idlat reads 3-D volumes and time series of them")),
        n => Err(format!("{n}-D; idlat reads 3-D volumes (and 4-D time series of them)")),
    }
    .and_then(|s| if shape.contains(&0) { Err("empty (a zero-length axis)".to_string()) } else { Ok(s) })
}

/// The volumes of a listing, described one per line (for error messages).
pub(crate) fn readable_text(entries: &[Entry]) -> String {
    let ok: Vec<String> = entries.iter().filter(|e| e.shape_kind.is_ok()).map(|e| e.describe()).collect();
    if ok.is_empty() {
        let others: Vec<String> = entries.iter().take(20).map(|e| e.describe()).collect();
        if others.is_empty() {
            "it holds no dataset or variable".into()
        } else {
            format!("it holds no 3-D volume; what it holds: {}", others.join("; "))
        }
    } else {
        format!("its volumes: {}", ok.join("; "))
    }
}

/// A name with a `[STEP]` suffix: (base, step).
pub(crate) fn split_step(name: &str) -> Option<(&str, usize)> {
    let inner = name.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return None;
    }
    Some((&inner[..open], digits.parse().ok()?))
}

/// Resolves `r` against the file's listing: the entry it names, and the step
/// its `[STEP]` suffix selects. Errors name what is wrong and list the volumes.
pub(crate) fn resolve<'e>(r: &SciRef, entries: &'e [Entry]) -> Result<(&'e Entry, Option<usize>), IoError> {
    let path = &r.file;
    let Some(name) = &r.name else {
        let ok: Vec<&Entry> = entries.iter().filter(|e| e.shape_kind.is_ok()).collect();
        return match ok.as_slice() {
            [one] => Ok((one, None)),
            [] => Err(inv(path, format!("no volume to read: {}", readable_text(entries)))),
            _ => Err(inv(path, format!("holds several volumes: name one as {}:NAME; {}", path.display(), readable_text(entries)))),
        };
    };
    let find = |n: &str| {
        let n = if r.kind == Kind::Hdf5 { n.trim_start_matches('/') } else { n };
        entries.iter().find(|e| (if r.kind == Kind::Hdf5 { e.name.trim_start_matches('/') } else { &e.name }) == n)
    };
    let (entry, step) = match find(name) {
        Some(e) => (e, None),
        None => match split_step(name).and_then(|(base, t)| find(base).map(|e| (e, Some(t)))) {
            Some(found) => found,
            None => {
                let what = if r.kind == Kind::Hdf5 { "dataset" } else { "variable" };
                return Err(inv(path, format!("no {what} '{name}'; {}", readable_text(entries))));
            }
        },
    };
    match (&entry.shape_kind, step) {
        (Err(why), _) => Err(inv(path, format!("'{}' cannot be read as a volume: it is {why}", entry.name))),
        (Ok(Shape::Volume), Some(t)) => Err(inv(path, format!("'{}' is a 3-D volume, not a time series: [{t}] selects nothing", entry.name))),
        (Ok(Shape::Series(n)), Some(t)) if t >= *n => Err(inv(path, format!("'{}' has {n} time steps; step {t} is past the last", entry.name))),
        _ => Ok((entry, step)),
    }
}

/// The inputs `r` stands for: itself for a volume, one per step for a series
/// (named `FILE:NAME[STEP]`), with the file's only volume chosen when `r`
/// names none. Checked against the file, so a wrong name fails before any work.
pub fn expand(r: &SciRef) -> Result<Vec<PathBuf>, IoError> {
    let entries = list(&r.file, r.kind)?;
    let (e, step) = resolve(r, &entries)?;
    Ok(match (&e.shape_kind, step) {
        (Ok(Shape::Series(n)), None) => (0..*n).map(|t| r.with_name(&format!("{}[{t}]", e.name))).collect(),
        (_, Some(t)) => vec![r.with_name(&format!("{}[{t}]", e.name))],
        _ => vec![r.with_name(&e.name)],
    })
}

/// The volume name of an HDF5/NetCDF input: file stem, then the dataset path
/// (groups joined by '_'), then `_tSTEP` for a step of a series. Unsafe
/// characters are replaced later by `names::volume_names`.
pub fn volume_stem(r: &SciRef) -> String {
    let stem = r.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(name) = &r.name else { return stem };
    let (base, step) = match split_step(name) {
        Some((b, t)) => (b, Some(t)),
        None => (name.as_str(), None),
    };
    let mut n = format!("{stem}_{}", base.trim_matches('/').replace('/', "_"));
    if let Some(t) = step {
        n.push_str(&format!("_t{t}"));
    }
    n
}

/// What a reader hands back: the volume (info filled in but the name) and the
/// valid mask when the file marks missing values.
pub(crate) type Read = (Volume, Option<Vec<bool>>);

/// Reads the volume `r` names (a step of a series with its `[STEP]` suffix).
pub fn read(r: &SciRef) -> Result<Read, IoError> {
    let entries = list(&r.file, r.kind)?;
    let (e, step) = resolve(r, &entries)?;
    if matches!(e.shape_kind, Ok(Shape::Series(_))) && step.is_none() {
        return Err(inv(&r.file, format!("'{}' is a time series of {} steps: name one as {}:{}[STEP], or pass it to pack, which reads them all", e.name, e.shape[0], r.file.display(), e.name)));
    }
    let _g = lock();
    match r.kind {
        Kind::Hdf5 => super::h5::read(&r.file, e, step, None),
        Kind::NetCdf => super::nc::read(&r.file, e, step, None),
    }
}

/// The region `region(dims)` of the volume `r` names (hyperslab reads of it only),
/// the whole volume's dims, and the region.
pub fn read_region(r: &SciRef, region: impl FnOnce(Dims) -> Region) -> Result<(Read, Dims, Region), IoError> {
    let entries = list(&r.file, r.kind)?;
    let (e, step) = resolve(r, &entries)?;
    let dims = e.dims().ok_or_else(|| inv(&r.file, format!("'{}' is not a volume", e.name)))?;
    let g = region(dims);
    if matches!(e.shape_kind, Ok(Shape::Series(_))) && step.is_none() || !g.within(dims) {
        return Err(inv(&r.file, format!("'{}': region at {:?} of size {:?} of a {}x{}x{} volume", e.name, g.origin, g.size, dims[0], dims[1], dims[2])));
    }
    let _g = lock();
    let read = match r.kind {
        Kind::Hdf5 => super::h5::read(&r.file, e, step, Some(g))?,
        Kind::NetCdf => super::nc::read(&r.file, e, step, Some(g))?,
    };
    Ok((read, dims, g))
}

/// A dataset's missing-value markers from its `_FillValue` and `missing_value`
/// attributes (`attr`: a numeric attribute by name); NaN ones are dropped, since
/// non-finite values are missing whenever there are markers at all.
pub(crate) fn sentinels(attr: impl Fn(&str) -> Option<Vec<f64>>) -> Vec<f64> {
    let mut s: Vec<f64> = ["_FillValue", "missing_value"].iter().filter_map(|k| attr(k)).flatten().collect();
    s.retain(|v| !v.is_nan());
    s
}

/// The volume of a read: `info` (dims, dtype, any coordinate placement) with the
/// `spacing`/`origin` attributes over it, and the first marker as its missing value.
pub(crate) fn finish(what: &str, mut info: VolumeInfo, (data, valid): (Vec<f32>, Option<Vec<bool>>), sentinels: &[f64], attr: impl Fn(&str) -> Option<Vec<f64>>) -> Read {
    placement_attr(what, "spacing", attr("spacing"), &mut info.spacing);
    placement_attr(what, "origin", attr("origin"), &mut info.origin);
    if valid.is_some() {
        info.missing = sentinels.first().copied();
    }
    (Volume::new(info, data), valid)
}

/// Largest volume a file may declare, in voxels (as `headers` allows).
const MAX_VOXELS: u64 = 1 << 36;
/// Declared f32 bytes past which the file must hold at least 1/`MAX_RATIO` of them.
const FREE_BYTES: u64 = 64 << 20;
/// Deflate cannot exceed about 1032:1; 4096 leaves room for shuffle and szip.
const MAX_RATIO: u64 = 4096;

/// Refuses an absurd declared size before anything is allocated: a hostile
/// header must not make idlat allocate (or read) terabytes of fill values.
pub(crate) fn check_size(file: &Path, name: &str, dims: Dims) -> Result<usize, IoError> {
    let voxels = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).filter(|&n| n <= MAX_VOXELS);
    let Some(voxels) = voxels else { return Err(inv(file, format!("'{name}': dims {dims:?} are too large (over {MAX_VOXELS} voxels)"))) };
    let file_len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bytes = voxels * 4;
    if bytes > FREE_BYTES && bytes / MAX_RATIO > file_len {
        return Err(inv(
            file,
            format!(
                "'{name}' declares {}x{}x{} voxels ({bytes} bytes as f32) but the file holds {file_len} bytes: a compression ratio over {MAX_RATIO} is implausible; refusing to allocate it",
                dims[0], dims[1], dims[2]
            ),
        ));
    }
    usize::try_from(voxels).map_err(|_| inv(file, format!("'{name}': dims {dims:?} are too large")))
}

/// Most f64 values one slab holds (32 MiB), unless one plane is larger.
const SLAB_BYTES: usize = 32 << 20;

/// Reads region `r` of a (z, y, x) volume slab by slab: `slab(z0, nz, buf)` fills `buf`
/// (`nz` planes of the region's rows and columns, C order) with the file's values as f64. Values equal to a
/// sentinel (or NaN/±Inf, when there are sentinels) are missing: the returned
/// mask marks them and they are left for the caller to fill. `unpack` is
/// CF packing (`scale_factor`, `add_offset`), applied after the sentinel test.
pub(crate) fn read_slabs(
    file: &Path,
    name: &str,
    dims: Dims,
    r: Region,
    sentinels: &[f64],
    unpack: Option<(f64, f64)>,
    mut slab: impl FnMut(usize, usize, &mut Vec<f64>) -> Result<(), String>,
) -> Result<(Vec<f32>, Option<Vec<bool>>), IoError> {
    check_size(file, name, dims)?;
    let plane = r.size[0] * r.size[1];
    let n = r.len();
    let alloc_err = |what: &str| inv(file, format!("'{name}': cannot allocate {what} for {}x{}x{} voxels", dims[0], dims[1], dims[2]));
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(n).map_err(|_| alloc_err("the volume"))?;
    let mut valid: Option<Vec<bool>> = None;
    if !sentinels.is_empty() {
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| alloc_err("the missing-value mask"))?;
        valid = Some(v);
    }
    let per = (SLAB_BYTES / 8 / plane.max(1)).clamp(1, dims[2].max(1));
    let mut buf: Vec<f64> = Vec::new();
    let end = r.origin[2] + r.size[2];
    let mut z = r.origin[2];
    while z < end {
        let k = per.min(end - z);
        buf.clear();
        buf.resize(k * plane, 0.0);
        slab(z, k, &mut buf).map_err(|e| inv(file, format!("reading '{name}' (planes {z}..{}): {e}", z + k)))?;
        match unpack {
            None => data.extend(buf.iter().map(|&v| v as f32)),
            Some((scale, offset)) => data.extend(buf.iter().map(|&v| (v * scale + offset) as f32)),
        }
        if let Some(m) = valid.as_mut() {
            m.extend(buf.iter().map(|&v| v.is_finite() && !sentinels.contains(&v)));
        }
        z += k;
    }
    Ok((data, valid))
}

/// Spacing and origin from per-axis coordinates (x, y, z order), each named;
/// None where an axis has no coordinate variable.
/// Non-uniform coordinates warn and give their mean spacing.
pub(crate) fn placement(what: &str, coords: [Option<(String, Vec<f64>)>; 3], info: &mut VolumeInfo) {
    for (a, c) in coords.into_iter().enumerate() {
        let Some((cname, v)) = c else { continue };
        if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
            continue;
        }
        info.origin[a] = v[0];
        if v.len() < 2 {
            continue;
        }
        let steps: Vec<f64> = v.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = (v[v.len() - 1] - v[0]) / (v.len() - 1) as f64;
        let (lo, hi) = steps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &s| (l.min(s), h.max(s)));
        if mean == 0.0 {
            eprintln!("idlat: warning: {what}: coordinate '{cname}' does not advance; spacing left at 1");
            continue;
        }
        // f32 coordinates (0.1 steps) wobble in the 7th digit.
        if hi - lo > 1e-4 * mean.abs() {
            eprintln!("idlat: warning: {what}: coordinate '{cname}' is not uniformly spaced (steps {lo:.6e} to {hi:.6e}); using its mean spacing {mean:.6e}");
        }
        info.spacing[a] = mean;
    }
}

/// Spacing/origin from `spacing`/`origin` attributes (x, y, z order, as idlat
/// writes them; one value means all three axes).
pub(crate) fn placement_attr(what: &str, key: &str, v: Option<Vec<f64>>, out: &mut [f64; 3]) {
    let Some(v) = v else { return };
    let ok = v.iter().all(|x| x.is_finite()) && (key != "spacing" || v.iter().all(|&x| x != 0.0));
    match v.as_slice() {
        [s] if ok => *out = [*s; 3],
        [x, y, z] if ok => *out = [*x, *y, *z],
        _ => eprintln!("idlat: warning: {what}: attribute '{key}' {v:?} is not 1 or 3 finite numbers{}; ignored", if key == "spacing" { " (non-zero)" } else { "" }),
    }
}

/// The idlat dtype recording a file type: 64-bit integers as f64 (the
/// nearest type a container records; their values are converted anyway).
pub(crate) fn dtype_of(float: bool, signed: bool, size: usize) -> Option<DType> {
    Some(match (float, signed, size) {
        (true, _, 4) => DType::F32,
        (true, _, 8) => DType::F64,
        (false, true, 1) => DType::I8,
        (false, false, 1) => DType::U8,
        (false, true, 2) => DType::I16,
        (false, false, 2) => DType::U16,
        (false, true, 4) => DType::I32,
        (false, false, 4) => DType::U32,
        (false, _, 8) => DType::F64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_globs_split_where_they_should() {
        assert_eq!(split_step("temp[12]"), Some(("temp", 12)));
        assert_eq!(split_step("/g/d[0]"), Some(("/g/d", 0)));
        assert_eq!(split_step("temp[]"), None);
        assert_eq!(split_step("temp[x]"), None);
        assert_eq!(split_step("temp"), None);
        assert_eq!(split_glob("run*.h5:/g/d"), Some(("run*.h5", "/g/d")));
        assert_eq!(split_glob("run*.nc:a:b"), Some(("run*.nc", "a:b")));
        assert_eq!(split_glob("run*.raw:x"), None);
        assert_eq!(split_glob("plain.h5:/d"), None);
    }

    #[test]
    fn plain_paths_with_colons_are_not_split() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a:b.raw");
        std::fs::write(&p, [0u8; 8]).unwrap();
        assert_eq!(SciRef::parse(&p), None);
        let h = d.path().join("x:y.h5");
        std::fs::write(&h, b"not really").unwrap();
        let r = SciRef::parse(&PathBuf::from(format!("{}:/g/d:e", h.display()))).unwrap();
        assert_eq!((r.file, r.kind, r.name.as_deref()), (h.clone(), Kind::Hdf5, Some("/g/d:e")));
        assert_eq!(SciRef::parse(&h).unwrap().name, None);
        // A signature makes an unknown extension HDF5.
        let s = d.path().join("sig.bin");
        std::fs::write(&s, [&H5_MAGIC[..], &[0u8; 64]].concat()).unwrap();
        assert_eq!(detect(&s), Some(Kind::Hdf5));
        assert_eq!(detect(&p), None);
    }

    #[test]
    fn names_carry_file_dataset_and_step() {
        let r = |n: Option<&str>| SciRef { file: "/d/sim.h5".into(), kind: Kind::Hdf5, name: n.map(str::to_string) };
        assert_eq!(volume_stem(&r(Some("/fields/density"))), "sim_fields_density");
        assert_eq!(volume_stem(&r(Some("temp[2]"))), "sim_temp_t2");
        assert_eq!(volume_stem(&r(None)), "sim");
    }

    #[test]
    fn absurd_declared_sizes_are_refused_before_allocating() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tiny.h5");
        std::fs::write(&f, [0u8; 1000]).unwrap();
        assert!(check_size(&f, "x", [64, 64, 64]).is_ok());
        let e = check_size(&f, "x", [4096, 4096, 4096]).unwrap_err().to_string();
        assert!(e.contains("implausible"), "{e}");
        let e = check_size(&f, "x", [1 << 20, 1 << 20, 1 << 20]).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }
}
