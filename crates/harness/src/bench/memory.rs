//! Peak memory of a benchmark process.
//!
//! - CPU: the resident-set high-water mark of the process (Linux `VmHWM`): everything the step touched,
//!   model and optimizer state included, as the operating system counts it.
//! - CUDA: the device memory the process holds at the end of the run, as `nvidia-smi` reports it.
//!   libtorch's caching allocator keeps every block it has reserved until the process ends, so this is the
//!   peak *reserved* memory plus the CUDA context (a few hundred MB), not PyTorch's `max_memory_allocated`:
//!   tch 0.24 exposes no allocator statistics, and reading them through libtorch's C++ API would need
//!   unsafe FFI, which this workspace forbids. The Python reference reports both figures on CUDA.

use tch::Device;

/// A peak-memory figure and what it measures.
#[derive(Clone, Debug)]
pub struct PeakMemory {
    /// Bytes, when the platform reports them.
    pub bytes: Option<u64>,
    /// What the figure is.
    pub kind: &'static str,
}

/// The resident-set size (`VmRSS`) or high-water mark (`VmHWM`) of process `pid`, in bytes.
pub fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Device memory used by process `pid` according to `nvidia-smi`, in bytes.
fn nvidia_smi_bytes(pid: u32) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|line| {
        let mut fields = line.split(',').map(str::trim);
        let p: u32 = fields.next()?.parse().ok()?;
        let mib: u64 = fields.next()?.parse().ok()?;
        (p == pid).then_some(mib << 20)
    })
}

/// The peak memory of this process on `device` (see the module documentation).
pub fn peak(device: Device) -> PeakMemory {
    let pid = std::process::id();
    match device {
        Device::Cuda(_) => PeakMemory {
            bytes: nvidia_smi_bytes(pid),
            kind: "cuda: device memory held at the end (peak reserved by the caching allocator + context), nvidia-smi",
        },
        _ => {
            PeakMemory { bytes: proc_status_bytes(pid, "VmHWM:"), kind: "process resident-set high-water mark (VmHWM)" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_covers_a_buffer_touched_and_freed() {
        let pid = std::process::id();
        let rss_before = proc_status_bytes(pid, "VmRSS:").expect("VmRSS on Linux");
        let buffer = vec![1u8; 64 << 20]; // written, so resident
        let rss_live = proc_status_bytes(pid, "VmRSS:").unwrap();
        std::hint::black_box(&buffer);
        drop(buffer);
        let hwm = peak(Device::Cpu).bytes.expect("VmHWM on Linux");
        assert!(rss_live >= rss_before + (60 << 20), "{rss_before} → {rss_live}");
        // Linux batches per-thread RSS counters (up to 64 pages per thread), so VmHWM may trail a VmRSS
        // read earlier by that much; 4 MiB covers it on any thread count a test uses.
        assert!(hwm + (4 << 20) >= rss_live, "high-water mark {hwm} below a resident size seen earlier {rss_live}");
    }
}
