//! Device selection: `cpu`, `cuda`, `cuda:N` or `auto`, as accepted by every `--device` flag of dpft.
//!
//! `auto` picks CUDA device 0 when libtorch sees a GPU (`tch::Cuda::is_available()`), else the CPU. An
//! explicit CUDA request on a machine without one is an error, never a silent fall-back to the CPU: a run
//! that a user sized for a GPU should not quietly take days.

use std::fmt;
use std::str::FromStr;

use tch::{Cuda, Device};

/// A device as the user asked for it, before it is checked against the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

/// Errors of device parsing and resolution.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The text is not one of the accepted forms.
    #[error("unknown device `{0}`: expected cpu, cuda, cuda:N (N = 0, 1, …) or auto")]
    Parse(String),
    /// CUDA was asked for but libtorch sees no GPU.
    #[error(
        "device `{0}` requested but CUDA is not available (no GPU, or libtorch was built without CUDA); \
         use --device cpu or --device auto"
    )]
    CudaUnavailable(DeviceSpec),
    /// The ordinal is past the number of visible GPUs.
    #[error("device `{spec}` requested but only {count} CUDA device(s) are visible (cuda:0 … cuda:{last})", last = count - 1)]
    NoSuchGpu {
        /// What was asked for.
        spec: DeviceSpec,
        /// How many CUDA devices libtorch sees (≥ 1).
        count: usize,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Checks the request against what libtorch sees and returns the device to use.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        self.resolve_with(Cuda::device_count().max(0) as usize)
    }

    /// [`resolve`](Self::resolve) with the number of visible CUDA devices given (testable without a GPU).
    pub fn resolve_with(self, cuda_devices: usize) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if cuda_devices > 0 => Ok(Device::Cuda(0)),
            Self::Auto => Ok(Device::Cpu),
            Self::Cuda(_) if cuda_devices == 0 => Err(DeviceError::CudaUnavailable(self)),
            Self::Cuda(n) if n >= cuda_devices => Err(DeviceError::NoSuchGpu { spec: self, count: cuda_devices }),
            Self::Cuda(n) => Ok(Device::Cuda(n)),
        }
    }
}

/// A one-line description of a resolved device for logs, e.g. `cuda:0 (1 CUDA device visible)`.
pub fn describe(device: Device) -> String {
    let count = Cuda::device_count().max(0);
    match device {
        Device::Cuda(n) => format!("cuda:{n} ({count} CUDA device(s) visible)"),
        _ if count > 0 => format!("cpu ({count} CUDA device(s) visible but not used)"),
        _ => "cpu (CUDA not available)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CPU".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("auto".parse(), Ok(DeviceSpec::Auto));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        for bad in ["", "cuda:", "cuda:-1", "cuda:x", "tpu", "cuda0"] {
            assert_eq!(bad.parse::<DeviceSpec>(), Err(DeviceError::Parse(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda(0), DeviceSpec::Cuda(7)] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }
    }

    #[test]
    fn resolution_never_falls_back_silently() {
        assert_eq!(DeviceSpec::Auto.resolve_with(0), Ok(Device::Cpu));
        assert_eq!(DeviceSpec::Auto.resolve_with(2), Ok(Device::Cuda(0)));
        assert_eq!(DeviceSpec::Cpu.resolve_with(2), Ok(Device::Cpu));
        assert_eq!(DeviceSpec::Cuda(1).resolve_with(2), Ok(Device::Cuda(1)));
        assert_eq!(DeviceSpec::Cuda(0).resolve_with(0), Err(DeviceError::CudaUnavailable(DeviceSpec::Cuda(0))));
        assert_eq!(
            DeviceSpec::Cuda(2).resolve_with(2),
            Err(DeviceError::NoSuchGpu { spec: DeviceSpec::Cuda(2), count: 2 })
        );
        let msg = DeviceError::NoSuchGpu { spec: DeviceSpec::Cuda(2), count: 2 }.to_string();
        assert!(msg.contains("cuda:0 … cuda:1"), "{msg}");
    }

    #[test]
    fn resolve_agrees_with_libtorch() {
        // The real machine: auto must pick CUDA exactly when libtorch reports it.
        let expected = if Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu };
        assert_eq!(DeviceSpec::Auto.resolve(), Ok(expected));
    }
}
