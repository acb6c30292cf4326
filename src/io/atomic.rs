//! Atomic outputs: every file idlat writes goes to a temporary `.NAME.tmp-PID`
//! beside its target and is renamed into place only once complete, so a full
//! disk, an error or a signal never leaves a partial file under the final name.
//!
//! Cleanup of the temporaries:
//! - errors: `Staged` (and `format::ContainerWriter`) remove theirs on drop;
//! - SIGINT/SIGTERM/SIGHUP: a handler thread (installed when the first temporary
//!   is registered) removes every registered temporary, then exits with
//!   128 + the signal number (130 for SIGINT, 143 for SIGTERM);
//! - SIGKILL cannot be caught: the next run that writes the same target removes
//!   temporaries of that target whose PID is no longer running
//!   (`remove_stale_temps`). A temporary whose PID was reused by an unrelated
//!   live process is left alone until that process ends.
//!
//! Targets that exist and are not regular files (device nodes, FIFOs, sockets,
//! directories) are refused even with `--force`: renaming over them would
//! replace the node (as root, `-o /dev/null --force` destroyed /dev/null).

use super::{os_err, IoError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Temporaries of this process that a signal handler must remove.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// The temporary a target is written to: `.NAME.tmp-PID` in the target's directory.
pub fn temp_path(target: &Path) -> PathBuf {
    let dir = parent_dir(target);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

fn parent_dir(p: &Path) -> &Path {
    p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Registers a temporary for removal on SIGINT/SIGTERM (and installs the handler once).
pub fn register(tmp: &Path) {
    install_signal_cleanup();
    lock().push(tmp.to_owned());
}

/// Forgets a temporary (renamed into place or removed).
pub fn unregister(tmp: &Path) {
    lock().retain(|p| p != tmp);
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves the list intact; keep using it.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the SIGINT/SIGTERM/SIGHUP handler thread (idempotent).
pub fn install_signal_cleanup() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        let _ = std::thread::Builder::new().name("idlat-signals".into()).spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Holding the lock until exit: nothing can register a new temporary after the sweep.
                let live = lock();
                for p in live.iter() {
                    let _ = std::fs::remove_file(p);
                }
                // _exit: no destructors or atexit handlers (libtorch's) run on other threads' state.
                signal_hook::low_level::exit(128 + sig);
            }
        });
    });
}

/// Is a process with this PID running? (EPERM means it exists but is not ours.)
fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return true; // never treat a nonsense PID as proof of death
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the PID exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes temporaries of `target` left by processes that no longer run (a
/// SIGKILLed pack, a power cut); returns how many were removed.
pub fn remove_stale_temps(target: &Path) -> usize {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else { return 0 };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(parent_dir(target)) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() as i32 && !pid_alive(pid) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Checks that `target` may be written: an existing target must be a regular
/// file (or a link to one), and is refused without `force`. File names longer
/// than 255 bytes, which no common file system stores, are refused up front.
pub fn check_target(target: &Path, force: bool) -> Result<(), IoError> {
    let inv = |msg: String| IoError::Invalid { path: target.to_owned(), msg };
    if let Some(n) = target.file_name() {
        if n.len() > 255 {
            return Err(inv(format!("file name is {} bytes long; file systems allow at most 255", n.len())));
        }
    }
    match std::fs::symlink_metadata(target) {
        Err(_) => Ok(()),
        Ok(m) => {
            let real = if m.file_type().is_symlink() { std::fs::metadata(target).ok() } else { Some(m) };
            match real {
                // A dangling link: renaming over it replaces the link only.
                None => Ok(()),
                Some(r) if !r.is_file() => Err(inv(format!("exists and is not a regular file ({}); refusing to replace it, even with --force", kind_of(&r)))),
                Some(_) if !force => Err(IoError::Exists { path: target.to_owned() }),
                Some(_) => Ok(()),
            }
        }
    }
}

fn kind_of(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// A set of outputs written to temporaries and renamed into place together by
/// `commit`; dropped uncommitted (an error on any output), it removes every
/// temporary, so a failed command writes nothing.
#[derive(Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
    /// Reserved temporaries, written by someone else: synced at commit.
    unsynced: Vec<PathBuf>,
}

impl Staged {
    pub fn new() -> Staged {
        Staged::default()
    }

    /// Writes one output's temporary through `f` (buffered), flushed and synced.
    pub fn write(&mut self, target: &Path, f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<(), IoError> {
        let tmp = self.stage(target)?;
        // create_new never opens an existing node.
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| os_err(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        f(&mut w).map_err(|e| os_err(&tmp, e))?;
        let file = w.into_inner().map_err(|e| os_err(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| os_err(&tmp, e))?;
        Ok(())
    }

    /// Registers an output that a library writes itself (HDF5 opens files by
    /// name): returns the temporary to write, which `commit` syncs and renames.
    pub fn reserve(&mut self, target: &Path) -> Result<PathBuf, IoError> {
        let tmp = self.stage(target)?;
        self.unsynced.push(tmp.clone());
        Ok(tmp)
    }

    /// The temporary of `target`, recorded before anything is written so that drop
    /// removes it whatever fails later; a leftover of ours (same PID) is removed.
    fn stage(&mut self, target: &Path) -> Result<PathBuf, IoError> {
        remove_stale_temps(target);
        let tmp = temp_path(target);
        if self.files.iter().any(|(t, _)| t == &tmp) {
            return Err(IoError::Invalid { path: target.to_owned(), msg: "written twice by one command".into() });
        }
        register(&tmp);
        self.files.push((tmp.clone(), target.to_owned()));
        let _ = std::fs::remove_file(&tmp);
        Ok(tmp)
    }

    /// Writes `bytes` as one output.
    pub fn write_bytes(&mut self, target: &Path, bytes: &[u8]) -> Result<(), IoError> {
        self.write(target, |w| w.write_all(bytes))
    }

    /// Renames every temporary into place (targets re-checked just before, so a
    /// node created meanwhile is not replaced); returns the targets.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, IoError> {
        for tmp in &self.unsynced {
            File::open(tmp).and_then(|f| f.sync_all()).map_err(|e| os_err(tmp, e))?;
        }
        for (_, target) in &self.files {
            // --force was already decided when the outputs were planned.
            check_target(target, true)?;
        }
        let files = std::mem::take(&mut self.files);
        let mut done = Vec::new();
        let mut rest = files.into_iter();
        while let Some((tmp, target)) = rest.next() {
            if let Err(e) = std::fs::rename(&tmp, &target) {
                // Put the unrenamed ones back so drop removes them.
                self.files.push((tmp, target.clone()));
                self.files.extend(rest);
                return Err(os_err(&target, e));
            }
            unregister(&tmp);
            done.push(target);
        }
        let mut dirs: Vec<&Path> = done.iter().map(|t| parent_dir(t)).collect();
        dirs.dedup();
        for d in dirs {
            // Persists the renames; the data itself is already synced.
            let _ = File::open(d).and_then(|d| d.sync_all());
        }
        Ok(done)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in self.files.drain(..) {
            let _ = std::fs::remove_file(&tmp);
            unregister(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_stage_leaves_nothing_and_commit_renames() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.raw");
        let mut s = Staged::new();
        s.write_bytes(&a, b"1234").unwrap();
        assert!(temp_path(&a).exists() && !a.exists());
        drop(s);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "an uncommitted stage leaves no file");
        let mut s = Staged::new();
        s.write_bytes(&a, b"1234").unwrap();
        assert_eq!(s.commit().unwrap(), vec![a.clone()]);
        assert_eq!(std::fs::read(&a).unwrap(), b"1234");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn special_files_are_refused_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let e = check_target(d.path(), true).unwrap_err().to_string();
        assert!(e.contains("not a regular file") && e.contains("directory"), "{e}");
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert!(check_target(&f, false).unwrap_err().to_string().contains("exists"));
        check_target(&f, true).unwrap();
        let long = d.path().join("x".repeat(256));
        assert!(check_target(&long, true).unwrap_err().to_string().contains("255"));
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed_only() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("o.idl");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = d.path().join(format!(".o.idl.tmp-{dead}"));
        let mine = temp_path(&t);
        let other = d.path().join(format!(".p.idl.tmp-{dead}"));
        for p in [&stale, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&t), 1);
        assert!(!stale.exists() && mine.exists() && other.exists());
    }
}
