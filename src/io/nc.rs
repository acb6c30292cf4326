//! NetCDF (classic and NetCDF-4) through the netcdf crate (Debian's
//! libnetcdf): listing, hyperslab reads, coordinates. Variables of the root
//! group only. Callers hold `sci::lock()`; see `sci` for the rules.

use super::sci::{self, Entry};
use super::{inv, IoError};
use crate::volume::{DType, VolumeInfo};
use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::AttributeValue;
use std::path::Path;

fn open(path: &Path) -> Result<netcdf::File, IoError> {
    netcdf::open(path).map_err(|e| inv(path, format!("cannot open as NetCDF (not a NetCDF file, or corrupt): {e}")))
}

/// The idlat dtype of a variable's type, or what the type is in words.
fn element(t: &NcVariableType) -> (String, Result<DType, String>) {
    let (float, signed, size, text) = match t {
        NcVariableType::Int(i) => match i {
            IntType::U8 => (false, false, 1, "u8"),
            IntType::I8 => (false, true, 1, "i8"),
            IntType::U16 => (false, false, 2, "u16"),
            IntType::I16 => (false, true, 2, "i16"),
            IntType::U32 => (false, false, 4, "u32"),
            IntType::I32 => (false, true, 4, "i32"),
            IntType::U64 => (false, false, 8, "u64"),
            IntType::I64 => (false, true, 8, "i64"),
        },
        NcVariableType::Float(FloatType::F32) => (true, true, 4, "f32"),
        NcVariableType::Float(FloatType::F64) => (true, true, 8, "f64"),
        other => {
            let word = match other {
                NcVariableType::Char | NcVariableType::String => "string",
                NcVariableType::Compound(_) => "compound",
                NcVariableType::Opaque(_) => "opaque",
                NcVariableType::Enum(_) => "enum",
                _ => "variable-length",
            };
            return (word.into(), Err(format!("of {word} type, not numbers")));
        }
    };
    (text.into(), sci::dtype_of(float, signed, size).ok_or(format!("of type {text}")))
}

/// Numeric attribute values as f64 (at most 64 of them); None when absent or not numeric.
fn attr_f64(v: &netcdf::Variable, name: &str) -> Option<Vec<f64>> {
    let vals = match v.attribute_value(name)?.ok()? {
        AttributeValue::Uchars(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Schars(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Ushorts(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Shorts(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Uints(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Ints(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Ulonglongs(x) => x.into_iter().map(|x| x as f64).collect(),
        AttributeValue::Longlongs(x) => x.into_iter().map(|x| x as f64).collect(),
        AttributeValue::Floats(x) => x.into_iter().map(f64::from).collect(),
        AttributeValue::Doubles(x) => x,
        AttributeValue::Str(_) | AttributeValue::Strs(_) => return None,
        one => vec![f64::try_from(one).ok()?],
    };
    Some(vals).filter(|v: &Vec<f64>| v.len() <= 64)
}

fn attr_str(v: &netcdf::Variable, name: &str) -> Option<String> {
    match v.attribute_value(name)?.ok()? {
        AttributeValue::Str(s) => Some(s),
        _ => None,
    }
}

/// Is the dimension a time axis: unlimited, named `time`/`t`, or with a
/// coordinate variable marked `axis = "T"`?
fn is_time(f: &netcdf::File, d: &netcdf::Dimension) -> bool {
    let name = d.name();
    d.is_unlimited() || ["time", "t"].contains(&name.to_ascii_lowercase().as_str()) || f.variable(&name).and_then(|c| attr_str(&c, "axis")).is_some_and(|a| a.eq_ignore_ascii_case("T"))
}

pub(super) fn list(path: &Path) -> Result<Vec<Entry>, IoError> {
    let f = open(path)?;
    let mut out = Vec::new();
    for v in f.variables().take(sci::MAX_ENTRIES) {
        let dims = v.dimensions();
        let shape: Vec<usize> = dims.iter().map(|d| d.len()).collect();
        let dim_names: Vec<String> = dims.iter().map(|d| d.name()).collect();
        let (dtype, elem) = element(&v.vartype());
        let time_first = dims.first().is_some_and(|d| is_time(&f, d));
        let shape_kind = elem.and_then(|_| sci::classify(&shape, time_first, &format!("'{}' is neither unlimited nor named time", dim_names.first().map_or("", |s| s))));
        out.push(Entry { name: v.name(), shape, dim_names, dtype, shape_kind });
    }
    Ok(out)
}

pub(super) fn read(path: &Path, e: &Entry, step: Option<usize>, region: Option<crate::volume::Region>) -> Result<sci::Read, IoError> {
    let f = open(path)?;
    let v = f.variable(&e.name).ok_or_else(|| inv(path, format!("no variable '{}'", e.name)))?;
    let (_, dtype) = element(&v.vartype());
    let mut dtype = dtype.map_err(|why| inv(path, format!("'{}' cannot be read as a volume: it is {why}", e.name)))?;
    let dims = e.dims().ok_or_else(|| inv(path, format!("'{}' is not a volume", e.name)))?;
    let sentinels = sci::sentinels(|k| attr_f64(&v, k));
    // CF packing: stored integers stand for value * scale_factor + add_offset,
    // in the type of those attributes.
    let scale = attr_f64(&v, "scale_factor").and_then(|s| s.first().copied());
    let offset = attr_f64(&v, "add_offset").and_then(|s| s.first().copied());
    let unpack = (scale.is_some() || offset.is_some()).then(|| (scale.unwrap_or(1.0), offset.unwrap_or(0.0)));
    if unpack.is_some() {
        let wide = ["scale_factor", "add_offset"].iter().any(|k| matches!(v.attribute_value(k), Some(Ok(AttributeValue::Double(_) | AttributeValue::Doubles(_)))));
        dtype = if wide { DType::F64 } else { DType::F32 };
    }
    let nd = e.shape.len();
    let r = region.unwrap_or(crate::volume::Region::whole(dims));
    let read = sci::read_slabs(path, &e.name, dims, r, &sentinels, unpack, |z, k, buf| {
        let mut start = vec![0usize; nd];
        let mut count = e.shape.clone();
        if let Some(t) = step {
            start[0] = t;
            count[0] = 1;
        }
        start[nd - 3] = z;
        count[nd - 3] = k;
        (start[nd - 2], count[nd - 2]) = (r.origin[1], r.size[1]);
        (start[nd - 1], count[nd - 1]) = (r.origin[0], r.size[0]);
        v.get_values_into::<f64, _>(buf, (&start[..], &count[..])).map_err(|e| e.to_string())
    })?;
    let mut info = VolumeInfo::new("", r.size);
    info.dtype = dtype;
    let what = format!("{}:{}", path.display(), e.name);
    // Coordinate variables: 1-D, named as their dimension.
    let vdims = v.dimensions();
    let coords = [1, 2, 3].map(|back| {
        let d = &vdims[nd - back];
        let name = d.name();
        let c = f.variable(&name)?;
        let cd = c.dimensions();
        if cd.len() != 1 || cd[0].name() != name || element(&c.vartype()).1.is_err() || cd[0].len() != d.len() {
            return None;
        }
        c.get_values::<f64, _>(..).ok().map(|vals| (name, vals))
    });
    sci::placement(&what, coords, &mut info);
    Ok(sci::finish(&what, info, read, &sentinels, |k| attr_f64(&v, k)))
}
