//! Work across MPI ranks: who packs what, and the few collectives that needs.
//!
//! Everything a rank decides alone must come out the same on every rank, and
//! every value summed across ranks is an integer (bytes, histogram counts), so a
//! pack on N ranks makes the same bytes as a pack on one: float sums would
//! depend on how the ranks split them.

use std::ops::Range;

/// Sums across ranks, as rate control needs them (a single process: no-op).
pub trait Reduce {
    /// Adds every rank's `v` element-wise into `v` on every rank.
    fn sum_u64(&self, v: &mut [u64]);
}

/// One process: nothing to reduce.
pub struct Local;

impl Reduce for Local {
    fn sum_u64(&self, _: &mut [u64]) {}
}

/// A failure every rank of a job agreed on (`World::agree`): each rank returns it,
/// and only rank 0 prints it (`quiet` elsewhere), so the job says it once.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Agreed {
    pub msg: String,
    pub quiet: bool,
}

/// A rank's failure as it enters an agreement: its own (the agreement names the
/// rank) or one already agreed in a team (it names its rank already).
pub enum Said {
    Mine(String),
    Named(String),
}

impl From<String> for Said {
    fn from(e: String) -> Said {
        Said::Mine(e)
    }
}

impl From<Agreed> for Said {
    fn from(e: Agreed) -> Said {
        Said::Named(e.msg)
    }
}

/// Rank `rank`'s contiguous share of `n` items among `size` ranks (sizes differ by at most one).
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    n * rank / size..n * (rank + 1) / size
}

/// How many ranks the launcher started, when this process was started by one
/// (`mpirun`/`mpiexec` of Open MPI or MPICH, Slurm's `srun` with PMI) with more
/// than one: from the environment, so a plain run (or a one-rank job, which runs
/// as a plain process) never initialises MPI.
pub fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"].iter().find_map(|k| std::env::var(k).ok()).and_then(|v| v.trim().parse().ok()).filter(|&n| n > 1)
}

/// The error of a build without MPI started on several ranks (every rank meets it; said once).
pub fn no_mpi() -> Agreed {
    everyone("started by an MPI launcher with several ranks, but this build lacks MPI (built without the `mpi` feature; tools/setup.sh builds it)".into())
}

/// This process's rank when started by an MPI launcher (see `launched_ranks`).
pub fn launched_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"].iter().find_map(|k| std::env::var(k).ok()).and_then(|v| v.trim().parse().ok())
}

/// An error every rank of a launched job hits alike (a refused command line): said once, by rank 0.
pub fn everyone(msg: String) -> Agreed {
    Agreed { msg, quiet: launched_rank().is_some_and(|r| r != 0) }
}

#[cfg(feature = "mpi")]
pub use self::mpi_world::{Comm, World};

#[cfg(feature = "mpi")]
mod mpi_world {
    use mpi::collective::SystemOperation;
    use mpi::datatype::PartitionMut;
    use mpi::traits::*;
    use std::path::Path;

    /// The MPI world of this process (initialised once; finalised on drop); its
    /// collectives are those of `Comm` over every rank.
    pub struct World {
        comm: Comm,
        _universe: mpi::environment::Universe,
    }

    /// A communicator (the world, or a team of ranks split from it) and its collectives.
    pub struct Comm {
        comm: mpi::topology::SimpleCommunicator,
        /// This process's rank in the world, the one error messages name.
        world_rank: usize,
    }

    impl World {
        /// Initialises MPI. Only the calling thread talks to MPI (rayon's workers never do).
        pub fn init() -> Result<World, String> {
            let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or("MPI was already initialised in this process")?;
            let comm = universe.world();
            let world_rank = comm.rank() as usize;
            Ok(World { comm: Comm { comm, world_rank }, _universe: universe })
        }

        /// The team of ranks with the same `team` number (collective over the world).
        pub fn split(&self, team: usize) -> Comm {
            let comm = self.comm.comm.split_by_color(mpi::topology::Color::with_value(team as i32)).expect("a defined colour gives a communicator");
            Comm { comm, world_rank: self.comm.world_rank }
        }
    }

    impl std::ops::Deref for World {
        type Target = Comm;
        fn deref(&self) -> &Comm {
            &self.comm
        }
    }

    impl Comm {
        pub fn rank(&self) -> usize {
            self.comm.rank() as usize
        }

        pub fn size(&self) -> usize {
            self.comm.size() as usize
        }

        /// Ends every rank of the job after printing why (for a failure in the middle of
        /// collectives, which the other ranks would otherwise wait on forever).
        pub fn abort(&self, why: &str) -> ! {
            eprintln!("idlat: rank {}: {why}", self.world_rank);
            self.comm.abort(1)
        }

        /// Every rank's bytes, in rank order, on every rank.
        pub fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
            let n = self.size();
            // One byte more than the message: Open MPI rejects a gather of nothing at all.
            let mine = [mine, &[0]].concat();
            let len = i32::try_from(mine.len()).expect("a gathered message under 2 GiB");
            let mut counts = vec![0i32; n];
            self.comm.all_gather_into(&len, &mut counts[..]);
            let displs: Vec<i32> = counts.iter().scan(0i32, |at, &c| Some(std::mem::replace(at, *at + c))).collect();
            let mut all = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
            self.comm.all_gather_varcount_into(&mine[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
            displs.iter().zip(&counts).map(|(&d, &c)| all[d as usize..(d + c - 1) as usize].to_vec()).collect()
        }

        /// Rank 0's `path` (a temporary it created), on every rank; other ranks pass `None`.
        pub fn path_of_rank0(&self, path: Option<&Path>) -> std::path::PathBuf {
            use std::os::unix::ffi::{OsStrExt, OsStringExt};
            let mine = path.map_or(&[][..], |p| p.as_os_str().as_bytes());
            std::path::PathBuf::from(std::ffi::OsString::from_vec(self.all_gather_bytes(mine).swap_remove(0)))
        }

        /// Every rank's outcome: `Ok` on every rank when all succeeded, else on every
        /// rank the error of the lowest failed rank, naming it (no rank goes on alone).
        pub fn agree<T, E: Into<super::Said>>(&self, r: Result<T, E>) -> Result<T, super::Agreed> {
            let r = r.map_err(Into::into);
            let mine = match &r {
                Ok(_) => Vec::new(),
                Err(super::Said::Mine(e)) => format!("rank {}: {e}", self.world_rank).into_bytes(),
                Err(super::Said::Named(e)) => e.clone().into_bytes(),
            };
            // An empty message is success; a failed rank's is never empty.
            let all = self.all_gather_bytes(&mine);
            match (all.iter().find(|m| !m.is_empty()), r) {
                (None, Ok(v)) => Ok(v),
                (Some(m), _) => Err(super::Agreed { msg: String::from_utf8_lossy(m).into_owned(), quiet: self.world_rank != 0 }),
                (None, Err(_)) => unreachable!("a failed rank sends its error"),
            }
        }

        /// Writes this rank's `(offset, bytes)` pieces into the existing file at `path`
        /// with MPI-IO (independent writes, then a collective sync and close). Collective:
        /// every rank calls it, with or without pieces.
        pub fn write_at(&self, path: &Path, pieces: &[(u64, &[u8])]) -> Result<(), String> {
            use mpi::ffi;
            use std::os::unix::ffi::OsStrExt;
            let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{}: a NUL byte in the path", path.display()))?;
            let what = |call: &str, code: i32| format!("{}: MPI-IO {call} failed (error {code})", path.display());
            let mut fh: ffi::MPI_File = std::ptr::null_mut();
            // SAFETY: the communicator handle is valid while `self` lives, `cpath` is a
            // NUL-terminated string that outlives the call, and `fh` is a valid out-pointer.
            let rc = unsafe { ffi::MPI_File_open(self.comm.as_raw(), cpath.as_ptr(), ffi::MPI_MODE_WRONLY as i32, ffi::RSMPI_INFO_NULL, &mut fh) };
            if rc != 0 {
                return Err(what("open", rc));
            }
            let mut err = None;
            'pieces: for &(offset, bytes) in pieces {
                // MPI counts are ints: pieces over 1 GiB go in parts.
                for (k, part) in bytes.chunks(1 << 30).enumerate() {
                    let at = (offset + (k << 30) as u64) as ffi::MPI_Offset;
                    // SAFETY: `fh` is open; `part` is a live byte slice of `part.len()` bytes
                    // (< 2^31), described as bytes; the status is ignored by MPI's own marker.
                    let rc = unsafe { ffi::MPI_File_write_at(fh, at, part.as_ptr().cast(), part.len() as i32, ffi::RSMPI_UINT8_T, ffi::RSMPI_STATUS_IGNORE) };
                    if rc != 0 {
                        err = Some(what("write", rc));
                        break 'pieces;
                    }
                }
            }
            // Collective: called on every rank even after a failed write, so none waits forever.
            // SAFETY: `fh` is the handle opened above, closed exactly once below.
            let rc = unsafe { ffi::MPI_File_sync(fh) };
            if rc != 0 && err.is_none() {
                err = Some(what("sync", rc));
            }
            // SAFETY: as above; MPI sets `fh` to the null handle.
            let rc = unsafe { ffi::MPI_File_close(&mut fh) };
            if rc != 0 && err.is_none() {
                err = Some(what("close", rc));
            }
            err.map_or(Ok(()), Err)
        }
    }

    impl Comm {
        /// The smallest `lo` and the largest `hi` over every rank.
        pub fn min_max(&self, lo: f32, hi: f32) -> (f32, f32) {
            let (mut a, mut b) = (lo, hi);
            self.comm.all_reduce_into(&lo, &mut a, SystemOperation::min());
            self.comm.all_reduce_into(&hi, &mut b, SystemOperation::max());
            (a, b)
        }

        /// Every element's largest value over every rank (the same length on all).
        pub fn max_f32(&self, v: &mut [f32]) {
            if v.is_empty() {
                return;
            }
            let mine = v.to_vec();
            self.comm.all_reduce_into(&mine[..], v, SystemOperation::max());
        }
    }

    impl super::Reduce for Comm {
        fn sum_u64(&self, v: &mut [u64]) {
            let mine = v.to_vec();
            self.comm.all_reduce_into(&mine[..], v, SystemOperation::sum());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_item_once_in_order() {
        for n in 0..20 {
            for size in 1..6 {
                let all: Vec<usize> = (0..size).flat_map(|r| share(n, r, size)).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
                let lens: Vec<usize> = (0..size).map(|r| share(n, r, size).len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
            }
        }
    }
}
