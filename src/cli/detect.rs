//! `rcnn detect`.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::detect::batch::WarpMode;
use inception_rcnn::detect::StageTimes;
use inception_rcnn::ensemble::Head;
use inception_rcnn::jobs::detect::{DetectJob, DetectSummary};
use inception_rcnn::run::shard::ShardSpec;

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file(s); several make an ensemble whose softmax scores are averaged.
    #[arg(long = "model", required = true, value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub(super) out: PathBuf,
    /// What scores a region: the network's softmax, or the class SVMs a model carries after
    /// `rcnn train-heads --svm` (sigmoid of the margin).
    #[arg(long, value_enum, default_value_t = Head::Softmax)]
    head: Head,
    /// Keep each proposal's box: no class-specific box regression even when the model carries
    /// regressors (`rcnn train-heads --bbox-reg`). With them, boxes are regressed before NMS.
    #[arg(long)]
    no_bbox_reg: bool,
    /// Output formats: ilsvrc (detections.txt + image_list.txt), csv, coco (detections.json),
    /// txt (one file per image in txt/).
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Where crops are warped: on the network's device from the image uploaded once (grid
    /// sampling), or by OpenCV on the CPU.
    #[arg(long, value_enum, default_value_t = WarpMode::Device)]
    warp: WarpMode,
    /// Proposals kept per image (R-CNN: 2000).
    #[arg(long, default_value_t = 2000, value_parser = super::range::count)]
    max_proposals: usize,
    /// Per-class NMS IoU (R-CNN's ILSVRC code: 0.3).
    #[arg(long, default_value_t = 0.3, value_parser = super::range::iou)]
    nms_iou: f32,
    /// Drop detections scoring below this.
    #[arg(long, default_value_t = 0.01, value_parser = super::range::score)]
    score_threshold: f32,
    #[arg(long, default_value_t = 100, value_parser = super::range::count)]
    top_per_class: usize,
    #[arg(long, default_value_t = 1000, value_parser = super::range::count)]
    top_per_image: usize,
    /// Precomputed proposals (the CSV or JSON `rcnn proposals --out` writes) instead of
    /// running selective search.
    #[arg(long, value_name = "FILE")]
    proposals: Option<PathBuf>,
    #[command(flatten)]
    source: super::proposals::ProposalOptions,
    /// Draw each image's detections (score at least --visualize-threshold) into DIR, with an
    /// index.html showing them as a grid.
    #[arg(long, value_name = "DIR")]
    visualize: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5, value_parser = super::range::score)]
    visualize_threshold: f32,
    /// Take a deterministic 1/N of the images (every N-th, starting at the K-th of the sorted
    /// list), for N machines sharing a set; `rcnn merge` joins their outputs. `auto`: K and N
    /// from the scheduler (a Slurm array task, srun's tasks, a Kubernetes Indexed Job with
    /// RCNN_SHARD_COUNT).
    #[arg(long, value_name = "K/N|auto")]
    pub(super) shard: Option<ShardSpec>,
    /// Continue a run that was stopped or killed: images already in its journal (in --out)
    /// are not done again, and the outputs equal an uninterrupted run's.
    #[arg(long)]
    pub(super) resume: bool,
    /// Print the time of each stage at the end.
    #[arg(long)]
    profile: bool,
    /// Stop at the first bad line or box of the --proposals file instead of skipping it.
    #[arg(long)]
    strict: bool,
}

impl DetectArgs {
    fn job(self, threads: Option<usize>) -> DetectJob {
        DetectJob {
            images: self.images,
            models: self.models,
            out: self.out,
            head: self.head,
            no_bbox_reg: self.no_bbox_reg,
            formats: self.format,
            inference: self.inference.settings(threads),
            warp: self.warp,
            max_proposals: self.max_proposals,
            nms_iou: self.nms_iou,
            score_threshold: self.score_threshold,
            top_per_class: self.top_per_class,
            top_per_image: self.top_per_image,
            proposals: self.proposals,
            source: self.source.source(),
            visualize: self.visualize,
            visualize_threshold: self.visualize_threshold,
            shard: self.shard,
            resume: self.resume,
            strict: self.strict,
        }
    }
}

fn print_summary(s: &DetectSummary, out: &std::path::Path) {
    let per_image = |n: usize| n as f64 / s.images.max(1) as f64;
    println!(
        "{} images{}{}, {:.0} proposals and {:.1} detections per image, {:.2} images/s; outputs in {}",
        s.images,
        if s.resumed > 0 { format!(" ({} from the journal)", s.resumed) } else { String::new() },
        if s.skipped > 0 { format!(" ({} skipped, each named above)", s.skipped) } else { String::new() },
        per_image(s.proposals),
        per_image(s.detections),
        s.processed as f64 / s.times.wall,
        out.display()
    );
}

fn print_profile(times: &StageTimes) {
    println!(
        "stage seconds (decode and proposals summed over the workers, which overlap the device stage):"
    );
    for (name, s) in [
        ("decode", times.decode),
        ("proposals", times.proposals),
        ("upload", times.upload),
        ("warp", times.warp),
        ("classify", times.classify),
        ("readback", times.readback),
        ("postprocess", times.postprocess),
        ("starved", times.starved),
        ("wall", times.wall),
    ] {
        println!("  {name:<12} {s:>9.3}");
    }
}

pub fn run(args: DetectArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let profile = args.profile;
    let job = args.job(threads);
    let summary = job.run(&super::Bars::default())?;
    print_summary(&summary, &job.out);
    if profile {
        print_profile(&summary.times);
    }
    Ok(())
}
