//! `rcnn bench classifier`: flags, then the table of crops/s per layout, precision and batch,
//! with torchvision's GoogLeNet in PyTorch beside each group when the reference is present.

use std::time::Duration;

use clap::Args;
use inception_rcnn::bench::classifier::{self, ClassifierBench, ClassifierRow};
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::Layout;
use inception_rcnn::run::device;

use crate::cli::DeviceArgs;

#[derive(Args, Debug)]
pub(super) struct ClassifierArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Layouts to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Layout::Paper, Layout::Torchvision])]
    layouts: Vec<Layout>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8, 16, 32, 64, 128], value_parser = crate::cli::range::batch_i64)]
    batch_sizes: Vec<i64>,
    /// Precisions (default: fp32 on the CPU; fp32, fp16 and bf16 on CUDA).
    #[arg(long, value_enum, value_delimiter = ',')]
    precisions: Vec<Precision>,
    #[arg(long, default_value_t = 224, value_parser = crate::cli::range::input_size)]
    input_size: i64,
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::range::width)]
    width: f64,
    #[arg(long, default_value_t = 201, value_parser = crate::cli::range::classes)]
    num_classes: i64,
    /// Memory orders: false (NCHW), true (channels-last); default NCHW on the CPU, both on CUDA.
    #[arg(long, value_delimiter = ',', value_name = "BOOL")]
    channels_last: Vec<bool>,
    /// Untimed passes before each row's clock starts (default: 10 on CUDA, 1 on the CPU, where
    /// a pass at batch 128 takes seconds and nothing needs tuning).
    #[arg(long, value_parser = crate::cli::range::synthetic0)]
    warmup: Option<usize>,
    /// Timed repeats per row; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = crate::cli::range::synthetic)]
    repeats: usize,
    /// Each repeat lasts at least this many seconds.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::range::non_negative)]
    min_seconds: f64,
    /// Also time torch.compile'd torchvision GoogLeNet in the reference column (slow to start).
    #[arg(long)]
    compile: bool,
    /// Python with torch + torchvision for the reference column (default: $RCNN_REFERENCE_PYTHON
    /// or .venv-ref/bin/python, made by scripts/setup-reference.sh); `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
}

pub(super) fn run(args: ClassifierArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let threads = threads.unwrap_or_else(device::default_threads);
    let device = device::select(args.device.device, Some(threads))?;
    let cuda = device.is_cuda();
    let precisions = match (&args.precisions[..], cuda) {
        ([], false) => vec![Precision::Fp32],
        ([], true) => vec![Precision::Fp32, Precision::Fp16, Precision::Bf16],
        (p, _) => p.to_vec(),
    };
    let channels_last = match (&args.channels_last[..], cuda) {
        ([], false) => vec![false],
        ([], true) => vec![false, true],
        (c, _) => c.to_vec(),
    };
    let bench = ClassifierBench {
        layouts: args.layouts.clone(),
        precisions,
        batch_sizes: args.batch_sizes.clone(),
        channels_last,
        input_size: args.input_size,
        width: args.width,
        num_classes: args.num_classes,
        warmup: args.warmup.unwrap_or(if cuda { 10 } else { 1 }),
        repeats: args.repeats,
        min_time: Duration::from_secs_f64(args.min_seconds),
        device,
    };
    println!(
        "classifier inference on {}, {} CPU threads, input {}x{}, width {}, {} classes; {} warm-up passes, median of {} repeats of >= {} s",
        device::describe(device),
        threads,
        args.input_size,
        args.input_size,
        args.width,
        args.num_classes,
        bench.warmup,
        args.repeats,
        args.min_seconds
    );
    super::print_gpu(device);
    // The reference, torchvision's GoogLeNet in PyTorch, runs right after each group of our
    // torchvision rows (same precision, memory order and batch sizes), so both see the same
    // machine and card.
    let python = super::reference_python(args.reference.as_deref()).filter(|_| args.width == 1.0);
    match &python {
        Some(p) => println!(
            "reference: torchvision's GoogLeNet in PyTorch ({}), eager{}, same device, dtype, memory order and threads",
            p.display(),
            if args.compile { " and torch.compile" } else { "" }
        ),
        None if args.width == 1.0 => {
            println!("(no reference: run scripts/setup-reference.sh or pass --reference PYTHON)")
        }
        None => println!("(no reference: it exists for width 1)"),
    }
    println!(
        "{:<12} {:>5} {:>6} {:>6} {:>10} {:>9} {:>7} {:>12} {:>6} {:>12}",
        "layout",
        "prec",
        "order",
        "batch",
        "crops/s",
        "GMAC/s",
        "passes",
        "PyTorch c/s",
        "ratio",
        "compile c/s"
    );
    let mut pending: Vec<ClassifierRow> = Vec::new();
    let mut failure = None;
    let print = |r: &ClassifierRow, theirs: Option<&(Option<f64>, Option<f64>)>| {
        let (eager, compiled) = theirs.cloned().unwrap_or((None, None));
        println!(
            "{:<12} {:>5} {:>6} {:>6} {:>10.2} {:>9.2} {:>7} {:>12} {:>6} {:>12}",
            r.layout.to_string(),
            r.precision.name(),
            if r.channels_last { "NHWC" } else { "NCHW" },
            r.batch,
            r.crops_per_s,
            r.macs_per_s / 1e9,
            r.passes,
            eager.map_or(String::new(), |v| format!("{v:.2}")),
            eager.map_or(String::new(), |v| format!("{:.2}", r.crops_per_s / v)),
            compiled.map_or(String::new(), |v| format!("{v:.2}")),
        );
    };
    let n_batches = bench.batch_sizes.len();
    classifier::run(&bench, |r| {
        if r.layout != Layout::Torchvision || python.is_none() {
            print(r, None);
            return;
        }
        // A group is complete with its last batch size: run the reference for all of them.
        pending.push(r.clone());
        if pending.len() < n_batches {
            return;
        }
        let theirs = match (&python, failure.is_none()) {
            (Some(py), true) => classifier::reference_rates(
                py,
                &bench,
                args.compile,
                threads,
                r.precision,
                r.channels_last,
            )
            .map(|(rates, versions)| {
                versions.iter().for_each(|v| println!("reference: {v}"));
                rates
            })
            .map_err(|e| failure = Some(anyhow::Error::msg(e)))
            .unwrap_or_default(),
            _ => Default::default(),
        };
        for row in pending.drain(..) {
            print(&row, theirs.get(&row.batch));
        }
    })?;
    match failure {
        Some(e) => Err(e.context("running the PyTorch reference")),
        None => Ok(()),
    }
}
