//! `rcnn train-multibox`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inception_rcnn::run::device;
use inception_rcnn::train::multibox::{
    kmeans, prior_points, train_multibox, ImageSet, MultiBoxParams, MultiBoxRecipe,
};
use inception_rcnn::train::Event;

use super::train::{DataArgs, InitArgs, SgdArgs};
use super::{progress_bar, DeviceArgs};

#[derive(Args, Debug)]
#[command(
    after_help = "Example (the shipped BCCD MultiBox model, from the BCCD detector's backbone):\n  \
rcnn train-multibox --images data/bccd/images --annotations data/bccd/annotations \\\n    \
--split data/bccd/splits/train.txt --val-split data/bccd/splits/val.txt \\\n    \
--init data/models/bccd-googlenet-paper-w025-s96.safetensors --input-size 224 \\\n    \
--steps 1500 --out runs/bccd-multibox"
)]
pub struct TrainMultiBoxArgs {
    // Classes in the annotations are ignored: MultiBox is class-agnostic.
    #[command(flatten)]
    data: DataArgs,
    // A detector's network is a good start for the backbone.
    #[command(flatten)]
    network: InitArgs,
    /// Side the whole image is resized to.
    #[arg(long, default_value_t = 224, value_parser = super::range::input_size)]
    input_size: i64,
    /// K: priors (k-means of the training boxes), and boxes predicted per image (the entry
    /// took the best 200).
    #[arg(long, default_value_t = 200, value_parser = super::range::count)]
    priors: usize,
    /// Weight of the location loss against the confidence loss (the paper: 0.3).
    #[arg(long, default_value_t = 0.3, value_parser = super::range::non_negative)]
    alpha: f64,
    /// Output folder: model.safetensors, checkpoint.safetensors, log.csv, loss.png,
    /// accuracy.png.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 1500, value_parser = super::range::count)]
    steps: usize,
    /// Images per mini-batch.
    #[arg(long, default_value_t = 32, value_parser = super::range::count)]
    batch: usize,
    #[command(flatten)]
    sgd: SgdArgs,
    /// No left-right flips.
    #[arg(long)]
    no_flip: bool,
    /// Each side of a training crop keeps at least this fraction of the image (1: no crops).
    #[arg(long, default_value_t = 0.7, value_parser = super::range::iou64)]
    min_crop: f64,
    /// The gradient's norm is clipped to this.
    #[arg(long, default_value_t = 10.0, value_parser = super::range::positive)]
    clip_grad: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 250, value_parser = super::range::count)]
    checkpoint_every: usize,
    #[arg(long, default_value_t = 10, value_parser = super::range::count)]
    log_every: usize,
    /// Boxes per image in the validation recall.
    #[arg(long, default_value_t = 200, value_parser = super::range::count)]
    val_top: usize,
    /// Continue from the checkpoint in --out with the same settings.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: TrainMultiBoxArgs, threads: Option<usize>) -> anyhow::Result<()> {
    eval::check_output_dir(&args.out)?;
    let init_file = (args.network.init != "scratch").then(|| PathBuf::from(&args.network.init));
    let train_set = args.data.data().load(None, init_file)?;
    let init = args.network.init();
    let mut config = args.network.config()?;
    config.input_size = args.input_size;
    config.aux_logits = false;
    config.num_classes = 1;
    config.validate()?;
    let device = device::select(args.device.device, threads)?;

    let set = ImageSet::load(&train_set.images, false);
    for s in &set.skipped {
        tracing::warn!("skipped: {s}");
    }
    anyhow::ensure!(!set.is_empty(), "no training image could be read");
    let boxes: Vec<Vec<[f64; 4]>> = set.images.iter().map(|(_, b)| b.clone()).collect();
    let objects: usize = boxes.iter().map(Vec::len).sum();
    anyhow::ensure!(objects > 0, "the training images have no objects");
    let points = prior_points(&boxes, 8, args.min_crop, args.seed);
    let priors = kmeans(&points, args.priors, args.seed);
    tracing::info!(
        "{} training images, {objects} objects; {} priors from k-means of {} boxes",
        set.len(),
        priors.len(),
        points.len()
    );
    let validation = match &args.data.val_split {
        Some(path) => {
            let val = args.data.data().load_split(path, None)?;
            let v = ImageSet::load(&val.images, true);
            tracing::info!("{} validation images", v.len());
            Some(v)
        }
        None => None,
    };
    let recipe = MultiBoxRecipe {
        config,
        init,
        priors: args.priors,
        alpha: args.alpha,
        batch: args.batch,
        lr: args.sgd.lr,
        momentum: args.sgd.momentum,
        weight_decay: args.sgd.weight_decay,
        lr_decay: args.sgd.lr_decay,
        lr_every_epochs: args.sgd.lr_every_epochs,
        polyak: args.sgd.polyak,
        flip: !args.no_flip,
        min_crop: args.min_crop,
        clip: args.clip_grad,
        seed: args.seed,
        images: train_set.images.iter().map(|i| i.key.clone()).collect(),
    };
    let params = MultiBoxParams {
        recipe,
        steps: args.steps,
        checkpoint_every: args.checkpoint_every,
        log_every: args.log_every,
        resume: args.resume,
        val_top: args.val_top,
    };
    let progress = progress_bar(
        args.steps as u64,
        "multibox [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
    );
    let (mut loss_avg, mut iou_avg) = (f64::NAN, f64::NAN);
    let mut last_recall = None;
    let smooth = |avg: f64, v: f64| {
        if avg.is_nan() {
            v
        } else if v.is_finite() {
            avg + 0.05 * (v - avg)
        } else {
            avg
        }
    };
    train_multibox(
        &set,
        validation.as_ref(),
        &priors,
        &params,
        &args.out,
        device,
        |e| match e {
            Event::Started { step, .. } => progress.set_position(step as u64),
            Event::Step {
                step,
                loss,
                accuracy,
                lr,
            } => {
                loss_avg = smooth(loss_avg, loss);
                iou_avg = smooth(iou_avg, accuracy);
                progress.set_position(step as u64);
                progress.set_message(format!(
                    "loss {loss_avg:.3} matched IoU {iou_avg:.3} lr {lr:.2e}{}",
                    last_recall.map_or(String::new(), |r: f64| format!(" val recall {r:.3}"))
                ));
            }
            Event::Checkpoint { step, val_ap } => {
                last_recall = val_ap;
                progress.suspend(|| match val_ap {
                    Some(r) => tracing::info!(
                        "step {step}: checkpoint; validation recall@0.5 of the top {} {r:.4}",
                        args.val_top
                    ),
                    None => tracing::info!("step {step}: checkpoint"),
                });
            }
        },
    )
    .with_context(|| format!("training into {}", args.out.display()))?;
    progress.finish_and_clear();
    let model = args.out.join("model.safetensors");
    println!(
        "{} ({} steps; log {}, curves {} and {})",
        model.display(),
        args.steps,
        args.out.join("log.csv").display(),
        args.out.join("loss.png").display(),
        args.out.join("accuracy.png").display()
    );
    println!(
        "proposals with: rcnn proposals IMAGES --mode entry --multibox {}",
        model.display()
    );
    Ok(())
}
