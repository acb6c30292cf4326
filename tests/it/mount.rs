//! Real FUSE mounts (filled below).
