//! Container metadata (spec/FORMAT.md §4): zstd-compressed UTF-8 JSON.

use crate::volume::VolumeInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Value normalisation: x_n = (x - offset) * scale; the codecs work on x_n
/// (the neural model's working range is [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub offset: f64,
    pub scale: f64,
}

impl Normalisation {
    /// Min-max normalisation; a constant volume gets scale 1.
    pub fn from_range(lo: f32, hi: f32) -> Normalisation {
        let span = hi as f64 - lo as f64;
        Normalisation { offset: lo as f64, scale: if span > 0.0 && span.is_finite() { 1.0 / span } else { 1.0 } }
    }

    #[inline]
    pub fn forward(&self, x: f32) -> f32 {
        ((x as f64 - self.offset) * self.scale) as f32
    }

    #[inline]
    pub fn inverse(&self, x: f32) -> f32 {
        (x as f64 / self.scale + self.offset) as f32
    }
}

/// Identity of the model that coded the neural blocks.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelRef {
    /// SHA-256 (lower-case hex) of the model file bytes; empty when no block is neural.
    pub hash: String,
    /// Profile name (e.g. "fast"), informational.
    pub profile: String,
    /// True when the model file is stored in the container's model section.
    pub embedded: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeMeta {
    #[serde(with = "info_record")]
    pub info: VolumeInfo,
    /// (min, max) of the original finite values.
    pub value_range: (f32, f32),
    pub norm: Normalisation,
    /// Block core size per axis.
    pub block: [usize; 3],
    /// Voxel halo the analysis saw (informational).
    pub halo: usize,
    /// Importance spec used at pack time (provenance only; decoding never needs it).
    #[serde(default)]
    pub importance: Option<String>,
    /// Time value of this volume in a series.
    #[serde(default)]
    pub time: Option<f64>,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Codec-specific extras (e.g. the importance scale chosen by rate control).
    #[serde(default)]
    pub codec: BTreeMap<String, serde_json::Value>,
    /// First entry of this volume's blocks in the index.
    pub index_first: u64,
    /// Number of blocks (must equal the grid's block count).
    pub block_count: u64,
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub volumes: Vec<VolumeMeta>,
    pub model: ModelRef,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Writer identification, e.g. "idlat 0.1.0".
    #[serde(default)]
    pub writer: String,
}

/// The on-disk form of a volume's placement (spec §4, `info`). The in-memory
/// `VolumeInfo` has no serde of its own: the file format is this record, and
/// a field added to `VolumeInfo` fails to compile here until the spec says
/// how it is stored.
mod info_record {
    use crate::volume::{DType, Endian, VolumeInfo};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    // Unknown fields are ignored, as readers of a later minor version's files must.
    #[derive(Serialize, Deserialize)]
    struct Record {
        name: String,
        dims: [usize; 3],
        spacing: [f64; 3],
        origin: [f64; 3],
        /// f32 f64 u8 i8 u16 i16 u32 i32
        dtype: String,
        /// little or big
        endian: String,
        missing: Option<f64>,
    }

    pub fn serialize<S: Serializer>(info: &VolumeInfo, s: S) -> Result<S::Ok, S::Error> {
        let VolumeInfo { name, dims, spacing, origin, dtype, endian, missing } = info.clone();
        let endian = match endian {
            Endian::Little => "little",
            Endian::Big => "big",
        };
        Record { name, dims, spacing, origin, dtype: dtype.name().into(), endian: endian.into(), missing }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VolumeInfo, D::Error> {
        use serde::de::Error;
        let Record { name, dims, spacing, origin, dtype, endian, missing } = Record::deserialize(d)?;
        // Exact names only: the readers' aliases (float, uint8, le, ...) are not the format.
        let dtype = DType::ALL.into_iter().find(|t| t.name() == dtype).ok_or_else(|| D::Error::custom(format!("unknown dtype {dtype:?} (expected f32 f64 u8 i8 u16 i16 u32 i32)")))?;
        let endian = match endian.as_str() {
            "little" => Endian::Little,
            "big" => Endian::Big,
            _ => return Err(D::Error::custom(format!("unknown endian {endian:?} (expected little or big)"))),
        };
        Ok(VolumeInfo { name, dims, spacing, origin, dtype, endian, missing })
    }
}

/// The volume name rule (spec §4): 1..=`MAX_NAME_LEN` bytes of `[A-Za-z0-9._-]`,
/// no leading dot (so never `.`, `..` or the mount's `.idlat-stats`). Names
/// become file names (`unpack`, the mount), so this is what keeps a crafted
/// container from writing outside its output directory.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    use super::layout::MAX_NAME_LEN;
    let why = if name.is_empty() {
        "is empty".to_string()
    } else if name.len() > MAX_NAME_LEN {
        format!("is {} bytes long (at most {MAX_NAME_LEN})", name.len())
    } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
        format!("contains {c:?} (only A-Z a-z 0-9 . _ - are allowed)")
    } else if name.starts_with('.') {
        "starts with a dot".to_string()
    } else {
        return Ok(());
    };
    // Debug formatting escapes control characters in a hostile name.
    Err(format!("volume name {name:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_name_rule() {
        for ok in ["a", "Pf01", "t_1.5-x", &"n".repeat(super::super::layout::MAX_NAME_LEN)] {
            assert!(check_volume_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../../evil", "/abs/victim", ".idlat-stats", ".hidden", "a/b", "a b", "é", "a\0b", &"n".repeat(super::super::layout::MAX_NAME_LEN + 1)] {
            let e = check_volume_name(bad).unwrap_err();
            assert!(e.starts_with("volume name"), "{bad}: {e}");
        }
    }
}
