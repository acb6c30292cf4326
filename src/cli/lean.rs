//! The torch-free build as a front end: it runs every command that needs no
//! libtorch itself (loading libtorch costs a process ~0.7 s and ~500 MB before
//! main), and re-executes the full build, same arguments and environment, for
//! the rest. Which commands those are is decided in one place, [`needs_torch`],
//! right after argument parsing and before any output exists.

use super::{pack::Profile, Cli, Command};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Set in the environment of the full build this front end executes: a process
/// that finds it set never delegates again (no loop, whatever the paths say).
pub const DELEGATED_ENV: &str = "IDLAT_DELEGATED";
/// Where the full build is, before any path is searched.
pub const TORCH_BIN_ENV: &str = "IDLAT_TORCH_BIN";
/// The full build's name beside the front end (tools/setup.sh: target/bin/idlat-torch).
pub const TORCH_BIN_NAME: &str = "idlat-torch";

/// What in this invocation needs libtorch (for the error when no full build is
/// found), or None when this build runs it. Each case is one this build would
/// otherwise refuse ("needs the full build") or misreport; a container is looked
/// at through its index only, as `codec::needs_neural` does, and one that cannot
/// be opened is left to the command itself to report.
pub fn needs_torch(cli: &Cli) -> Option<String> {
    let neural = |p: &Path, what: &str| holds_neural(p).then(|| format!("`{what}` of {} (it holds neural blocks)", p.display()));
    match &cli.command {
        // `pack::Plan::neural`: every pack but these runs through pack/plain.rs (no libtorch).
        Command::Pack(a) if !(a.lossless || (a.profile == Profile::Wavelet && a.model.is_none())) => Some(match (a.profile, &a.model) {
            (Profile::Wavelet, Some(_)) => "`pack --model`".to_string(),
            (p, _) => format!("`pack --profile {}`", clap::ValueEnum::to_possible_value(&p).map_or_else(String::new, |v| v.get_name().to_string())),
        }),
        Command::Pack(_) => None,
        Command::Unpack(a) => neural(&a.input, "unpack"),
        Command::Eval(a) => neural(&a.input, "eval"),
        Command::Mount(a) => neural(&a.input, "mount"),
        Command::Latents(a) => neural(&a.input, "latents"),
        Command::Verify(a) if a.decode => neural(&a.input, "verify --decode"),
        Command::Verify(_) => None,
        // This build would answer "none"; the device is the full build's.
        Command::Info(a) if a.device => Some("`info --device`".to_string()),
        Command::Info(_) => None,
        Command::Train(_) => Some("`train`".to_string()),
        // Encodes the volume with the neural codec for every isovalue.
        Command::Isosim(_) => Some("`isosim`".to_string()),
        // This build's --select decodes no block at all.
        Command::Cluster(a) if a.select.is_some() => Some("`cluster --select`".to_string()),
        Command::Cluster(_) | Command::Tsne(_) | Command::Importance(_) | Command::Sample(_) => None,
    }
}

/// Does the container at `p` hold neural blocks? Only regular files are opened
/// (opening a FIFO here would block, or eat the data the command reads).
fn holds_neural(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file()) && crate::format::Container::open(p).is_ok_and(|c| crate::codec::needs_neural(&c))
}

/// Replaces this process by the full build with the same argv and environment
/// (plus [`DELEGATED_ENV`]). Returns only when there is none to execute: the
/// error says what needed libtorch and every place looked at.
pub fn delegate(why: &str) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let lacks = format!("{why} needs the full build (the `torch` feature, which loads libtorch); this is the torch-free build");
    if std::env::var_os(DELEGATED_ENV).is_some() {
        return anyhow::anyhow!("{lacks}, started as the full build by an idlat front end ({DELEGATED_ENV} is set): point {TORCH_BIN_ENV} at the full build (target/release/idlat)");
    }
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("idlat"));
    let rest: Vec<OsString> = args.collect();
    let mut looked = Vec::new();
    for (cand, from) in candidates(&argv0) {
        if let Some(why_not) = unusable(&cand, me.as_deref()) {
            looked.push(format!("{} ({from}: {why_not})", cand.display()));
            continue;
        }
        let err = std::process::Command::new(&cand).arg0(&argv0).args(&rest).env(DELEGATED_ENV, "1").exec();
        looked.push(format!("{} ({from}: could not execute: {err})", cand.display()));
    }
    anyhow::anyhow!("{lacks}, and no full build was found; looked for {}. Build it (tools/setup.sh makes target/bin/{TORCH_BIN_NAME}) or set {TORCH_BIN_ENV} to its path", looked.join(", "))
}

/// Why `p` cannot be the full build, or None when it can be executed.
fn unusable(p: &Path, me: Option<&Path>) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::metadata(p) else { return Some("no such file") };
    if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
        return Some("not an executable file");
    }
    if me.is_some() && std::fs::canonicalize(p).ok().as_deref() == me {
        return Some("this torch-free binary itself");
    }
    None
}

/// Where the full build may be, in order, each with where the path came from:
/// IDLAT_TORCH_BIN; `idlat-torch` beside the path this was started as (not
/// resolved: tools/setup.sh's target/bin/idlat is a symlink) and beside the
/// executable itself; the cargo layout, `T/notorch/PROFILE/idlat` → `T/PROFILE/idlat`.
fn candidates(argv0: &OsString) -> Vec<(PathBuf, &'static str)> {
    let mut out: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(p) = std::env::var_os(TORCH_BIN_ENV).filter(|p| !p.is_empty()) {
        out.push((PathBuf::from(p), TORCH_BIN_ENV));
    }
    let started = started_as(Path::new(argv0));
    let exe = std::env::current_exe().ok();
    for dir in [started.as_deref(), exe.as_deref()].into_iter().flatten().filter_map(Path::parent) {
        out.push((dir.join(TORCH_BIN_NAME), "beside this binary"));
    }
    for p in [started.as_deref(), exe.as_deref()].into_iter().flatten() {
        let (Some(profile), Some(notorch)) = (p.parent(), p.parent().and_then(Path::parent)) else { continue };
        if notorch.file_name().is_some_and(|n| n == "notorch") {
            if let (Some(target), Some(prof), Some(name)) = (notorch.parent(), profile.file_name(), p.file_name()) {
                out.push((target.join(prof).join(name), "the cargo target layout"));
            }
        }
    }
    // argv[0] and current_exe() usually name one directory, relative and absolute.
    let mut seen = std::collections::HashSet::new();
    out.retain(|(p, _)| seen.insert(std::path::absolute(p).unwrap_or_else(|_| p.clone())));
    out
}

/// The path this process was started as: argv[0] itself when it names a path,
/// else (a bare name, found through PATH) the first match in PATH.
fn started_as(argv0: &Path) -> Option<PathBuf> {
    if argv0.as_os_str().is_empty() {
        return None;
    }
    if argv0.components().count() > 1 {
        return Some(argv0.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(argv0)).find(|p| p.is_file())
}
