//! `rcnn train`.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::jobs::train::{config_of_file, Member, Sgd, TrainData, TrainJob};
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::{GoogLeNetConfig, Layout};
use inception_rcnn::train::batches::PixelSource;
use inception_rcnn::train::Init;

use super::DeviceArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Example (the shipped demo model, about 30 minutes on 2 CPU cores):\n  \
rcnn train --images data/raccoon/images --annotations data/raccoon/annotations \\\n    \
--split data/raccoon/train.txt --val-split data/raccoon/test.txt --init scratch \\\n    \
--layout paper --width 0.25 --input-size 96 --steps 3000 --out runs/raccoon"
)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    network: InitArgs,
    /// Side of the warped regions in pixels.
    #[arg(long, default_value_t = 224, value_parser = super::range::input_size)]
    input_size: i64,
    /// Class list (one name a line); default: the classes found in the annotations, sorted.
    /// The classifier has one more output, `__background__`, first.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    /// Output folder: model.safetensors, checkpoint.safetensors, log.csv, loss.png,
    /// accuracy.png, and cache/ (the region index). With --ensemble N, member-K/ folders.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Training steps (mini-batches); default: --epochs' worth.
    #[arg(long, value_parser = super::range::count)]
    steps: Option<usize>,
    /// Epochs (passes over the indexed regions) when --steps is not given.
    #[arg(long, default_value_t = 8.0, value_parser = super::range::positive)]
    epochs: f64,
    /// Positive regions per mini-batch (R-CNN: 32).
    #[arg(long, default_value_t = 32, value_parser = super::range::count0)]
    batch_positives: usize,
    /// Background regions per mini-batch (R-CNN: 96).
    #[arg(long, default_value_t = 96, value_parser = super::range::count0)]
    batch_background: usize,
    #[command(flatten)]
    sgd: SgdArgs,
    /// Weight of each auxiliary classifier's loss (the paper: 0.3).
    #[arg(long, default_value_t = 0.3, value_parser = super::range::non_negative)]
    aux_weight: f64,
    /// No random horizontal flips.
    #[arg(long)]
    no_flip: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Steps between checkpoints (and validations).
    #[arg(long, default_value_t = 500, value_parser = super::range::count)]
    checkpoint_every: usize,
    /// Steps between lines of log.csv.
    #[arg(long, default_value_t = 20, value_parser = super::range::count)]
    log_every: usize,
    /// Continue from the checkpoint in --out with the same schedule.
    #[arg(long)]
    resume: bool,
    /// Start afresh over a finished or interrupted run in --out, replacing its model,
    /// checkpoint and log (without it, or --resume, such a folder is refused).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Train N networks with seeds seed..seed+N-1 (and so different sampling orders), into
    /// member-1 ... member-N, for `rcnn detect --model ... --model ...` (the entry: six).
    #[arg(long, default_value_t = 1, value_parser = super::range::members)]
    ensemble: usize,
    /// With --ensemble N, train member K alone (into member-K/), so that N cluster tasks train
    /// the members side by side over one region cache (the first task builds it, under a
    /// lock; the others wait for it). `auto`: K from the scheduler, as `--shard auto`.
    #[arg(long, value_name = "K|auto")]
    member: Option<String>,
    /// Proposals per image, best first.
    #[arg(long, default_value_t = 2000, value_parser = super::range::count)]
    max_proposals: usize,
    /// Background regions indexed per image, drawn from its proposals (every positive is kept;
    /// 0 keeps them all, as R-CNN).
    #[arg(long, default_value_t = 256, value_parser = super::range::count0)]
    max_background: usize,
    /// Precomputed proposals instead of selective search: a file of `rcnn proposals --out`, or a
    /// folder of its shard files (`rcnn proposals --shard K/N --out DIR/K.csv`), read whole.
    /// Images are matched by name.
    #[arg(long, value_name = "FILE|DIR")]
    proposals: Option<PathBuf>,
    /// Where the regions' pixels come from: stream (decode and warp each mini-batch, the
    /// region index on disk is 28 bytes a region) or cache (every region warped once into
    /// cache/, 3 x size^2 bytes a region: for a few hundred images on a CPU only).
    #[arg(long, value_enum, default_value_t = PixelSource::Stream)]
    pixels: PixelSource,
    /// RAM for decoded images while streaming, in MB (a set that fits is decoded once).
    #[arg(long, value_name = "MB", default_value_t = 2048, value_parser = super::range::count)]
    image_cache: usize,
    /// Proposals per validation image.
    #[arg(long, default_value_t = 500, value_parser = super::range::count)]
    val_proposals: usize,
    #[command(flatten)]
    source: super::proposals::ProposalOptions,
    #[command(flatten)]
    device: DeviceArgs,
    /// Precision of activations: fp32, or bf16/fp16 with f32 master weights (fp16 with a
    /// dynamic loss scale). Checkpoints and model files are f32 either way.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
}

/// The training data: `rcnn train` and `rcnn train-multibox` read the same.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Folder of training images (searched recursively).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// Ground truth, read as `rcnn map-eval --gt` reads it: a folder of PASCAL VOC / ILSVRC XML
    /// (one file per image, named as the image; also DET's class folders), a COCO JSON, a CSV
    /// (`image,class,xmin,ymin,xmax,ymax`), a folder of txt, or a folder of YOLO labels
    /// (`class cx cy w h` normalised; classes named by data.yaml, classes.txt or --classes).
    /// Images are matched by name (COCO's by the stem of their file_name).
    #[arg(long, visible_alias = "gt", value_name = "PATH")]
    pub annotations: PathBuf,
    /// Format of --annotations: voc, coco, csv, txt or yolo (default: guessed as map-eval does).
    #[arg(long, value_parser = super::parse_gt_format)]
    pub gt_format: Option<eval::formats::Format>,
    /// Train on these images only: one name a line (with or without extension).
    #[arg(long, value_name = "FILE")]
    pub split: Option<PathBuf>,
    /// Held-out images (same folders) scored at each checkpoint (train: AP at IoU 0.5, ILSVRC
    /// rules; train-multibox: recall@0.5 of the best --val-top boxes). Nothing is chosen by it:
    /// the saved model is always the last averaged weights.
    #[arg(long, value_name = "FILE")]
    pub val_split: Option<PathBuf>,
}

/// The network's first weights and, from scratch, its shape.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// First weights: `scratch`, or a model file / state dict whose fitting tensors are copied
    /// (a head for other outputs starts fresh).
    #[arg(long, value_name = "scratch|FILE", default_value = "scratch")]
    pub init: String,
    /// Network layout (ignored with --init FILE, which decides it).
    #[arg(long, value_enum, default_value_t = Layout::Paper)]
    pub layout: Layout,
    /// Width multiplier (ignored with --init FILE).
    #[arg(long, default_value_t = 1.0, value_parser = super::range::width)]
    pub width: f64,
}

impl InitArgs {
    pub fn init(&self) -> Init {
        match self.init.as_str() {
            "scratch" => Init::Scratch,
            path => Init::File(PathBuf::from(path)),
        }
    }

    /// The network: from --init's file when given (its layout and width), else from the flags.
    pub fn config(&self) -> anyhow::Result<GoogLeNetConfig> {
        Ok(match self.init() {
            Init::Scratch => GoogLeNetConfig {
                width: self.width,
                ..GoogLeNetConfig::new(self.layout)
            },
            Init::File(path) => config_of_file(&path)?,
        })
    }
}

/// The paper's optimisation: SGD with momentum, a stepped schedule, Polyak averaging.
#[derive(Args, Debug)]
pub struct SgdArgs {
    /// Base learning rate.
    #[arg(long, default_value_t = 0.01, value_parser = super::range::lr)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9, value_parser = super::range::fraction)]
    pub momentum: f64,
    /// Weight decay (not on biases).
    #[arg(long, default_value_t = 0.0002, value_parser = super::range::fraction)]
    pub weight_decay: f64,
    /// The learning rate is multiplied by this every --lr-every-epochs (the paper: 0.96 every 8).
    #[arg(long, default_value_t = 0.96, value_parser = super::range::decay)]
    pub lr_decay: f64,
    #[arg(long, default_value_t = 8.0, value_parser = super::range::positive)]
    pub lr_every_epochs: f64,
    /// Cap of the Polyak (moving) average's decay.
    #[arg(long, default_value_t = 0.999, value_parser = super::range::decay)]
    pub polyak: f64,
}

impl DataArgs {
    pub fn data(&self) -> TrainData {
        TrainData {
            images: self.images.clone(),
            annotations: self.annotations.clone(),
            gt_format: self.gt_format,
            classes_file: None,
            split: self.split.clone(),
            val_split: self.val_split.clone(),
        }
    }
}

impl SgdArgs {
    pub fn sgd(&self) -> Sgd {
        Sgd {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            lr_decay: self.lr_decay,
            lr_every_epochs: self.lr_every_epochs,
            polyak: self.polyak,
        }
    }
}

impl TrainArgs {
    fn job(&self, threads: Option<usize>) -> anyhow::Result<TrainJob> {
        let member = match self.member.as_deref() {
            None => None,
            Some("auto") => Some(Member::Auto),
            Some(k) => Some(Member::One(k.trim().parse::<usize>().map_err(|_| {
                anyhow::anyhow!(
                    "--member {k}: want 1..={} (--ensemble) or auto",
                    self.ensemble
                )
            })?)),
        };
        Ok(TrainJob {
            data: TrainData {
                classes_file: self.classes.clone(),
                ..self.data.data()
            },
            init: self.network.init(),
            layout: self.network.layout,
            width: self.network.width,
            input_size: self.input_size,
            classes: self.classes.clone(),
            out: self.out.clone(),
            steps: self.steps,
            epochs: self.epochs,
            batch_positives: self.batch_positives,
            batch_background: self.batch_background,
            sgd: self.sgd.sgd(),
            aux_weight: self.aux_weight,
            flip: !self.no_flip,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            log_every: self.log_every,
            resume: self.resume,
            overwrite: self.overwrite,
            ensemble: self.ensemble,
            member,
            max_proposals: self.max_proposals,
            max_background: self.max_background,
            val_proposals: self.val_proposals,
            source: self.source.source(),
            proposals: self.proposals.clone(),
            pixels: self.pixels,
            image_cache_bytes: self.image_cache.saturating_mul(1 << 20),
            device: self.device.device,
            threads,
            precision: self.precision,
        })
    }
}

pub fn run(args: TrainArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let summary = args.job(threads)?.run(&super::Bars::default())?;
    let mut flags = Vec::new();
    for (member, out) in &summary.members {
        let model = out.join("model.safetensors");
        println!(
            "member {member}: {} ({} steps; log {}, curves {} and {})",
            model.display(),
            summary.steps,
            out.join("log.csv").display(),
            out.join("loss.png").display(),
            out.join("accuracy.png").display()
        );
        flags.push(format!("--model {}", model.display()));
    }
    println!(
        "detect with: rcnn detect IMAGES {} --out DIR",
        flags.join(" ")
    );
    Ok(())
}
