//! Importance maps: per-voxel weights in [0, 1] that steer where bits go.
