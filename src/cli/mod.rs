//! Flags to library calls: the only place that knows about clap, progress bars and exit codes.

mod bench;
mod classify;
mod detect;
mod env;
mod import_weights;
mod merge;
mod model_info;
pub(crate) mod proposals;
mod range;
mod train;
mod train_heads;
mod train_multibox;
mod visualize;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use inception_rcnn::jobs::{Inference, Progress};
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::{GoogLeNetConfig, Layout};
use inception_rcnn::run::device::DeviceChoice;

#[derive(Parser, Debug)]
#[command(
    name = "rcnn",
    version,
    about = "R-CNN object detection with a GoogLeNet region classifier (ILSVRC2014 style)",
    long_about = "R-CNN object detection with a GoogLeNet region classifier, after GoogLeNet's \
ILSVRC2014 detection entry: selective-search proposals, warped regions, an ensemble of \
GoogLeNets on libtorch (CUDA when present), per-class NMS and ILSVRC mAP.\n\n\
Logs go to stderr; set RUST_LOG=debug for more."
)]
struct Cli {
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = range::threads)]
    threads: Option<usize>,
    /// Largest image decoded, in pixels (width x height); a larger one (a decompression bomb,
    /// a panorama) is skipped with a warning, never allowed to exhaust memory.
    #[arg(long, global = true, value_name = "N", default_value_t = inception_rcnn::detect::decode::DEFAULT_MAX_PIXELS, value_parser = range::pixels)]
    max_pixels: u64,
    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Detect objects in images: proposals, warped crops, an ensemble of GoogLeNets, NMS.
    Detect(detect::DetectArgs),
    /// Classify whole images as GoogLeNet did at ILSVRC 2014: 1, 10 or the paper's 144 crops,
    /// softmax averaged over crops and networks; top-1/top-5 error against labels.
    Classify(classify::ClassifyArgs),
    /// Join the outputs of `rcnn detect --shard K/N` or `rcnn classify --shard K/N` runs.
    Merge(merge::MergeArgs),
    /// Print GoogLeNet's stages: output shape, parameters and multiply-adds of each.
    ModelInfo(model_info::ModelInfoArgs),
    /// Convert a torchvision GoogLeNet state dict (.pth or .safetensors) into a model file.
    ImportWeights(import_weights::ImportWeightsArgs),
    /// Region proposals (selective search, MultiBox's learned boxes, or the entry's mix of
    /// both), with recall and MABO against ground truth.
    Proposals(proposals::ProposalsArgs),
    /// Train the region classifier on warped regions (R-CNN sampling, the paper's SGD, Polyak
    /// averaging), from scratch or from other weights; checkpoints, --resume, validation AP.
    Train(train::TrainArgs),
    /// R-CNN's heads over a trained network: class-specific box regression and class SVMs
    /// with hard-negative mining, on the features of the run's cached regions.
    TrainHeads(train_heads::TrainHeadsArgs),
    /// Train a MultiBox network (learned, class-agnostic proposals; Erhan et al. 2014) on whole
    /// images: k-means priors, bipartite matching, the paper's SGD; checkpoints, --resume.
    TrainMultibox(train_multibox::TrainMultiBoxArgs),
    /// Draw detections from any detections file; with ground truth, hits, false positives and
    /// misses in distinct colours.
    Visualize(visualize::VisualizeArgs),
    /// Mean average precision of detections against ground truth (ILSVRC, VOC, COCO rules).
    MapEval(eval::cli::MapEvalArgs),
    /// Speed benchmarks, each against its reference measured in the same run.
    Bench(bench::BenchArgs),
    /// Versions of rcnn, libtorch and OpenCV, and the devices found (for bug reports).
    Env,
}

/// `--device`, shared by every command that runs a network.
#[derive(Args, Debug, Clone)]
struct DeviceArgs {
    /// Where networks run: auto (CUDA if libtorch_cuda and a GPU are present, else CPU),
    /// cpu, cuda, or cuda:N.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: DeviceChoice,
}

/// How networks run over a stream of images: `detect`, `classify` and their benchmarks.
#[derive(Args, Debug, Clone)]
struct InferenceArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Precision of weights and activations: fp32, or bf16/fp16 (batch norm is folded into the
    /// convolutions in f32 first; LRN and the softmax run in f32).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Crops per forward pass, always padded to this size so that results do not depend on how
    /// images share batches (default: 256 on CUDA, 32 on the CPU).
    #[arg(long, value_parser = range::batch)]
    batch: Option<usize>,
    /// Images decoded (and, for detect, proposed) ahead of the device, each on its own thread
    /// (default: one per core but one). Outputs are the same for any number.
    #[arg(long, value_name = "N", value_parser = range::threads)]
    workers: Option<usize>,
    /// Weights and activations in channels-last memory order (default: on for fp16/bf16 on
    /// CUDA, where cuDNN's tensor-core kernels want it; off on the CPU).
    #[arg(long, value_name = "BOOL")]
    channels_last: Option<bool>,
}

impl InferenceArgs {
    fn settings(&self, threads: Option<usize>) -> Inference {
        Inference {
            device: self.device.device,
            threads,
            precision: self.precision,
            batch: self.batch,
            workers: self.workers,
            channels_last: self.channels_last,
        }
    }
}

/// The shape of a network, for commands that build one without a model file.
#[derive(Args, Debug, Clone)]
struct NetworkArgs {
    /// paper: Table 1 with LRN and 5x5 convolutions; torchvision: torchvision's googlenet.
    #[arg(long, value_enum, default_value_t = Layout::Paper)]
    layout: Layout,
    /// Outputs of the final classifier (201 = 200 ILSVRC classes + background).
    #[arg(long, default_value_t = 201, value_parser = range::classes)]
    num_classes: i64,
    /// Width multiplier for every layer (1.0 = the paper's network).
    #[arg(long, default_value_t = 1.0, value_parser = range::width)]
    width: f64,
    /// Side of the square input in pixels.
    #[arg(long, default_value_t = 224, value_parser = range::input_size)]
    input_size: i64,
    /// Include the two auxiliary classifiers (training only).
    #[arg(long)]
    aux: bool,
}

impl NetworkArgs {
    fn config(&self) -> GoogLeNetConfig {
        GoogLeNetConfig {
            num_classes: self.num_classes,
            width: self.width,
            input_size: self.input_size,
            aux_logits: self.aux,
            ..GoogLeNetConfig::new(self.layout)
        }
    }
}

/// Progress bars for a job's stages, one at a time, in the style every command shares.
#[derive(Default)]
struct Bars(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl Bars {
    /// The current bar (indicatif's bars are shared handles).
    fn bar(&self) -> Option<indicatif::ProgressBar> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Progress for Bars {
    fn start(&self, name: &str, total: u64) {
        let template =
            format!("{name} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} {{msg}} ETA {{eta}}");
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress_bar(total, &template));
    }

    fn advance(&self) {
        if let Some(bar) = self.bar() {
            bar.inc(1);
        }
    }

    fn position(&self, position: u64) {
        if let Some(bar) = self.bar() {
            bar.set_position(position);
        }
    }

    fn message(&self, message: &str) {
        if let Some(bar) = self.bar() {
            bar.set_message(message.to_string());
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        match self.bar() {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

/// A progress bar of `len` steps drawn with `template`, in the style every command shares.
fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// 6624904 -> "6,624,904".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Makes glibc keep freed memory for reuse instead of returning it to the kernel.
///
/// libtorch allocates every activation afresh; glibc serves large blocks with mmap and unmaps
/// them on free, so each forward pass faults in its activations page by page again (a batch of
/// 128 crops touches gigabytes). Served from the heap and kept, the pages are reused: measured
/// here, 35-55% more crops/s at batch 32-128 on the CPU. The cost: the process keeps its peak
/// memory until it exits, which suits a detector's steady state.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

pub fn main() -> ExitCode {
    // Die quietly when stdout is a closed pipe (`rcnn model-info | head`), as Unix tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    let default_level = if cli.quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    inception_rcnn::detect::decode::set_max_pixels(cli.max_pixels);
    let result = match cli.command {
        Command::Detect(args) => detect::run(args, cli.threads),
        Command::Classify(args) => classify::run(args, cli.threads),
        Command::Merge(args) => merge::run(args),
        Command::ModelInfo(args) => model_info::run(args, cli.threads),
        Command::ImportWeights(args) => import_weights::run(args, cli.threads),
        Command::Bench(args) => bench::run(args, cli.threads),
        Command::Env => env::run(cli.threads),
        Command::Proposals(args) => proposals::run(args, cli.threads),
        Command::Visualize(args) => visualize::run(args),
        Command::Train(args) => train::run(args, cli.threads),
        Command::TrainHeads(args) => train_heads::run(args, cli.threads),
        Command::TrainMultibox(args) => train_multibox::run(args, cli.threads),
        Command::MapEval(args) => eval::cli::run(&args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", short_error(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// An error without the C++ frames libtorch appends to its messages (they go to the debug log,
/// `RUST_LOG=debug`).
fn short_error(message: &str) -> String {
    let cut = ["Exception raised from", "frame #0", "\nframe #"]
        .iter()
        .filter_map(|m| message.find(m))
        .min();
    match cut {
        Some(at) => {
            tracing::debug!("full error: {message}");
            let head = message[..at].trim_end();
            format!("{head} (libtorch's C++ frames: RUST_LOG=debug)")
        }
        None => message.to_string(),
    }
}

/// `--gt-format`: voc, coco, csv, txt or yolo.
pub(crate) fn parse_gt_format(s: &str) -> Result<eval::formats::Format, String> {
    s.parse().map_err(|e: eval::EvalError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(6_624_904), "6,624,904");
        assert_eq!(thousands(-1_000), "-1,000");
    }

    #[test]
    fn libtorch_errors_lose_their_cpp_frames() {
        // What a real shape error of libtorch looks like through tch.
        let real = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu))
            .f_matmul(&tch::Tensor::zeros(
                [2, 3],
                (tch::Kind::Float, tch::Device::Cpu),
            ))
            .unwrap_err()
            .to_string();
        assert!(
            real.contains("Exception raised from") && real.lines().count() > 5,
            "{real}"
        );
        let short = short_error(&format!("loading the model: {real}"));
        assert!(short.starts_with("loading the model: "), "{short}");
        assert!(short.contains("cannot be multiplied"), "{short}");
        assert!(!short.contains("frame #"), "{short}");
        assert!(short.lines().count() <= 3, "{short}");
        assert_eq!(short_error("plain message"), "plain message");
    }

    #[test]
    fn every_default_lies_inside_its_own_range() {
        use clap::Parser;
        for args in [
            &["detect", "x.jpg", "--model", "m", "--out", "o"][..],
            &["classify", "x.jpg", "--model", "m", "--out", "o"],
            &[
                "detect", "x.jpg", "--model", "m", "--out", "o", "--shard", "auto",
            ],
            &["bench", "classify"],
            &["train", "--images", "i", "--annotations", "a", "--out", "o"],
            &["proposals", "i"],
            &["visualize", "i", "--dets", "d", "--out", "o"],
            &["model-info"],
            &["import-weights", "x.pth", "--out", "o"],
            &["merge", "a", "--out", "o"],
            &["map-eval", "--gt", "g", "--dets", "d"],
            &["bench", "classifier"],
            &["bench", "proposals"],
            &["bench", "detect"],
            &["bench", "nms"],
            &["bench", "train"],
            &["bench", "eval"],
        ] {
            let argv = std::iter::once("rcnn").chain(args.iter().copied());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{args:?}: {e}");
            }
        }
    }

    /// A Kubernetes recipe's Job, parsed.
    fn k8s_job(file: &str) -> serde_yaml::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/k8s")
            .join(file);
        let job: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(job["kind"].as_str(), Some("Job"), "{file}");
        job
    }

    /// Each container of a Job with its command line.
    fn k8s_commands(job: &serde_yaml::Value) -> Vec<(serde_yaml::Value, Vec<String>)> {
        job["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| {
                let argv = c["command"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                (c.clone(), argv)
            })
            .collect()
    }

    #[test]
    fn the_kubernetes_recipes_run_valid_rcnn_command_lines() {
        use inception_rcnn::run::shard::{from_env, K8S_COUNT_VAR};
        let job = k8s_job("detect-indexed-job.yaml");
        assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
        let completions = job["spec"]["completions"].as_u64().unwrap() as usize;
        let [(container, argv)] = &k8s_commands(&job)[..] else {
            panic!("one container")
        };
        // The shard count the pods are told is the Job's completions.
        let count = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(K8S_COUNT_VAR))
            .and_then(|e| e["value"].as_str())
            .expect("RCNN_SHARD_COUNT in the container's env");
        assert_eq!(count.parse::<usize>().unwrap(), completions);
        let mut outs = Vec::new();
        for index in 0..completions {
            // What the pod runs: Kubernetes expands $(JOB_COMPLETION_INDEX) in the command.
            let argv: Vec<String> = argv
                .iter()
                .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string()))
                .collect();
            assert_eq!(argv[0], "rcnn");
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let Command::Detect(args) = cli.command else {
                panic!("{argv:?} is not rcnn detect")
            };
            assert!(args.resume, "a retried pod continues from its journal");
            assert_eq!(
                args.shard,
                Some(inception_rcnn::run::shard::ShardSpec::Auto)
            );
            let env = |k: &str| match k {
                "JOB_COMPLETION_INDEX" => Some(index.to_string()),
                k if k == K8S_COUNT_VAR => Some(count.to_string()),
                _ => None,
            };
            assert_eq!(from_env(env), Ok((index + 1, completions)));
            outs.push(args.out);
        }
        // The merge joins exactly the folders the pods wrote.
        let [(_, merge)] = &k8s_commands(&k8s_job("merge-job.yaml"))[..] else {
            panic!("one container")
        };
        let cli = Cli::try_parse_from(merge).unwrap_or_else(|e| panic!("{merge:?}: {e}"));
        let Command::Merge(args) = cli.command else {
            panic!("{merge:?} is not rcnn merge")
        };
        assert_eq!(args.shards, outs);
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
