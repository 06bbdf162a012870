//! `rcnn classify`: GoogLeNet's ILSVRC classification test on folders of images.

use std::path::PathBuf;

use clap::Args;
use eval::classification::ClassificationReport;
use inception_rcnn::classify::Crops;
use inception_rcnn::jobs::classify::ClassifyJob;
use inception_rcnn::run::shard::ShardSpec;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file(s) (`rcnn import-weights` makes them from torchvision's state dicts); several
    /// make an ensemble whose softmax is averaged (the paper's 7). Each keeps its own
    /// normalisation and transform_input; all must have the same classes and input size.
    #[arg(long = "model", required = true, value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Output folder: classifications.csv, classifications.json, image_paths.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Crops per image: 1 (centre crop at 256, as torchvision evaluates), 10 (corners, centre
    /// and mirrors at 256) or 144 (the paper: 4 scales x 3 squares x 6 crops x 2 mirrors).
    #[arg(long, value_enum, default_value_t = Crops::One)]
    crops: Crops,
    /// Classes kept per image in the outputs, best first.
    #[arg(long, default_value_t = 5, value_parser = super::range::count)]
    top: usize,
    /// Class names: one a line, or `index<TAB>WNID<TAB>name` (default: the model's own, else
    /// the ILSVRC2012 list for 1000 outputs, else class0, class1, ...).
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    /// Ground truth: a file of `image label` lines (the label a 0-based class index or a WNID;
    /// the image its name, file name or path), or an ImageNet-style folder tree `WNID/image`.
    /// Prints top-1 and top-5 error per class and overall, as the ILSVRC devkit scores them.
    #[arg(long, value_name = "FILE|DIR")]
    labels: Option<PathBuf>,
    /// Write the errors (per class and overall) as JSON.
    #[arg(long, value_name = "FILE", requires = "labels")]
    report: Option<PathBuf>,
    /// Stop at the first bad line of --labels instead of skipping it.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Take every N-th image from the K-th of the sorted list, for N machines sharing a set
    /// (`rcnn merge` joins their outputs); `auto`: K and N from the scheduler, as detect's.
    #[arg(long, value_name = "K/N|auto")]
    shard: Option<ShardSpec>,
    /// Continue a run that was stopped or killed: images already in its journal (in --out)
    /// are not classified again.
    #[arg(long)]
    resume: bool,
}

impl ClassifyArgs {
    fn job(self, threads: Option<usize>) -> ClassifyJob {
        ClassifyJob {
            images: self.images,
            models: self.models,
            out: self.out,
            crops: self.crops,
            top: self.top,
            classes: self.classes,
            labels: self.labels,
            report: self.report,
            strict: self.strict,
            inference: self.inference.settings(threads),
            shard: self.shard,
            resume: self.resume,
        }
    }
}

fn print_report(report: &ClassificationReport) {
    println!("top-1 and top-5 error (ILSVRC devkit: an image is an error at k when its label is not among its first k classes)");
    let width = report
        .per_class
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    println!(
        "{:<width$} {:>7} {:>7} {:>7}",
        "class", "images", "top-1", "top-5"
    );
    for r in report
        .per_class
        .iter()
        .chain(std::iter::once(&report.overall))
    {
        let name: String = r.name.chars().take(width).collect();
        println!(
            "{name:<width$} {:>7} {:>7.4} {:>7.4}",
            r.images, r.top1_error, r.top5_error
        );
    }
}

pub fn run(args: ClassifyArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let job = args.job(threads);
    let s = job.run(&super::Bars::default())?;
    println!(
        "{} images{}, {} crops each, {:.2} images/s ({:.1} crops/s); outputs in {}",
        s.classified,
        if s.skipped > 0 {
            format!(" ({} skipped, each named above)", s.skipped)
        } else {
            String::new()
        },
        job.crops.name(),
        s.processed as f64 / s.wall,
        (s.processed * job.crops.count() * s.networks) as f64 / s.wall,
        job.out.display()
    );
    if let Some((report, _)) = &s.errors {
        print_report(report);
    }
    Ok(())
}
