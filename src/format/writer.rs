//! Streaming container writer: payloads go to disk as they arrive; only the
//! index (24 bytes per block) stays in memory. Everything is written to a
//! temporary file beside the target and renamed into place by `finish`, so a
//! crash or a full disk never leaves a partial file under the final name.

use super::block::BlockKind;
use super::error::{FormatError, Result};
use super::grid::BlockGrid;
use super::layout::*;
use super::meta::{ContainerMeta, ModelRef, VolumeMeta};
use super::version::{block_features, minor_for, Feature};
use super::{BlockId, VolumeId};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct ContainerWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    pos: u64,
    meta: ContainerMeta,
    entries: Vec<Vec<Option<Entry>>>,
    model_bytes: Option<Vec<u8>>,
    minor: u16,
    /// Set once the temporary is renamed into place; until then drop removes it.
    done: bool,
}

/// The message of an output check, without the path (the caller adds it).
fn invalid_msg(e: crate::io::IoError) -> String {
    match e {
        crate::io::IoError::Invalid { msg, .. } => msg,
        crate::io::IoError::Os { err, .. } => err.to_string(),
        crate::io::IoError::Exists { .. } => "exists".into(),
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FinishStats {
    pub file_bytes: u64,
    pub payload_bytes: u64,
    pub model_bytes: u64,
}

impl ContainerWriter {
    /// Starts a container at `path`; refuses an existing file unless `overwrite`,
    /// and anything that is not a regular file (a device, FIFO, directory) even
    /// then. Stale temporaries of `path` from killed runs are removed first.
    pub fn create(path: &Path, overwrite: bool) -> Result<ContainerWriter> {
        crate::io::atomic::check_target(path, overwrite).map_err(|e| match e {
            crate::io::IoError::Exists { .. } => FormatError::Exists { path: path.to_owned() },
            e => FormatError::Io { path: path.to_owned(), err: std::io::Error::other(invalid_msg(e)) },
        })?;
        crate::io::atomic::remove_stale_temps(path);
        let tmp = crate::io::atomic::temp_path(path);
        let io = |err| FormatError::Io { path: tmp.clone(), err };
        // Registered before it exists, so a signal at any point removes it.
        crate::io::atomic::register(&tmp);
        let _ = std::fs::remove_file(&tmp);
        let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp);
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                crate::io::atomic::unregister(&tmp);
                return Err(io(e));
            }
        };
        let mut w = ContainerWriter {
            path: path.to_owned(),
            tmp: tmp.clone(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            pos: HEADER_LEN,
            meta: ContainerMeta { writer: format!("idlat {}", env!("CARGO_PKG_VERSION")), ..Default::default() },
            entries: Vec::new(),
            model_bytes: None,
            minor: 0,
            done: false,
        };
        // On error `w` drops here, removing the temporary.
        w.write_header()?;
        Ok(w)
    }

    fn write_header(&mut self) -> Result<()> {
        let out = self.out.as_mut().expect("open until finish");
        out.write_all(&header_bytes(0)).map_err(|err| FormatError::Io { path: self.tmp.clone(), err })
    }

    /// Registers a volume; `index_first`/`block_count` are filled in here.
    pub fn add_volume(&mut self, mut meta: VolumeMeta) -> Result<VolumeId> {
        // The reader's rules (spec §4, §7), so the writer never makes a file it rejects.
        let bad = |msg: String| FormatError::Invalid { section: "metadata", msg };
        super::meta::check_volume_name(&meta.info.name).map_err(bad)?;
        if self.meta.volumes.iter().any(|v| v.info.name == meta.info.name) {
            return Err(bad(format!("volume name {:?} is already used in this container", meta.info.name)));
        }
        if meta.block.iter().any(|&b| b == 0 || b as u64 > MAX_BLOCK_EDGE) {
            return Err(bad(format!("block size {:?} outside 1..={MAX_BLOCK_EDGE}", meta.block)));
        }
        let grid = BlockGrid::new(meta.info.dims, meta.block);
        meta.block_count = grid.len() as u64;
        meta.index_first = self.entries.iter().map(|e| e.len() as u64).sum();
        self.entries.push(vec![None; grid.len()]);
        self.meta.volumes.push(meta);
        Ok(VolumeId(self.meta.volumes.len() as u32 - 1))
    }

    pub fn set_model(&mut self, model: ModelRef, embedded_bytes: Option<&[u8]>) {
        self.meta.model = ModelRef { embedded: embedded_bytes.is_some(), ..model };
        self.model_bytes = embedded_bytes.map(|b| b.to_vec());
    }

    /// Declares that the file uses `f` (the header gets its minor version at finish).
    /// Blocks given to `write_block` declare their own; this is for features besides
    /// them (a configured error bound) and for blocks another process writes.
    pub fn require(&mut self, f: Feature) {
        self.minor = self.minor.max(f.minor());
    }

    fn io(&self) -> impl Fn(std::io::Error) -> FormatError + '_ {
        move |err| FormatError::Io { path: self.tmp.clone(), err }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("open until finish");
        if let Err(source) = out.write_all(bytes) {
            return Err(FormatError::Io { path: self.tmp.clone(), err: source });
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// A block may be stored once, inside its volume's grid, with a payload the format allows.
    fn check_slot(&self, vol: VolumeId, block: BlockId, len: u64) -> Result<()> {
        let slot = self.entries.get(vol.0 as usize).ok_or(FormatError::NoVolume(vol.0))?.get(block.0 as usize).ok_or_else(|| FormatError::BadBlock {
            volume: vol.0,
            block: block.0,
            msg: "block id outside the volume's grid".into(),
        })?;
        if slot.is_some() {
            return Err(FormatError::BadBlock { volume: vol.0, block: block.0, msg: "written twice".into() });
        }
        if len > MAX_PAYLOAD {
            return Err(FormatError::LimitExceeded { what: "block payload bytes", value: len, max: MAX_PAYLOAD });
        }
        Ok(())
    }

    /// Appends one block's payload and requires the features it uses. Blocks may
    /// arrive in any order, each once.
    pub fn write_block(&mut self, vol: VolumeId, block: BlockId, kind: BlockKind, payload: &[u8]) -> Result<()> {
        self.check_slot(vol, block, payload.len() as u64)?;
        let meta = &self.meta.volumes[vol.0 as usize];
        let sz = BlockGrid::new(meta.info.dims, meta.block).extent(block).1;
        self.minor = self.minor.max(minor_for(block_features(kind, payload, sz)));
        let entry = Entry { offset: self.pos, len: payload.len() as u32, crc: crc32fast::hash(payload), kind: kind as u8 };
        self.write(payload)?;
        self.entries[vol.0 as usize][block.0 as usize] = Some(entry);
        Ok(())
    }

    /// Records a block whose payload (`len` bytes with CRC-32 `crc`) another process
    /// writes into the temporary at the returned offset (MPI packs): the writer skips
    /// over it. Same rules as `write_block`; that process tells the features its
    /// payload uses (`require`).
    pub fn place_block(&mut self, vol: VolumeId, block: BlockId, kind: BlockKind, len: u64, crc: u32) -> Result<u64> {
        self.check_slot(vol, block, len)?;
        let offset = self.pos;
        let out = self.out.as_mut().expect("open until finish");
        std::io::Seek::seek(out, std::io::SeekFrom::Current(len as i64)).map_err(|err| FormatError::Io { path: self.tmp.clone(), err })?;
        self.pos += len;
        self.entries[vol.0 as usize][block.0 as usize] = Some(Entry { offset, len: len as u32, crc, kind: kind as u8 });
        Ok(offset)
    }

    /// The temporary the container is written to until `finish` renames it.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Writes model, metadata, index and trailer, syncs, and renames into place.
    pub fn finish(mut self) -> Result<FinishStats> {
        for (v, es) in self.entries.iter().enumerate() {
            if let Some(b) = es.iter().position(|e| e.is_none()) {
                return Err(FormatError::BadBlock { volume: v as u32, block: b as u64, msg: "never written".into() });
            }
        }
        let payload_bytes = self.pos - HEADER_LEN;
        let mut trailer = Trailer::default();
        if let Some(model) = self.model_bytes.take() {
            let z = zstd::bulk::compress(&model, 19).map_err(self.io())?;
            trailer.model = Section { offset: self.pos, len: z.len() as u64, crc: crc32fast::hash(&z) };
            self.write(&z)?;
        }
        let json = serde_json::to_vec(&self.meta).expect("metadata serialises");
        let z = zstd::bulk::compress(&json, 9).map_err(self.io())?;
        trailer.meta = Section { offset: self.pos, len: z.len() as u64, crc: crc32fast::hash(&z) };
        trailer.meta_raw_len = json.len() as u64;
        self.write(&z)?;
        let index: Vec<u8> = self.entries.iter().flatten().flat_map(|e| e.expect("checked above").to_bytes()).collect();
        trailer.index = Section { offset: self.pos, len: index.len() as u64, crc: crc32fast::hash(&index) };
        self.write(&index)?;
        self.write(&trailer.to_bytes(self.minor))?;
        let out = self.out.take().expect("open until finish");
        let mut file = out.into_inner().map_err(|e| FormatError::Io { path: self.tmp.clone(), err: e.into_error() })?;
        if self.minor != 0 {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0)).and_then(|_| file.write_all(&header_bytes(self.minor))).map_err(self.io())?;
        }
        file.sync_all().map_err(self.io())?;
        drop(file);
        // A FIFO or device put at the target meanwhile is not replaced either.
        crate::io::atomic::check_target(&self.path, true).map_err(|e| FormatError::Io { path: self.path.clone(), err: std::io::Error::other(invalid_msg(e)) })?;
        std::fs::rename(&self.tmp, &self.path).map_err(|err| FormatError::Io { path: self.path.clone(), err })?;
        self.done = true;
        crate::io::atomic::unregister(&self.tmp);
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Persist the rename; failure here does not lose data already synced.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(FinishStats { file_bytes: self.pos, payload_bytes, model_bytes: trailer.model.len })
    }
}

impl Drop for ContainerWriter {
    fn drop(&mut self) {
        if !self.done {
            // Not finished (an error anywhere, including in `finish` after the
            // writer was taken out to flush): never leave the partial file behind.
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
            crate::io::atomic::unregister(&self.tmp);
        }
    }
}
