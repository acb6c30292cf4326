//! Readers and writers for the volume formats scientists have.
//!
//! Inputs (chosen by extension, case-insensitive; `.gz` is stripped first for
//! raw and .npy): `.npy`, `.mhd`/`.mha`, `.nrrd`/`.nhdr`, `.vti`, HDF5 and
//! NetCDF datasets named `FILE:NAME` (`sci`; also found by signature); anything
//! else is a raw brick that needs `dims` (dtype defaults to f32, byte order to
//! little). Every error names the file and the problem.
//!
//! Missing values (`ReadOptions.missing`, e.g. 1e35 for land in Isabel): a voxel
//! is missing when it equals the sentinel or, for huge sentinels (|v| >= 1e30),
//! when |x| >= 0.999 |v|, or when it is not finite. Missing voxels are filled
//! with the mean of their valid 6-neighbours, iterated (a few diffusion sweeps,
//! then the global valid mean), and reported in the returned mask. Without a
//! sentinel, NaN/±Inf samples follow `ReadOptions.nonfinite`: filled (analysis
//! tools), kept bit-exactly (lossless packing) or refused (lossy packing).
//!
//! Outputs are written atomically (`atomic`): temporaries renamed into place.

pub mod atomic;
pub mod h5;
pub mod headers;
pub mod names;
mod nc;
pub mod npy;
pub mod raw;
pub mod sci;

pub use headers::{mhd_text, nhdr_text, vti_parts};

use crate::volume::{DType, Dims, Endian, Region, Volume, VolumeInfo};
use std::path::{Path, PathBuf};

/// Errors reading or writing volume files; each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    // The OS error is part of the message and deliberately not a `source`:
    // anyhow's `{:#}` prints the chain, which would repeat it.
    #[error("{path}: {err}")]
    Os { path: PathBuf, err: std::io::Error },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{path} exists (use --force to overwrite)")]
    Exists { path: PathBuf },
}

/// A malformed input file, and what is wrong with it.
pub(crate) fn inv(path: &Path, msg: impl Into<String>) -> IoError {
    IoError::Invalid { path: path.to_owned(), msg: msg.into() }
}

/// Wraps an OS error with the file it concerns.
pub fn os_err(path: &Path, source: std::io::Error) -> IoError {
    IoError::Os { path: path.to_owned(), err: source }
}

/// How to interpret inputs that do not describe themselves (raw bricks).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub dims: Option<Dims>,
    pub dtype: Option<DType>,
    pub endian: Option<Endian>,
    pub header_bytes: u64,
    pub missing: Option<f64>,
    /// What to do with NaN/±Inf samples when `missing` is not set.
    pub nonfinite: NonFinite,
}

/// Handling of NaN/±Inf samples in an input read without a missing-value
/// sentinel (with one, they are missing voxels: filled and masked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinite {
    /// Replace them like missing voxels (analysis tools that need finite data).
    #[default]
    Fill,
    /// Keep the exact bits (lossless packing stores them untouched).
    Keep,
    /// Refuse the input with an error naming the count and first position
    /// (lossy packing: the codec cannot represent them, and replacing them
    /// silently would be data loss). Also refuses a value range whose span
    /// overflows f32 (±3e38 data), which the lossy codec cannot represent.
    Refuse,
}

fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Reads any supported input into a volume (f32, x fastest); missing values
/// (see module docs) are filled.
pub fn read_volume(path: &Path, opts: &ReadOptions) -> Result<Volume, IoError> {
    Ok(read_volume_with_mask(path, opts)?.0)
}

/// Like `read_volume`, also returning the valid-voxel mask when `missing` is set.
pub fn read_volume_with_mask(path: &Path, opts: &ReadOptions) -> Result<(Volume, Option<Vec<bool>>), IoError> {
    let name = lower_name(path);
    let gz = name.ends_with(".gz");
    let base = name.trim_end_matches(".gz");
    let ext = base.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let sci = sci::SciRef::parse(path);
    let mut file_mask = None;
    let mut vol = match ext {
        _ if sci.is_some() => {
            let (vol, mask) = sci::read(sci.as_ref().expect("checked"))?;
            file_mask = mask;
            vol
        }
        "npy" if gz => npy::read_npy_gz(path)?,
        "npy" => npy::read_npy(path)?,
        "mhd" | "mha" => headers::read_mhd(path)?,
        "nrrd" | "nhdr" => headers::read_nrrd(path)?,
        "vti" => headers::read_vti(path)?,
        _ => {
            let dims = raw_dims(path, opts)?;
            let dtype = opts.dtype.unwrap_or(DType::F32);
            let endian = opts.endian.unwrap_or(Endian::Little);
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
            let len = n.checked_mul(dtype.size() as u64).ok_or_else(|| IoError::Invalid { path: path.to_owned(), msg: "dims overflow".into() })?;
            let bytes = raw::read_exact_payload(path, opts.header_bytes, len, gz)?;
            let mut info = crate::volume::VolumeInfo::new("", dims);
            info.dtype = dtype;
            info.endian = endian;
            Volume::new(info, raw::decode_samples(&bytes, dtype, endian))
        }
    };
    vol.info.name = names::volume_names(&[path.to_owned()]).pop().unwrap_or_default();
    let mask = match (file_mask, opts.missing) {
        (None, m) => m.map(|m| fill_missing(&mut vol, m)),
        // The file's own missing values (HDF5/NetCDF attributes), and --missing too.
        (Some(mut valid), m) => {
            if let Some(m) = m {
                vol.info.missing = Some(m);
                let rule = sentinel_rule(m);
                valid.iter_mut().zip(&vol.data).for_each(|(ok, &v)| *ok = *ok && !rule(v));
            }
            fill_masked(&mut vol, &valid);
            Some(valid)
        }
    };
    if mask.is_none() {
        if let Some(first) = vol.data.iter().position(|v| !v.is_finite()) {
            match opts.nonfinite {
                NonFinite::Fill => {
                    fill_missing_where(&mut vol, |v| !v.is_finite());
                }
                NonFinite::Keep => {}
                NonFinite::Refuse => {
                    let count = vol.data.iter().filter(|v| !v.is_finite()).count();
                    let [nx, ny, _] = vol.info.dims;
                    let (x, y, z) = (first % nx, (first / nx) % ny, first / (nx * ny));
                    return Err(IoError::Invalid {
                        path: path.to_owned(),
                        msg: format!(
                            "{count} non-finite value{} (NaN or ±Inf), the first ({}) at voxel ({x}, {y}, {z}); lossy packing cannot store them: \
                             pass --missing VALUE to treat them as missing voxels, or --lossless to keep them exactly",
                            if count == 1 { "" } else { "s" },
                            vol.data[first]
                        ),
                    });
                }
            }
        }
    }
    if opts.nonfinite == NonFinite::Refuse {
        let (lo, hi) = vol.range();
        if !(hi - lo).is_finite() {
            // The lossy codec's block statistics are f32: a span past f32::MAX made
            // every block "constant" (50% error) while verify said OK.
            return Err(IoError::Invalid {
                path: path.to_owned(),
                msg: format!("values span {lo:e}..{hi:e}, a range wider than f32 can hold (max {:e}); lossy packing cannot represent it: use --lossless", f32::MAX),
            });
        }
    }
    Ok((vol, mask))
}

/// A raw brick's dims: only the command line knows them.
fn raw_dims(path: &Path, opts: &ReadOptions) -> Result<Dims, IoError> {
    opts.dims.ok_or_else(|| IoError::Invalid { path: path.to_owned(), msg: "raw input needs --dims XxYxZ (and --dtype/--endian if not f32 little-endian)".into() })
}

/// The region `region(dims)` of an input (`dims` the whole volume's), read without
/// the rest (an MPI rank's slab, a streaming pack's tile): the whole volume's info,
/// the region and its samples, exactly as `read_volume` would give them. For raw
/// bricks (offset reads) and HDF5/NetCDF datasets (hyperslabs); `None` where only a
/// whole read gives the same samples: other formats, gzip, and missing or non-finite
/// values (filled from neighbours and the volume's mean).
pub fn read_region(path: &Path, opts: &ReadOptions, region: impl FnOnce(Dims) -> Region) -> Result<Option<(VolumeInfo, Region, Vec<f32>)>, IoError> {
    let name = lower_name(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if opts.missing.is_some() || name.ends_with(".gz") {
        return Ok(None);
    }
    let (mut info, r, data) = if let Some(sr) = sci::SciRef::parse(path) {
        let ((vol, mask), dims, r) = sci::read_region(&sr, region)?;
        if mask.is_some() {
            return Ok(None);
        }
        (VolumeInfo { dims, ..vol.info }, r, vol.data)
    } else if matches!(ext, "npy" | "mhd" | "mha" | "nrrd" | "nhdr" | "vti") {
        return Ok(None);
    } else {
        let dims = raw_dims(path, opts)?;
        let dtype = opts.dtype.unwrap_or(DType::F32);
        let endian = opts.endian.unwrap_or(Endian::Little);
        let r = region(dims);
        let bytes = raw::read_region(path, opts.header_bytes, dims, dtype.size(), r)?;
        let mut info = VolumeInfo::new("", dims);
        info.dtype = dtype;
        info.endian = endian;
        (info, r, raw::decode_samples(&bytes, dtype, endian))
    };
    if opts.nonfinite != NonFinite::Keep && data.iter().any(|v| !v.is_finite()) {
        return Ok(None);
    }
    info.name = names::volume_names(&[path.to_owned()]).pop().unwrap_or_default();
    Ok(Some((info, r, data)))
}

/// Replaces missing voxels (sentinel rule in the module docs); returns the valid mask.
pub fn fill_missing(vol: &mut Volume, sentinel: f64) -> Vec<bool> {
    vol.info.missing = Some(sentinel);
    fill_missing_where(vol, sentinel_rule(sentinel))
}

/// Is a sample missing under `sentinel` (module docs)?
fn sentinel_rule(sentinel: f64) -> impl Fn(f32) -> bool {
    let huge = sentinel.abs() >= 1e30;
    move |v| !v.is_finite() || v as f64 == sentinel || (huge && (v as f64).abs() >= 0.999 * sentinel.abs())
}

fn fill_missing_where(vol: &mut Volume, missing: impl Fn(f32) -> bool) -> Vec<bool> {
    let valid: Vec<bool> = vol.data.iter().map(|&v| !missing(v)).collect();
    fill_masked(vol, &valid);
    valid
}

/// Replaces the voxels `valid` marks false: mean of valid 6-neighbours,
/// iterated, then the global valid mean.
fn fill_masked(vol: &mut Volume, valid: &[bool]) {
    let [nx, ny, nz] = vol.info.dims;
    let count = valid.iter().filter(|&&v| v).count();
    let mean = if count > 0 { (vol.data.iter().zip(valid).filter(|(_, &ok)| ok).map(|(&v, _)| v as f64).sum::<f64>() / count as f64) as f32 } else { 0.0 };
    let mut known = valid.to_vec();
    // Diffusion sweeps: each pass fills voxels that touch known ones.
    for _ in 0..8 {
        let mut changed = false;
        let snapshot = known.clone();
        for i in 0..vol.data.len() {
            if snapshot[i] {
                continue;
            }
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            let mut acc = 0f64;
            let mut n = 0;
            let mut visit = |j: usize| {
                if snapshot[j] {
                    acc += vol.data[j] as f64;
                    n += 1;
                }
            };
            if x > 0 {
                visit(i - 1)
            }
            if x + 1 < nx {
                visit(i + 1)
            }
            if y > 0 {
                visit(i - nx)
            }
            if y + 1 < ny {
                visit(i + nx)
            }
            if z > 0 {
                visit(i - nx * ny)
            }
            if z + 1 < nz {
                visit(i + nx * ny)
            }
            if n > 0 {
                vol.data[i] = (acc / n as f64) as f32;
                known[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (v, k) in vol.data.iter_mut().zip(&known) {
        if !k {
            *v = mean;
        }
    }
}

/// The files `pattern` matches, in natural order; none is an error.
fn glob_sorted(pattern: &str) -> Result<Vec<PathBuf>, IoError> {
    let mut hits: Vec<PathBuf> = glob::glob(pattern).map_err(|e| IoError::Invalid { path: pattern.into(), msg: format!("bad pattern: {e}") })?.filter_map(Result::ok).collect();
    if hits.is_empty() {
        return Err(IoError::Invalid { path: pattern.into(), msg: "pattern matches no file".into() });
    }
    names::natural_sort(&mut hits);
    Ok(hits)
}

/// Expands `*`/`?` patterns; a pattern matching nothing is an error. HDF5 and
/// NetCDF inputs are checked against their files and expanded too (`sci`): a
/// time series to one input per step, `FILE` to its only volume, and
/// `GLOB:NAME` to `FILE:NAME` for each file the glob matches.
pub fn expand_inputs(args: &[String]) -> Result<Vec<PathBuf>, IoError> {
    let mut out = Vec::new();
    let push_sci = |out: &mut Vec<PathBuf>, p: PathBuf| -> Result<(), IoError> {
        match sci::SciRef::parse(&p) {
            Some(r) => out.extend(sci::expand(&r)?),
            None => out.push(p),
        }
        Ok(())
    };
    for a in args {
        if let Some(r) = sci::SciRef::parse(Path::new(a)) {
            out.extend(sci::expand(&r)?);
        } else if let Some((pattern, name)) = sci::split_glob(a) {
            for h in glob_sorted(pattern)? {
                let with_name = if name.is_empty() { h } else { PathBuf::from(format!("{}:{name}", h.display())) };
                push_sci(&mut out, with_name)?;
            }
        } else if a.contains(['*', '?', '[']) {
            for h in glob_sorted(a)? {
                push_sci(&mut out, h)?;
            }
        } else {
            out.push(PathBuf::from(a));
        }
    }
    Ok(out)
}

/// The data file a MetaImage or detached NRRD header names (resolved beside
/// the header); None for other files, inline data, LIST or a pattern.
pub fn header_data_file(path: &Path) -> Option<PathBuf> {
    let name = lower_name(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    let key = match ext {
        "mhd" => "ElementDataFile",
        "nhdr" | "nrrd" => "data file",
        _ => return None,
    };
    // Headers are short; their data may follow them (.mha, attached NRRD): read the start only.
    let mut head = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(path).ok()?, 64 << 10), &mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once(if ext == "mhd" { '=' } else { ':' })?;
        let k = k.trim();
        (k == key || (ext != "mhd" && k == "datafile")).then(|| v.trim().to_string())
    })?;
    if value.is_empty() || value == "LOCAL" || value.eq_ignore_ascii_case("LIST") || value.contains('%') || value.contains(' ') {
        return None;
    }
    Some(path.parent().unwrap_or(Path::new(".")).join(value))
}

/// Drops inputs that are the data file of a header also in the list (`pack t*`
/// over `idlat sample` output matches both `t1.raw` and `t1.mhd`: packing both
/// stored every volume twice). Returns the kept inputs and (skipped, header) pairs.
pub fn skip_header_data_files(paths: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<(PathBuf, PathBuf)>) {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let referenced: Vec<(PathBuf, PathBuf)> = paths.iter().filter_map(|h| header_data_file(h).map(|d| (canon(&d), h.clone()))).collect();
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let c = canon(&p);
        match referenced.iter().find(|(d, h)| *d == c && canon(h) != c) {
            Some((_, h)) => skipped.push((p, h.clone())),
            None => kept.push(p),
        }
    }
    (kept, skipped)
}

/// The (data, header) pair `write_raw_mhd` writes for `path`: the data goes to
/// `path` and the header beside it with extension `.mhd`, except when `path`
/// itself names the header (`NAME.mhd`): then the data goes to `NAME.raw`, since
/// writing both to one file would leave only a header pointing at itself.
pub fn raw_mhd_paths(path: &Path) -> (PathBuf, PathBuf) {
    let is_header = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mhd"));
    let data = if is_header { path.with_extension("raw") } else { path.to_owned() };
    let header = path.with_extension("mhd");
    (data, header)
}

/// Writes little-endian f32 data (x fastest) and a MetaImage header pointing at
/// it; `raw_mhd_paths` says where. Both are written atomically, together (see
/// `atomic`): an error leaves neither. Returns the header path.
pub fn write_raw_mhd(path: &Path, vol: &Volume) -> Result<PathBuf, IoError> {
    let (data, mhd) = raw_mhd_paths(path);
    for p in [&data, &mhd] {
        // Callers decided about overwriting; special files are refused regardless.
        atomic::check_target(p, true)?;
    }
    let file_name = data.file_name().and_then(|n| n.to_str()).unwrap_or("data.raw").to_string();
    let mut staged = atomic::Staged::new();
    staged.write(&data, |w| raw::write_samples(w, &vol.data, DType::F32))?;
    staged.write_bytes(&mhd, mhd_header(vol, &file_name).as_bytes())?;
    staged.commit()?;
    Ok(mhd)
}

/// MetaImage header for little-endian f32 data in `data_file`.
pub fn mhd_header(vol: &Volume, data_file: &str) -> String {
    mhd_text(&vol.info, data_file)
}

/// The files `write_volume` writes for `path`, checked before any work is done:
/// the extension must be known and, unless `force`, none of them may exist; an
/// existing one that is not a regular file is refused even with `force`.
/// Callers with slow work before the write (decoding) call this first.
pub fn check_output(path: &Path, force: bool) -> Result<Vec<PathBuf>, IoError> {
    let targets = output_files(path).ok_or_else(|| inv(path, "unknown output type: use .raw, .mhd, .nhdr, .npy, .vti or .h5"))?;
    for t in &targets {
        atomic::check_target(t, force)?;
    }
    Ok(targets)
}

/// The files `write_volume` writes for `path`, or None when its extension names
/// no format `write_volume` knows.
pub fn output_files(path: &Path) -> Option<Vec<PathBuf>> {
    let ext = lower_name(path).rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_default();
    Some(match ext.as_str() {
        "raw" | "mhd" => vec![path.with_extension("raw"), path.with_extension("mhd")],
        "nhdr" => vec![path.with_extension("raw"), path.to_owned()],
        "npy" | "vti" | "h5" | "hdf5" => vec![path.to_owned()],
        _ => return None,
    })
}

/// Writes a volume, choosing the format by extension: `.raw`/`.mhd` (pair),
/// `.nhdr` (+ `.raw`), `.npy`, `.vti`, `.h5`/`.hdf5` (one dataset, `h5::Writer`).
/// `dtype` restores an original type for `.raw` (with a matching `.mhd`) and
/// HDF5; the other formats store f32. Atomic: all of its files appear
/// together, or none.
pub fn write_volume(path: &Path, vol: &Volume, dtype: Option<DType>, force: bool) -> Result<Vec<PathBuf>, IoError> {
    let mut staged = atomic::Staged::new();
    let targets = stage_volume(path, vol, dtype, force, &mut staged)?;
    staged.commit()?;
    Ok(targets)
}

/// Like `write_volume`, into `staged`: nothing appears under the final names
/// until the caller commits, so several volumes can be written all or nothing.
/// The header of a detached-header output naming its data file `raw_name`:
/// MetaImage for `raw`/`mhd` (element type `dt`), NRRD for `nhdr` (f32).
pub fn detached_header(ext: &str, info: &VolumeInfo, raw_name: &str, dt: DType) -> String {
    if ext == "nhdr" {
        return nhdr_text(info, raw_name);
    }
    let et = match dt {
        DType::F32 => "MET_FLOAT",
        DType::F64 => "MET_DOUBLE",
        DType::U8 => "MET_UCHAR",
        DType::I8 => "MET_CHAR",
        DType::U16 => "MET_USHORT",
        DType::I16 => "MET_SHORT",
        DType::U32 => "MET_UINT",
        DType::I32 => "MET_INT",
    };
    mhd_text(info, raw_name).replace("MET_FLOAT", et)
}

pub fn stage_volume(path: &Path, vol: &Volume, dtype: Option<DType>, force: bool, staged: &mut atomic::Staged) -> Result<Vec<PathBuf>, IoError> {
    let ext = lower_name(path).rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_default();
    let targets = check_output(path, force)?;
    let raw_name = path.with_extension("raw").file_name().and_then(|n| n.to_str()).unwrap_or("data.raw").to_string();
    match ext.as_str() {
        "raw" | "mhd" | "nhdr" => {
            let dt = if ext == "nhdr" { DType::F32 } else { dtype.unwrap_or(DType::F32) };
            staged.write(&targets[0], |w| raw::write_samples(w, &vol.data, dt))?;
            staged.write_bytes(&targets[1], detached_header(&ext, &vol.info, &raw_name, dt).as_bytes())?;
        }
        "npy" => staged.write(path, |w| npy::write_npy_to(w, vol))?,
        "h5" | "hdf5" => {
            let tmp = staged.reserve(path)?;
            let mut w = h5::Writer::create(&tmp)?;
            w.add(vol, dtype)?;
            w.close()?;
        }
        _ => {
            let (pre, post) = vti_parts(&vol.info, if vol.info.name.is_empty() { "data" } else { &vol.info.name });
            staged.write(path, |w| {
                use std::io::Write;
                w.write_all(pre.as_bytes())?;
                w.write_all(&(4 * vol.data.len() as u64).to_le_bytes())?;
                raw::write_samples(w, &vol.data, DType::F32)?;
                w.write_all(post.as_bytes())
            })?;
        }
    }
    Ok(targets)
}
