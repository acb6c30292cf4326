//! The `.idl` container (spec/FORMAT.md is the authority). No libtorch here.
//!
//! Layout: header (32 bytes) · block payloads · [model section] · metadata ·
//! index · trailer (88 bytes). The writer streams payloads and writes the
//! sections last; the reader finds them through the fixed-size trailer and
//! looks up any block in O(1) (index entry = first + block id).

pub mod block;
pub mod error;
pub mod grid;
pub mod layout;
pub mod meta;
pub mod reader;
pub mod version;
pub mod writer;

pub use block::{BlockKind, NeuralPayload, StreamTable};
pub use error::FormatError;
pub use grid::BlockGrid;
pub use meta::{ContainerMeta, ModelRef, Normalisation, VolumeMeta};
pub use reader::{BlockRef, Container};
pub use version::Feature;
pub use writer::{ContainerWriter, FinishStats};

/// Index of a volume in a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(pub u32);

/// Index of a block in its volume's grid (x fastest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u64);
