//! The 88-byte trailer and the sections it locates (spec §3).

use super::{le_u16, le_u32, le_u64, MAJOR, TRAILER_LEN, TRAILER_MAGIC};
use crate::format::error::{FormatError, Result};

/// A section located by the trailer: byte range and CRC32 of its stored bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    pub meta: Section,
    pub meta_raw_len: u64,
    pub index: Section,
    pub model: Section,
}

impl Trailer {
    pub fn to_bytes(&self, minor: u16) -> [u8; TRAILER_LEN as usize] {
        let mut t = [0u8; TRAILER_LEN as usize];
        let w64 = |t: &mut [u8], at: usize, v: u64| t[at..at + 8].copy_from_slice(&v.to_le_bytes());
        w64(&mut t, 0, self.meta.offset);
        w64(&mut t, 8, self.meta.len);
        w64(&mut t, 16, self.meta_raw_len);
        w64(&mut t, 24, self.index.offset);
        w64(&mut t, 32, self.index.len);
        w64(&mut t, 40, self.model.offset);
        w64(&mut t, 48, self.model.len);
        t[56..60].copy_from_slice(&self.meta.crc.to_le_bytes());
        t[60..64].copy_from_slice(&self.index.crc.to_le_bytes());
        t[64..68].copy_from_slice(&self.model.crc.to_le_bytes());
        t[68..70].copy_from_slice(&MAJOR.to_le_bytes());
        t[70..72].copy_from_slice(&minor.to_le_bytes());
        let crc = crc32fast::hash(&t[..76]);
        t[76..80].copy_from_slice(&crc.to_le_bytes());
        t[80..88].copy_from_slice(&TRAILER_MAGIC);
        t
    }

    pub fn parse(t: &[u8]) -> Result<Trailer> {
        if t.len() != TRAILER_LEN as usize {
            return Err(FormatError::Truncated { section: "trailer", need: TRAILER_LEN, have: t.len() as u64 });
        }
        if t[80..88] != TRAILER_MAGIC {
            return Err(FormatError::BadMagic { section: "trailer" });
        }
        if crc32fast::hash(&t[..76]) != le_u32(t, 76) {
            return Err(FormatError::BadCrc { section: "trailer" });
        }
        let (major, minor) = (le_u16(t, 68), le_u16(t, 70));
        if major != MAJOR {
            return Err(FormatError::UnsupportedVersion { major, minor, supported: MAJOR });
        }
        if le_u32(t, 72) != 0 {
            return Err(FormatError::Invalid { section: "trailer", msg: "reserved bytes are not zero".into() });
        }
        Ok(Trailer {
            meta: Section { offset: le_u64(t, 0), len: le_u64(t, 8), crc: le_u32(t, 56) },
            meta_raw_len: le_u64(t, 16),
            index: Section { offset: le_u64(t, 24), len: le_u64(t, 32), crc: le_u32(t, 60) },
            model: Section { offset: le_u64(t, 40), len: le_u64(t, 48), crc: le_u32(t, 64) },
        })
    }
}
