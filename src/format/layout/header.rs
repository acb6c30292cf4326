//! The 32-byte file header (spec §2).

use super::{le_u16, le_u32, HEADER_LEN, MAGIC, MAJOR};
use crate::format::error::{FormatError, Result};

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

#[cfg(test)]
mod tests {
    use super::super::MINOR;
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
