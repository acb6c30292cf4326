//! Memory-mapped container reader. `open` validates the header, trailer,
//! metadata and index (CRCs, bounds, limits, consistency) before anything is
//! allocated from their contents; block payloads are checked per access
//! (bounds and CRC), which is how corruption is localised to one block.
//!
//! SIGBUS: the file is mapped read-only; if another process truncates it
//! while mapped, touching the lost pages raises SIGBUS. Containers are
//! written once and renamed into place, so only an outside actor can do this.

use super::block::{kind_of, BlockKind};
use super::error::{FormatError, Result};
use super::grid::BlockGrid;
use super::layout::*;
use super::meta::{ContainerMeta, VolumeMeta};
use super::{BlockId, VolumeId};
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// A validated block reference: kind and payload, CRC already checked.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    pub kind: BlockKind,
    pub payload: &'a [u8],
}

/// The container's bytes: a read-only mapping of a file, or a buffer in memory.
enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

pub struct Container {
    path: PathBuf,
    map: Bytes,
    meta: ContainerMeta,
    trailer: Trailer,
    minor: u16,
}

fn section<'a>(map: &'a [u8], s: Section, name: &'static str, end: u64) -> Result<&'a [u8]> {
    let stop = s.offset.checked_add(s.len).ok_or(FormatError::Invalid { section: name, msg: "offset + length overflows".into() })?;
    if s.offset < HEADER_LEN || stop > end {
        return Err(FormatError::Truncated { section: name, need: stop, have: end });
    }
    let bytes = &map[s.offset as usize..stop as usize];
    if crc32fast::hash(bytes) != s.crc {
        return Err(FormatError::BadCrc { section: name });
    }
    Ok(bytes)
}

/// Where a valid trailer ends when bytes were appended after it (searched in the
/// last MiB only, to bound the cost of this error path on huge files).
fn displaced_trailer_end(map: &[u8]) -> Option<u64> {
    let tl = TRAILER_LEN as usize;
    let from = map.len().saturating_sub(1 << 20).max(HEADER_LEN as usize);
    let tail = map.get(from..)?;
    let at = tail.windows(TRAILER_MAGIC.len()).rposition(|w| w == TRAILER_MAGIC)?;
    let end = from + at + TRAILER_MAGIC.len();
    let start = end.checked_sub(tl).filter(|&s| s >= HEADER_LEN as usize)?;
    Trailer::parse(map.get(start..end)?).ok().map(|_| end as u64)
}

impl Container {
    pub fn open(path: &Path) -> Result<Container> {
        let io = |err| FormatError::Io { path: path.to_owned(), err };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: read-only private mapping of a file that idlat never modifies in
        // place; see the module docs for the truncation (SIGBUS) caveat.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Container::from_map(path, Bytes::Map(map))
    }

    /// Parses a container held in memory, with exactly the validation `open`
    /// does (the fuzzer uses it to reach the metadata checks without a file).
    /// `path()` is then `<memory>`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Container> {
        Container::from_map(Path::new("<memory>"), Bytes::Owned(bytes))
    }

    fn from_map(path: &Path, map: Bytes) -> Result<Container> {
        let len = map.len() as u64;
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(FormatError::Truncated { section: "file", need: HEADER_LEN + TRAILER_LEN, have: len });
        }
        let (_, minor) = parse_header(&map[..HEADER_LEN as usize])?;
        let trailer = match Trailer::parse(&map[(len - TRAILER_LEN) as usize..]) {
            // The header proved this is a container, so a missing trailer magic
            // means the end of the file is gone or overwritten, not a foreign file.
            Err(FormatError::BadMagic { .. }) => return Err(FormatError::TruncatedOrDamagedTrailer { len, expected: displaced_trailer_end(&map) }),
            t => t?,
        };
        let body_end = len - TRAILER_LEN;
        if trailer.meta_raw_len > MAX_META_RAW {
            return Err(FormatError::LimitExceeded { what: "metadata bytes", value: trailer.meta_raw_len, max: MAX_META_RAW });
        }
        if trailer.model.len > MAX_MODEL {
            return Err(FormatError::LimitExceeded { what: "model section bytes", value: trailer.model.len, max: MAX_MODEL });
        }
        let meta_z = section(&map, trailer.meta, "metadata", body_end)?;
        let json = zstd::bulk::decompress(meta_z, trailer.meta_raw_len as usize).map_err(|e| FormatError::Invalid { section: "metadata", msg: format!("zstd: {e}") })?;
        if json.len() as u64 != trailer.meta_raw_len {
            return Err(FormatError::Invalid { section: "metadata", msg: "decompressed length differs from the trailer".into() });
        }
        let meta: ContainerMeta = serde_json::from_slice(&json).map_err(|e| FormatError::Invalid { section: "metadata", msg: e.to_string() })?;
        let index = section(&map, trailer.index, "index", body_end)?;
        if trailer.model.len > 0 {
            // Checked for bounds now, CRC when the model is read.
            let stop = trailer.model.offset.checked_add(trailer.model.len);
            if trailer.model.offset < HEADER_LEN || stop.is_none_or(|s| s > body_end) {
                return Err(FormatError::Truncated { section: "model", need: stop.unwrap_or(u64::MAX), have: body_end });
            }
        }
        validate_meta(&meta, index.len() as u64)?;
        Ok(Container { path: path.to_owned(), map, meta, trailer, minor })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn minor_version(&self) -> u16 {
        self.minor
    }

    pub fn meta(&self) -> &ContainerMeta {
        &self.meta
    }

    pub fn volumes(&self) -> impl Iterator<Item = (VolumeId, &VolumeMeta)> {
        self.meta.volumes.iter().enumerate().map(|(i, v)| (VolumeId(i as u32), v))
    }

    pub fn volume(&self, v: VolumeId) -> Result<&VolumeMeta> {
        self.meta.volumes.get(v.0 as usize).ok_or(FormatError::NoVolume(v.0))
    }

    pub fn find_volume(&self, name: &str) -> Option<VolumeId> {
        self.meta.volumes.iter().position(|v| v.info.name == name).map(|i| VolumeId(i as u32))
    }

    pub fn grid(&self, v: VolumeId) -> Result<BlockGrid> {
        let m = self.volume(v)?;
        Ok(BlockGrid::new(m.info.dims, m.block))
    }

    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The index entry of a block (bounds of the entry checked, payload not).
    pub fn entry(&self, v: VolumeId, b: BlockId) -> Result<Entry> {
        let m = self.volume(v)?;
        if b.0 >= m.block_count {
            return Err(FormatError::BadBlock { volume: v.0, block: b.0, msg: format!("no such block (volume has {})", m.block_count) });
        }
        let at = (self.trailer.index.offset + (m.index_first + b.0) * ENTRY_LEN) as usize;
        checked_entry(&self.map[at..at + ENTRY_LEN as usize], v.0, b.0)
    }

    /// A block's kind and payload; bounds and CRC are checked on every call.
    pub fn block(&self, v: VolumeId, b: BlockId) -> Result<BlockRef<'_>> {
        let e = self.entry(v, b)?;
        let (kind, end) = located(&e, v.0, b.0, self.payload_end())?;
        let payload = &self.map[e.offset as usize..end as usize];
        if crc32fast::hash(payload) != e.crc {
            return Err(FormatError::BadBlockCrc { volume: v.0, block: b.0 });
        }
        Ok(BlockRef { kind, payload })
    }

    /// First byte after the block payloads (start of the first section).
    fn payload_end(&self) -> u64 {
        let t = &self.trailer;
        let mut end = t.meta.offset.min(t.index.offset);
        if t.model.len > 0 {
            end = end.min(t.model.offset);
        }
        end
    }

    /// Sum of a volume's payload bytes plus its index entries (for ratio reports).
    pub fn volume_stored_bytes(&self, v: VolumeId) -> Result<u64> {
        let m = self.volume(v)?;
        let mut total = m.block_count * ENTRY_LEN;
        for b in 0..m.block_count {
            total += self.entry(v, BlockId(b))?.len as u64;
        }
        Ok(total)
    }

    pub fn model_section_len(&self) -> u64 {
        self.trailer.model.len
    }

    /// The embedded model file, if any (CRC checked, size capped).
    pub fn embedded_model(&self) -> Result<Option<Vec<u8>>> {
        if self.trailer.model.len == 0 {
            return Ok(None);
        }
        let z = section(&self.map, self.trailer.model, "model", self.file_len() - TRAILER_LEN)?;
        inflate_model(z).map(Some)
    }
}

/// A block read by `PayloadReader`: kind and owned payload, CRC checked.
#[derive(Debug, Clone)]
pub struct OwnedBlock {
    pub kind: BlockKind,
    pub payload: Vec<u8>,
}

/// What identifies the file's contents cheaply: a change of any of these
/// means the container was rewritten in place since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

fn stamp(f: &std::fs::File) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(Stamp { dev: m.dev(), ino: m.ino(), len: m.size(), mtime: (m.mtime(), m.mtime_nsec()) })
}

/// Block payloads read with pread from a descriptor of its own, for
/// long-lived readers (the mount). Unlike `Container::block`, which borrows
/// from the mapping, nothing here can fault if another process truncates or
/// rewrites the file: a short read is an error, and every read first checks
/// that size and mtime are those seen at open, so a rewritten file gives an
/// error naming the change instead of bytes of another file. The index is a
/// CRC-checked copy taken at open, and payload CRCs are checked per read.
pub struct PayloadReader {
    path: PathBuf,
    file: std::fs::File,
    stamp: Stamp,
    /// The index section's bytes (CRC checked), entries parsed when read.
    index: Vec<u8>,
    /// Per volume: first index entry and block count.
    volumes: Vec<(u64, u64)>,
    payload_end: u64,
}

/// An index entry from its bytes; nonzero reserved bytes (17..24, spec §5: a later
/// minor may give them a meaning) fail this block alone, as an unknown kind does.
fn checked_entry(raw: &[u8], volume: u32, block: u64) -> Result<Entry> {
    if !Entry::reserved_ok(raw) {
        return Err(FormatError::BadBlock { volume, block, msg: "index entry reserved bytes 17..24 are not zero".into() });
    }
    Ok(Entry::parse(raw))
}

/// The checks both readers make of an entry before touching its payload: a known
/// kind, and a payload inside the payload area. Returns the kind and the payload end.
fn located(e: &Entry, volume: u32, block: u64, payload_end: u64) -> Result<(BlockKind, u64)> {
    let kind = kind_of(volume, block, e.kind)?;
    let end = e.offset.saturating_add(e.len as u64);
    if e.offset < HEADER_LEN || end > payload_end {
        return Err(FormatError::BadBlock { volume, block, msg: format!("payload {}..{end} lies outside the payload area", e.offset) });
    }
    Ok((kind, end))
}

impl Container {
    /// A pread-based reader of this container's block payloads (see `PayloadReader`).
    pub fn payload_reader(&self) -> Result<PayloadReader> {
        use std::os::unix::fs::FileExt;
        let io = |err| FormatError::Io { path: self.path.clone(), err };
        let file = std::fs::File::open(&self.path).map_err(io)?;
        let st = stamp(&file).map_err(io)?;
        if st.len != self.file_len() {
            return Err(io(std::io::Error::other(format!("the file changed since it was opened ({} bytes, was {})", st.len, self.file_len()))));
        }
        let s = self.trailer.index;
        let mut raw = vec![0u8; s.len as usize];
        file.read_exact_at(&mut raw, s.offset).map_err(io)?;
        if crc32fast::hash(&raw) != s.crc {
            return Err(FormatError::BadCrc { section: "index" });
        }
        let volumes = self.meta.volumes.iter().map(|v| (v.index_first, v.block_count)).collect();
        Ok(PayloadReader { path: self.path.clone(), file, stamp: st, index: raw, volumes, payload_end: self.payload_end() })
    }
}

impl PayloadReader {
    /// A block's kind and payload, read now; bounds and CRC checked on every call.
    pub fn block(&self, v: VolumeId, b: BlockId) -> Result<OwnedBlock> {
        use std::os::unix::fs::FileExt;
        let &(first, count) = self.volumes.get(v.0 as usize).ok_or(FormatError::NoVolume(v.0))?;
        if b.0 >= count {
            return Err(FormatError::BadBlock { volume: v.0, block: b.0, msg: format!("no such block (volume has {count})") });
        }
        let at = ((first + b.0) * ENTRY_LEN) as usize;
        let e = checked_entry(&self.index[at..at + ENTRY_LEN as usize], v.0, b.0)?;
        let (kind, _) = located(&e, v.0, b.0, self.payload_end)?;
        let io = |err| FormatError::Io { path: self.path.clone(), err };
        self.unchanged().map_err(io)?;
        let mut payload = vec![0u8; e.len as usize];
        self.file.read_exact_at(&mut payload, e.offset).map_err(|err| {
            let err = if err.kind() == std::io::ErrorKind::UnexpectedEof { std::io::Error::other("the file is shorter than when it was opened") } else { err };
            io(err)
        })?;
        if crc32fast::hash(&payload) != e.crc {
            // Rewritten between the stamp check and the read: say so, not "bad CRC".
            self.unchanged().map_err(io)?;
            return Err(FormatError::BadBlockCrc { volume: v.0, block: b.0 });
        }
        Ok(OwnedBlock { kind, payload })
    }

    fn unchanged(&self) -> std::io::Result<()> {
        let now = stamp(&self.file)?;
        if now != self.stamp {
            return Err(std::io::Error::other(format!("the container changed since it was opened (size {} -> {} bytes, or its mtime); remount to read the new file", self.stamp.len, now.len)));
        }
        Ok(())
    }
}

/// Decompresses the model section into exactly the length its zstd frame
/// declares, checked against `MAX_MODEL` first: `bulk::decompress` allocates its
/// whole capacity up front, so passing `MAX_MODEL` reserved 1 GiB for every
/// embedded model (spec §7: capacity is the declared raw length, never more).
fn inflate_model(z: &[u8]) -> Result<Vec<u8>> {
    let bad = |msg: String| FormatError::Invalid { section: "model", msg };
    let declared = match zstd::zstd_safe::get_frame_content_size(z) {
        Ok(Some(n)) => n,
        Ok(None) => return Err(bad("the zstd frame does not declare its decompressed size".into())),
        Err(_) => return Err(bad("not a zstd frame".into())),
    };
    if declared > MAX_MODEL {
        return Err(FormatError::LimitExceeded { what: "model bytes", value: declared, max: MAX_MODEL });
    }
    let raw = zstd::bulk::decompress(z, declared as usize).map_err(|e| bad(format!("zstd: {e}")))?;
    if raw.len() as u64 != declared {
        return Err(bad(format!("decompressed to {} bytes, the frame declares {declared}", raw.len())));
    }
    Ok(raw)
}

fn validate_meta(meta: &ContainerMeta, index_len: u64) -> Result<()> {
    let bad = |msg: String| FormatError::Invalid { section: "metadata", msg };
    if meta.volumes.len() as u64 > MAX_VOLUMES {
        return Err(FormatError::LimitExceeded { what: "volumes", value: meta.volumes.len() as u64, max: MAX_VOLUMES });
    }
    if index_len % ENTRY_LEN != 0 {
        return Err(FormatError::Invalid { section: "index", msg: format!("length {index_len} is not a multiple of {ENTRY_LEN}") });
    }
    let mut next = 0u64;
    let mut names = std::collections::HashSet::new();
    for (i, v) in meta.volumes.iter().enumerate() {
        super::meta::check_volume_name(&v.info.name).map_err(|e| bad(format!("volume {i}: {e}")))?;
        if !names.insert(v.info.name.as_str()) {
            return Err(bad(format!("volume {i}: name {:?} is used by an earlier volume (names must be unique)", v.info.name)));
        }
        let d = v.info.dims;
        if d.iter().any(|&n| n == 0 || n as u64 > MAX_AXIS) {
            return Err(bad(format!("volume {i}: dims {d:?} outside 1..={MAX_AXIS}")));
        }
        let voxels = d.iter().map(|&n| n as u64).product::<u64>();
        if voxels > MAX_VOXELS {
            return Err(FormatError::LimitExceeded { what: "voxels per volume", value: voxels, max: MAX_VOXELS });
        }
        if v.block.iter().any(|&b| b == 0 || b as u64 > MAX_BLOCK_EDGE) {
            return Err(bad(format!("volume {i}: block size {:?} outside 1..={MAX_BLOCK_EDGE}", v.block)));
        }
        let count = BlockGrid::new(d, v.block).len() as u64;
        if count > MAX_BLOCKS {
            return Err(FormatError::LimitExceeded { what: "blocks per volume", value: count, max: MAX_BLOCKS });
        }
        if v.block_count != count || v.index_first != next {
            return Err(bad(format!("volume {i}: index range {}+{} does not match its grid ({count} blocks from {next})", v.index_first, v.block_count)));
        }
        if !(v.norm.scale.is_finite() && v.norm.scale != 0.0 && v.norm.offset.is_finite()) {
            return Err(bad(format!("volume {i}: invalid normalisation")));
        }
        next += count;
    }
    if next * ENTRY_LEN != index_len {
        return Err(FormatError::Invalid { section: "index", msg: format!("{} entries for {next} blocks", index_len / ENTRY_LEN) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_section_inflates_to_its_declared_size_only() {
        let model = b"model bytes ".repeat(100);
        let z = zstd::bulk::compress(&model, 3).unwrap();
        assert_eq!(inflate_model(&z).unwrap(), model);
        // A streamed frame carries no size: rejected rather than guessed.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut enc, &model).unwrap();
        let streamed = enc.finish().unwrap();
        assert!(matches!(inflate_model(&streamed), Err(FormatError::Invalid { section: "model", .. })));
        // A frame header declaring 2 GiB is refused before any allocation:
        // magic, descriptor (single segment, 8-byte content size), size.
        let mut huge = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
        huge.extend_from_slice(&(2u64 << 30).to_le_bytes());
        huge.extend_from_slice(&[1, 0, 0]); // an empty last raw block
        assert!(matches!(inflate_model(&huge), Err(FormatError::LimitExceeded { value, .. }) if value == 2 << 30));
        assert!(matches!(inflate_model(b"garbage"), Err(FormatError::Invalid { .. })));
        // Declared size larger than the data: zstd stops short, which is an error.
        let mut short = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
        short.extend_from_slice(&100u64.to_le_bytes());
        short.extend_from_slice(&[1, 0, 0]);
        assert!(inflate_model(&short).is_err());
    }
}
