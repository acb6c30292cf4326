//! The FUSE view of a container.
//!
//! Per volume NAME: `NAME.raw` (f32 little-endian, x fastest), `NAME.mhd`
//! (MetaImage), `NAME.nhdr` (detached NRRD) and `NAME.vti` (VTK XML, appended
//! raw data), plus `.idlat-stats` (JSON) at the root. Sizes are exact before
//! anything is decoded. Reads map their byte range to the blocks they touch,
//! fetch them through the byte-bounded cache (missing blocks decode as one
//! batch), and a sequential reader triggers decode-ahead of the next slab on a
//! background thread. A block that fails to decode makes reads of its bytes
//! fail with EIO; everything else keeps working. Read-only always.

use crate::format::{BlockGrid, Container, VolumeId};
use crate::reader::PIECE_BLOCKS;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use crate::reader::source::{BlockSource, SimpleSource};

const TTL: Duration = Duration::from_secs(3600);
const STATS_NAME: &str = ".idlat-stats";
const STATS_INO: u64 = 2;

#[derive(Clone, Debug)]
enum Kind {
    Raw,
    Text(Arc<Vec<u8>>),
    /// VTI: prefix, 8-byte length, data, suffix.
    Vti {
        prefix: Arc<Vec<u8>>,
        suffix: Arc<Vec<u8>>,
    },
}

#[derive(Clone, Debug)]
struct Node {
    name: String,
    vol: VolumeId,
    kind: Kind,
    size: u64,
}

pub struct MountOptions {
    pub cache_bytes: usize,
    pub threads: usize,
    pub allow_other: bool,
    /// Bytes to decode ahead of a sequential reader.
    pub readahead_bytes: u64,
    /// Bypass the kernel page cache for data files: every read reaches the
    /// daemon with the caller's own range, so a failing block fails exactly
    /// the bytes it covers (through the page cache, the 4 KiB pages holding
    /// them). Slower warm reads (issue 22, item 9).
    pub direct_io: bool,
}

/// The filesystem state shared by all worker threads.
pub struct IdlatFs {
    container: Arc<Container>,
    /// Reads go through the library reader; its cache is this mount's.
    reader: crate::reader::Container,
    nodes: Vec<Node>, // inode = index + 3
    by_name: HashMap<String, u64>,
    grids: Vec<BlockGrid>,
    seq: Mutex<HashMap<u64, u64>>, // fh -> end of its last read
    next_fh: AtomicU64,
    bytes_served: AtomicU64,
    prefetch: Mutex<Option<SyncSender<(VolumeId, Vec<crate::format::BlockId>)>>>,
    /// The decode-ahead thread, joined by `shutdown` so that no decode (and no
    /// libtorch call) is running when the process exits (issue 22, item 4).
    prefetch_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set on shutdown: queued decode-ahead is dropped, not decoded.
    stopping: Arc<AtomicBool>,
    readahead: u64,
    direct_io: bool,
    started: SystemTime,
}

impl IdlatFs {
    pub fn new(container: Arc<Container>, source: Arc<dyn BlockSource>, opts: &MountOptions) -> IdlatFs {
        let mut nodes = Vec::new();
        let mut grids = Vec::new();
        for (v, m) in container.volumes() {
            let info = &m.info;
            let raw_size = info.dims.iter().map(|&d| d as u64).product::<u64>() * 4;
            let raw = format!("{}.raw", info.name);
            let mhd = crate::io::mhd_text(info, &raw).into_bytes();
            let nhdr = crate::io::nhdr_text(info, &raw).into_bytes();
            let (pre, post) = crate::io::vti_parts(info, &info.name);
            nodes.push(Node { name: raw, vol: v, kind: Kind::Raw, size: raw_size });
            nodes.push(Node { name: format!("{}.mhd", info.name), vol: v, size: mhd.len() as u64, kind: Kind::Text(Arc::new(mhd)) });
            nodes.push(Node { name: format!("{}.nhdr", info.name), vol: v, size: nhdr.len() as u64, kind: Kind::Text(Arc::new(nhdr)) });
            nodes.push(Node {
                name: format!("{}.vti", info.name),
                vol: v,
                size: pre.len() as u64 + 8 + raw_size + post.len() as u64,
                kind: Kind::Vti { prefix: Arc::new(pre.into_bytes()), suffix: Arc::new(post.into_bytes()) },
            });
            grids.push(BlockGrid::new(info.dims, m.block));
        }
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i as u64 + 3)).collect();
        let (capacity, readahead) = effective_cache(&grids, opts.cache_bytes, opts.readahead_bytes);
        if capacity > opts.cache_bytes {
            eprintln!(
                "idlat mount: cache raised from {} to {} KiB: one slab of blocks plus a read's pieces must fit, or sequential reads decode every block again for each plane",
                opts.cache_bytes >> 10,
                capacity >> 10
            );
        }
        let reader = crate::reader::Container::with_source(container.clone(), source, capacity);
        // Decode-ahead worker: a bounded queue, so a fast reader cannot pile up work.
        let (tx, rx) = sync_channel::<(VolumeId, Vec<crate::format::BlockId>)>(4);
        let c2 = reader.cache().clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop2 = stopping.clone();
        let handle = std::thread::Builder::new()
            .name("idlat-prefetch".into())
            .spawn(move || {
                while let Ok((v, ids)) = rx.recv() {
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    for piece in ids.chunks(PIECE_BLOCKS) {
                        if stop2.load(Ordering::Acquire) {
                            return;
                        }
                        let _ = c2.get(v, piece, true);
                    }
                }
            })
            .expect("spawn prefetch thread");
        IdlatFs {
            container,
            reader,
            nodes,
            by_name,
            grids,
            seq: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            bytes_served: AtomicU64::new(0),
            prefetch: Mutex::new(Some(tx)),
            prefetch_thread: Mutex::new(Some(handle)),
            stopping,
            readahead,
            direct_io: opts.direct_io,
            started: SystemTime::now(),
        }
    }

    /// Stops decode-ahead and waits for the thread: at most the batch it is
    /// decoding finishes. Idempotent; runs from `destroy` and from `Drop`.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        drop(self.prefetch.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(h) = self.prefetch_thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm) = match ino {
            1 => (FileType::Directory, 0, 0o555),
            STATS_INO => (FileType::RegularFile, 4096, 0o444),
            i => (FileType::RegularFile, self.nodes.get((i - 3) as usize)?.size, 0o444),
        };
        let t = self.started;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            // SAFETY: getuid/getgid take no arguments, cannot fail and touch no memory of ours.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
            rdev: 0,
            flags: 0,
            blksize: 1 << 17,
        })
    }

    pub fn stats_json(&self) -> String {
        let cache = self.reader.cache();
        let s = &cache.stats;
        serde_json::to_string_pretty(&serde_json::json!({
            "device": cache.device(),
            "cache_bytes": cache.used_bytes(),
            "cache_capacity_bytes": cache.capacity,
            "hits": s.hits.load(Ordering::Relaxed),
            "misses": s.misses.load(Ordering::Relaxed),
            "blocks_decoded": s.blocks_decoded.load(Ordering::Relaxed),
            "decode_errors": s.decode_errors.load(Ordering::Relaxed),
            "prefetched": s.prefetched.load(Ordering::Relaxed),
            "bytes_served": self.bytes_served.load(Ordering::Relaxed),
            "decode_seconds": s.decode_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            "container": self.container.path().display().to_string(),
        }))
        .unwrap_or_default()
            + "\n"
    }

    /// Bytes [off, off+len) of a volume's raw f32 stream (the reader bounds
    /// the blocks held at once to `PIECE_BLOCKS`); a block that fails is EIO.
    fn raw_bytes(&self, vol: VolumeId, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        let (v0, v1) = (off / 4, (off + len).div_ceil(4));
        let mut out = Vec::with_capacity(((v1 - v0) * 4) as usize);
        self.reader.volume_by_id(vol).and_then(|v| v.visit_span(v0, v1, |run| extend_le(&mut out, run))).map_err(|_| Errno::EIO)?;
        let skip = (off - v0 * 4) as usize;
        if skip > 0 {
            out.drain(..skip);
        }
        out.truncate(len as usize);
        Ok(out)
    }

    /// Queues decode-ahead of the next `readahead` bytes after `end`.
    fn read_ahead(&self, vol: VolumeId, end: u64, file_size: u64) {
        let g = self.grids[vol.0 as usize];
        let stop = (end + self.readahead).min(file_size);
        if stop <= end {
            return;
        }
        let ids: Vec<_> = g.blocks_in_voxel_range(end / 4, stop.div_ceil(4)).into_iter().filter(|&b| !self.reader.cache().contains(vol, b)).collect();
        if ids.is_empty() {
            return;
        }
        if let Some(tx) = self.prefetch.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.try_send((vol, ids)); // queue full: the reader is ahead anyway
        }
    }

    fn serve(&self, node: &Node, off: u64, size: u32) -> Result<Vec<u8>, Errno> {
        if off >= node.size {
            return Ok(Vec::new());
        }
        let len = (size as u64).min(node.size - off);
        match &node.kind {
            Kind::Text(t) => Ok(t[off as usize..(off + len) as usize].to_vec()),
            Kind::Raw => self.raw_bytes(node.vol, off, len),
            Kind::Vti { prefix, suffix } => {
                let (p, d) = (prefix.len() as u64, node.size - prefix.len() as u64 - suffix.len() as u64);
                let mut full = Vec::with_capacity(len as usize);
                let mut at = off;
                let end = off + len;
                while at < end {
                    if at < p {
                        let e = end.min(p);
                        full.extend_from_slice(&prefix[at as usize..e as usize]);
                        at = e;
                    } else if at < p + 8 {
                        let hdr = (d - 8).to_le_bytes();
                        let e = end.min(p + 8);
                        full.extend_from_slice(&hdr[(at - p) as usize..(e - p) as usize]);
                        at = e;
                    } else if at < p + d {
                        let e = end.min(p + d);
                        full.extend(self.raw_bytes(node.vol, at - p - 8, e - at)?);
                        at = e;
                    } else {
                        let s = (at - p - d) as usize;
                        let e = (end - p - d) as usize;
                        full.extend_from_slice(&suffix[s..e]);
                        at = end;
                    }
                }
                Ok(full)
            }
        }
    }
}

impl Drop for IdlatFs {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Filesystem for IdlatFs {
    fn destroy(&mut self) {
        // The FUSE workers have been joined; stop the last thread that decodes.
        self.shutdown();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_string_lossy();
        let ino = if u64::from(parent) != 1 {
            None
        } else if name == STATS_NAME {
            Some(STATS_INO)
        } else {
            self.by_name.get(name.as_ref()).copied()
        };
        match ino.and_then(|i| self.attr(i)) {
            Some(a) => reply.entry(&TTL, &a, fuser::Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.into()) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let ino: u64 = ino.into();
        if ino == 1 || self.attr(ino).is_none() {
            return reply.error(Errno::ENOENT);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        // Data files go through the kernel page cache, kept across opens: the
        // container cannot change while mounted (a changed file only makes
        // uncached blocks fail), so cached pages are never stale, and warm
        // reads never reach the daemon (issue 22, item 9). A failing block then
        // fails the reads of the 4 KiB pages that hold its bytes: a failed
        // read-ahead is retried by the kernel page by page. --direct-io keeps
        // the caller's exact ranges instead (errors exact to the byte, warm
        // reads served by the block cache). The stats file changes under the
        // reader, so it bypasses the cache.
        let flags = match self.nodes.get(ino.wrapping_sub(3) as usize).map(|n| &n.kind) {
            Some(Kind::Text(_)) => FopenFlags::FOPEN_KEEP_CACHE,
            Some(_) if !self.direct_io => FopenFlags::FOPEN_KEEP_CACHE,
            _ => FopenFlags::FOPEN_DIRECT_IO,
        };
        reply.opened(FileHandle(fh), flags);
    }

    fn read(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, size: u32, _flags: OpenFlags, _lock: Option<LockOwner>, reply: ReplyData) {
        let ino: u64 = ino.into();
        if ino == STATS_INO {
            let s = self.stats_json().into_bytes();
            let a = (offset as usize).min(s.len());
            let b = (a + size as usize).min(s.len());
            return reply.data(&s[a..b]);
        }
        let Some(node) = self.nodes.get((ino.wrapping_sub(3)) as usize) else { return reply.error(Errno::ENOENT) };
        match self.serve(node, offset, size) {
            Ok(d) => {
                self.bytes_served.fetch_add(d.len() as u64, Ordering::Relaxed);
                let end = offset + d.len() as u64;
                let sequential = {
                    let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
                    let prev = seq.insert(fh.0, end);
                    prev == Some(offset) || offset == 0
                };
                if sequential && !matches!(node.kind, Kind::Text(_)) {
                    let data_end = match node.kind {
                        Kind::Vti { ref prefix, .. } => end.saturating_sub(prefix.len() as u64 + 8),
                        _ => end,
                    };
                    let raw_size = self.grids[node.vol.0 as usize].dims.iter().map(|&d| d as u64).product::<u64>() * 4;
                    self.read_ahead(node.vol, data_end, raw_size);
                }
                reply.data(&d)
            }
            Err(e) => reply.error(e),
        }
    }

    fn release(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, _lock: Option<LockOwner>, _flush: bool, reply: ReplyEmpty) {
        self.seq.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if u64::from(ino) != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, String)> = vec![(1, FileType::Directory, ".".into()), (1, FileType::Directory, "..".into()), (STATS_INO, FileType::RegularFile, STATS_NAME.into())];
        entries.extend(self.nodes.iter().enumerate().map(|(i, n)| (i as u64 + 3, FileType::RegularFile, n.name.clone())));
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn create(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _mode: u32, _umask: u32, _flags: i32, reply: ReplyCreate) {
        // ParaView's NRRD reader probes with NAME.raw.locktest.0: read-only, not a crash.
        reply.error(Errno::EROFS);
    }
}

/// Mounts and serves until SIGINT/SIGTERM or an external unmount; unmounts cleanly.
/// `ready` is called once the mount is live.
pub fn mount_and_wait(fs: IdlatFs, mountpoint: &std::path::Path, opts: &MountOptions, ready: impl FnOnce()) -> std::io::Result<()> {
    use fuser::{Config, MountOption, SessionACL};
    let mut cfg = Config::default();
    cfg.mount_options.extend([MountOption::RO, MountOption::FSName("idlat".into()), MountOption::Subtype("idlat".into()), MountOption::DefaultPermissions, MountOption::NoAtime]);
    if opts.allow_other {
        cfg.acl = SessionACL::All;
    }
    cfg.n_threads = Some(opts.threads.max(1));
    // Block the signals in every thread (workers inherit the mask); this thread waits for them.
    // SAFETY: sigset_t is plain data (an array of words), for which all zeroes is a valid value.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, initialised sigset_t for every call; pthread_sigmask may
    // take a null old-set pointer.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let session = fuser::spawn_mount(fs, mountpoint, &cfg)?;
    ready();
    loop {
        if session.guard.is_finished() {
            // Unmounted from outside (fusermount3 -u).
            return session.join();
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 200_000_000 };
        // SAFETY: `set` and `ts` live across the call; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig > 0 {
            eprintln!("idlat mount: signal {sig}, unmounting {}", mountpoint.display());
            return session.umount_and_join();
        }
    }
}

/// Appends `v` as little-endian f32 bytes.
fn extend_le(out: &mut Vec<u8>, v: &[f32]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: any f32 is 4 initialised bytes, u8 has no alignment
        // requirement, and the slice lives for the call; on a little-endian
        // target these are exactly the bytes to_le_bytes would give.
        let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) };
        out.extend_from_slice(bytes);
    }
    #[cfg(not(target_endian = "little"))]
    for f in v {
        out.extend_from_slice(&f.to_le_bytes());
    }
}

/// The cache capacity and decode-ahead actually used. A sequential reader
/// sweeps a whole slab of blocks (one block layer in z) for every plane it
/// reads, so a cache that cannot hold a slab, plus the blocks one read touches, decodes
/// each block once per plane (`--cache-mb 1` took 23 s for what 1 s decodes):
/// the capacity is raised to that floor. Decode-ahead is capped at half the
/// capacity so it cannot evict the slab being read.
pub fn effective_cache(grids: &[BlockGrid], cache_bytes: usize, readahead: u64) -> (usize, u64) {
    // The largest read the kernel sends (FUSE max_pages 256).
    const READ_VOXELS: usize = (1 << 20) / 4;
    let floor = grids
        .iter()
        .map(|g| {
            let c = g.counts();
            let b: [usize; 3] = std::array::from_fn(|a| g.block[a].min(g.dims[a]).max(1));
            // Blocks clipped to the volume, and only as many as one read can touch (along
            // x, y and z a run of READ_VOXELS crosses at most this many block rows), at most
            // two pieces: with 256³ wavelet tiles (64 MiB) "two pieces of 16" alone would
            // have raised the cache to 2 GiB for a volume of one tile.
            let (nx, nxy) = (g.dims[0].max(1), (g.dims[0] * g.dims[1]).max(1));
            let spans = [READ_VOXELS.div_ceil(b[0]) + 1, READ_VOXELS.div_ceil(nx).div_ceil(b[1]) + 1, READ_VOXELS.div_ceil(nxy).div_ceil(b[2]) + 1];
            let read = (0..3).map(|a| spans[a].min(c[a])).product::<usize>().min(2 * PIECE_BLOCKS);
            (c[0] * c[1] + read) * b[0] * b[1] * b[2] * 4
        })
        .max()
        .unwrap_or(0);
    let capacity = cache_bytes.max(floor);
    (capacity, readahead.min(capacity as u64 / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor is one slab plus the blocks one read can touch, at their clipped size.
    #[test]
    fn cache_floor_counts_clipped_blocks_one_read_touches() {
        let mib = 1usize << 20;
        // One 256³ wavelet tile (64 MiB): the slab and one read's block, not 32 more.
        let g = BlockGrid::cubic([256, 256, 256], 256);
        assert_eq!(effective_cache(&[g], 16 * mib, 0).0, 2 * 64 * mib);
        assert_eq!(effective_cache(&[g], 512 * mib, 0).0, 512 * mib);
        // A 128³ volume in a 256 grid: its one tile is 8 MiB.
        assert_eq!(effective_cache(&[BlockGrid::cubic([128, 128, 128], 256)], 0, 0).0, 2 * 8 * mib);
        // 32³ neural blocks: a slab of 6x6 plus two pieces of 16, as before.
        let n = BlockGrid::cubic([192, 192, 96], 32);
        assert_eq!(effective_cache(&[n], 0, 0).0, (36 + 2 * PIECE_BLOCKS) * 32 * 32 * 32 * 4);
        // 1024³ in 256³ tiles: a slab of 16, and a 1 MiB read (256 rows of x) crosses at
        // most 2 block rows in y and 2 in z, of 4 tiles each (an upper bound).
        assert_eq!(effective_cache(&[BlockGrid::cubic([1024, 1024, 1024], 256)], 0, 0).0, (16 + 16) * 64 * mib);
    }
}
