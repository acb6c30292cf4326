//! Block payloads (spec/FORMAT.md §6).

use super::error::{FormatError, Result};
use super::layout::le_u32;

/// How a block's payload is coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockKind {
    /// 4 bytes: one f32 LE value (data units) for every voxel.
    Constant = 0,
    /// f32 LE samples of the clipped block extent, x fastest.
    Raw = 1,
    /// zstd frame whose content is a Raw payload.
    Lossless = 2,
    /// Stream table plus ANS streams (z side info, y latents, ...).
    Neural = 3,
    /// Stream table: a wavelet tile stream, then optionally a §6.2 residual stream (format 1.4).
    Wavelet = 4,
}

impl BlockKind {
    pub fn from_u8(v: u8) -> Option<BlockKind> {
        match v {
            0 => Some(BlockKind::Constant),
            1 => Some(BlockKind::Raw),
            2 => Some(BlockKind::Lossless),
            3 => Some(BlockKind::Neural),
            4 => Some(BlockKind::Wavelet),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Constant => "constant",
            BlockKind::Raw => "raw",
            BlockKind::Lossless => "lossless",
            BlockKind::Neural => "neural",
            BlockKind::Wavelet => "wavelet",
        }
    }
}

/// Most streams a neural payload may carry (z, y, and reserved extras).
pub const MAX_STREAMS: usize = 8;

/// A payload made of streams: u8 count, 3 zero bytes, count × u32 LE lengths, then
/// the streams back to back (neural and wavelet payloads, spec §6).
#[derive(Debug, PartialEq, Eq)]
pub struct StreamTable<'a> {
    pub streams: Vec<&'a [u8]>,
}

impl<'a> StreamTable<'a> {
    /// Parses a table of `min..=max` streams whose lengths sum to the payload end exactly.
    pub fn parse(p: &'a [u8], min: usize, max: usize) -> std::result::Result<StreamTable<'a>, String> {
        let n = *p.first().ok_or("empty payload")? as usize;
        if !(min..=max).contains(&n) {
            return Err(format!("payload declares {n} streams ({min}..={max} allowed)"));
        }
        if p.get(1..4) != Some(&[0, 0, 0][..]) {
            return Err("payload reserved bytes are not zero".into());
        }
        let table = 4 + 4 * n;
        if p.len() < table {
            return Err(format!("payload of {} bytes is shorter than its stream table ({table})", p.len()));
        }
        let mut at = table;
        let mut streams = Vec::with_capacity(n);
        for i in 0..n {
            let len = le_u32(p, 4 + 4 * i) as usize;
            let end = at.checked_add(len).filter(|&e| e <= p.len()).ok_or_else(|| format!("stream {i} ({len} bytes) runs past the payload end"))?;
            streams.push(&p[at..end]);
            at = end;
        }
        if at != p.len() {
            return Err(format!("{} bytes after the last stream", p.len() - at));
        }
        Ok(StreamTable { streams })
    }

    pub fn encode(streams: &[&[u8]]) -> Vec<u8> {
        assert!((1..=MAX_STREAMS).contains(&streams.len()), "1..=8 streams");
        let mut out = Vec::with_capacity(4 + 4 * streams.len() + streams.iter().map(|s| s.len()).sum::<usize>());
        out.extend_from_slice(&[streams.len() as u8, 0, 0, 0]);
        for s in streams {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        for s in streams {
            out.extend_from_slice(s);
        }
        out
    }
}

/// A neural payload's streams (z, y, levels, residual), borrowed from the payload bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct NeuralPayload<'a> {
    pub streams: Vec<&'a [u8]>,
}

impl<'a> NeuralPayload<'a> {
    /// A stream table of 2..=8 streams.
    pub fn parse(p: &'a [u8]) -> std::result::Result<NeuralPayload<'a>, String> {
        StreamTable::parse(p, 2, MAX_STREAMS).map(|t| NeuralPayload { streams: t.streams })
    }

    pub fn encode(streams: &[&[u8]]) -> Vec<u8> {
        assert!((2..=MAX_STREAMS).contains(&streams.len()), "2..=8 streams");
        StreamTable::encode(streams)
    }
}

pub fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Payload of a Lossless block for samples `v` (zstd level 9: small blocks, pack time).
pub fn lossless_payload(v: &[f32]) -> Vec<u8> {
    zstd::bulk::compress(&f32s_to_bytes(v), 9).expect("in-memory zstd compression cannot fail")
}

/// Decodes a Constant, Raw or Lossless payload into `voxels` samples.
pub fn decode_simple(kind: BlockKind, payload: &[u8], voxels: usize) -> std::result::Result<Vec<f32>, String> {
    let from_bytes = |b: &[u8]| -> std::result::Result<Vec<f32>, String> {
        if b.len() != voxels * 4 {
            return Err(format!("{} bytes of samples for a block of {voxels} voxels", b.len()));
        }
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    match kind {
        BlockKind::Constant => {
            let b: [u8; 4] = payload.try_into().map_err(|_| format!("constant payload of {} bytes (expected 4)", payload.len()))?;
            Ok(vec![f32::from_le_bytes(b); voxels])
        }
        BlockKind::Raw => from_bytes(payload),
        BlockKind::Lossless => {
            // Capacity = exact expected size: a frame claiming more fails, nothing larger is allocated.
            let raw = zstd::bulk::decompress(payload, voxels * 4).map_err(|e| format!("lossless block: {e}"))?;
            from_bytes(&raw)
        }
        BlockKind::Neural => Err("a neural block needs the codec".into()),
        BlockKind::Wavelet => Err("a wavelet block needs the wavelet decoder (codec::wavelet::decode_plain)".into()),
    }
}

/// Reads a block's kind byte, or a typed error.
pub fn kind_of(volume: u32, block: u64, code: u8) -> Result<BlockKind> {
    BlockKind::from_u8(code).ok_or_else(|| FormatError::BadBlock { volume, block, msg: format!("unknown block kind {code}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neural_payload_round_trip_and_rejections() {
        let p = NeuralPayload::encode(&[b"zz", b"yyyy", b""]);
        assert_eq!(NeuralPayload::parse(&p).unwrap().streams, vec![&b"zz"[..], b"yyyy", b""]);
        assert!(NeuralPayload::parse(&[]).is_err());
        assert!(NeuralPayload::parse(&[1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        let mut bad = p.clone();
        bad[1] = 1;
        assert!(NeuralPayload::parse(&bad).is_err());
        let mut long = p.clone();
        long[4] = 200;
        assert!(NeuralPayload::parse(&long).is_err());
        let mut extra = p.clone();
        extra.push(0);
        assert!(NeuralPayload::parse(&extra).is_err());
        assert!(NeuralPayload::parse(&p[..7]).is_err());
    }

    #[test]
    fn simple_kinds_decode_and_reject() {
        let v = vec![1.5f32, -2.0, 3.25];
        assert_eq!(decode_simple(BlockKind::Raw, &f32s_to_bytes(&v), 3).unwrap(), v);
        assert_eq!(decode_simple(BlockKind::Lossless, &lossless_payload(&v), 3).unwrap(), v);
        assert_eq!(decode_simple(BlockKind::Constant, &7f32.to_le_bytes(), 2).unwrap(), vec![7.0, 7.0]);
        assert!(decode_simple(BlockKind::Raw, &f32s_to_bytes(&v), 4).is_err());
        assert!(decode_simple(BlockKind::Lossless, &lossless_payload(&v), 2).is_err());
        assert!(decode_simple(BlockKind::Lossless, b"garbage", 3).is_err());
        assert!(decode_simple(BlockKind::Constant, b"abc", 3).is_err());
    }
}
