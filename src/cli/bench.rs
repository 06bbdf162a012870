//! `rcnn bench ...`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
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
    println!(
        "{:<12} {:>5} {:>6} {:>10} {:>13} {:>7}",
        "layout", "prec", "batch", "crops/s", "GMAC/s", "passes"
    );
    let ours = classifier::run(&bench, |r| {
        println!(
            "{:<12} {:>5} {:>6} {:>10.2} {:>13.2} {:>7}",
            r.layout.to_string(),
            r.precision.name(),
            r.batch,
            r.crops_per_s,
            r.macs_per_s / 1e9,
            r.passes
        );
    })?;

    // The reference: torchvision's GoogLeNet in PyTorch, fp32, on the CPU.
    let comparable = device == Device::Cpu
        && args.width == 1.0
        && ours
            .iter()
            .any(|r| r.layout == Layout::Torchvision && r.precision == Precision::Fp32);
    let python = match args.reference.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => reference::find_python(),
    };
    let Some(python) = python.filter(|_| comparable) else {
        if !comparable {
            println!(
                "(no reference: it exists for the torchvision layout, fp32, width 1, on the CPU)"
            );
        } else {
            println!("(no reference: run scripts/setup-reference.sh or pass --reference PYTHON)");
        }
        return Ok(());
    };
    let batches = args
        .batch_sizes
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let script_args = vec![
        "--batch-sizes".into(),
        batches,
        "--threads".into(),
        threads.to_string(),
        "--input-size".into(),
        args.input_size.to_string(),
        "--num-classes".into(),
        args.num_classes.to_string(),
        "--min-seconds".into(),
        args.min_seconds.to_string(),
    ];
    let lines = reference::run_json_lines(
        &python,
        Path::new("scripts/bench_classifier_reference.py"),
        &script_args,
    )
    .map_err(anyhow::Error::msg)
    .context("running the PyTorch reference")?;
    if let Some(v) = lines.iter().find(|v| v.get("torch").is_some()) {
        println!(
            "\nreference: PyTorch {} + torchvision {}, {} threads, torchvision layout, fp32",
            v["torch"].as_str().unwrap_or("?"),
            v["torchvision"].as_str().unwrap_or("?"),
            v["threads"]
        );
    }
    println!(
        "{:>6} {:>14} {:>16} {:>8}",
        "batch", "ours crops/s", "PyTorch crops/s", "ratio"
    );
    for line in lines.iter().filter(|v| v.get("batch").is_some()) {
        let batch = line["batch"].as_i64().unwrap_or(0);
        let theirs = line["crops_per_s"].as_f64().unwrap_or(f64::NAN);
        if let Some(r) = ours.iter().find(|r| {
            r.layout == Layout::Torchvision && r.precision == Precision::Fp32 && r.batch == batch
        }) {
            println!(
                "{:>6} {:>14.2} {:>16.2} {:>8.2}",
                batch,
                r.crops_per_s,
                theirs,
                r.crops_per_s / theirs
            );
        }
    }
    Ok(())
}
