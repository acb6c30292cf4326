//! A block's 24-byte index entry (spec §5).

use super::{le_u32, le_u64, ENTRY_LEN};

/// One block's index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    pub kind: u8,
}

impl Entry {
    pub fn to_bytes(&self) -> [u8; ENTRY_LEN as usize] {
        let mut e = [0u8; ENTRY_LEN as usize];
        e[0..8].copy_from_slice(&self.offset.to_le_bytes());
        e[8..12].copy_from_slice(&self.len.to_le_bytes());
        e[12..16].copy_from_slice(&self.crc.to_le_bytes());
        e[16] = self.kind;
        e
    }

    pub fn parse(e: &[u8]) -> Entry {
        Entry { offset: le_u64(e, 0), len: le_u32(e, 8), crc: le_u32(e, 12), kind: e[16] }
    }

    /// Reserved bytes 17..24 must be zero.
    pub fn reserved_ok(e: &[u8]) -> bool {
        e[17..24].iter().all(|&b| b == 0)
    }
}
