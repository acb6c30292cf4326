//! The torch-free build as the front end (target/bin/idlat): it runs what needs no
//! libtorch itself and re-executes the full build for the rest (src/cli/lean.rs).
//! Real processes: the full build is `bin()`, a stand-in "full build" is a shell
//! script that records how it was executed.

use super::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes an executable file and waits until it can be executed: another test
/// thread forking while the file was open for writing makes exec fail with
/// ETXTBSY until that child has exec'd.
fn executable(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..200 {
        match Command::new(path).arg("--version").env("IDLAT_PROBE", "1").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
            r => {
                r.expect("probe run");
                return path.to_owned();
            }
        }
    }
    panic!("{} stayed busy", path.display());
}

/// A stand-in full build: writes its arguments (one per line; argv[0] is the
/// script's path under any interpreter, so not the front end's) and
/// IDLAT_DELEGATED to LOG, then exits 97.
fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("delegated.log");
    let script = format!("#!/bin/sh\n[ -n \"$IDLAT_PROBE\" ] && exit 0\n{{ printf '%s\\n' \"$@\"; echo \"IDLAT_DELEGATED=$IDLAT_DELEGATED\"; }} > '{}'\nexit 97\n", log.display());
    (executable(&dir.join("fake-full-build"), script.as_bytes()), log)
}

/// A copy of the front end alone in DIR/lone/: no idlat-torch beside it and no
/// target/release above it, so only IDLAT_TORCH_BIN can name a full build.
fn lone_front_end(dir: &Path) -> PathBuf {
    let d = dir.join("lone");
    std::fs::create_dir_all(&d).unwrap();
    executable(&d.join("idlat"), &std::fs::read(torch_free_bin()).unwrap())
}

fn front(exe: &Path, torch_bin: &Path, args: &[&str]) -> Output {
    Command::new(exe).args(args).env("IDLAT_TORCH_BIN", torch_bin).env_remove("IDLAT_DELEGATED").output().expect("run the front end")
}

fn text(o: &Output) -> String {
    format!("status {}\nstdout: {}\nstderr: {}", o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn files_in(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn front_end_hands_neural_pack_and_unpack_to_the_full_build_byte_for_byte() {
    let d = tmp();
    let dims = "40x36x32";
    let raw = sample(d.path(), "vortex", dims, 5);
    let lone = lone_front_end(d.path());
    let pack = |exe: &Path, out: &Path| {
        let a = ["pack", "--profile", "fast", s(&raw), "--dims", dims, "--importance", "iso:6", "-o", s(out), "--quiet"];
        Command::new(exe).args(a).env("IDLAT_TORCH_BIN", bin()).env_remove("IDLAT_DELEGATED").output().unwrap()
    };
    let (via, direct) = (d.path().join("via.idl"), d.path().join("direct.idl"));
    let o = pack(&lone, &via);
    assert!(o.status.success(), "front-end pack --profile fast: {}", text(&o));
    let o = pack(&bin(), &direct);
    assert!(o.status.success(), "full-build pack --profile fast: {}", text(&o));
    assert!(idlat::codec::needs_neural(&idlat::format::Container::open(&via).unwrap()), "the front end's pack holds no neural block");
    assert!(std::fs::read(&via).unwrap() == std::fs::read(&direct).unwrap(), "the container packed through the front end differs from the full build's");
    let (uv, ud) = (d.path().join("via.raw"), d.path().join("direct.raw"));
    let o = front(&lone, &bin(), &["unpack", s(&via), "-o", s(&uv), "--quiet"]);
    assert!(o.status.success(), "front-end unpack of a neural container: {}", text(&o));
    ok(&["unpack", s(&direct), "-o", s(&ud), "--quiet"]);
    assert!(std::fs::read(&uv).unwrap() == std::fs::read(&ud).unwrap(), "unpack through the front end differs from the full build's");
}

#[test]
fn front_end_without_a_full_build_fails_naming_it_and_writes_nothing() {
    let d = tmp();
    let dims = "40x36x32";
    let raw = sample(d.path(), "vortex", dims, 6);
    let lone = lone_front_end(d.path());
    let nowhere = d.path().join("no-such-full-build");
    let before = files_in(d.path());
    let out = d.path().join("n.idl");
    let o = front(&lone, &nowhere, &["pack", "--profile", "fast", s(&raw), "--dims", dims, "-o", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(err.contains("--profile fast") && err.contains("full build") && err.contains("torch"), "the error does not say what needs torch: {err}");
    assert!(err.contains(s(&nowhere)) && err.contains(s(&d.path().join("lone/idlat-torch"))), "the error does not say where it looked: {err}");
    assert!(!out.exists(), "a failed front-end pack left {}", out.display());
    assert_eq!(files_in(d.path()), before, "a failed front-end pack left files behind");
    // A neural container packed by the full build: unpack fails the same way, no output.
    ok(&["pack", "--profile", "fast", s(&raw), "--dims", dims, "-o", s(&out), "--quiet"]);
    let rec = d.path().join("rec");
    let o = front(&lone, &nowhere, &["unpack", s(&out), "-o", s(&rec)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("neural blocks"), "{}", text(&o));
    assert!(!rec.exists(), "a failed front-end unpack created {}", rec.display());
}

#[test]
fn front_end_runs_wavelet_pack_and_unpack_itself() {
    let d = tmp();
    let dims = "48x40x36";
    let raw = sample(d.path(), "vortex", dims, 7);
    // Any delegation would run the recorder, which fails with 97.
    let (fake, log) = recorder(d.path());
    let lean = torch_free_bin();
    let (fi, di) = (d.path().join("front.idl"), d.path().join("full.idl"));
    let o = front(&lean, &fake, &["pack", s(&raw), "--dims", dims, "--importance", "iso:6", "-o", s(&fi), "--quiet"]);
    assert!(o.status.success(), "front-end wavelet pack: {}", text(&o));
    ok(&["pack", s(&raw), "--dims", dims, "--importance", "iso:6", "-o", s(&di), "--quiet"]);
    assert!(std::fs::read(&fi).unwrap() == std::fs::read(&di).unwrap(), "the front end's wavelet container differs from the full build's");
    let (fr, dr) = (d.path().join("front.raw"), d.path().join("full.raw"));
    for args in [
        vec!["unpack", s(&fi), "-o", s(&fr), "--quiet"],
        vec!["verify", s(&fi), "--decode"],
        vec!["info", s(&fi)],
        vec!["pack", "--lossless", s(&raw), "--dims", dims, "-o", s(&d.path().join("l.idl"))],
    ] {
        let o = front(&lean, &fake, &args);
        assert!(o.status.success(), "front end {args:?}: {}", text(&o));
    }
    ok(&["unpack", s(&di), "-o", s(&dr), "--quiet"]);
    assert!(std::fs::read(&fr).unwrap() == std::fs::read(&dr).unwrap(), "the front end's unpack differs from the full build's");
    assert!(!log.exists(), "a wavelet command was handed to the full build: {}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// needs_torch case by case, on real containers: each command either reaches the
/// recorder (exit 97, same argv, IDLAT_DELEGATED set) or runs in the front end.
#[test]
fn front_end_delegates_exactly_what_needs_torch_with_the_same_argv() {
    let d = tmp();
    let dims = "40x36x32";
    let raw = sample(d.path(), "vortex", dims, 8);
    let (nidl, widl) = (d.path().join("n.idl"), d.path().join("w.idl"));
    ok(&["pack", "--profile", "fast", s(&raw), "--dims", dims, "-o", s(&nidl), "--quiet"]);
    ok(&["pack", s(&raw), "--dims", dims, "-o", s(&widl), "--quiet"]);
    let (fake, log) = recorder(d.path());
    let lean = torch_free_bin();
    let o = |f: &str| s(&d.path().join(f)).to_string();
    let (n, w) = (s(&nidl), s(&widl));
    let spaced = o("out dir/x y.raw");
    let delegated: Vec<Vec<String>> = [
        vec!["train", "--sample", "vortex:1:0", "-o", &o("m.safetensors")],
        vec!["pack", "--profile", "paper", s(&raw), "--dims", dims, "-o", &o("p.idl")],
        vec!["pack", "--model", "models/idlat-fast.safetensors", s(&raw), "--dims", dims, "-o", &o("m.idl")],
        vec!["unpack", n, "-o", &spaced, "--quiet"],
        vec!["eval", n, "--reference", s(&raw), "--dims", dims],
        vec!["verify", n, "--decode"],
        vec!["latents", n, "-o", &o("lat.npy")],
        vec!["mount", n, &o("mnt")],
        vec!["info", "--device"],
        vec!["isosim", s(&raw), "--dims", dims, "--isovalues", "2:8:3", "-o", &o("iso")],
        vec!["cluster", &o("lat.npy"), "-o", &o("cl"), "--select", "0"],
    ]
    .iter()
    .map(|a| a.iter().map(|x| x.to_string()).collect())
    .collect();
    for args in &delegated {
        let _ = std::fs::remove_file(&log);
        let out = Command::new(&lean).args(args).env("IDLAT_TORCH_BIN", &fake).env_remove("IDLAT_DELEGATED").output().unwrap();
        // exec: the recorder's exit status is the front end's.
        assert_eq!(out.status.code(), Some(97), "front end {args:?} did not hand over: {}", text(&out));
        let got = std::fs::read_to_string(&log).unwrap();
        let want: String = args.iter().cloned().chain(["IDLAT_DELEGATED=1".to_string()]).map(|l| l + "\n").collect();
        assert_eq!(got, want, "front end {args:?}: argv or marker not passed on");
    }
    let _ = std::fs::remove_file(&log);
    for args in [vec!["verify", n], vec!["info", n], vec!["unpack", w, "-o", &o("w.raw")], vec!["verify", w, "--decode"], vec!["latents", w, "-o", &o("wl.npy")]] {
        let out = Command::new(&lean).args(&args).env("IDLAT_TORCH_BIN", &fake).env_remove("IDLAT_DELEGATED").output().unwrap();
        assert!(out.status.success(), "front end {args:?}: {}", text(&out));
    }
    assert!(!log.exists(), "a command that needs no torch was handed over: {}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// tools/setup.sh's layout: target/bin/idlat is a symlink to the front end and
/// target/bin/idlat-torch the full build; found beside the link, not the target.
#[test]
fn front_end_finds_idlat_torch_beside_the_link_it_was_started_as() {
    let d = tmp();
    let lone = lone_front_end(d.path());
    let bindir = d.path().join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    std::os::unix::fs::symlink(&lone, bindir.join("idlat")).unwrap();
    let (fake, log) = recorder(d.path());
    std::os::unix::fs::symlink(&fake, bindir.join("idlat-torch")).unwrap();
    let link = bindir.join("idlat");
    let out = Command::new(&link).args(["info", "--device"]).env_remove("IDLAT_TORCH_BIN").env_remove("IDLAT_DELEGATED").output().unwrap();
    assert_eq!(out.status.code(), Some(97), "target/bin-style idlat-torch not found: {}", text(&out));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "info\n--device\nIDLAT_DELEGATED=1\n");
    // The same through PATH (a bare argv[0]).
    let _ = std::fs::remove_file(&log);
    let path = format!("{}:{}", s(&bindir), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("idlat").args(["info", "--device"]).env("PATH", path).env_remove("IDLAT_TORCH_BIN").env_remove("IDLAT_DELEGATED").output().unwrap();
    assert_eq!(out.status.code(), Some(97), "idlat-torch beside the PATH entry not found: {}", text(&out));
}

#[test]
fn front_end_never_loops() {
    let d = tmp();
    let lone = lone_front_end(d.path());
    // IDLAT_TORCH_BIN naming the front end itself, through a symlink: skipped, not executed.
    let alias = d.path().join("alias");
    std::os::unix::fs::symlink(&lone, &alias).unwrap();
    let o = front(&lone, &alias, &["info", "--device"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("this torch-free binary itself"), "{}", text(&o));
    // Another copy of the front end as the "full build": it runs once, sees
    // IDLAT_DELEGATED and stops with a message instead of delegating again.
    let other = executable(&d.path().join("other-idlat"), &std::fs::read(&lone).unwrap());
    let o = front(&lone, &other, &["info", "--device"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("IDLAT_DELEGATED is set"), "{}", text(&o));
    // IDLAT_DELEGATED set by the caller: never delegates.
    let (fake, log) = recorder(d.path());
    let o = Command::new(&lone).args(["info", "--device"]).env("IDLAT_TORCH_BIN", &fake).env("IDLAT_DELEGATED", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!log.exists(), "delegated with IDLAT_DELEGATED set");
}
