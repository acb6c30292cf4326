//! In-memory 3D scalar volumes: the one data model every layer shares.
//!
//! Data are stored as f32 in C order `[z][y][x]` (x fastest), whatever the
//! original type was; the original type and byte order are kept as metadata so
//! `unpack --dtype original` can restore them.

use serde::{Deserialize, Serialize};

/// Element type of a volume as it was on disk before packing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    F32,
    F64,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
}

impl DType {
    pub const ALL: [DType; 8] = [DType::F32, DType::F64, DType::U8, DType::I8, DType::U16, DType::I16, DType::U32, DType::I32];

    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::F32 | DType::U32 | DType::I32 => 4,
            DType::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::U32 => "u32",
            DType::I32 => "i32",
        }
    }

    /// Stable one-byte code used by the container format (spec/FORMAT.md).
    pub fn code(self) -> u8 {
        DType::ALL.iter().position(|d| *d == self).unwrap_or(0) as u8
    }

    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.get(code as usize).copied()
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        let alias = match l.as_str() {
            "float" | "float32" => "f32",
            "double" | "float64" => "f64",
            "uint8" | "uchar" => "u8",
            "int8" | "char" => "i8",
            "uint16" | "ushort" => "u16",
            "int16" | "short" => "i16",
            "uint32" | "uint" => "u32",
            "int32" | "int" => "i32",
            other => other,
        };
        DType::ALL.iter().copied().find(|d| d.name() == alias).ok_or_else(|| format!("unknown dtype '{s}' (expected one of f32 f64 u8 i8 u16 i16 u32 i32)"))
    }
}

/// Byte order of the original file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl std::str::FromStr for Endian {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "little" | "le" => Ok(Endian::Little),
            "big" | "be" => Ok(Endian::Big),
            _ => Err(format!("unknown byte order '{s}' (expected little or big)")),
        }
    }
}

/// Grid dimensions `[nx, ny, nz]`, x fastest.
pub type Dims = [usize; 3];

/// A box of voxels inside a volume: where it starts and its size (x fastest).
/// What a partial read returns and what a map over part of a volume covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub origin: [usize; 3],
    pub size: Dims,
}

impl Region {
    pub fn whole(dims: Dims) -> Region {
        Region { origin: [0; 3], size: dims }
    }

    /// Planes `z` (every x and y) of a volume of `dims`: a slab.
    pub fn planes(dims: Dims, z: std::ops::Range<usize>) -> Region {
        Region { origin: [0, 0, z.start], size: [dims[0], dims[1], z.end.saturating_sub(z.start)] }
    }

    pub fn len(&self) -> usize {
        self.size.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the region lies inside a volume of `dims` (no overflow).
    pub fn within(&self, dims: Dims) -> bool {
        (0..3).all(|a| self.origin[a].checked_add(self.size[a]).is_some_and(|end| end <= dims[a]))
    }

    /// The smallest box holding both.
    pub fn union(self, o: Region) -> Region {
        let lo = [0, 1, 2].map(|a| self.origin[a].min(o.origin[a]));
        Region { origin: lo, size: [0, 1, 2].map(|a| (self.origin[a] + self.size[a]).max(o.origin[a] + o.size[a]) - lo[a]) }
    }

    /// Whether every x and y of a volume of `dims` is in it (a slab of planes).
    pub fn is_slab(&self, dims: Dims) -> bool {
        self.origin[..2] == [0, 0] && self.size[..2] == dims[..2]
    }
}

/// Physical placement and provenance of a volume, re-emitted by mount headers.
/// (Stored in containers through `format::meta`'s own record, not a derive.)
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeInfo {
    pub name: String,
    pub dims: Dims,
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    pub dtype: DType,
    pub endian: Endian,
    /// Value that marked missing voxels in the input (e.g. 1e35 for land in Isabel), if any.
    pub missing: Option<f64>,
}

impl VolumeInfo {
    pub fn new(name: impl Into<String>, dims: Dims) -> Self {
        VolumeInfo { name: name.into(), dims, spacing: [1.0; 3], origin: [0.0; 3], dtype: DType::F32, endian: Endian::Little, missing: None }
    }

    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A volume in memory: metadata plus f32 samples, x fastest.
#[derive(Clone, Debug)]
pub struct Volume {
    pub info: VolumeInfo,
    pub data: Vec<f32>,
}

impl Volume {
    pub fn new(info: VolumeInfo, data: Vec<f32>) -> Self {
        debug_assert_eq!(info.len(), data.len());
        Volume { info, data }
    }

    pub fn dims(&self) -> Dims {
        self.info.dims
    }

    /// Linear index of voxel (x, y, z).
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        let [nx, ny, _] = self.info.dims;
        (z * ny + y) * nx + x
    }

    /// (min, max) over finite samples; (0, 0) for an empty or all-NaN volume.
    pub fn range(&self) -> (f32, f32) {
        value_range(&self.data)
    }
}

/// (min, max) over finite values; (0, 0) when there is none.
pub fn value_range(data: &[f32]) -> (f32, f32) {
    range_of(finite_extent(data, (f32::INFINITY, f32::NEG_INFINITY)))
}

/// `(lo, hi)` widened by the finite values of `data`: parts of a volume (slabs of
/// a rank, of a streaming pack) combine into exactly the whole volume's extent.
pub fn finite_extent(data: &[f32], (mut lo, mut hi): (f32, f32)) -> (f32, f32) {
    for &v in data.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

/// The value range of an extent from `finite_extent`: (0, 0) when it saw no finite value.
pub fn range_of((lo, hi): (f32, f32)) -> (f32, f32) {
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// Parses `128x128x128` (or `128,128,128`) into dims; every extent must be >= 1.
pub fn parse_dims(s: &str) -> Result<Dims, String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',']).collect();
    if parts.len() != 3 {
        return Err(format!("dims '{s}' must be three extents like 128x128x64 (x y z)"));
    }
    let mut d = [0usize; 3];
    for (i, p) in parts.iter().enumerate() {
        d[i] = p.trim().parse::<usize>().map_err(|_| format!("dims '{s}': '{p}' is not a positive integer"))?;
        if d[i] == 0 {
            return Err(format!("dims '{s}': extents must be at least 1"));
        }
    }
    d.iter().try_fold(1usize, |acc, &v| acc.checked_mul(v)).ok_or_else(|| format!("dims '{s}' overflow the address space"))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_parse_and_reject() {
        assert_eq!(parse_dims("128x64x3").unwrap(), [128, 64, 3]);
        assert_eq!(parse_dims("5,6,7").unwrap(), [5, 6, 7]);
        assert!(parse_dims("0x4x4").is_err());
        assert!(parse_dims("4x4").is_err());
        assert!(parse_dims("4xax4").is_err());
    }

    #[test]
    fn dtype_codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()), Some(d));
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert!("f16".parse::<DType>().is_err());
    }
}
