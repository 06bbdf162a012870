//! `rcnn bench detect`: flags, then the table of seconds per image in each stage.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::run::device;

#[derive(Args, Debug)]
pub(super) struct DetectBenchArgs {
    #[command(flatten)]
    inference: crate::cli::InferenceArgs,
    /// Images (cycled through when --images asks for more than there are).
    #[arg(long, default_value = "data/raccoon/images")]
    from: PathBuf,
    /// Timed images (default: 50 on CUDA, 2 on the CPU).
    #[arg(long, value_parser = crate::cli::range::synthetic)]
    images: Option<usize>,
    /// Untimed images first, so the timed ones see the steady state (default: 3 on CUDA, 0 on the CPU).
    #[arg(long, value_parser = crate::cli::range::synthetic0)]
    warmup: Option<usize>,
    /// Proposals per image, selective search's topped up with random boxes (default: R-CNN's
    /// 2000 on CUDA; 100 on the CPU, where 2000 take about 100 s per image and network).
    #[arg(long, value_parser = crate::cli::range::synthetic)]
    max_proposals: Option<usize>,
    /// Ensemble sizes to time (0: none, e.g. with --worker-sweep alone).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 6], value_parser = crate::cli::range::networks)]
    networks: Vec<usize>,
    #[arg(long, value_enum, default_value_t = inception_rcnn::detect::batch::WarpMode::Device)]
    warp: inception_rcnn::detect::batch::WarpMode,
    #[arg(long, default_value_t = 224, value_parser = crate::cli::range::input_size)]
    input_size: i64,
    /// Also time the CPU stages alone with each of these worker counts (e.g. 1,2).
    #[arg(long, value_delimiter = ',', value_parser = crate::cli::range::threads)]
    worker_sweep: Vec<usize>,
}

pub(super) fn run(args: DetectBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::detect::{run, DetectBench, DetectLine};
    let bench = DetectBench {
        from: args.from.clone(),
        images: args.images,
        warmup: args.warmup,
        max_proposals: args.max_proposals,
        networks: args.networks.clone(),
        warp: args.warp,
        input_size: args.input_size,
        inference: args.inference.settings(threads),
        worker_sweep: args.worker_sweep.clone(),
    };
    let mut first = None;
    run(&bench, |line| match line {
        DetectLine::Setup(s) => {
            println!(
                "rcnn detect, steady state: {} images of {} after {} untimed, {} proposals each (selective search, topped up with random boxes), paper GoogLeNet {}x{} x 201 classes, {}, {}, batch {}, {} workers, warp {:?} on {}",
                s.timed,
                args.from.display(),
                s.warm,
                s.max_proposals,
                args.input_size,
                args.input_size,
                args.inference.precision.name(),
                if s.channels_last { "channels-last" } else { "NCHW" },
                s.batch,
                s.workers,
                args.warp,
                device::describe(s.device)
            );
            super::print_gpu(s.device);
            println!(
                "{:>4} {:>7} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>6} {:>9} {:>9}",
                "nets", "crops", "decode", "proposals", "upload", "warp", "classify", "readback",
                "post", "starved", "wall/img", "images/s", "busy", "host GB", "dev GB"
            );
        }
        DetectLine::Row(r) => {
            let t = &r.per_image;
            println!(
                "{:>4} {:>7} {:>8.3} {:>9.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>6} {:>9.2} {:>9}",
                r.networks,
                r.crops,
                t.decode,
                t.proposals,
                t.upload,
                t.warp,
                t.classify,
                t.readback,
                t.postprocess,
                t.starved,
                t.wall,
                r.images_per_s,
                r.busy.map_or("-".into(), |b| format!("{:.0}%", b.busy * 100.0)),
                r.peak_host_bytes as f64 / 1e9,
                r.busy.map_or("-".into(), |b| format!("{:.2}", b.peak_memory as f64 / 1e9)),
            );
        }
        DetectLine::SweepStart(n) => {
            println!("(seconds per image; decode and proposals are summed over the workers, which overlap the device stage; starved: the device stage waiting for them; busy: NVML's share of time a kernel ran; memory: peaks, the device's sampled)");
            println!(
                "CPU stages alone: decode + proposals on N workers, the device warp of every box on this thread ({n} images)"
            );
            println!("{:>8} {:>10} {:>8}", "workers", "images/s", "speed-up");
        }
        DetectLine::Sweep {
            workers,
            images_per_s: rate,
        } => {
            let base = *first.get_or_insert(rate);
            println!("{workers:>8} {rate:>10.3} {:>7.2}x", rate / base);
        }
    })?;
    if args.worker_sweep.is_empty() {
        println!("(seconds per image; decode and proposals are summed over the workers, which overlap the device stage; starved: the device stage waiting for them; busy: NVML's share of time a kernel ran; memory: peaks, the device's sampled)");
    }
    Ok(())
}
