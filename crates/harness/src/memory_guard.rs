//! Work that cannot fit in memory ends with one line naming the size and what to lower, not with a
//! libtorch C++ trace or the kernel's out-of-memory killer.
//!
//! - Before the work: [`check_fits`] compares a lower bound of what a command will allocate (its largest
//!   tensor, e.g. the logits `[batch × beams, T, vocab]`) with the memory the system has available (Linux
//!   `MemAvailable`). On CPU this is needed: with memory overcommit a large allocation may succeed and the
//!   process then be killed mid-run. On CUDA allocations fail cleanly, and the guard below reports them.
//! - During it: [`guard`] runs a command and turns a panic (tch's non-`f_` calls panic on a libtorch
//!   error) into an error: "out of memory" with the bytes libtorch asked for, or an internal error with
//!   the first line of the message, never the C++ frames.

use std::panic::{self, AssertUnwindSafe};

use anyhow::{anyhow, Result};
use tch::{Device, Kind};

/// Memory the system can give a process now (Linux `MemAvailable`), in bytes; `None` elsewhere.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of `elements` values of `kind`, saturating (sizes come from user input).
pub fn tensor_bytes(elements: &[u64], kind: Kind) -> u64 {
    let size = match kind {
        Kind::Double | Kind::Int64 => 8,
        Kind::BFloat16 | Kind::Half => 2,
        _ => 4,
    };
    elements.iter().fold(size, |acc: u64, &e| acc.saturating_mul(e))
}

/// Refuses work on the CPU whose lower bound `need` exceeds the available memory: "out of memory:
/// {what} needs at least N GiB, M GiB available: lower {lower}". Exit status 1 (a resource, not bad input).
pub fn check_fits(device: Device, need: u64, what: &str, lower: &str) -> Result<()> {
    if device != Device::Cpu {
        return Ok(());
    }
    match available_bytes() {
        Some(available) if need > available => Err(anyhow!(
            "out of memory: {what} needs at least {} ({need} bytes), and {} is available; lower {lower}",
            gib(need),
            gib(available)
        )),
        _ => Ok(()),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Runs `work`; a panic inside it becomes an error (see the module docs). `lower` says what to lower when
/// the panic was an allocation failure (e.g. "--num-beams or --batch-size").
pub fn guard<T>(lower: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let previous = panic::take_hook();
    // The default hook would print the message and its C++ frames first; the error below says it once.
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(work));
    panic::set_hook(previous);
    match outcome {
        Ok(result) => result,
        Err(payload) => Err(anyhow!(describe_panic(&panic_text(&*payload), lower))),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// One line for a panic message: an allocation failure names the bytes and what to lower; anything else
/// is an internal error, cut before libtorch's frames.
pub fn describe_panic(text: &str, lower: &str) -> String {
    let lowered = text.to_lowercase();
    let oom = ["out of memory", "can't allocate memory", "bad_alloc", "cannot allocate memory"];
    let first = text.split("\nframe #").next().unwrap_or(text).lines().next().unwrap_or(text).trim();
    if oom.iter().any(|p| lowered.contains(p)) {
        let bytes = text
            .split("tried to allocate ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|b| format!(" (libtorch asked for {b} bytes)"))
            .unwrap_or_default();
        return format!("out of memory{bytes}; lower {lower}");
    }
    let first: String = first.chars().take(400).collect();
    format!("internal error (please report it, with the command line): {first}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_and_other_panics_become_one_line() {
        let torch = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 603084000000 bytes. Error code 12\\nframe #0: c10::ThrowEnforceNotMet\")";
        let m = describe_panic(torch, "--num-beams");
        assert_eq!(m, "out of memory (libtorch asked for 603084000000 bytes); lower --num-beams");
        let m = describe_panic("index out of bounds\nframe #0: at::native", "x");
        assert!(m.starts_with("internal error") && m.ends_with("index out of bounds") && !m.contains("frame"), "{m}");
        let e = guard("--batch-size", || -> Result<()> { panic!("CUDA out of memory. Tried to allocate 2 GiB") });
        assert_eq!(e.unwrap_err().to_string(), "out of memory; lower --batch-size");
        assert_eq!(guard("x", || Ok(3)).unwrap(), 3);
    }

    #[test]
    fn sizes_saturate_and_fit_checks_use_available_memory() {
        assert_eq!(tensor_bytes(&[2, 3], Kind::Float), 24);
        assert_eq!(tensor_bytes(&[u64::MAX, 2], Kind::Float), u64::MAX);
        let e = check_fits(Device::Cpu, u64::MAX, "the logits", "--batch-size").unwrap_err().to_string();
        assert!(e.starts_with("out of memory: the logits needs at least") && e.ends_with("lower --batch-size"), "{e}");
        assert!(check_fits(Device::Cpu, 1, "one byte", "x").is_ok());
    }
}
