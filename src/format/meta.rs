//! Container metadata (spec/FORMAT.md §4): zstd-compressed UTF-8 JSON.

use crate::volume::VolumeInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Value normalisation: x_n = (x - offset) * scale; the codec works on x_n.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub offset: f64,
    pub scale: f64,
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
