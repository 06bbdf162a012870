//! `rcnn bench train`: flags, then the table of regions/s per precision.

use std::time::Duration;

use clap::Args;
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::Layout;
use inception_rcnn::run::device;

use crate::cli::DeviceArgs;

#[derive(Args, Debug)]
pub(super) struct TrainBenchArgs {
    #[command(flatten)]
    device: DeviceArgs,
    #[arg(long, value_enum, default_value_t = Layout::Paper)]
    layout: Layout,
    /// Precisions (default: fp32 and bf16; fp32 only on the CPU).
    #[arg(long, value_enum, value_delimiter = ',')]
    precisions: Vec<Precision>,
    /// Regions per step (default: R-CNN's 128 on CUDA, 16 on the CPU).
    #[arg(long, value_parser = crate::cli::range::batch_i64)]
    batch: Option<i64>,
    /// Width multiplier (1 = the paper's network).
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::range::width)]
    width: f64,
    #[arg(long, default_value_t = 224, value_parser = crate::cli::range::input_size)]
    input_size: i64,
    #[arg(long, default_value_t = 201, value_parser = crate::cli::range::classes)]
    num_classes: i64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 10, value_parser = crate::cli::range::synthetic0)]
    warmup: usize,
    #[arg(long, default_value_t = 3, value_parser = crate::cli::range::synthetic)]
    repeats: usize,
    #[arg(long, default_value_t = 2.0, value_parser = crate::cli::range::non_negative)]
    min_seconds: f64,
}

pub(super) fn run(args: TrainBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::train::{run, TrainBench};
    let device = device::select(args.device.device, threads)?;
    let cuda = device.is_cuda();
    let precisions = match (&args.precisions[..], cuda) {
        ([], false) => vec![Precision::Fp32],
        ([], true) => vec![Precision::Fp32, Precision::Bf16],
        (p, _) => p.to_vec(),
    };
    let bench = TrainBench {
        layout: args.layout,
        width: args.width,
        input_size: args.input_size,
        num_classes: args.num_classes,
        batch: args.batch.unwrap_or(if cuda { 128 } else { 16 }),
        precisions,
        warmup: args.warmup,
        repeats: args.repeats,
        min_time: Duration::from_secs_f64(args.min_seconds),
        device,
    };
    println!(
        "training steps on {}: {} GoogLeNet x{} at {}x{} with auxiliary heads, {} classes, {} regions a step; {} warm-up steps, median of {} repeats of >= {} s",
        device::describe(device),
        args.layout,
        args.width,
        args.input_size,
        args.input_size,
        args.num_classes,
        bench.batch,
        args.warmup,
        args.repeats,
        args.min_seconds
    );
    super::print_gpu(device);
    println!(
        "{:<6} {:>12} {:>7} {:>8}",
        "prec", "regions/s", "steps", "vs fp32"
    );
    let mut fp32 = None;
    run(&bench, |r| {
        if r.precision == Precision::Fp32 {
            fp32 = Some(r.regions_per_s);
        }
        println!(
            "{:<6} {:>12.1} {:>7} {:>8}",
            r.precision.name(),
            r.regions_per_s,
            r.steps,
            fp32.map_or(String::new(), |f| format!("{:.2}x", r.regions_per_s / f))
        );
    })?;
    println!("(forward and backward with the auxiliary heads, loss read back each step, SGD and Polyak over flattened f32 master weights)");
    Ok(())
}
