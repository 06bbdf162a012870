//! `rcnn bench ...`: one file a benchmark, each its flags and its table; the measurements live
//! in the library's `bench` module.

mod classifier;
mod classify;
mod detect;
mod eval;
mod nms;
mod proposals;
mod train;
mod train_data;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use inception_rcnn::bench::gpu::GpuInfo;
use inception_rcnn::bench::reference;
use tch::Device;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Crops/s and multiply-adds/s of the region classifier per layout, precision and batch
    /// size; with the Python reference present, torchvision's GoogLeNet in the same run.
    Classifier(classifier::ClassifierArgs),
    /// Selective search, ours against OpenCV's, on the raccoon images: boxes, recall, MABO, time.
    Proposals(proposals::ProposalsBenchArgs),
    /// The whole detect pipeline: seconds per image in each stage, with one and with six
    /// full-size networks (untrained: the timing is the same), and images/s.
    Detect(detect::DetectBenchArgs),
    /// `rcnn classify`'s pipeline (decode, crops on the device, batched forward passes) with
    /// 1, 10 and 144 crops and 1 and 7 networks: images/s, and crops/s against the networks'
    /// raw crops/s at the same batch size measured in the same run.
    Classify(classify::ClassifyBenchArgs),
    /// Per-class NMS against torchvision's batched_nms on the same boxes.
    Nms(nms::NmsBenchArgs),
    /// Training steps (upload, forward with auxiliary heads, backward, SGD, Polyak): regions/s
    /// per precision.
    Train(train::TrainBenchArgs),
    /// `rcnn train` at growing N on synthetic datasets (streamed regions): disk per image,
    /// peak RSS, index build time per image, steps/s; beside what the pixel cache would take.
    TrainData(train_data::TrainDataBenchArgs),
    /// The evaluator (ilsvrc, voc, coco) on generated data of ILSVRC DET val's size, beside
    /// pycocotools on the same data.
    Eval(eval::EvalBenchArgs),
}

pub fn run(args: BenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Classifier(a) => classifier::run(a, threads),
        BenchCommand::Eval(a) => eval::run(a),
        BenchCommand::Proposals(a) => proposals::run(a, threads),
        BenchCommand::Nms(a) => nms::run(a, threads),
        BenchCommand::Detect(a) => detect::run(a, threads),
        BenchCommand::Classify(a) => classify::run(a, threads),
        BenchCommand::Train(a) => train::run(a, threads),
        BenchCommand::TrainData(a) => train_data::run(a, threads),
    }
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
