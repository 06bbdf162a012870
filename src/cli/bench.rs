//! `rcnn bench ...`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use inception_rcnn::bench::classifier::{self, ClassifierBench, ClassifierRow};
use inception_rcnn::bench::gpu::GpuInfo;
use inception_rcnn::bench::reference;
use inception_rcnn::classify::Crops;
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::Layout;
use inception_rcnn::run::device;
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
    /// Selective search, ours against OpenCV's, on the raccoon images: boxes, recall, MABO, time.
    Proposals(ProposalsBenchArgs),
    /// The whole detect pipeline: seconds per image in each stage, with one and with six
    /// full-size networks (untrained: the timing is the same), and images/s.
    Detect(DetectBenchArgs),
    /// `rcnn classify`'s pipeline (decode, crops on the device, batched forward passes) with
    /// 1, 10 and 144 crops and 1 and 7 networks: images/s, and crops/s against the networks'
    /// raw crops/s at the same batch size measured in the same run.
    Classify(ClassifyBenchArgs),
    /// Per-class NMS against torchvision's batched_nms on the same boxes.
    Nms(NmsBenchArgs),
    /// Training steps (upload, forward with auxiliary heads, backward, SGD, Polyak): regions/s
    /// per precision.
    Train(TrainBenchArgs),
    /// The evaluator (ilsvrc, voc, coco) on generated data of ILSVRC DET val's size, beside
    /// pycocotools on the same data.
    Eval(EvalBenchArgs),
}

#[derive(Args, Debug)]
struct ProposalsBenchArgs {
    /// Images (default: the shipped raccoon photos).
    #[arg(long, default_value = "data/raccoon/images")]
    images: PathBuf,
    /// Their annotations.
    #[arg(long, default_value = "data/raccoon/annotations")]
    gt: PathBuf,
    /// Only the first N images (sorted by name).
    #[arg(long, value_parser = super::range::count)]
    limit: Option<usize>,
    /// Modes to compare.
    #[arg(long, value_delimiter = ',', default_value = "fast", value_parser = parse_mode)]
    modes: Vec<proposals::Mode>,
    /// Our superpixel-scale factors: 1 is the paper's k, 2 GoogLeNet's entry.
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_parser = super::range::scale)]
    scales: Vec<f32>,
    /// Also time a MultiBox network (`rcnn train-multibox`): its best --multibox-top boxes
    /// alone and the entry's mix with fast selective search x2, against OpenCV's fast mode.
    #[arg(long, value_name = "FILE")]
    multibox: Option<PathBuf>,
    #[arg(long, default_value_t = 200, value_parser = super::range::count)]
    multibox_top: usize,
}

fn parse_mode(s: &str) -> Result<proposals::Mode, String> {
    s.parse()
}

#[derive(Args, Debug)]
struct ClassifyBenchArgs {
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Images (cycled through when --images asks for more than there are).
    #[arg(long, default_value = "data/raccoon/images")]
    from: PathBuf,
    /// Timed images per row (default: whole batches of crops, at least four, and at least 40
    /// images on CUDA, 2 on the CPU; a run's last batch is padded, which a short row would
    /// feel).
    #[arg(long, value_parser = super::range::synthetic)]
    images: Option<usize>,
    /// Crop counts to time.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Crops::One, Crops::Ten, Crops::Paper])]
    crops: Vec<Crops>,
    /// Ensemble sizes to time (the paper's test used 7).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 7], value_parser = super::range::networks)]
    networks: Vec<usize>,
    /// Width multiplier of the (untrained, torchvision-layout, 1000-class) networks.
    #[arg(long, default_value_t = 1.0, value_parser = super::range::width)]
    width: f64,
}

#[derive(Args, Debug)]
struct DetectBenchArgs {
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Images (cycled through when --images asks for more than there are).
    #[arg(long, default_value = "data/raccoon/images")]
    from: PathBuf,
    /// Timed images (default: 50 on CUDA, 2 on the CPU).
    #[arg(long, value_parser = super::range::synthetic)]
    images: Option<usize>,
    /// Untimed images first, so the timed ones see the steady state (default: 3 on CUDA, 0 on the CPU).
    #[arg(long, value_parser = super::range::synthetic0)]
    warmup: Option<usize>,
    /// Proposals per image, selective search's topped up with random boxes (default: R-CNN's
    /// 2000 on CUDA; 100 on the CPU, where 2000 take about 100 s per image and network).
    #[arg(long, value_parser = super::range::synthetic)]
    max_proposals: Option<usize>,
    /// Ensemble sizes to time (0: none, e.g. with --worker-sweep alone).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 6], value_parser = super::range::networks)]
    networks: Vec<usize>,
    #[arg(long, value_enum, default_value_t = inception_rcnn::detect::batch::WarpMode::Device)]
    warp: inception_rcnn::detect::batch::WarpMode,
    #[arg(long, default_value_t = 224, value_parser = super::range::input_size)]
    input_size: i64,
    /// Also time the CPU stages alone with each of these worker counts (e.g. 1,2).
    #[arg(long, value_delimiter = ',', value_parser = super::range::threads)]
    worker_sweep: Vec<usize>,
}

#[derive(Args, Debug)]
struct TrainBenchArgs {
    #[command(flatten)]
    device: DeviceArgs,
    #[arg(long, value_enum, default_value_t = Layout::Paper)]
    layout: Layout,
    /// Precisions (default: fp32 and bf16; fp32 only on the CPU).
    #[arg(long, value_enum, value_delimiter = ',')]
    precisions: Vec<Precision>,
    /// Regions per step (default: R-CNN's 128 on CUDA, 16 on the CPU).
    #[arg(long, value_parser = super::range::batch_i64)]
    batch: Option<i64>,
    /// Width multiplier (1 = the paper's network).
    #[arg(long, default_value_t = 1.0, value_parser = super::range::width)]
    width: f64,
    #[arg(long, default_value_t = 224, value_parser = super::range::input_size)]
    input_size: i64,
    #[arg(long, default_value_t = 201, value_parser = super::range::classes)]
    num_classes: i64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 10, value_parser = super::range::synthetic0)]
    warmup: usize,
    #[arg(long, default_value_t = 3, value_parser = super::range::synthetic)]
    repeats: usize,
    #[arg(long, default_value_t = 2.0, value_parser = super::range::non_negative)]
    min_seconds: f64,
}

#[derive(Args, Debug)]
struct NmsBenchArgs {
    /// IoU threshold.
    #[arg(long, default_value_t = 0.3, value_parser = super::range::iou)]
    iou: f32,
    /// Python with torchvision for the reference column; `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
}

#[derive(Args, Debug)]
struct EvalBenchArgs {
    #[arg(long, default_value_t = 20_121, value_parser = super::range::synthetic)]
    images: usize,
    #[arg(long, default_value_t = 200, value_parser = super::range::synthetic)]
    classes: usize,
    #[arg(long, default_value_t = 55_502, value_parser = super::range::synthetic)]
    objects: usize,
    #[arg(long, default_value_t = 500_000, value_parser = super::range::synthetic)]
    detections: usize,
    /// Python with pycocotools for the reference column (default: $RCNN_REFERENCE_PYTHON or
    /// .venv-ref/bin/python); `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
    /// Keep the generated gt.json and dets.json in this folder.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ClassifierArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Layouts to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Layout::Paper, Layout::Torchvision])]
    layouts: Vec<Layout>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8, 16, 32, 64, 128], value_parser = super::range::batch_i64)]
    batch_sizes: Vec<i64>,
    /// Precisions (default: fp32 on the CPU; fp32, fp16 and bf16 on CUDA).
    #[arg(long, value_enum, value_delimiter = ',')]
    precisions: Vec<Precision>,
    #[arg(long, default_value_t = 224, value_parser = super::range::input_size)]
    input_size: i64,
    #[arg(long, default_value_t = 1.0, value_parser = super::range::width)]
    width: f64,
    #[arg(long, default_value_t = 201, value_parser = super::range::classes)]
    num_classes: i64,
    /// Memory orders: false (NCHW), true (channels-last); default NCHW on the CPU, both on CUDA.
    #[arg(long, value_delimiter = ',', value_name = "BOOL")]
    channels_last: Vec<bool>,
    /// Untimed passes before each row's clock starts (default: 10 on CUDA, 1 on the CPU, where
    /// a pass at batch 128 takes seconds and nothing needs tuning).
    #[arg(long, value_parser = super::range::synthetic0)]
    warmup: Option<usize>,
    /// Timed repeats per row; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = super::range::synthetic)]
    repeats: usize,
    /// Each repeat lasts at least this many seconds.
    #[arg(long, default_value_t = 1.0, value_parser = super::range::non_negative)]
    min_seconds: f64,
    /// Also time torch.compile'd torchvision GoogLeNet in the reference column (slow to start).
    #[arg(long)]
    compile: bool,
    /// Python with torch + torchvision for the reference column (default: $RCNN_REFERENCE_PYTHON
    /// or .venv-ref/bin/python, made by scripts/setup-reference.sh); `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
}

pub fn run(args: BenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Classifier(a) => bench_classifier(a, threads),
        BenchCommand::Eval(a) => bench_eval(a),
        BenchCommand::Proposals(a) => bench_proposals(a, threads),
        BenchCommand::Nms(a) => bench_nms(a, threads),
        BenchCommand::Detect(a) => bench_detect(a, threads),
        BenchCommand::Classify(a) => bench_classify(a, threads),
        BenchCommand::Train(a) => bench_train(a, threads),
    }
}

fn bench_classifier(args: ClassifierArgs, threads: Option<usize>) -> anyhow::Result<()> {
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
    print_gpu(device);
    // The reference, torchvision's GoogLeNet in PyTorch, runs right after each group of our
    // torchvision rows (same precision, memory order and batch sizes), so both see the same
    // machine and card.
    let python = reference_python(args.reference.as_deref()).filter(|_| args.width == 1.0);
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
            (Some(py), true) => {
                reference_rates(py, &args, threads, device, r.precision, r.channels_last)
                    .map_err(|e| failure = Some(e))
                    .unwrap_or_default()
            }
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

fn bench_train(args: TrainBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::train::{run, TrainBench};
    let device = device::select(args.device.device, threads)?;
    let cuda = device.is_cuda();
    let precisions = match (&args.precisions[..], cuda) {
        ([], false) => vec![Precision::Fp32],
        ([], true) => vec![Precision::Fp32, Precision::Bf16],
        (p, _) => p.to_vec(),
    };
    let bench = TrainBench {
        layout: args.layout,
        width: args.width,
        input_size: args.input_size,
        num_classes: args.num_classes,
        batch: args.batch.unwrap_or(if cuda { 128 } else { 16 }),
        precisions,
        warmup: args.warmup,
        repeats: args.repeats,
        min_time: Duration::from_secs_f64(args.min_seconds),
        device,
    };
    println!(
        "training steps on {}: {} GoogLeNet x{} at {}x{} with auxiliary heads, {} classes, {} regions a step; {} warm-up steps, median of {} repeats of >= {} s",
        device::describe(device),
        args.layout,
        args.width,
        args.input_size,
        args.input_size,
        args.num_classes,
        bench.batch,
        args.warmup,
        args.repeats,
        args.min_seconds
    );
    print_gpu(device);
    println!(
        "{:<6} {:>12} {:>7} {:>8}",
        "prec", "regions/s", "steps", "vs fp32"
    );
    let mut fp32 = None;
    run(&bench, |r| {
        if r.precision == Precision::Fp32 {
            fp32 = Some(r.regions_per_s);
        }
        println!(
            "{:<6} {:>12.1} {:>7} {:>8}",
            r.precision.name(),
            r.regions_per_s,
            r.steps,
            fp32.map_or(String::new(), |f| format!("{:.2}x", r.regions_per_s / f))
        );
    })?;
    println!("(forward and backward with the auxiliary heads, loss read back each step, SGD and Polyak over flattened f32 master weights)");
    Ok(())
}

/// The card, driver, CUDA, cuDNN and TF32 line of a GPU benchmark's header.
fn print_gpu(device: Device) {
    if let Some(info) = device.is_cuda().then(GpuInfo::read).flatten() {
        println!("GPU: {}", info.line());
    }
}

fn reference_python(arg: Option<&str>) -> Option<PathBuf> {
    match arg {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => reference::find_python(),
    }
}

fn bench_proposals(args: ProposalsBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::detect::propose::{objects_per_run, quality, Backend, ImageRun};

    let mut images =
        inception_rcnn::detect::decode::collect_images(std::slice::from_ref(&args.images))?;
    if let Some(n) = args.limit {
        images.truncate(n);
    }
    let (gt, classes, _) = eval::load::load_gt(&args.gt, None, None, false)?;
    println!(
        "selective search on {} images of {}, R-CNN setting (width 500, boxes >= 20 px), {} threads",
        images.len(),
        args.images.display(),
        rayon::current_num_threads()
    );
    println!(
        "{:<8} {:<8} {:>10} {:>11} {:>11} {:>8} {:>10} {:>8}",
        "backend", "mode", "boxes/img", "recall@0.5", "recall@0.7", "MABO", "median s", "speed"
    );
    let median = |runs: &[ImageRun]| {
        let mut s: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for mode in &args.modes {
        let cv_params = inception_rcnn::detect::propose::search_params(*mode, 500, 1.0, 0);
        let (theirs, _) =
            super::proposals::run_all(&images, Backend::Opencv, *mode, &cv_params, None, false);
        let theirs_objects = objects_per_run(&theirs, &gt);
        let all = [usize::MAX];
        let q_theirs = &quality(&theirs, &theirs_objects, classes.len(), &all)[0];
        let m_theirs = median(&theirs);
        let row = |name: &str, q: &proposals::QualityPoint, m: f64, speed: String| {
            println!(
                "{:<8} {:<8} {:>10.1} {:>11.4} {:>11.4} {:>8.4} {:>10.3} {:>8}",
                name,
                mode.to_string(),
                q.mean_boxes,
                q.recall_50,
                q.recall_70,
                q.mabo,
                m,
                speed
            )
        };
        row("opencv", q_theirs, m_theirs, "1.0x".into());
        for &scale in &args.scales {
            let params = inception_rcnn::detect::propose::search_params(*mode, 500, scale, 0);
            let (ours, _) =
                super::proposals::run_all(&images, Backend::Ours, *mode, &params, None, false);
            let objects = objects_per_run(&ours, &gt);
            let q_ours = &quality(&ours, &objects, classes.len(), &all)[0];
            let m_ours = median(&ours);
            row(
                &format!("ours x{scale}"),
                q_ours,
                m_ours,
                format!("{:.1}x", m_theirs / m_ours),
            );
            // The same number of boxes: each image's list cut to OpenCV's count for that image.
            let cut: Vec<ImageRun> = ours
                .iter()
                .map(|r| {
                    let n = theirs
                        .iter()
                        .find(|t| t.image == r.image)
                        .map_or(r.boxes.len(), |t| t.boxes.len());
                    ImageRun {
                        boxes: r.boxes[..n.min(r.boxes.len())].to_vec(),
                        ..r.clone()
                    }
                })
                .collect();
            let q_cut = &quality(&cut, &objects, classes.len(), &all)[0];
            row(
                &format!("  cut x{scale}"),
                q_cut,
                m_ours,
                "(OpenCV's count per image)".into(),
            );
            for top in [100usize, 500] {
                let a = &quality(&ours, &objects, classes.len(), &[top])[0];
                let b = &quality(&theirs, &theirs_objects, classes.len(), &[top])[0];
                println!(
                    "  x{scale} top {top}: recall@0.5 {:.4} vs OpenCV {:.4}, MABO {:.4} vs {:.4}",
                    a.recall_50, b.recall_50, a.mabo, b.mabo
                );
            }
        }
        if let (Some(path), proposals::Mode::Fast) = (&args.multibox, mode) {
            // MultiBox on the device, 16 images a batch, its time shared among them; the mix
            // adds our fast search x2 on the CPU.
            let mb = inception_rcnn::multibox::MultiBox::load(
                path,
                device::select(device::DeviceChoice::Auto, threads)?,
            )?;
            let top = args.multibox_top;
            let x2 =
                inception_rcnn::detect::propose::search_params(proposals::Mode::Fast, 500, 2.0, 0);
            for (name, search) in [
                ("multibox", None),
                ("entry x2", Some(proposals::Mode::Fast)),
            ] {
                let (runs, _) = super::proposals::run_with(
                    &images,
                    Backend::Ours,
                    search,
                    &x2,
                    Some((&mb, top)),
                    None,
                    true,
                );
                let objects = objects_per_run(&runs, &gt);
                let q = &quality(&runs, &objects, classes.len(), &all)[0];
                let m = median(&runs);
                row(name, q, m, format!("{:.1}x", m_theirs / m));
            }
        }
    }
    Ok(())
}

fn bench_detect(args: DetectBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::gpu::{peak_host_memory, Sampler};
    use inception_rcnn::detect::{detect, DetectParams, Outcome};
    use inception_rcnn::ensemble::Ensemble;
    use inception_rcnn::model::{GoogLeNetConfig, Model};

    let device = device::select(args.inference.device.device, threads)?;
    let cuda = device.is_cuda();
    // R-CNN's load on a GPU; a CPU would take minutes per image at that size.
    let n_images = args.images.unwrap_or(if cuda { 50 } else { 2 });
    let max_proposals = args.max_proposals.unwrap_or(if cuda { 2000 } else { 100 });
    let warmup = args.warmup.unwrap_or(if cuda { 3 } else { 0 });
    let workers = args.inference.settings(None).workers();
    let batch = args.inference.settings(None).batch(device);
    let channels_last = args.inference.settings(None).channels_last(device);
    let mut all = inception_rcnn::detect::decode::collect_images(std::slice::from_ref(&args.from))?;
    anyhow::ensure!(!all.is_empty(), "no images in {}", args.from.display());
    // Cycle through the folder when asked for more images than it has.
    let images: Vec<PathBuf> = all
        .iter()
        .cycle()
        .take(n_images + warmup)
        .cloned()
        .collect();
    all.clear();
    let (warm, timed) = images.split_at(warmup);
    println!(
        "rcnn detect, steady state: {} images of {} after {} untimed, {} proposals each (selective search, topped up with random boxes), paper GoogLeNet {}x{} x 201 classes, {}, {}, batch {}, {} workers, warp {:?} on {}",
        timed.len(),
        args.from.display(),
        warm.len(),
        max_proposals,
        args.input_size,
        args.input_size,
        args.inference.precision.name(),
        if channels_last { "channels-last" } else { "NCHW" },
        batch,
        workers,
        args.warp,
        device::describe(device)
    );
    print_gpu(device);
    println!(
        "{:>4} {:>7} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>6} {:>9} {:>9}",
        "nets",
        "crops",
        "decode",
        "proposals",
        "upload",
        "warp",
        "classify",
        "readback",
        "post",
        "starved",
        "wall/img",
        "images/s",
        "busy",
        "host GB",
        "dev GB"
    );
    for &n in args.networks.iter().filter(|&&n| n > 0) {
        let models = (0..n)
            .map(|i| {
                tch::manual_seed(i as i64);
                let config = GoogLeNetConfig {
                    input_size: args.input_size,
                    ..GoogLeNetConfig::new(Layout::Paper)
                };
                Model::new(&config, Vec::new(), device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ensemble =
            Ensemble::with_layout(models, args.inference.precision.kind(), channels_last)?;
        let params = DetectParams {
            search: proposals::SearchParams::new(proposals::Mode::Fast),
            max_proposals,
            post: inception_rcnn::detect::postprocess::PostParams::default(),
            batch,
            workers,
            warp: args.warp,
            precomputed: None,
            learned: None,
            min_proposals: max_proposals,
        };
        detect(warm, &ensemble, &params, |_| {});
        inception_rcnn::bench::gpu::synchronize(device);
        let sampler = Sampler::start(Duration::from_millis(50));
        let mut crops = 0;
        let t = detect(timed, &ensemble, &params, |o| {
            if let Outcome::Done { proposals, .. } = o {
                crops += proposals;
            }
        });
        let busy = sampler.map(Sampler::finish);
        let per = |s: f64| s / timed.len() as f64;
        println!(
            "{:>4} {:>7} {:>8.3} {:>9.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>6} {:>9.2} {:>9}",
            n,
            crops,
            per(t.decode),
            per(t.proposals),
            per(t.upload),
            per(t.warp),
            per(t.classify),
            per(t.readback),
            per(t.postprocess),
            per(t.starved),
            per(t.wall),
            timed.len() as f64 / t.wall,
            busy.map_or("-".into(), |b| format!("{:.0}%", b.busy * 100.0)),
            peak_host_memory() as f64 / 1e9,
            busy.map_or("-".into(), |b| format!("{:.2}", b.peak_memory as f64 / 1e9)),
        );
    }
    println!("(seconds per image; decode and proposals are summed over the workers, which overlap the device stage; starved: the device stage waiting for them; busy: NVML's share of time a kernel ran; memory: peaks, the device's sampled)");
    if !args.worker_sweep.is_empty() {
        bench_cpu_stages(&images, &args, device, max_proposals)?;
    }
    Ok(())
}

fn bench_classify(args: ClassifyBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    use inception_rcnn::bench::gpu::synchronize;
    use inception_rcnn::classify::{classify, ClassifyParams};
    use inception_rcnn::ensemble::Ensemble;
    use inception_rcnn::model::{GoogLeNetConfig, Model};
    use tch::{Kind, Tensor};

    let device = device::select(args.inference.device.device, threads)?;
    let cuda = device.is_cuda();
    let batch = args.inference.settings(None).batch(device);
    // Whole batches only (a run's last batch is padded, which a short row would feel): a
    // multiple of the images whose crops fill a batch exactly, at least four batches' worth.
    let n_images = |crops: Crops| {
        let c = crops.count();
        let gcd = (1..=c.min(batch))
            .rev()
            .find(|&d| c.is_multiple_of(d) && batch.is_multiple_of(d))
            .unwrap_or(1);
        let unit = batch / gcd;
        let least = (4 * batch).div_ceil(c).max(if cuda { 40 } else { 2 });
        args.images.unwrap_or(least.div_ceil(unit) * unit)
    };
    let workers = args.inference.settings(None).workers();
    let channels_last = args.inference.settings(None).channels_last(device);
    let all = inception_rcnn::detect::decode::collect_images(std::slice::from_ref(&args.from))?;
    anyhow::ensure!(!all.is_empty(), "no images in {}", args.from.display());
    let config = GoogLeNetConfig {
        width: args.width,
        num_classes: 1000,
        transform_input: true,
        ..GoogLeNetConfig::new(Layout::Torchvision)
    };
    println!(
        "rcnn classify, steady state: images of {} (one untimed first), torchvision GoogLeNet x{} width, 1000 classes, {}, {}, batch {}, {} workers, on {}",
        args.from.display(),
        args.width,
        args.inference.precision.name(),
        if channels_last { "channels-last" } else { "NCHW" },
        batch,
        workers,
        device::describe(device)
    );
    print_gpu(device);
    println!("raw: the networks' forward passes alone on a ready batch (what `rcnn bench classifier` times), crops/s through every network");
    println!(
        "{:>4} {:>5} {:>6} {:>9} {:>10} {:>11} {:>6} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "nets",
        "crops",
        "images",
        "images/s",
        "crops/s",
        "raw crops/s",
        "ratio",
        "decode",
        "crops",
        "classify",
        "readback",
        "starved"
    );
    for &n in args.networks.iter().filter(|&&n| n > 0) {
        let models = (0..n)
            .map(|i| {
                tch::manual_seed(i as i64);
                Model::new(&config, Vec::new(), device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ensemble =
            Ensemble::of_image_classifiers(models, args.inference.precision.kind(), channels_last)?;
        let s = ensemble.input_size();
        let input = ensemble.network_input(&Tensor::randn(
            [batch as i64, 3, s, s],
            (Kind::Float, device),
        ));
        let (raw, _) = tch::no_grad(|| {
            classifier::median_rate(
                device,
                batch as i64,
                if cuda { 5 } else { 1 },
                3,
                Duration::from_secs(1),
                || {
                    for m in &ensemble.models {
                        let _ = m.net.forward_t(&input, false);
                    }
                },
            )
        });
        for &crops in &args.crops {
            let params = ClassifyParams {
                crops,
                batch,
                workers,
            };
            let images: Vec<PathBuf> = all.iter().cycle().take(n_images(crops)).cloned().collect();
            // One untimed image: allocator and cuDNN's algorithm search.
            classify(&images[..1], &ensemble, &params, |_| {});
            synchronize(device);
            let mut done = 0;
            let t = classify(&images, &ensemble, &params, |c| {
                done += usize::from(matches!(
                    c,
                    inception_rcnn::classify::Classified::Done { .. }
                ));
            });
            let per = |x: f64| x / done.max(1) as f64;
            let crops_per_s = (done * crops.count()) as f64 / t.wall;
            println!(
                "{:>4} {:>5} {:>6} {:>9.3} {:>10.2} {:>11.2} {:>6.2} {:>8.4} {:>8.4} {:>9.4} {:>9.4} {:>8.4}",
                n,
                crops.name(),
                done,
                done as f64 / t.wall,
                crops_per_s,
                raw,
                crops_per_s / raw,
                per(t.decode),
                per(t.crops),
                per(t.classify),
                per(t.readback),
                per(t.starved),
            );
        }
    }
    println!("(crops/s: crops classified per second by the whole ensemble, each through every network; ratio: against raw at the same batch; the stage columns are seconds per image, decode summed over the workers, which overlap the device)");
    Ok(())
}

/// The CPU side alone (decode, proposals, and the device warp of every box) with 1..N workers:
/// whether the CPU keeps a device fed.
fn bench_cpu_stages(
    images: &[PathBuf],
    args: &DetectBenchArgs,
    device: Device,
    max_proposals: usize,
) -> anyhow::Result<()> {
    use inception_rcnn::detect::warp::warp_boxes;
    use inception_rcnn::detect::warp::WarpParams;
    use inception_rcnn::detect::{for_each_prepared, DetectParams};
    use inception_rcnn::model::config::{IMAGENET_MEAN, IMAGENET_STD};
    use inception_rcnn::model::normalise::Normaliser;
    use inception_rcnn::run::tensor::upload;
    use std::time::Instant;

    let warp = WarpParams::new(args.input_size as i32, IMAGENET_MEAN, IMAGENET_STD);
    let norm = Normaliser::new(warp.mean, warp.std, device);
    let params = DetectParams {
        search: proposals::SearchParams::new(proposals::Mode::Fast),
        max_proposals,
        post: inception_rcnn::detect::postprocess::PostParams::default(),
        batch: 1,
        workers: 1,
        warp: args.warp,
        precomputed: None,
        learned: None,
        min_proposals: max_proposals,
    };
    println!(
        "CPU stages alone: decode + proposals on N workers, the device warp of every box on this thread ({} images)",
        images.len()
    );
    println!("{:>8} {:>10} {:>8}", "workers", "images/s", "speed-up");
    let mut first = None;
    for &w in &args.worker_sweep {
        let start = Instant::now();
        for_each_prepared(images, &params, w, |r| {
            if let Ok((_, rgb, boxes)) = r {
                let image = upload(&rgb, device);
                for chunk in boxes.chunks(256) {
                    let _ = warp_boxes(&image, chunk, &warp, &norm);
                }
            }
        });
        inception_rcnn::bench::gpu::synchronize(device);
        let rate = images.len() as f64 / start.elapsed().as_secs_f64();
        let base = *first.get_or_insert(rate);
        println!("{w:>8} {rate:>10.3} {:>7.2}x", rate / base);
    }
    Ok(())
}

fn bench_nms(args: NmsBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let threads = threads.unwrap_or_else(device::default_threads);
    let python = reference_python(args.reference.as_deref());
    println!(
        "per-class NMS at IoU {}, {threads} threads; boxes clustered around objects, tied scores",
        args.iou
    );
    println!(
        "{:>8} {:>8} {:>10} {:>12} {:>16} {:>8}",
        "boxes", "classes", "kept", "ours (ms)", "torchvision (ms)", "ratio"
    );
    inception_rcnn::bench::nms::run(args.iou, threads, python.as_deref(), |r| {
        match r.torchvision {
            Some(t) => println!(
                "{:>8} {:>8} {:>10} {:>12.2} {:>16.2} {:>7.1}x",
                r.boxes,
                r.classes,
                r.kept,
                r.ours * 1e3,
                t * 1e3,
                t / r.ours
            ),
            None => println!(
                "{:>8} {:>8} {:>10} {:>12.2}",
                r.boxes,
                r.classes,
                r.kept,
                r.ours * 1e3
            ),
        }
    })
    .map_err(anyhow::Error::msg)?;
    if python.is_some() {
        println!("(torchvision kept the same boxes in every case)");
    }
    Ok(())
}

fn bench_eval(args: EvalBenchArgs) -> anyhow::Result<()> {
    use inception_rcnn::bench::eval::{generate, write_coco, Synthetic};
    use std::time::Instant;

    let spec = Synthetic {
        images: args.images,
        classes: args.classes,
        objects: args.objects,
        detections: args.detections,
        ..Default::default()
    };
    let dir = match &args.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("rcnn-bench-eval-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (gt, dets) = generate(spec);
    write_coco(&gt, &dets, spec.classes, &dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    println!(
        "evaluator on generated data: {} images, {} classes, {} objects, {} detections, {} threads",
        spec.images,
        spec.classes,
        spec.objects,
        spec.detections,
        rayon::current_num_threads()
    );
    let inputs = eval::load::Inputs {
        gt: dir.join("gt.json"),
        dets: dir.join("dets.json"),
        ..Default::default()
    };
    let t = Instant::now();
    let loaded = eval::load::load(&inputs)?;
    let ours_load = t.elapsed().as_secs_f64();
    let n = loaded.classes.len();
    let mut times = Vec::new();
    let mut coco_stats = None;
    for metric in [eval::Metric::Ilsvrc, eval::Metric::Voc, eval::Metric::Coco] {
        let t = Instant::now();
        let e = eval::evaluate(&loaded.gt, &loaded.dets, n, &eval::EvalParams::new(metric));
        times.push((metric, t.elapsed().as_secs_f64(), e.mean_ap));
        if let Some(c) = e.coco {
            coco_stats = Some(c);
        }
    }
    let reference = match reference_python(args.reference.as_deref()) {
        Some(py) => {
            let script = reference::script("bench_eval_reference.py");
            let lines = reference::run_json_lines(&py, &script, &[dir.display().to_string()])
                .map_err(anyhow::Error::msg)?;
            lines.into_iter().next()
        }
        None => None,
    };
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{:<44} {:>10} {:>16} {:>8}",
        "step", "ours (s)", "pycocotools (s)", "ratio"
    );
    let theirs = |key: &str| reference.as_ref().and_then(|r| r[key].as_f64());
    let row = |name: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!("{name:<44} {ours:>10.3} {t:>16.3} {:>7.1}x", t / ours),
        None => println!("{name:<44} {ours:>10.3}"),
    };
    row("read gt.json + dets.json", ours_load, theirs("load_s"));
    for (metric, secs, _) in &times {
        let name = match metric {
            eval::Metric::Ilsvrc => "ilsvrc (eval_detection.m rules)",
            eval::Metric::Voc => "voc (VOCevaldet.m rules, all-point)",
            _ => "coco (evaluate + accumulate + summarize)",
        };
        row(
            name,
            *secs,
            if *metric == eval::Metric::Coco {
                theirs("eval_s")
            } else {
                None
            },
        );
    }
    match (&reference, coco_stats) {
        (Some(r), Some(ours)) => {
            let diff = r["stats"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .zip(ours.as_array())
                        .map(|(t, o)| (t.as_f64().unwrap_or(f64::NAN) - o).abs())
                        .fold(0.0, f64::max)
                })
                .unwrap_or(f64::NAN);
            println!("coco: AP {:.6}, AR100 {:.6}; largest difference from pycocotools over the 12 numbers: {diff:.1e}", ours.ap, ours.ar100);
        }
        _ => println!("(no reference: run scripts/setup-reference.sh or pass --reference PYTHON)"),
    }
    Ok(())
}

/// Crops/s by batch size: PyTorch eager, torch.compile.
type ReferenceRates = std::collections::HashMap<i64, (Option<f64>, Option<f64>)>;

/// Crops/s of torchvision's GoogLeNet in PyTorch, eager and (with `--compile`) compiled, for
/// every batch size of `args`, on the same device, in the same precision and memory order.
fn reference_rates(
    python: &Path,
    args: &ClassifierArgs,
    threads: usize,
    device: Device,
    precision: Precision,
    channels_last: bool,
) -> anyhow::Result<ReferenceRates> {
    let batches: Vec<String> = args.batch_sizes.iter().map(i64::to_string).collect();
    let mut script_args = vec![
        "--batch-sizes".to_string(),
        batches.join(","),
        "--threads".into(),
        threads.to_string(),
        "--input-size".into(),
        args.input_size.to_string(),
        "--num-classes".into(),
        args.num_classes.to_string(),
        "--min-seconds".into(),
        args.min_seconds.to_string(),
        "--warmup".into(),
        args.warmup
            .unwrap_or(if device.is_cuda() { 10 } else { 1 })
            .to_string(),
        "--repeats".into(),
        args.repeats.to_string(),
        "--device".into(),
        match device {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        },
        "--dtype".into(),
        precision.name().into(),
    ];
    if channels_last {
        script_args.push("--channels-last".into());
    }
    if args.compile {
        script_args.push("--compile".into());
    }
    let script = reference::script("bench_classifier_reference.py");
    let lines =
        reference::run_json_lines(python, &script, &script_args).map_err(anyhow::Error::msg)?;
    let mut out = ReferenceRates::default();
    for v in &lines {
        if let Some(b) = v["batch"].as_i64() {
            let rate = v["crops_per_s"].as_f64();
            let entry = out.entry(b).or_default();
            match v["mode"].as_str() {
                Some("compile") => entry.1 = rate,
                _ => entry.0 = rate,
            }
        } else if v.get("torch").is_some() {
            println!("reference: {v}");
        }
    }
    anyhow::ensure!(!out.is_empty(), "{} printed no result", script.display());
    Ok(out)
}
