//! `rcnn visualize`: draw any detections file; with ground truth, hits, false positives and
//! misses in distinct colours. The work is `jobs::visualize`.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::jobs::visualize::VisualizeJob;

#[derive(Args, Debug)]
pub struct VisualizeArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Detections: CSV, COCO results JSON, txt folder, or an ILSVRC submission (with
    /// --image-list).
    #[arg(long, value_name = "PATH")]
    dets: PathBuf,
    /// Ground truth (VOC/ILSVRC XML folder, COCO JSON, CSV, txt or YOLO labels, read as
    /// map-eval reads them): colours hits green, false positives red and misses yellow.
    #[arg(long, value_name = "PATH")]
    gt: Option<PathBuf>,
    /// Format of --gt: voc, coco, csv, txt or yolo (default: guessed from the path).
    #[arg(long, value_parser = super::parse_gt_format)]
    gt_format: Option<eval::formats::Format>,
    /// Class list (one name per line, or the ILSVRC tsv); default: the ground truth's, or the
    /// names found in the detections.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    image_list: Option<PathBuf>,
    /// Draw detections scoring at least this.
    #[arg(long, default_value_t = 0.5, value_parser = super::range::score64)]
    threshold: f64,
    /// IoU for a hit (inclusive pixels, as VOC).
    #[arg(long, default_value_t = 0.5, value_parser = super::range::iou64)]
    iou: f64,
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: VisualizeArgs) -> anyhow::Result<()> {
    let job = VisualizeJob {
        images: args.images,
        dets: args.dets,
        gt: args.gt,
        gt_format: args.gt_format,
        classes: args.classes,
        image_list: args.image_list,
        threshold: args.threshold,
        iou: args.iou,
        out: args.out,
    };
    let summary = job.run(&super::Bars::default())?;
    print!("drew {} images into {}", summary.drawn, job.out.display());
    if let Some((tp, fp, missed)) = summary.scored {
        print!(
            " (score >= {}, IoU >= {}: {tp} hits, {fp} false positives, {missed} misses)",
            job.threshold, job.iou
        );
    }
    println!();
    Ok(())
}
