//! Integration tests: one binary, one module per area (tests/it/).

mod it {
    pub mod analysis;
    pub mod bench;
    pub mod cli;
    pub mod common;
    pub mod format;
    pub mod hostile;
    pub mod io;
    pub mod lean;
    pub mod mount;
    pub mod mpi;
    pub mod pack_api;
    pub mod reader;
    pub mod roundtrip;
    pub mod sci;
    pub mod stream;
    pub mod vectors;
    pub mod wavelet;
}
