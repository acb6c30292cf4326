//! The FUSE view of a container.
