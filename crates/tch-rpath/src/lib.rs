//! Build-script helper for every crate of the workspace that links libtorch through `tch`.
//!
//! torch-sys links libtorch dynamically but records no rpath, so binaries and test executables would fail
//! with "libtorch_cpu.so: cannot open shared object file" unless `LD_LIBRARY_PATH` were set. Cargo gives the
//! library folder to the build script of every crate that depends on `torch-sys` directly (its manifest says
//! `links = "tch"`, and it prints `cargo:libtorch_lib=…`, seen here as `DEP_TCH_LIBTORCH_LIB`). [`emit`]
//! turns it into an rpath.
//!
//! It also keeps `libtorch_cuda` linked when the libtorch folder has it: without `--no-as-needed` the
//! linker drops the library (no symbol of it is referenced directly), CUDA kernels never register and
//! `tch::Cuda::is_available()` is false on a GPU machine. The same binary still runs on a machine without
//! a GPU. Set `TCH_NO_CUDA_LINK=1` to skip this (e.g. with a minimal libtorch that lacks the CUDA runtime).
//!
//! Written by hand rather than taken from a crate: no published crate does exactly this, and it is a dozen
//! lines.

use std::env;
use std::path::Path;

/// Prints the cargo directives: rpath to libtorch's `lib` folder and, when present, a forced link of
/// `libtorch_cuda`. Also sets `DPFT_LIBTORCH_VERSION` (from the wheel's `torch/version.py`, `unknown` for
/// a plain libtorch folder) and `DPFT_LIBTORCH_LIB` for the crate's code, so that `dpft info` can tell
/// what it was built against. Call it from `build.rs` of a crate with a direct `torch-sys` dependency.
///
/// # Panics
/// When `DEP_TCH_LIBTORCH_LIB` is missing (the crate does not depend on `torch-sys` directly), with a
/// message that says so.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=TCH_NO_CUDA_LINK");
    let lib = env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_else(|_| {
        panic!(
            "DEP_TCH_LIBTORCH_LIB is not set: add `torch-sys` as a direct dependency of this crate \
             so that its build script sees libtorch's library folder"
        )
    });
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-env=DPFT_LIBTORCH_LIB={lib}");
    println!("cargo:rustc-env=DPFT_LIBTORCH_VERSION={}", libtorch_version(Path::new(&lib)));
    let no_cuda_link = env::var_os("TCH_NO_CUDA_LINK").is_some_and(|v| !v.is_empty() && v != "0");
    if !no_cuda_link && Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The version string of a PyPI torch wheel (`__version__ = '2.11.0+cu130'` in `torch/version.py`, next to
/// `torch/lib`), or `unknown`.
fn libtorch_version(lib: &Path) -> String {
    let version_py = lib.parent().map(|torch| torch.join("version.py"));
    if let Some(p) = &version_py {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let text = version_py.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        .unwrap_or_else(|| "unknown".to_string())
}
