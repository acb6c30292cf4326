//! Deterministic synthetic stand-ins for the paper's datasets.
