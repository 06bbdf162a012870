//! Where the networks run: `--device auto|cpu|cuda|cuda:N`.
//!
//! Rust links with `--as-needed`, so nothing references libtorch_cuda.so and the linker drops
//! it; CUDA then looks absent. Loading it with dlopen at start-up registers libtorch's CUDA
//! backend, after which `tch::Cuda::is_available()` answers truly.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use tch::Device;

/// The device a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch_cuda and a GPU are present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected auto, cpu, cuda or cuda:N)")]
    Parse(String),
    #[error("{requested} was asked for but CUDA is not available: {reason}")]
    CudaUnavailable { requested: String, reason: String },
    #[error("cuda:{index} was asked for but only {count} CUDA device(s) are visible")]
    NoSuchGpu { index: usize, count: i64 },
}

/// What start-up found out about CUDA.
#[derive(Debug, Clone)]
pub struct CudaStatus {
    pub devices: i64,
    /// Why CUDA is unusable, when it is.
    pub reason: Option<String>,
}

/// Loads libtorch_cuda.so (once per process) and asks libtorch for GPUs.
pub fn cuda_status() -> &'static CudaStatus {
    static STATUS: OnceLock<CudaStatus> = OnceLock::new();
    STATUS.get_or_init(|| {
        // dlopen searches LD_LIBRARY_PATH and the binary's RUNPATH (our libtorch folder).
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
        // SAFETY: libtorch_cuda's initialisers only register CUDA kernels with libtorch.
        let loaded =
            unsafe { libloading::os::unix::Library::open(Some("libtorch_cuda.so"), flags) };
        let reason = match loaded {
            Ok(lib) => {
                // Kept for the life of the process: libtorch now holds pointers into it.
                std::mem::forget(lib);
                None
            }
            Err(e) => Some(format!("libtorch_cuda.so could not be loaded ({e})")),
        };
        let devices = if tch::Cuda::is_available() {
            tch::Cuda::device_count()
        } else {
            0
        };
        let reason = match (devices, reason) {
            (0, None) => Some("libtorch_cuda.so loaded but no GPU is visible".to_string()),
            (0, Some(r)) => Some(r),
            (_, _) => None,
        };
        CudaStatus { devices, reason }
    })
}

/// Resolves a choice to a device, sets libtorch's CPU thread count, and logs one line.
pub fn select(choice: DeviceChoice, threads: Option<usize>) -> Result<Device, DeviceError> {
    let threads = threads.unwrap_or_else(default_threads).max(1);
    tch::set_num_threads(threads as i32);
    let device = match choice {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Auto => match cuda_status() {
            CudaStatus { devices, .. } if *devices > 0 => Device::Cuda(0),
            CudaStatus { reason, .. } => {
                tracing::debug!("auto device: {}", reason.as_deref().unwrap_or("no CUDA"));
                Device::Cpu
            }
        },
        DeviceChoice::Cuda(index) => {
            let status = cuda_status();
            if let Some(reason) = &status.reason {
                return Err(DeviceError::CudaUnavailable {
                    requested: choice.to_string(),
                    reason: reason.clone(),
                });
            }
            if index as i64 >= status.devices {
                return Err(DeviceError::NoSuchGpu {
                    index,
                    count: status.devices,
                });
            }
            Device::Cuda(index)
        }
    };
    tracing::info!("device {} ({} CPU threads)", describe(device), threads);
    Ok(device)
}

/// `cpu` or `cuda:N of M`, for logs and tables.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i} of {} GPU(s)", cuda_status().devices),
        Device::Cpu => "cpu".to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// All cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu"
            .parse::<DeviceChoice>()
            .unwrap_err()
            .to_string()
            .contains("tpu"));
    }

    #[test]
    fn auto_falls_back_to_the_cpu_without_a_gpu() {
        // On a machine without a GPU (CI), auto is the CPU and cuda is a clear error.
        if cuda_status().devices == 0 {
            assert_eq!(select(DeviceChoice::Auto, Some(1)).unwrap(), Device::Cpu);
            let err = select(DeviceChoice::Cuda(0), Some(1))
                .unwrap_err()
                .to_string();
            assert!(err.contains("CUDA is not available"), "{err}");
        }
    }
}
