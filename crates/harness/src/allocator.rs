//! glibc's malloc settings for libtorch on the CPU.
//!
//! A training step allocates and frees buffers far above glibc's default mmap threshold (the logits of
//! a batch are [B, T, V] floats: 8 × 60 × 50,258 × 4 bytes ≈ 96 MB). By default glibc hands each one back
//! to the kernel when freed and the next step faults fresh pages in again, which shows as system time
//! larger than user time. Raising `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` keeps them in the
//! heap for reuse (what that saved when measured: results/bench/notes.md).
//!
//! glibc reads these variables only at start-up, and setting them from inside needs `mallopt` (unsafe
//! FFI, which this workspace forbids), so the commands that run models (train, generate, score,
//! clip-check, bench) re-execute dpft once with them set; that costs one more process start (mostly
//! loading libtorch), which the quick commands are spared. It does nothing
//! when either variable is already set (the user's choice wins), on other platforms, or when
//! `DPFT_MALLOC=default` asks for glibc's defaults.

/// Re-executes the process with the settings above, once; returns only if nothing was to be done or the
/// re-execution failed (then dpft goes on with the defaults).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const MMAP: &str = "MALLOC_MMAP_THRESHOLD_";
        const TRIM: &str = "MALLOC_TRIM_THRESHOLD_";
        if std::env::var_os("DPFT_MALLOC").is_some()
            || std::env::var_os(MMAP).is_some()
            || std::env::var_os(TRIM).is_some()
        {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // `exec` only returns on failure.
        let _failed = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(MMAP, (4u64 << 30).to_string())
            .env(TRIM, (8u64 << 30).to_string())
            .env("DPFT_MALLOC", "tuned")
            .exec();
    }
}
