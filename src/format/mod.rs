//! The `.idl` container (spec/FORMAT.md). No libtorch here.
