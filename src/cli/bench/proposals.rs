//! `rcnn bench proposals`: flags, then the table of ours against OpenCV's selective search.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::run::device;

#[derive(Args, Debug)]
pub(super) struct ProposalsBenchArgs {
    /// Images (default: the shipped raccoon photos).
    #[arg(long, default_value = "data/raccoon/images")]
    images: PathBuf,
    /// Their annotations.
    #[arg(long, default_value = "data/raccoon/annotations")]
    gt: PathBuf,
    /// Only the first N images (sorted by name).
    #[arg(long, value_parser = crate::cli::range::count)]
    limit: Option<usize>,
    /// Modes to compare.
    #[arg(long, value_delimiter = ',', default_value = "fast", value_parser = parse_mode)]
    modes: Vec<proposals::Mode>,
    /// Our superpixel-scale factors: 1 is the paper's k, 2 GoogLeNet's entry.
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_parser = crate::cli::range::scale)]
    scales: Vec<f32>,
    /// Also time a MultiBox network (`rcnn train-multibox`): its best --multibox-top boxes
    /// alone and the entry's mix with fast selective search x2, against OpenCV's fast mode.
    #[arg(long, value_name = "FILE")]
    multibox: Option<PathBuf>,
    #[arg(long, default_value_t = 200, value_parser = crate::cli::range::count)]
    multibox_top: usize,
}

fn parse_mode(s: &str) -> Result<proposals::Mode, String> {
    s.parse()
}

pub(super) fn run(args: ProposalsBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::proposals::{run, ProposalsBench, ProposalsLine};
    let bench = ProposalsBench {
        images: args.images.clone(),
        gt: args.gt,
        limit: args.limit,
        modes: args.modes,
        scales: args.scales,
        multibox: args.multibox,
        multibox_top: args.multibox_top,
        device: device::DeviceChoice::Auto,
        threads,
    };
    run(&bench, &crate::cli::Bars::default(), |line| match line {
        ProposalsLine::Images(n) => {
            println!(
                "selective search on {n} images of {}, R-CNN setting (width 500, boxes >= 20 px), {} threads",
                args.images.display(),
                rayon::current_num_threads()
            );
            println!(
                "{:<8} {:<8} {:>10} {:>11} {:>11} {:>8} {:>10} {:>8}",
                "backend",
                "mode",
                "boxes/img",
                "recall@0.5",
                "recall@0.7",
                "MABO",
                "median s",
                "speed"
            );
        }
        ProposalsLine::Row {
            name,
            mode,
            quality: q,
            median,
            speed,
        } => println!(
            "{:<8} {:<8} {:>10.1} {:>11.4} {:>11.4} {:>8.4} {:>10.3} {:>8}",
            name,
            mode.to_string(),
            q.mean_boxes,
            q.recall_50,
            q.recall_70,
            q.mabo,
            median,
            speed
        ),
        ProposalsLine::Top {
            scale,
            top,
            ours: a,
            opencv: b,
        } => println!(
            "  x{scale} top {top}: recall@0.5 {:.4} vs OpenCV {:.4}, MABO {:.4} vs {:.4}",
            a.recall_50, b.recall_50, a.mabo, b.mabo
        ),
    })?;
    Ok(())
}
