//! `rcnn env`: versions and devices, for bug reports.

use inception_rcnn::run::device;

pub fn run(threads: Option<usize>) -> anyhow::Result<()> {
    let threads = threads.unwrap_or_else(device::default_threads);
    tch::set_num_threads(threads as i32);
    println!("rcnn            {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch        {} (built against)",
        env!("RCNN_LIBTORCH_VERSION")
    );
    println!("OpenCV          {}", opencv::core::get_version_string()?);
    println!(
        "selective search (OpenCV ximgproc) {}",
        if cfg!(feature = "opencv-contrib") {
            "built in"
        } else {
            "not built (--no-default-features)"
        }
    );
    println!("CPU threads     {threads}");
    let cuda = device::cuda_status();
    match &cuda.reason {
        None => println!(
            "CUDA            {} device(s), cuDNN {}",
            cuda.devices,
            tch::utils::version_cudnn()
        ),
        Some(reason) => println!("CUDA            unavailable: {reason}"),
    }
    println!(
        "GPU (kernel)    {}",
        device::gpu_visible().unwrap_or_else(|| "none visible".into())
    );
    println!("CUDA libraries  (libtorch_cuda.so and what it loads)");
    for lib in device::cuda_libraries() {
        match &lib.path {
            Some(p) => println!("  found    {:<28} {}", lib.name, p.display()),
            None => println!("  missing  {}", lib.name),
        }
    }
    Ok(())
}
