//! `rcnn bench train-data`: flags, then the table of disk, RSS and speed per N.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub(super) struct TrainDataBenchArgs {
    /// Dataset sizes (images), each trained in its own process.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 4000, 16000])]
    sizes: Vec<usize>,
    /// Precomputed proposals per image, written with the dataset and read by `rcnn train
    /// --proposals` (0: selective search in the training process, on 500 px wide images).
    #[arg(long, default_value_t = 2000, value_parser = crate::cli::range::count0)]
    proposals: usize,
    /// Training steps per size (the log's rate over them is steps/s).
    #[arg(long, default_value_t = 30, value_parser = crate::cli::range::count)]
    steps: usize,
    /// RAM for decoded images in each run, in MB: below what any N decodes, so that the RSS
    /// that grows with N is the index's and the image list's.
    #[arg(long, value_name = "MB", default_value_t = 64, value_parser = crate::cli::range::count)]
    image_cache: usize,
    /// Keep the datasets and runs here (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// More flags for each `rcnn train` (default: the demo's small network and input size).
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value = "--width 0.25 --input-size 96 --max-background 0 --device cpu"
    )]
    train_flags: String,
}

pub(super) fn run(args: TrainDataBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::train_data::{measure, this_binary};
    let tmp = std::env::temp_dir().join(format!("rcnn-bench-train-data-{}", std::process::id()));
    let work = args.keep.clone().unwrap_or_else(|| tmp.clone());
    let rcnn = this_binary().map_err(anyhow::Error::msg)?;
    let mut flags: Vec<String> = args
        .train_flags
        .split_whitespace()
        .map(String::from)
        .collect();
    // Global flags go before the subcommand: `rcnn --threads T train ...`.
    let global: Vec<String> = threads
        .map(|t| vec!["--threads".to_string(), t.to_string()])
        .unwrap_or_default();
    // A cache smaller than any N's decoded images, so that what grows with N is the rest.
    flags.push("--image-cache".into());
    flags.push(args.image_cache.to_string());
    println!(
        "rcnn train, streamed regions, {} proposals an image, {} steps each, flags: {}",
        args.proposals,
        args.steps,
        flags.join(" ")
    );
    println!(
        "{:>7} {:>9} {:>12} {:>12} {:>16} {:>11} {:>14} {:>9}",
        "images",
        "regions",
        "disk/image",
        "index/image",
        "pixels@224/image",
        "peak RSS",
        "index s/image",
        "steps/s"
    );
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let row = measure(&rcnn, &global, &work, n, args.proposals, args.steps, &flags);
        if args.keep.is_none() {
            // Each size's images and run are measured; none is needed after.
            let _ = std::fs::remove_dir_all(work.join(format!("n-{n}")));
        }
        let row = row.map_err(anyhow::Error::msg)?;
        println!(
            "{:>7} {:>9} {:>9.1} KB {:>9.1} KB {:>13.1} MB {:>8.1} MB {:>14.5} {:>9.3}",
            row.images,
            row.regions,
            row.disk_per_image / 1e3,
            row.index_per_image / 1e3,
            row.pixels_224_per_image / 1e6,
            row.peak_rss_kb as f64 / 1e3,
            row.index_seconds_per_image,
            row.steps_per_s
        );
        rows.push(row);
    }
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if let (Some(a), Some(b)) = (rows.first(), rows.last()) {
        if b.images > a.images {
            println!(
                "peak RSS grows {:.2} KB per image from {} to {} images (the image cache is \
                 bounded at {} MB)",
                (b.peak_rss_kb as f64 - a.peak_rss_kb as f64) / (b.images - a.images) as f64,
                a.images,
                b.images,
                args.image_cache
            );
        }
    }
    Ok(())
}
