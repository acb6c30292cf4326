//! The `idlat` binary: parse flags, run, map the outcome to an exit code.
fn main() -> std::process::ExitCode {
    idlat::cli::main()
}
