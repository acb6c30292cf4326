//! HDF5 through hdf5-metno (Debian's libhdf5): listing, hyperslab reads and
//! `unpack` output. Callers hold `sci::lock()`; see `sci` for the rules.

use super::sci::{self, Entry};
use super::{inv, IoError};
use crate::volume::{DType, Volume, VolumeInfo};
use hdf5::types::{TypeDescriptor, VarLenUnicode};
use std::path::Path;

/// Deepest group nesting a listing follows (hard links can make cycles).
const MAX_DEPTH: usize = 32;

fn open(path: &Path) -> Result<hdf5::File, IoError> {
    // hdf5-metno turns the library's stderr error stacks off when it initialises.
    hdf5::File::open(path).map_err(|e| inv(path, format!("cannot open as HDF5 (not an HDF5 file, or corrupt): {e}")))
}

/// The idlat dtype of a dataset's element type, or what the type is in words.
fn element(ds: &hdf5::Dataset) -> (String, Result<DType, String>) {
    let desc = match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(d) => d,
        Err(e) => return ("unknown".into(), Err(format!("of a type idlat cannot read ({e})"))),
    };
    let numeric = |float, signed, size: usize, word: &str| {
        let text = format!("{word}{}", size * 8);
        (text.clone(), sci::dtype_of(float, signed, size).ok_or(format!("of type {text}")))
    };
    match desc {
        TypeDescriptor::Integer(s) => numeric(false, true, s as usize, "i"),
        TypeDescriptor::Unsigned(s) => numeric(false, false, s as usize, "u"),
        TypeDescriptor::Float(s) => numeric(true, true, s as usize, "f"),
        other => {
            let word = match other {
                TypeDescriptor::Boolean => "boolean",
                TypeDescriptor::Enum(_) => "enum",
                TypeDescriptor::Compound(_) => "compound",
                TypeDescriptor::FixedArray(..) | TypeDescriptor::VarLenArray(_) => "array",
                TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_) | TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => "string",
                _ => "reference",
            };
            (word.into(), Err(format!("of {word} type, not numbers")))
        }
    }
}

fn entry(ds: &hdf5::Dataset) -> Entry {
    let shape = ds.shape();
    let (dtype, elem) = element(ds);
    let unlimited = ds.space().map(|s| s.maxdims().first().is_some_and(|d| d.is_none())).unwrap_or(false);
    let shape_kind = elem.and_then(|_| sci::classify(&shape, unlimited, "HDF5 marks a time axis by making it unlimited"));
    Entry { name: ds.name(), shape, dim_names: Vec::new(), dtype, shape_kind }
}

pub(super) fn list(path: &Path) -> Result<Vec<Entry>, IoError> {
    let f = open(path)?;
    let mut out = Vec::new();
    walk(path, &f, 0, &mut out)?;
    Ok(out)
}

fn walk(path: &Path, g: &hdf5::Group, depth: usize, out: &mut Vec<Entry>) -> Result<(), IoError> {
    let err = |e: hdf5::Error| inv(path, format!("reading group {}: {e}", g.name()));
    for ds in g.datasets().map_err(err)? {
        if out.len() >= sci::MAX_ENTRIES {
            return Ok(());
        }
        out.push(entry(&ds));
    }
    if depth < MAX_DEPTH {
        for sub in g.groups().map_err(err)? {
            walk(path, &sub, depth + 1, out)?;
        }
    }
    Ok(())
}

/// A numeric attribute as f64 values; None when absent or not numeric.
fn attr_f64(ds: &hdf5::Dataset, name: &str) -> Option<Vec<f64>> {
    let a = ds.attr(name).ok()?;
    if a.size() > 64 {
        return None;
    }
    a.read_raw::<f64>().ok()
}

pub(super) fn read(path: &Path, e: &Entry, step: Option<usize>, region: Option<crate::volume::Region>) -> Result<sci::Read, IoError> {
    let f = open(path)?;
    let ds = f.dataset(&e.name).map_err(|err| inv(path, format!("opening dataset '{}': {err}", e.name)))?;
    let (_, dtype) = element(&ds);
    let dtype = dtype.map_err(|why| inv(path, format!("'{}' cannot be read as a volume: it is {why}", e.name)))?;
    let dims = e.dims().ok_or_else(|| inv(path, format!("'{}' is not a volume", e.name)))?;
    let sentinels = sci::sentinels(|k| attr_f64(&ds, k));
    let r = region.unwrap_or(crate::volume::Region::whole(dims));
    let (ys, xs) = (r.origin[1]..r.origin[1] + r.size[1], r.origin[0]..r.origin[0] + r.size[0]);
    let read = sci::read_slabs(path, &e.name, dims, r, &sentinels, None, |z, k, buf| {
        let arr: hdf5::Result<ndarray::ArrayD<f64>> = match (step, e.shape.len()) {
            (Some(t), 4) => ds.read_slice((t, z..z + k, ys.clone(), xs.clone())),
            _ => ds.read_slice((z..z + k, ys.clone(), xs.clone())),
        };
        let arr = arr.map_err(|e| e.to_string())?;
        let s = arr.as_slice().ok_or("the library returned a non-contiguous slab")?;
        if s.len() != buf.len() {
            return Err(format!("{} values for a slab of {}", s.len(), buf.len()));
        }
        buf.copy_from_slice(s);
        Ok(())
    })?;
    let mut info = VolumeInfo::new("", r.size);
    info.dtype = dtype;
    Ok(sci::finish(&format!("{}:{}", path.display(), e.name), info, read, &sentinels, |k| attr_f64(&ds, k)))
}

/// An HDF5 file being written by `unpack`: one dataset per volume, named by
/// the volume, shape (nz, ny, nx), with attributes `dims`, `spacing` and
/// `origin` (x, y, z order), `original_dtype` and, if any, `missing_value`.
pub struct Writer {
    file: Option<hdf5::File>,
    path: std::path::PathBuf,
}

impl Writer {
    /// Creates (truncates) `path`: callers pass a temporary (`atomic`).
    pub fn create(path: &Path) -> Result<Writer, IoError> {
        let _g = sci::lock();
        let file = hdf5::File::create(path).map_err(|e| inv(path, format!("creating HDF5 file: {e}")))?;
        Ok(Writer { file: Some(file), path: path.to_owned() })
    }

    /// Adds `vol` as dataset `/NAME`, stored as `dtype` (default f32; integers
    /// rounded and clamped as raw output does).
    pub fn add(&mut self, vol: &Volume, dtype: Option<DType>) -> Result<(), IoError> {
        let _g = sci::lock();
        let file = self.file.as_ref().ok_or_else(|| inv(&self.path, "already closed"))?;
        let name = if vol.info.name.is_empty() { "data" } else { &vol.info.name };
        let err = |e: hdf5::Error| inv(&self.path, format!("writing dataset '{name}': {e}"));
        let [nx, ny, nz] = vol.info.dims;
        let r = |lo: f64, hi: f64| vol.data.iter().map(move |&x| super::raw::to_int(x, lo, hi));
        let ds = match dtype.unwrap_or(DType::F32) {
            DType::F32 => put(file, name, [nz, ny, nx], &vol.data),
            DType::F64 => put(file, name, [nz, ny, nx], &vol.data.iter().map(|&x| x as f64).collect::<Vec<_>>()),
            DType::U8 => put(file, name, [nz, ny, nx], &r(0.0, 255.0).map(|v| v as u8).collect::<Vec<_>>()),
            DType::I8 => put(file, name, [nz, ny, nx], &r(-128.0, 127.0).map(|v| v as i8).collect::<Vec<_>>()),
            DType::U16 => put(file, name, [nz, ny, nx], &r(0.0, 65535.0).map(|v| v as u16).collect::<Vec<_>>()),
            DType::I16 => put(file, name, [nz, ny, nx], &r(-32768.0, 32767.0).map(|v| v as i16).collect::<Vec<_>>()),
            DType::U32 => put(file, name, [nz, ny, nx], &r(0.0, u32::MAX as f64).map(|v| v as u32).collect::<Vec<_>>()),
            DType::I32 => put(file, name, [nz, ny, nx], &r(i32::MIN as f64, i32::MAX as f64).map(|v| v as i32).collect::<Vec<_>>()),
        }
        .map_err(err)?;
        let dims = [nx as u64, ny as u64, nz as u64];
        ds.new_attr_builder().with_data(&dims[..]).create("dims").map_err(err)?;
        ds.new_attr_builder().with_data(&vol.info.spacing[..]).create("spacing").map_err(err)?;
        ds.new_attr_builder().with_data(&vol.info.origin[..]).create("origin").map_err(err)?;
        let dt: VarLenUnicode = vol.info.dtype.name().parse().map_err(|e| inv(&self.path, format!("{e}")))?;
        ds.new_attr::<VarLenUnicode>().create("original_dtype").and_then(|a| a.write_scalar(&dt)).map_err(err)?;
        if let Some(m) = vol.info.missing {
            ds.new_attr::<f64>().create("missing_value").and_then(|a| a.write_scalar(&m)).map_err(err)?;
        }
        Ok(())
    }

    /// Closes the file, flushing it (the caller syncs and renames it).
    pub fn close(mut self) -> Result<(), IoError> {
        let _g = sci::lock();
        if let Some(f) = self.file.take() {
            f.flush().map_err(|e| inv(&self.path, format!("flushing HDF5 file: {e}")))?;
            f.close().map_err(|e| inv(&self.path, format!("closing HDF5 file: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _g = sci::lock();
            drop(f);
        }
    }
}

fn put<T: hdf5::H5Type>(file: &hdf5::File, name: &str, shape: [usize; 3], data: &[T]) -> hdf5::Result<hdf5::Dataset> {
    let ds = file.new_dataset::<T>().shape(shape).create(name)?;
    ds.write_raw(data)?;
    Ok(ds)
}
