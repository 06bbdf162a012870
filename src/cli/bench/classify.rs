//! `rcnn bench classify`: flags, then the table of images/s and crops/s against the raw rate.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::classify::Crops;
use inception_rcnn::run::device;

#[derive(Args, Debug)]
pub(super) struct ClassifyBenchArgs {
    #[command(flatten)]
    inference: crate::cli::InferenceArgs,
    /// Images (cycled through when --images asks for more than there are).
    #[arg(long, default_value = "data/raccoon/images")]
    from: PathBuf,
    /// Timed images per row (default: whole batches of crops, at least four, and at least 40
    /// images on CUDA, 2 on the CPU; a run's last batch is padded, which a short row would
    /// feel).
    #[arg(long, value_parser = crate::cli::range::synthetic)]
    images: Option<usize>,
    /// Crop counts to time.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Crops::One, Crops::Ten, Crops::Paper])]
    crops: Vec<Crops>,
    /// Ensemble sizes to time (the paper's test used 7).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 7], value_parser = crate::cli::range::networks)]
    networks: Vec<usize>,
    /// Width multiplier of the (untrained, torchvision-layout, 1000-class) networks.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::range::width)]
    width: f64,
}

pub(super) fn run(args: ClassifyBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::classify::{run, ClassifyBench, ClassifyLine};
    let bench = ClassifyBench {
        from: args.from.clone(),
        images: args.images,
        crops: args.crops.clone(),
        networks: args.networks.clone(),
        width: args.width,
        inference: args.inference.settings(threads),
    };
    run(&bench, |line| match line {
        ClassifyLine::Setup(s) => {
            println!(
                "rcnn classify, steady state: images of {} (one untimed first), torchvision GoogLeNet x{} width, 1000 classes, {}, {}, batch {}, {} workers, on {}",
                args.from.display(),
                args.width,
                args.inference.precision.name(),
                if s.channels_last { "channels-last" } else { "NCHW" },
                s.batch,
                s.workers,
                device::describe(s.device)
            );
            super::print_gpu(s.device);
            println!("raw: the networks' forward passes alone on a ready batch (what `rcnn bench classifier` times), crops/s through every network");
            println!(
                "{:>4} {:>5} {:>6} {:>9} {:>10} {:>11} {:>6} {:>8} {:>8} {:>9} {:>9} {:>8}",
                "nets",
                "crops",
                "images",
                "images/s",
                "crops/s",
                "raw crops/s",
                "ratio",
                "decode",
                "crops",
                "classify",
                "readback",
                "starved"
            );
        }
        ClassifyLine::Row(r) => {
            let t = &r.per_image;
            println!(
                "{:>4} {:>5} {:>6} {:>9.3} {:>10.2} {:>11.2} {:>6.2} {:>8.4} {:>8.4} {:>9.4} {:>9.4} {:>8.4}",
                r.networks,
                r.crops.name(),
                r.images,
                r.images_per_s,
                r.crops_per_s,
                r.raw_crops_per_s,
                r.crops_per_s / r.raw_crops_per_s,
                t.decode,
                t.crops,
                t.classify,
                t.readback,
                t.starved,
            );
        }
    })?;
    println!("(crops/s: crops classified per second by the whole ensemble, each through every network; ratio: against raw at the same batch; the stage columns are seconds per image, decode summed over the workers, which overlap the device)");
    Ok(())
}
