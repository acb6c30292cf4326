//! `idlat mount`.

use super::common::DeviceArg;
use super::CmdResult;
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Mount a container read-only with FUSE: each volume appears as NAME.raw, NAME.mhd, NAME.nhdr and NAME.vti.
///
/// Open NAME.mhd (or .nhdr/.vti) in ParaView or VTK as if the data were never
/// compressed. Reads decode only the blocks they touch, in batches, through an
/// LRU cache (--cache-mb); sequential readers get the next slab decoded ahead.
/// `.idlat-stats` at the root reports cache and decode statistics (JSON).
/// Unmount with `fusermount3 -u MOUNTPOINT`, or Ctrl-C / SIGTERM the daemon.
/// A detached daemon logs (e.g. which block is corrupt) to --log, by default
/// $XDG_RUNTIME_DIR (else /tmp) /idlat-mount-<mount point>.log; the path is printed.
///
/// Memory (docs/MOUNT.md): RSS <= C + cache + (threads + 1) x 4 MiB + 48 MiB,
/// where C is the idle daemon (libtorch and the model, about 400 MiB with the
/// neural codec), cache is --cache-mb raised to one slab of blocks plus 32
/// blocks when smaller, each FUSE thread and the decode-ahead thread hold at
/// most 16 decoded blocks (2 MiB) plus one read's buffers, and one block's
/// synthesis runs at a time. Data files go through the kernel page cache
/// (reclaimable, not in RSS) unless --direct-io.
#[derive(clap::Args, Debug)]
pub struct Args {
    pub input: PathBuf,
    pub mountpoint: PathBuf,
    /// Stay in the foreground (otherwise detach once mounted).
    #[arg(short, long)]
    pub foreground: bool,
    /// Decoded-block cache size.
    #[arg(long, default_value_t = 512)]
    pub cache_mb: usize,
    /// Decode-ahead for sequential readers.
    #[arg(long, default_value_t = 8)]
    pub readahead_mb: u64,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Bypass the kernel page cache for data files: a corrupt block then fails
    /// exactly the bytes it covers rather than the 4 KiB pages that hold them,
    /// and warm reads come from the block cache (slower) instead of the page cache.
    #[arg(long)]
    pub direct_io: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// Model file, if the container references one that is not installed.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the codec runs: auto (CUDA when available), cpu or cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Daemon mode: append log lines (e.g. a corrupt block) to this file
    /// [default: $XDG_RUNTIME_DIR, else /tmp, /idlat-mount-<mount point>.log].
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// Where a detached daemon logs when --log is not given: the user's runtime
/// directory (private, per user) if there is one, else the temp directory; the
/// name is derived from the absolute mount point so two mounts do not share a log.
fn default_log_path(mountpoint: &std::path::Path) -> PathBuf {
    let abs = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_owned());
    let tag: String = abs.to_string_lossy().trim_matches('/').chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir()).unwrap_or_else(std::env::temp_dir);
    dir.join(format!("idlat-mount-{}.log", if tag.is_empty() { "root".into() } else { tag }))
}

/// Opens the daemon's log for appending: owner-only, and never through a
/// symlink, since the default lives in a shared directory such as /tmp.
fn open_log(p: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(p).with_context(|| format!("log file {}", p.display()))
}

pub fn run(args: Args) -> CmdResult {
    // Validate everything that can fail before detaching, so errors reach the terminal.
    let container = Arc::new(crate::format::Container::open(&args.input)?);
    if !args.mountpoint.is_dir() {
        bail!("mount point {} is not a directory", args.mountpoint.display());
    }
    #[cfg(feature = "torch")]
    let neural = crate::codec::store::needs_codec(&container);
    #[cfg(feature = "torch")]
    if neural {
        super::common::passive_openmp();
        crate::codec::store::resolve_model(&container, args.model.as_deref()).map_err(anyhow::Error::msg)?;
    }
    // Opened before detaching so a bad path is reported on the terminal; without
    // a log file the daemon's messages (a corrupt block's name) would be lost.
    let log = if args.foreground {
        None
    } else {
        let p = args.log.clone().unwrap_or_else(|| default_log_path(&args.mountpoint));
        let f = open_log(&p)?;
        Some((p, f))
    };
    let mut ready_fd: Option<i32> = None;
    if !args.foreground {
        // Fork before libtorch starts threads; the parent exits once the child reports the mount live.
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is an array of two c_ints, which pipe fills.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        // SAFETY: no other thread runs yet (libtorch and the FUSE workers start later), so
        // the child holds no lock another thread owned; both sides go on with plain Rust.
        match unsafe { libc::fork() } {
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                // SAFETY: fds[0] is the read end pipe() just opened, not used again here;
                // setsid takes no arguments.
                unsafe {
                    libc::close(fds[0]);
                    libc::setsid();
                }
                ready_fd = Some(fds[1]);
            }
            _ => {
                // SAFETY: fds[1] is the write end pipe() opened, used only by the child.
                unsafe { libc::close(fds[1]) };
                let mut b = [0u8; 1];
                // SAFETY: reads at most 1 byte into the 1-byte buffer `b`, from our own fd.
                let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
                if n == 1 {
                    let log_path = log.as_ref().map(|(p, _)| p.display().to_string()).unwrap_or_default();
                    println!("mounted {} at {} (log: {log_path})", args.input.display(), args.mountpoint.display());
                    return Ok(ExitCode::SUCCESS);
                }
                bail!("the mount daemon exited before the mount was live");
            }
        }
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tunables (glibc serialises it
    // with allocation), set before the codec loads. A fixed mmap threshold returns
    // freed decode buffers (128 KiB blocks and up) to the system instead of
    // glibc raising the threshold and keeping them in per-thread arenas, which
    // cost about 70 MiB of RSS beyond the cache with 16 readers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let ropts = crate::reader::Options { model: args.model.clone(), device: args.device.into(), ..Default::default() };
    let source = crate::reader::decoder(&container, &ropts)?;
    let opts =
        crate::fs::MountOptions { cache_bytes: args.cache_mb.max(1) << 20, threads: args.threads, allow_other: args.allow_other, readahead_bytes: args.readahead_mb << 20, direct_io: args.direct_io };
    let log_fd = match (log, ready_fd) {
        (Some((_, f)), Some(_)) => {
            use std::os::fd::IntoRawFd;
            Some(f.into_raw_fd())
        }
        _ => None,
    };
    let fs = crate::fs::IdlatFs::new(container, source.clone(), &opts);
    let mp = args.mountpoint.clone();
    crate::fs::mount_and_wait(fs, &mp, &opts, || {
        if let Some(fd) = ready_fd {
            // SAFETY: `fd` is the pipe's write end this process owns; the byte written lives
            // for the call; the path is a NUL-terminated C string literal; dup2 onto 0-2
            // only redirects stdio (the fds Rust's std reads and writes through).
            unsafe {
                libc::write(fd, [1u8].as_ptr().cast(), 1);
                libc::close(fd);
                // Detach stdio from the terminal (and from any pipe the caller waits on).
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                let log = log_fd.unwrap_or(null);
                libc::dup2(log, 2);
            }
        } else {
            eprintln!("idlat: mounted {} at {} (Ctrl-C to unmount)", args.input.display(), mp.display());
        }
    })
    .with_context(|| format!("mounting at {}", mp.display()))?;
    // The session has joined its workers and the decode-ahead thread (IdlatFs
    // shutdown), so this is the last reference: the codec's libtorch modules
    // are freed here, on the main thread, before exit runs libtorch's static
    // destructors (freed later on another thread, that raced and segfaulted).
    debug_assert_eq!(Arc::strong_count(&source), 1);
    drop(source);
    Ok(ExitCode::SUCCESS)
}
