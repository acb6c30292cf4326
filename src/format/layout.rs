//! Fixed-size structures: header, trailer, index entries (spec/FORMAT.md §2, §3, §5).

use super::error::{FormatError, Result};

pub const MAGIC: [u8; 8] = *b"IDLAT\0\r\n";
pub const TRAILER_MAGIC: [u8; 8] = *b"IDLTRAIL";
pub const MAJOR: u16 = 1;
/// Newest minor this build reads and writes. A writer stamps the lowest minor
/// whose features the file uses (1.0 files stay byte-identical; 1.1 adds the
/// error-bound residual stream, 1.2 its interpolation mode).
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

pub fn header_bytes(minor: u16) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&MAJOR.to_le_bytes());
    h[10..12].copy_from_slice(&minor.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks magic, CRC and version; returns (major, minor).
pub fn parse_header(h: &[u8]) -> Result<(u16, u16)> {
    if h.len() < HEADER_LEN as usize {
        return Err(FormatError::Truncated { section: "header", need: HEADER_LEN, have: h.len() as u64 });
    }
    if h[..8] != MAGIC {
        return Err(FormatError::BadMagic { section: "header" });
    }
    if crc32fast::hash(&h[..28]) != le_u32(h, 28) {
        return Err(FormatError::BadCrc { section: "header" });
    }
    let (major, minor) = (le_u16(h, 8), le_u16(h, 10));
    if major != MAJOR {
        return Err(FormatError::UnsupportedVersion { major, minor, supported: MAJOR });
    }
    if le_u32(h, 12) != 0 {
        return Err(FormatError::Invalid { section: "header", msg: "reserved flags are not zero".into() });
    }
    // Spec §2: bytes 16..28 are reserved and must be 0, so a later minor can give
    // them a meaning without old readers silently ignoring it.
    if h[16..28].iter().any(|&b| b != 0) {
        return Err(FormatError::Invalid { section: "header", msg: "reserved bytes 16..28 are not zero".into() });
    }
    Ok((major, minor))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with `f` applied, its CRC recomputed so only the tested rule can fail.
    fn header_with(f: impl Fn(&mut [u8; HEADER_LEN as usize])) -> [u8; HEADER_LEN as usize] {
        let mut h = header_bytes(MINOR);
        f(&mut h);
        let crc = crc32fast::hash(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn header_reserved_bytes_must_be_zero() {
        assert_eq!(parse_header(&header_with(|_| {})).unwrap(), (MAJOR, MINOR));
        for at in [16, 20, 27] {
            let e = parse_header(&header_with(|h| h[at] = 1)).unwrap_err();
            assert!(matches!(&e, FormatError::Invalid { section: "header", msg } if msg.contains("16..28")), "byte {at}: {e}");
        }
        let e = parse_header(&header_with(|h| h[12] = 1)).unwrap_err();
        assert!(matches!(&e, FormatError::Invalid { section: "header", msg } if msg.contains("flags")), "{e}");
    }
}
