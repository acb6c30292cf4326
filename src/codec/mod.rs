//! The IDLat codec.
