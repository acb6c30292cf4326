//! Fixed-size structures (spec/FORMAT.md §2, §3, §5), one file each: `header`,
//! `trailer` (with the sections it locates), `entry` (a block's index entry);
//! here the constants and limits they share.

mod entry;
mod header;
mod trailer;

pub use entry::Entry;
pub use header::{header_bytes, parse_header};
pub use trailer::{Section, Trailer};

pub const MAGIC: [u8; 8] = *b"IDLAT\0\r\n";
pub const TRAILER_MAGIC: [u8; 8] = *b"IDLTRAIL";
pub const MAJOR: u16 = 1;
/// Newest minor this build reads and writes. A writer stamps the lowest minor
/// whose features the file uses (1.0 files stay byte-identical; spec §9 lists each
/// minor's feature, `version.rs` how a block reports the one it uses).
pub const MINOR: u16 = 7;
pub const HEADER_LEN: u64 = 32;
pub const TRAILER_LEN: u64 = 88;
pub const ENTRY_LEN: u64 = 24;

/// Limits a reader enforces before allocating (spec §7).
pub const MAX_AXIS: u64 = 1 << 20;
pub const MAX_VOXELS: u64 = 1 << 40;
pub const MAX_VOLUMES: u64 = 1 << 16;
pub const MAX_BLOCKS: u64 = 1 << 32;
pub const MAX_META_RAW: u64 = 64 << 20;
pub const MAX_MODEL: u64 = 1 << 30;
/// Block edge per axis: the codec's blocks are 16-32; 256 bounds one decoded
/// block to 64 MiB (a 4-byte constant block with edge 1024 would be 4 GiB).
pub const MAX_BLOCK_EDGE: u64 = 256;
/// Volume name bytes: `NAME.nhdr`, `NAME.raw`, `.NAME.raw.tmp-PID` stay under
/// the 255-byte file name limit.
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_PAYLOAD: u64 = u32::MAX as u64;

pub fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
