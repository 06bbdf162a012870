//! What a GPU benchmark must print beside its numbers: the card, driver, CUDA and cuDNN, and,
//! while it runs, how busy the GPU is and how much of its memory is in use. Read through NVML
//! (libnvidia-ml.so.1, the driver's own library, as nvidia-smi does), loaded at run time so
//! that machines without a driver need nothing.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libloading::Library;

type Handle = *mut c_void;

#[repr(C)]
#[derive(Default)]
struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

#[repr(C)]
#[derive(Default)]
struct Memory {
    total: u64,
    free: u64,
    used: u64,
}

/// NVML, initialised, and the handle of GPU 0.
struct Nvml {
    lib: Library,
    device: Handle,
}

// SAFETY: NVML is thread-safe (its documentation says so of every call used here).
unsafe impl Send for Nvml {}

impl Nvml {
    fn open() -> Option<Nvml> {
        // SAFETY: the driver's NVML library; each symbol is called with its documented signature.
        unsafe {
            let lib = Library::new("libnvidia-ml.so.1").ok()?;
            let init: libloading::Symbol<unsafe extern "C" fn() -> c_int> =
                lib.get(b"nvmlInit_v2").ok()?;
            if init() != 0 {
                return None;
            }
            let by_index: libloading::Symbol<unsafe extern "C" fn(c_uint, *mut Handle) -> c_int> =
                lib.get(b"nvmlDeviceGetHandleByIndex_v2").ok()?;
            let mut device: Handle = std::ptr::null_mut();
            if by_index(0, &mut device) != 0 {
                return None;
            }
            Some(Nvml { lib, device })
        }
    }

    fn string(&self, symbol: &[u8], with_device: bool) -> Option<String> {
        let mut buf = [0 as c_char; 128];
        // SAFETY: as in `open`; the buffer is as long as we say.
        let rc = unsafe {
            if with_device {
                let f: libloading::Symbol<
                    unsafe extern "C" fn(Handle, *mut c_char, c_uint) -> c_int,
                > = self.lib.get(symbol).ok()?;
                f(self.device, buf.as_mut_ptr(), buf.len() as c_uint)
            } else {
                let f: libloading::Symbol<unsafe extern "C" fn(*mut c_char, c_uint) -> c_int> =
                    self.lib.get(symbol).ok()?;
                f(buf.as_mut_ptr(), buf.len() as c_uint)
            }
        };
        (rc == 0).then(|| {
            // SAFETY: NVML writes a NUL-terminated string into the buffer on success.
            unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        })
    }

    /// (percent of the last sample period in which a kernel ran, bytes of device memory used)
    fn sample(&self) -> Option<(u32, u64)> {
        let mut u = Utilization::default();
        let mut m = Memory::default();
        // SAFETY: as in `open`.
        unsafe {
            let util: libloading::Symbol<unsafe extern "C" fn(Handle, *mut Utilization) -> c_int> =
                self.lib.get(b"nvmlDeviceGetUtilizationRates").ok()?;
            let mem: libloading::Symbol<unsafe extern "C" fn(Handle, *mut Memory) -> c_int> =
                self.lib.get(b"nvmlDeviceGetMemoryInfo").ok()?;
            if util(self.device, &mut u) != 0 || mem(self.device, &mut m) != 0 {
                return None;
            }
        }
        Some((u.gpu, m.used))
    }
}

/// The versions a GPU number depends on.
#[derive(Debug, Clone, Default)]
pub struct GpuInfo {
    pub name: String,
    pub driver: String,
    /// CUDA runtime libtorch runs on, e.g. "13.0".
    pub cuda_runtime: String,
    pub cudnn: String,
}

impl GpuInfo {
    /// `None` without NVML (no NVIDIA driver).
    pub fn read() -> Option<GpuInfo> {
        let nvml = Nvml::open()?;
        Some(GpuInfo {
            name: nvml.string(b"nvmlDeviceGetName", true)?,
            driver: nvml
                .string(b"nvmlSystemGetDriverVersion", false)
                .unwrap_or_default(),
            cuda_runtime: cuda_runtime_version().unwrap_or_else(|| "unknown".into()),
            cudnn: cudnn_version(),
        })
    }

    /// A one-line description for benchmark headers.
    pub fn line(&self) -> String {
        let tf32 = match crate::run::device::tf32() {
            Some(t) => format!(
                "TF32 in fp32 convolutions {}, in fp32 matmuls {}",
                if t.convolutions { "on" } else { "off" },
                if t.matmul { "on" } else { "off" }
            ),
            None => "TF32: libtorch's defaults".into(),
        };
        format!(
            "{}, driver {}, CUDA runtime {}, cuDNN {}; {tf32}",
            self.name, self.driver, self.cuda_runtime, self.cudnn
        )
    }
}

/// cuDNN's version as libtorch reports it (91900 -> "9.19.0").
fn cudnn_version() -> String {
    let v = tch::utils::version_cudnn();
    if v <= 0 {
        return "none".into();
    }
    format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
}

/// The CUDA runtime's version from libcudart (loaded by libtorch_cuda already).
fn cuda_runtime_version() -> Option<String> {
    for name in ["libcudart.so.13", "libcudart.so.12", "libcudart.so"] {
        // SAFETY: cudaRuntimeGetVersion(int*) has this signature in every CUDA release.
        unsafe {
            let Ok(lib) = Library::new(name) else {
                continue;
            };
            let f: libloading::Symbol<unsafe extern "C" fn(*mut c_int) -> c_int> =
                lib.get(b"cudaRuntimeGetVersion").ok()?;
            let mut v: c_int = 0;
            if f(&mut v) == 0 {
                return Some(format!("{}.{}", v / 1000, (v % 1000) / 10));
            }
        }
    }
    None
}

/// Samples GPU utilisation and device memory on a thread while a benchmark runs.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u32, u64)>>,
}

/// What the sampler saw.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    /// Mean of NVML's utilisation samples: the fraction of time a kernel was running.
    pub busy: f64,
    /// Most device memory in use at any sample (the whole device), bytes.
    pub peak_memory: u64,
    pub samples: usize,
}

impl Sampler {
    /// `None` without NVML.
    pub fn start(every: Duration) -> Option<Sampler> {
        let nvml = Nvml::open()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(s) = nvml.sample() {
                    samples.push(s);
                }
                std::thread::sleep(every);
            }
            samples
        });
        Some(Sampler { stop, thread })
    }

    pub fn finish(self) -> Busy {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().unwrap_or_default();
        let n = samples.len().max(1) as f64;
        Busy {
            busy: samples.iter().map(|s| s.0 as f64).sum::<f64>() / n / 100.0,
            peak_memory: samples.iter().map(|s| s.1).max().unwrap_or(0),
            samples: samples.len(),
        }
    }
}

pub use crate::run::device::peak_host_memory;

/// Waits for the device's queued work (so clocks read after it measure it).
pub fn synchronize(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_line_names_what_the_numbers_depend_on() {
        let info = GpuInfo {
            name: "NVIDIA H100 80GB HBM3".into(),
            driver: "580.159.04".into(),
            cuda_runtime: "13.0".into(),
            cudnn: "9.19.0".into(),
        };
        let line = info.line();
        for part in [
            "NVIDIA H100 80GB HBM3",
            "driver 580.159.04",
            "CUDA runtime 13.0",
            "cuDNN 9.19.0",
            "TF32",
        ] {
            assert!(line.contains(part), "{line}");
        }
        assert!(peak_host_memory() > 1 << 20);
    }
}
