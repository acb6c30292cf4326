//! idlat: importance-driven learned compression of 3D scientific volumes.
//!
//! Layers (dependencies point one way, see ARCHITECTURE.md):
//! `cli` → `fs` (FUSE view) → `reader` (the read API: `Container::open`,
//! `volume`, `read_region`; lazy block decode through an LRU cache) → `codec`
//! (pure-Rust entropy coding, tch models) → `format` (the `.idl` container, no libtorch).
//! `importance`, `sample` and `io` are leaf utilities used by `cli` (`codec` uses none of them).
//! `pack` is packing as a library (`idlat pack` is a thin layer over it), above `codec` and `format`.

pub mod analysis;
pub mod choice;
pub mod cli;
pub mod codec;
pub mod dist;
pub mod format;
pub mod fs;
pub mod hugepages;
pub mod importance;
pub mod io;
pub mod metrics;
pub mod pack;
pub mod reader;
pub mod sample;
pub mod volume;

pub use reader::Container;
