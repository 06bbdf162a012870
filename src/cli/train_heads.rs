//! `rcnn train-heads`: R-CNN's box regression and class SVMs over a trained network.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inception_rcnn::ensemble::Ensemble;
use inception_rcnn::heads::box_regression::RegressionFeatures;
use inception_rcnn::model::Model;
use inception_rcnn::run::device;
use inception_rcnn::train::batches::Batches;
use inception_rcnn::train::heads::{train_heads, HeadsParams};
use inception_rcnn::train::regions::{cache_dir, RegionIndex};
use tch::Kind;

use super::DeviceArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Example (the BCCD demo model's heads, about 3 minutes on 2 CPU cores):
  rcnn train-heads --run runs/bccd --out data/models/bccd.safetensors"
)]
pub struct TrainHeadsArgs {
    /// Folder of a finished `rcnn train` run: its region index (cache/) gives the training
    /// regions and their labels; their pixels are decoded and warped image by image.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// The network whose features the heads read (default: RUN/model.safetensors).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// The model file written: the network with its heads (default:
    /// RUN/model-heads.safetensors). Heads not trained now are kept from --model.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Train class-specific box regression (R-CNN appendix C). With neither --bbox-reg nor
    /// --svm, both are trained.
    #[arg(long)]
    bbox_reg: bool,
    /// Train class SVMs with hard-negative mining (R-CNN section 2.3).
    #[arg(long)]
    svm: bool,
    /// What box regression reads: the last inception map on a 3x3 grid, or the global average
    /// pool the SVMs read (which keeps no position).
    #[arg(long, value_enum, default_value_t = RegressionFeatures::Grid)]
    bbox_features: RegressionFeatures,
    /// Box regression learns from its pairs as they are only, not also mirrored left-right.
    #[arg(long)]
    no_bbox_flip: bool,
    /// Ridge penalties tried for box regression; the one with the least error on held-out
    /// training images (every fifth) is kept.
    #[arg(long, value_delimiter = ',', default_values_t = HeadsParams::default().lambdas)]
    lambda: Vec<f64>,
    /// The SVMs' C (R-CNN: 0.001, on features scaled to a mean norm of 20).
    #[arg(long, default_value_t = 1e-3)]
    svm_c: f64,
    /// Regions per forward pass while computing features.
    #[arg(long, default_value_t = 128, value_parser = super::range::batch)]
    batch: usize,
    /// RAM for decoded images, in MB.
    #[arg(long, value_name = "MB", default_value_t = 512, value_parser = super::range::count)]
    image_cache: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: TrainHeadsArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let model_path = args
        .model
        .clone()
        .unwrap_or_else(|| args.run.join("model.safetensors"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("model-heads.safetensors"));
    for l in &args.lambda {
        anyhow::ensure!(
            l.is_finite() && *l >= 0.0,
            "--lambda {l}: want a finite value >= 0"
        );
    }
    anyhow::ensure!(
        args.svm_c.is_finite() && args.svm_c > 0.0,
        "--svm-c {}: want a positive value",
        args.svm_c
    );
    let both = !args.bbox_reg && !args.svm;
    let params = HeadsParams {
        box_regression: both || args.bbox_reg,
        regression_features: args.bbox_features,
        flip: !args.no_bbox_flip,
        svm: both || args.svm,
        lambdas: args.lambda.clone(),
        svm_params: inception_rcnn::heads::svm::SvmParams {
            c: args.svm_c,
            ..Default::default()
        },
        batch: args.batch,
        ..HeadsParams::default()
    };
    let cache_dir = cache_dir(&args.run);
    eval::protect_inputs([
        model_path.clone(),
        cache_dir.join("train.index.json"),
        cache_dir.join("train.regions"),
    ]);
    eval::check_not_input(&out)?;
    // Two fits writing one model file would leave whichever finished last.
    let _lock = inception_rcnn::run::lock::lock_output_file(&out, "rcnn train-heads")?;
    let device = device::select(args.device.device, threads)?;
    let index = RegionIndex::open_existing(&cache_dir, "train")
        .with_context(|| format!("the region index of {}", args.run.display()))?;
    let mut model = Model::load(&model_path, device)?;
    let config = model.config().clone();
    tracing::info!(
        "{} regions ({} positives) from {} images",
        index.len(),
        index.positives(),
        index.spec.images.len()
    );
    eval::protect_inputs(index.spec.images.iter().map(|i| i.path.clone()));
    let warp = inception_rcnn::detect::warp::WarpParams::new(
        config.input_size as i32,
        config.mean,
        config.std,
    );
    let regions = Batches::stream(&index, warp, args.image_cache.saturating_mul(1 << 20));
    // The features come from the network as detect runs it (prepared for inference); the
    // model file written is the one read, plus heads.
    let ensemble = Ensemble::new(vec![Model::load(&model_path, device)?], Kind::Float)?;
    let bar = super::progress_bar(
        index.len() as u64,
        "features [{bar:30}] {pos}/{len} regions {per_sec} ETA {eta}",
    );
    let (heads, _) = train_heads(&ensemble, &regions, &params, &|n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    if heads.box_regression.is_some() {
        model.heads.box_regression = heads.box_regression;
        model.heads.info.box_regression = heads.info.box_regression;
    }
    if heads.svm.is_some() {
        model.heads.svm = heads.svm;
        model.heads.info.svm = heads.info.svm;
    }
    model.heads.info.seconds = heads.info.seconds;
    model.save(&out)?;
    let timing: Vec<String> = model
        .heads
        .info
        .seconds
        .iter()
        .map(|(what, s)| format!("{what} {s:.1} s"))
        .collect();
    println!("wrote {} ({})", out.display(), timing.join(", "));
    if let Some(r) = &model.heads.info.box_regression {
        println!(
            "box regression on {:?} features: lambda {} (held-out MSE by lambda: {}), regions per \
             class {:?}",
            r.features,
            r.lambda,
            r.lambdas
                .iter()
                .zip(&r.held_out_mse)
                .map(|(l, e)| format!("{l}: {e:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            &r.regions[1..]
        );
    }
    if let Some(s) = &model.heads.info.svm {
        for (name, r) in model.classes.iter().zip(&s.classes).skip(1) {
            println!(
                "svm {name}: {} positives, {} candidate negatives, new hard negatives per round \
                 {:?}, {} in the final working set",
                r.positives, r.candidates, r.new_hard, r.working_set
            );
        }
    }
    Ok(())
}
