//! `rcnn bench ...`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use inception_rcnn::bench::classifier::{self, ClassifierBench, Precision};
use inception_rcnn::bench::reference;
use inception_rcnn::device;
use inception_rcnn::model::Layout;
use tch::Device;

use super::DeviceArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Crops/s and multiply-adds/s of the region classifier per layout, precision and batch
    /// size; with the Python reference present, torchvision's GoogLeNet in the same run.
    Classifier(ClassifierArgs),
}

#[derive(Args, Debug)]
struct ClassifierArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Layouts to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Layout::Paper, Layout::Torchvision])]
    layouts: Vec<Layout>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8, 16, 32, 64, 128])]
    batch_sizes: Vec<i64>,
    /// Precisions (default: fp32 on the CPU; fp32, fp16 and bf16 on CUDA).
    #[arg(long, value_enum, value_delimiter = ',')]
    precisions: Vec<Precision>,
    #[arg(long, default_value_t = 224)]
    input_size: i64,
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    #[arg(long, default_value_t = 201)]
    num_classes: i64,
    /// Repeat each measurement for at least this many seconds.
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Python with torch + torchvision for the reference column (default: $RCNN_REFERENCE_PYTHON
    /// or .venv-ref/bin/python, made by scripts/setup-reference.sh); `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
}

pub fn run(args: BenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Classifier(a) => bench_classifier(a, threads),
    }
}

fn bench_classifier(args: ClassifierArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let threads = threads.unwrap_or_else(device::default_threads);
    let device = device::select(args.device.device, Some(threads))?;
    let precisions = if !args.precisions.is_empty() {
        args.precisions.clone()
    } else if device == Device::Cpu {
        vec![Precision::Fp32]
    } else {
        vec![Precision::Fp32, Precision::Fp16, Precision::Bf16]
    };
    let bench = ClassifierBench {
        layouts: args.layouts.clone(),
        precisions,
        batch_sizes: args.batch_sizes.clone(),
        input_size: args.input_size,
        width: args.width,
        num_classes: args.num_classes,
        min_time: Duration::from_secs_f64(args.min_seconds),
        device,
    };
    println!(
        "classifier inference on {}, {} CPU threads, input {}x{}, width {}, {} classes",
        device::describe(device),
        threads,
        args.input_size,
        args.input_size,
        args.width,
        args.num_classes
    );
    // The reference, torchvision's GoogLeNet in PyTorch (fp32, CPU), runs right after each of
    // our torchvision fp32 rows, with the same batch size, so both see the same machine load.
    let comparable = device == Device::Cpu && args.width == 1.0;
    let python = match args.reference.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => reference::find_python(),
    }
    .filter(|_| comparable);
    match &python {
        Some(p) => println!(
            "reference: torchvision's GoogLeNet in PyTorch ({}), same threads",
            p.display()
        ),
        None if comparable => {
            println!("(no reference: run scripts/setup-reference.sh or pass --reference PYTHON)")
        }
        None => println!("(no reference: it exists for width 1 on the CPU)"),
    }
    println!(
        "{:<12} {:>5} {:>6} {:>10} {:>9} {:>7} {:>12} {:>6}",
        "layout", "prec", "batch", "crops/s", "GMAC/s", "passes", "PyTorch c/s", "ratio"
    );
    let mut failure = None;
    classifier::run(&bench, |r| {
        let theirs = match &python {
            Some(py)
                if r.layout == Layout::Torchvision
                    && r.precision == Precision::Fp32
                    && failure.is_none() =>
            {
                reference_crops_per_s(py, &args, threads, r.batch)
                    .map_err(|e| failure = Some(e))
                    .ok()
            }
            _ => None,
        };
        let (theirs, ratio) = match theirs {
            Some(v) => (format!("{v:.2}"), format!("{:.2}", r.crops_per_s / v)),
            None => (String::new(), String::new()),
        };
        println!(
            "{:<12} {:>5} {:>6} {:>10.2} {:>9.2} {:>7} {:>12} {:>6}",
            r.layout.to_string(),
            r.precision.name(),
            r.batch,
            r.crops_per_s,
            r.macs_per_s / 1e9,
            r.passes,
            theirs,
            ratio
        );
    })?;
    match failure {
        Some(e) => Err(e.context("running the PyTorch reference")),
        None => Ok(()),
    }
}

/// Crops/s of torchvision's GoogLeNet in PyTorch for one batch size.
fn reference_crops_per_s(
    python: &Path,
    args: &ClassifierArgs,
    threads: usize,
    batch: i64,
) -> anyhow::Result<f64> {
    let script_args = [
        "--batch-sizes".to_string(),
        batch.to_string(),
        "--threads".into(),
        threads.to_string(),
        "--input-size".into(),
        args.input_size.to_string(),
        "--num-classes".into(),
        args.num_classes.to_string(),
        "--min-seconds".into(),
        args.min_seconds.to_string(),
    ];
    let script = Path::new("scripts/bench_classifier_reference.py");
    let lines =
        reference::run_json_lines(python, script, &script_args).map_err(anyhow::Error::msg)?;
    lines
        .iter()
        .find(|v| v["batch"].as_i64() == Some(batch))
        .and_then(|v| v["crops_per_s"].as_f64())
        .ok_or_else(|| anyhow::anyhow!("{} printed no result for batch {batch}", script.display()))
}
