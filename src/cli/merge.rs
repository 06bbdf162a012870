//! `rcnn merge`: joins the outputs of `rcnn detect --shard K/N` (or `rcnn classify --shard`)
//! runs; the work is `jobs::merge`.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::jobs::merge::{MergeJob, MergeSummary};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' output folders: each with detections.csv, classes.txt and image_list.txt
    /// (detect), or classifications.json and image_paths.csv (classify).
    #[arg(required = true)]
    pub(super) shards: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output formats, as rcnn detect.
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let job = MergeJob {
        shards: args.shards,
        out: args.out,
        formats: args.format,
    };
    match job.run()? {
        MergeSummary::Detections {
            shards,
            images,
            detections,
        } => println!(
            "merged {shards} shards: {images} images, {detections} detections into {}",
            job.out.display()
        ),
        MergeSummary::Classifications {
            shards,
            classified,
            images,
        } => println!(
            "merged {shards} shards: {classified} of {images} images classified, into {}",
            job.out.display()
        ),
    }
    Ok(())
}
