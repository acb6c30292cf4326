//! The `idlat` binary: parse flags, run, map the outcome to an exit code.

#[global_allocator]
static ALLOC: idlat::hugepages::HugePages = idlat::hugepages::HugePages;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `idlat info --json | head -1` made println! panic
    // on EPIPE (exit 101). Like other Unix filters, end quietly when the reader
    // goes away: restore the default action before any output or thread exists.
    // SAFETY: signal() with SIG_DFL installs no handler code and runs before any
    // other thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // TF32 convolutions on recent GPUs drift ~1e-3 relative from the CPU result,
    // more than error-bound margins allow (spec §6.2); cuDNN/cuBLAS read this
    // variable when they initialise, so it must be set before any thread starts.
    if std::env::var_os("NVIDIA_TF32_OVERRIDE").is_none() {
        std::env::set_var("NVIDIA_TF32_OVERRIDE", "0");
    }
    idlat::cli::main()
}
