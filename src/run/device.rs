//! Where the networks run: `--device auto|cpu|cuda|cuda:N`.
//!
//! Rust links with `--as-needed`, so nothing references libtorch_cuda.so and the linker drops
//! it; CUDA then looks absent. Loading it with dlopen at start-up registers libtorch's CUDA
//! backend, after which `tch::Cuda::is_available()` answers truly.

use std::fmt;
use std::path::{Path, PathBuf};
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

/// Runs before `main`, and before every test of every test binary: ATen asks "is CUDA there?"
/// once per process and keeps the answer, so libtorch_cuda.so must be loaded before anything
/// (a `manual_seed`, reading a `.pth`) can ask. Only the dlopen happens here; the GPUs are
/// counted later, on first use.
#[ctor::ctor]
fn load_cuda_before_main() {
    let _ = load_libtorch_cuda();
}

static LOADED: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads libtorch_cuda.so once per process: `Err` holds the loader's reason (which names the
/// missing library) when it cannot.
fn load_libtorch_cuda() -> &'static Result<(), String> {
    LOADED.get_or_init(|| {
        // dlopen searches LD_LIBRARY_PATH and the binary's RUNPATH (our libtorch folder).
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
        // SAFETY: libtorch_cuda's initialisers only register CUDA kernels with libtorch.
        let loaded =
            unsafe { libloading::os::unix::Library::open(Some("libtorch_cuda.so"), flags) };
        match loaded {
            Ok(lib) => {
                // Kept for the life of the process: libtorch now holds pointers into it.
                std::mem::forget(lib);
                Ok(())
            }
            Err(e) => Err(format!("libtorch_cuda.so could not be loaded ({e})")),
        }
    })
}

/// The NVIDIA GPU the kernel exposes, if any (`/dev/nvidia0`, or an entry of
/// `/proc/driver/nvidia/gpus`), whether or not CUDA can use it.
pub fn gpu_visible() -> Option<String> {
    if let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        if let Some(e) = entries.flatten().next() {
            return Some(format!(
                "/proc/driver/nvidia/gpus/{}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    let dev = Path::new("/dev/nvidia0");
    dev.exists().then(|| dev.display().to_string())
}

/// libtorch_cuda.so loaded (see [`load_cuda_before_main`]), then asks libtorch for GPUs.
pub fn cuda_status() -> &'static CudaStatus {
    static STATUS: OnceLock<CudaStatus> = OnceLock::new();
    STATUS.get_or_init(|| {
        let loaded = load_libtorch_cuda();
        let devices = if tch::Cuda::is_available() {
            tch::Cuda::device_count()
        } else {
            0
        };
        let reason = match (devices, loaded) {
            (0, Ok(())) => Some(match gpu_visible() {
                Some(gpu) => format!(
                    "libtorch_cuda.so loaded and a GPU is visible ({gpu}) but CUDA finds no device (the driver's libcuda.so.1: {})",
                    find_library("libcuda.so.1", &[]).map_or("missing".into(), |p| p.display().to_string())
                ),
                None => "libtorch_cuda.so loaded but no GPU is visible".to_string(),
            }),
            (0, Err(r)) => Some(r.clone()),
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
                let reason = reason.as_deref().unwrap_or("no CUDA");
                // A GPU that goes unused is worth a warning; a machine without one is not.
                match gpu_visible() {
                    Some(gpu) => tracing::warn!(
                        "a GPU is visible ({gpu}) but CUDA cannot be used, so the CPU runs: {reason} (`rcnn env` lists the CUDA libraries found and missing)"
                    ),
                    None => tracing::debug!("auto device: {reason}"),
                }
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
    if let Device::Cuda(_) = device {
        // Fixed-size batches of one shape: let cuDNN pick its fastest algorithms once.
        tch::Cuda::cudnn_set_benchmark(true);
        // PyTorch's defaults, set rather than assumed, so that benchmarks can say what ran.
        set_tf32(Tf32::PYTORCH_DEFAULTS);
    }
    tracing::info!("device {} ({} CPU threads)", describe(device), threads);
    Ok(device)
}

/// Whether fp32 convolutions (cuDNN) and matrix products (cuBLAS) may use TF32 on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tf32 {
    pub convolutions: bool,
    pub matmul: bool,
}

impl Tf32 {
    /// torch.backends.cudnn.allow_tf32 = True, torch.backends.cuda.matmul.allow_tf32 = False.
    pub const PYTORCH_DEFAULTS: Tf32 = Tf32 {
        convolutions: true,
        matmul: false,
    };
    /// True fp32 everywhere (the tests compare fp32 results to 1e-5).
    pub const OFF: Tf32 = Tf32 {
        convolutions: false,
        matmul: false,
    };
}

static TF32: OnceLock<std::sync::Mutex<Option<Tf32>>> = OnceLock::new();

/// Sets libtorch's TF32 switches (tch has no binding: `at::globalContext()` and its two
/// setters, looked up in libtorch_cpu by their C++ names, stable within libtorch 2.11).
/// Returns false, changing nothing, where the symbols are missing.
pub fn set_tf32(tf32: Tf32) -> bool {
    use std::ffi::c_void;
    // SAFETY: the signatures are those of at::globalContext() -> Context&, and
    // Context::setAllowTF32CuDNN(bool) / setAllowTF32CuBLAS(bool) with `this` first (Itanium ABI).
    let done = unsafe {
        let this = libloading::os::unix::Library::this();
        let context = this.get::<unsafe extern "C" fn() -> *mut c_void>(b"_ZN2at13globalContextEv");
        let cudnn = this
            .get::<unsafe extern "C" fn(*mut c_void, bool)>(b"_ZN2at7Context17setAllowTF32CuDNNEb");
        let cublas = this.get::<unsafe extern "C" fn(*mut c_void, bool)>(
            b"_ZN2at7Context18setAllowTF32CuBLASEb",
        );
        match (context, cudnn, cublas) {
            (Ok(context), Ok(cudnn), Ok(cublas)) => {
                let c = context();
                cudnn(c, tf32.convolutions);
                cublas(c, tf32.matmul);
                true
            }
            _ => false,
        }
    };
    if done {
        *TF32
            .get_or_init(Default::default)
            .lock()
            .expect("not poisoned") = Some(tf32);
    } else {
        tracing::warn!("libtorch's TF32 switches were not found; its defaults stay");
    }
    done
}

/// The TF32 switches as last set by [`set_tf32`] (`None`: libtorch's own defaults, untouched).
pub fn tf32() -> Option<Tf32> {
    *TF32
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned")
}

/// One shared library that CUDA in libtorch needs, and where the loader would find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLibrary {
    pub name: String,
    pub path: Option<PathBuf>,
}

/// The C runtime and compiler libraries, present on every system: not worth listing.
const SYSTEM_LIBRARIES: [&str; 9] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "ld-linux-x86-64.so.2",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libgomp.so.1",
];

/// Folders the dynamic loader searches by default on Debian and in NVIDIA's containers.
const SYSTEM_DIRS: [&str; 7] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/usr/local/nvidia/lib64",
    "/usr/local/cuda/lib64",
    "/usr/lib",
];

/// `dirs`, then LD_LIBRARY_PATH, then our libtorch folder, then the system's folders.
fn find_library(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let env_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.iter()
        .cloned()
        .chain(env_dirs)
        .chain(std::iter::once(PathBuf::from(env!("RCNN_LIBTORCH_LIB"))))
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// A library's NEEDED entries and its RPATH/RUNPATH folders (`$ORIGIN` expanded).
fn dynamic_entries(path: &Path) -> Option<(Vec<String>, Vec<PathBuf>)> {
    use object::elf;
    use object::read::elf::{Dyn, FileHeader};
    let data = std::fs::read(path).ok()?;
    let header = elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, &*data).ok()?;
    // The index that comes with the entries is their string table's.
    let (entries, strings) = sections.dynamic(endian, &*data).ok()??;
    let strings = sections.strings(endian, &*data, strings).ok()?;
    let origin = path.parent().unwrap_or(Path::new("."));
    let (mut needed, mut dirs) = (Vec::new(), Vec::new());
    for entry in entries {
        let tag = entry.d_tag(endian) as u32;
        let Ok(value) = entry.string(endian, strings) else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match tag {
            elf::DT_NEEDED => needed.push(value),
            elf::DT_RPATH | elf::DT_RUNPATH => dirs.extend(
                value
                    .split(':')
                    .map(|d| PathBuf::from(d.replace("$ORIGIN", &origin.to_string_lossy()))),
            ),
            _ => {}
        }
    }
    Some((needed, dirs))
}

/// libtorch_cuda.so and every library it needs, directly or through libtorch's other CUDA
/// libraries, each found or missing; then the driver's libcuda.so.1. For `rcnn env`: the
/// first missing one is what stops `--device cuda`.
pub fn cuda_libraries() -> Vec<SharedLibrary> {
    let mut out: Vec<SharedLibrary> = Vec::new();
    let mut queue = vec![(String::from("libtorch_cuda.so"), Vec::<PathBuf>::new())];
    while let Some((name, dirs)) = queue.pop() {
        if SYSTEM_LIBRARIES.contains(&name.as_str()) || out.iter().any(|l| l.name == name) {
            continue;
        }
        let path = find_library(&name, &dirs);
        // Follow libtorch's own libraries and NVIDIA's (their NEEDED reach further CUDA ones).
        if let Some((needed, rpath)) = path.as_deref().and_then(dynamic_entries) {
            for n in needed.into_iter().rev() {
                queue.push((n, rpath.clone()));
            }
        }
        out.push(SharedLibrary { name, path });
    }
    // libtorch's CPU side is there already (we run on it); list what CUDA adds.
    out.retain(|l| !["libc10.so", "libtorch_cpu.so"].contains(&l.name.as_str()));
    out.push(SharedLibrary {
        name: "libcuda.so.1 (driver)".into(),
        path: find_library("libcuda.so.1", &[]),
    });
    out
}

/// `cpu` or `cuda:N of M`, for logs and tables.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i} of {} GPU(s)", cuda_status().devices),
        Device::Cpu => "cpu".to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The device tests run on: `RCNN_TEST_DEVICE` (cpu, cuda, cuda:N; default cpu), so that
/// `scripts/gpu-check.sh` runs the model, classifier, detect and train tests on a GPU. Asking
/// for CUDA where there is none fails the test with the reason, rather than passing on the CPU.
pub fn test_device() -> Device {
    let choice: DeviceChoice = std::env::var("RCNN_TEST_DEVICE")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .expect("RCNN_TEST_DEVICE: auto, cpu, cuda or cuda:N")
        })
        .unwrap_or(DeviceChoice::Cpu);
    let device = select(choice, None).expect("RCNN_TEST_DEVICE names a usable device");
    // fp32 means fp32 in the tests: their tolerances (1e-5) are for IEEE arithmetic.
    set_tf32(Tf32::OFF);
    device
}

/// All cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The most memory this process has held (resident), bytes: for benchmarks and the debug log.
pub fn peak_host_memory() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss.max(0) as u64 * 1024
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
    fn libtorch_cuda_is_loaded_before_any_test_runs() {
        // The constructor ran before the test harness: whatever the outcome, it was decided
        // before any test could seed a generator or load a model.
        assert!(LOADED.get().is_some());
    }

    #[test]
    fn the_cuda_libraries_are_listed_found_or_missing() {
        let libs = cuda_libraries();
        assert_eq!(libs[0].name, "libtorch_cuda.so");
        assert!(
            libs[0].path.is_some(),
            "setup.sh puts libtorch_cuda.so in third_party"
        );
        assert!(libs.iter().any(|l| l.name == "libcudart.so.13"));
        assert!(libs.last().unwrap().name.starts_with("libcuda.so.1"));
        // Whatever cannot be found is what the loader's reason names.
        if let Err(reason) = load_libtorch_cuda() {
            let missing: Vec<&str> = libs
                .iter()
                .filter(|l| l.path.is_none())
                .map(|l| l.name.as_str())
                .collect();
            assert!(
                missing.iter().any(|m| reason.contains(m)),
                "{reason} vs {missing:?}"
            );
        }
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
