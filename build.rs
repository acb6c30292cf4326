//! Makes `target/*/idlat` find libtorch without LD_LIBRARY_PATH (rpath to the lib
//! dir torch-sys linked against) and keeps `libtorch_cuda.so` as a NEEDED entry
//! even though no symbol of it is referenced directly: without it, the CUDA
//! backend never registers and `tch::Cuda::is_available()` is false on GPU machines.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
