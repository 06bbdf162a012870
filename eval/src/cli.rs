//! The `map-eval` command, shared by the standalone binary and `rcnn map-eval`.
//!
//! Behind the `cli` feature: the library itself never sees clap.

use std::path::PathBuf;

use clap::Args;

use crate::formats::{BoxFormat, Format};
use crate::load::{load, Inputs, Loaded};
use crate::metrics::{Evaluation, Metric};
pub use crate::report::{report, ClassReport, Report};
use crate::EvalError;

#[derive(Args, Debug, Clone)]
pub struct MapEvalArgs {
    /// Ground truth: a folder of VOC/ILSVRC XML (or txt) files, a COCO JSON, a CSV, or a folder
    /// of YOLO labels (with an `images` folder beside it, and data.yaml, classes.txt or
    /// --classes naming the classes).
    #[arg(long, value_name = "PATH")]
    pub gt: PathBuf,
    /// Detections: an ILSVRC submission txt, a COCO results JSON, a CSV, or a folder of txt.
    #[arg(long, value_name = "PATH")]
    pub dets: PathBuf,
    /// ilsvrc (eval_detection.m), voc07 (11-point), voc (all-point) or coco (pycocotools).
    #[arg(long, default_value = "ilsvrc", value_parser = parse_metric)]
    pub metric: Metric,
    /// IoU threshold of ilsvrc (its cap for large objects), voc07 and voc.
    #[arg(long, default_value_t = 0.5, value_parser = iou_threshold)]
    pub iou: f64,
    /// Class list: one name per line, or `ID<TAB>WNID<TAB>name` (default: the ILSVRC 200 when
    /// the ground truth uses them, else the names found in it, sorted).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// (image, class) pairs to ignore, `<image index or name> <class>` per line (ILSVRC).
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<PathBuf>,
    /// Image list (`<image_id> <index>` per line, as ILSVRC's val.txt): names the images of an
    /// ILSVRC submission.
    #[arg(long, value_name = "FILE")]
    pub image_list: Option<PathBuf>,
    /// Evaluate only the images this file names (one a line, with or without extension, as
    /// VOC's ImageSets/Main/test.txt); objects and detections of other images are left out.
    #[arg(long, value_name = "FILE")]
    pub subset: Option<PathBuf>,
    /// Format of --dets: ilsvrc, coco, csv or txt (default: guessed from the path).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Format of --gt: voc, coco, csv, txt or yolo (default: guessed from the path).
    #[arg(long, value_parser = parse_format)]
    pub gt_format: Option<Format>,
    /// The images of YOLO labels, for each image's size (default: the `images` folder beside
    /// the labels, as Ultralytics and Roboflow lay them out).
    #[arg(long, value_name = "DIR")]
    pub gt_images: Option<PathBuf>,
    /// Box layout in txt files: xyxy (x1 y1 x2 y2) or xywh (x y w h).
    #[arg(long, default_value = "xyxy", value_parser = parse_box_format)]
    pub box_format: BoxFormat,
    /// Stop at the first bad input instead of counting it.
    #[arg(long)]
    pub strict: bool,
    /// Write every number to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a precision-recall curve per class and a summary chart (PNG) into this folder.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

/// An IoU threshold: a finite number in (0, 1].
fn iou_threshold(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Ok(v) => Err(format!("{v} is outside (0, 1]")),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse().map_err(|e: EvalError| e.to_string())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e: EvalError| e.to_string())
}

fn parse_box_format(s: &str) -> Result<BoxFormat, String> {
    match s {
        "xyxy" => Ok(BoxFormat::Xyxy),
        "xywh" => Ok(BoxFormat::Xywh),
        other => Err(format!(
            "unknown box format `{other}` (expected xyxy or xywh)"
        )),
    }
}

/// Prints the per-class table (or COCO's 12 lines) and the means.
pub fn print(loaded: &Loaded, e: &Evaluation) {
    println!(
        "metric {}{}: {} classes, {} images, {} objects, {} detections",
        e.metric,
        if e.metric == Metric::Coco {
            String::new()
        } else {
            format!(" at IoU {}", e.iou)
        },
        loaded.classes.len(),
        loaded.gt.images.len(),
        loaded.gt.boxes.len(),
        loaded.dets.dets.len()
    );
    if let Some(c) = &e.coco {
        let lines = [
            ("Average Precision", "(AP)", "0.50:0.95", "all", 100),
            ("Average Precision", "(AP)", "0.50", "all", 100),
            ("Average Precision", "(AP)", "0.75", "all", 100),
            ("Average Precision", "(AP)", "0.50:0.95", "small", 100),
            ("Average Precision", "(AP)", "0.50:0.95", "medium", 100),
            ("Average Precision", "(AP)", "0.50:0.95", "large", 100),
            ("Average Recall", "(AR)", "0.50:0.95", "all", 1),
            ("Average Recall", "(AR)", "0.50:0.95", "all", 10),
            ("Average Recall", "(AR)", "0.50:0.95", "all", 100),
            ("Average Recall", "(AR)", "0.50:0.95", "small", 100),
            ("Average Recall", "(AR)", "0.50:0.95", "medium", 100),
            ("Average Recall", "(AR)", "0.50:0.95", "large", 100),
        ];
        for ((title, kind, iou, area, max), v) in lines.iter().zip(c.as_array()) {
            println!(" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={max:>3} ] = {v:.6}");
        }
        return;
    }
    let width = loaded
        .classes
        .names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 24);
    println!(
        "{:<width$} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "class", "AP", "gt", "dets", "TP@F1", "FP@F1", "P@F1", "R@F1", "recall"
    );
    for c in &e.per_class {
        if c.n_gt == 0 && c.n_dets == 0 {
            continue;
        }
        let (tp, fp, p, r) = match c.best_f1 {
            Some(b) => (
                b.tp.to_string(),
                b.fp.to_string(),
                format!("{:.4}", b.precision),
                format!("{:.4}", b.recall),
            ),
            None => ("0".into(), c.n_dets.to_string(), "-".into(), "-".into()),
        };
        let ap = if c.n_gt > 0 {
            format!("{:.4}", c.ap)
        } else {
            "-".into()
        };
        println!(
            "{:<width$} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7.4}",
            loaded.classes.names[c.class], ap, c.n_gt, c.n_dets, tp, fp, p, r, c.final_recall
        );
    }
    let with_gt = e.per_class.iter().filter(|c| c.n_gt > 0).count();
    match (e.mean_ap, e.median_ap) {
        (Some(mean), Some(median)) => {
            println!("mean AP   {mean:.4} over {with_gt} classes with ground truth");
            println!("median AP {median:.4}");
        }
        _ => println!("no class has ground truth: no mean AP"),
    }
}

/// Loads, evaluates, prints, and writes the report; bad input goes to stderr.
pub fn run(args: &MapEvalArgs) -> Result<Evaluation, EvalError> {
    let inputs = Inputs {
        gt: args.gt.clone(),
        dets: args.dets.clone(),
        gt_format: args.gt_format,
        dets_format: args.format,
        classes: args.classes.clone(),
        image_list: args.image_list.clone(),
        blacklist: args.blacklist.clone(),
        subset: args.subset.clone(),
        box_format: args.box_format,
        gt_images: args.gt_images.clone(),
        strict: args.strict,
    };
    if !(args.iou > 0.0 && args.iou <= 1.0) {
        return Err(EvalError::Usage(format!(
            "--iou must be in (0, 1], got {}",
            args.iou
        )));
    }
    inputs.protect();
    let loaded = load(&inputs)?;
    if loaded.issues.total() > 0 {
        eprintln!("warning: {}", loaded.issues);
        for example in &loaded.issues.examples {
            eprintln!("  {example}");
        }
    }
    let e = loaded.evaluate(args.metric, args.iou);
    print(&loaded, &e);
    if let Some(path) = &args.report {
        crate::write_atomically(path, &crate::report::to_json(&loaded, &e))?;
    }
    if let Some(dir) = &args.plots {
        let (n, left_out) = crate::plots::write_plots(dir, &e, &loaded.classes)?;
        eprintln!("wrote {n} plots into {}", dir.display());
        if left_out > 0 {
            eprintln!(
                "({left_out} classes past the first {} have no curve; the summary holds them all)",
                crate::plots::MAX_PR_CURVES
            );
        }
    }
    Ok(e)
}
