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
