//! `rcnn train`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use inception_rcnn::model::precision::Precision;
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
use inception_rcnn::run::device;
use inception_rcnn::train::data::{load_images, read_split};
use inception_rcnn::train::regions::{cache_dir, CacheSpec, RegionCache};
use inception_rcnn::train::{train, Event, Init, Recipe, TrainParams, Validation};

use super::{progress_bar, DeviceArgs};

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
    /// accuracy.png, and cache/ (the warped regions). With --ensemble N, member-K/ folders.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Training steps (mini-batches); default: --epochs' worth.
    #[arg(long, value_parser = super::range::count)]
    steps: Option<usize>,
    /// Epochs (passes over the cached regions) when --steps is not given.
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
    /// Background regions cached per image (every positive is kept).
    #[arg(long, default_value_t = 256, value_parser = super::range::count0)]
    max_background: usize,
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
    /// Folder of PASCAL VOC / ILSVRC XML annotations, one file per image, named as the image.
    #[arg(long, value_name = "DIR")]
    pub annotations: PathBuf,
    /// Train on these images only: one name a line (with or without extension).
    #[arg(long, value_name = "FILE")]
    pub split: Option<PathBuf>,
    /// Held-out images (same folders) scored at each checkpoint (train: AP at IoU 0.5, ILSVRC
    /// rules; train-multibox: recall@0.5 of the best --val-top boxes). Nothing is chosen by it:
    /// the saved model is always the last averaged weights.
    #[arg(long, value_name = "FILE")]
    pub val_split: Option<PathBuf>,
}

impl DataArgs {
    /// The training images of --split (warnings logged), registered with `also` (other input
    /// files) as inputs that no output may replace.
    pub fn load(
        &self,
        classes: Option<&eval::ClassList>,
        also: impl IntoIterator<Item = PathBuf>,
    ) -> anyhow::Result<inception_rcnn::train::data::Loaded> {
        let split = self.split.as_deref().map(read_split).transpose()?;
        let train_set = load_images(&self.images, &self.annotations, split.as_deref(), classes)?;
        for w in &train_set.warnings {
            tracing::warn!("{w}");
        }
        eval::protect_inputs(
            train_set
                .images
                .iter()
                .map(|i| i.path.clone())
                .chain(self.split.clone())
                .chain(self.val_split.clone())
                .chain(also),
        );
        Ok(train_set)
    }
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

pub fn run(args: TrainArgs, threads: Option<usize>) -> anyhow::Result<()> {
    anyhow::ensure!(args.ensemble >= 1, "--ensemble must be at least 1");
    let members = members(args.member.as_deref(), args.ensemble)?;
    anyhow::ensure!(
        args.batch_positives + args.batch_background > 0,
        "a mini-batch needs at least one region"
    );
    // The output folder is checked before hours of work, and no output replaces an input.
    eval::check_output_dir(&args.out)?;
    let classes = args
        .classes
        .as_deref()
        .map(eval::ClassList::read)
        .transpose()?;
    let init_file = (args.network.init != "scratch").then(|| PathBuf::from(&args.network.init));
    let train_set = args.data.load(
        classes.as_ref(),
        args.classes.clone().into_iter().chain(init_file),
    )?;
    let class_names: Vec<String> = std::iter::once("__background__".to_string())
        .chain(train_set.classes.names.iter().cloned())
        .collect();
    let objects: usize = train_set.images.iter().map(|i| i.objects.len()).sum();
    tracing::info!(
        "{} training images, {objects} objects, {} classes + background",
        train_set.images.len(),
        class_names.len() - 1
    );
    let init = args.network.init();
    let config = network_config(&args, class_names.len() as i64)?;
    let device = device::select(args.device.device, threads)?;

    let source = args.source.source();
    let multibox = source.load_multibox::<anyhow::Error>(|| Ok(device))?;
    // MultiBox's boxes for the training and validation images, batched on the device, before
    // the cache (whose workers add selective search's).
    let learned = |images: &[inception_rcnn::train::data::TrainImage]| {
        let paths: Vec<PathBuf> = images.iter().map(|i| i.path.clone()).collect();
        source
            .learned(multibox.as_ref(), &paths, || {})
            .map(|(l, _)| l)
    };
    let spec = CacheSpec {
        max_proposals: args.max_proposals,
        max_background: args.max_background,
        search_mode: args
            .source
            .mode
            .search()
            .map_or("none".into(), |m| m.to_string()),
        search_scale: args.source.scale,
        learned: learned(&train_set.images),
        ..CacheSpec::new(
            train_set.images.clone(),
            config.input_size as i32,
            config.mean,
            args.seed,
        )
    };
    // A resumed run continues on the regions it was trained on: other settings would rebuild
    // the cache under the checkpoint, so they are refused before anything is touched.
    anyhow::ensure!(
        !(args.resume && RegionCache::built_otherwise(&cache_dir(&args.out), "train", &spec)),
        "--resume: the region cache in {} was built with other settings (images, split, \
         proposals, background per image, input size, normalisation or seed) and would be \
         rebuilt under the checkpoint; rerun with the flags of the run you resume, or without \
         --resume",
        cache_dir(&args.out).display()
    );
    let progress = progress_bar(
        spec.images.len() as u64,
        "regions [{bar:30}] {pos}/{len} images, {per_sec} ETA {eta}",
    );
    let cache =
        RegionCache::open_or_build(&cache_dir(&args.out), "train", &spec, &|| progress.inc(1))?;
    progress.finish_and_clear();
    anyhow::ensure!(
        !cache.is_empty(),
        "no training regions: no training image could be read"
    );
    tracing::info!(
        "{} cached regions ({} positives), {:.0} MB at {}",
        cache.len(),
        cache.positives(),
        (cache.len() * 3 * (config.input_size * config.input_size) as usize) as f64 / 1e6,
        cache_dir(&args.out).display()
    );
    if cache.positives() == 0 {
        tracing::warn!("no positive regions: every mini-batch is background");
    }

    let validation = match &args.data.val_split {
        Some(path) => {
            let keys = read_split(path)?;
            let val = load_images(
                &args.data.images,
                &args.data.annotations,
                Some(&keys),
                Some(&train_set.classes),
            )?;
            for w in &val.warnings {
                tracing::warn!("validation: {w}");
            }
            let v = Validation::prepare(
                &val.images,
                train_set.classes.len(),
                &spec.search_params(),
                learned(&val.images).as_ref(),
                args.val_proposals,
            );
            tracing::info!("{} validation images", v.len());
            Some(v)
        }
        None => None,
    };

    let batch = args.batch_positives + args.batch_background;
    let steps = args
        .steps
        .unwrap_or_else(|| (args.epochs * cache.len() as f64 / batch as f64).ceil() as usize)
        .max(1);
    let mut models = Vec::new();
    for member in members {
        let out = if args.ensemble == 1 {
            args.out.clone()
        } else {
            args.out.join(format!("member-{}", member + 1))
        };
        let recipe = Recipe {
            config: config.clone(),
            classes: class_names.clone(),
            init: init.clone(),
            positives: args.batch_positives,
            background: args.batch_background,
            lr: args.sgd.lr,
            momentum: args.sgd.momentum,
            weight_decay: args.sgd.weight_decay,
            lr_decay: args.sgd.lr_decay,
            lr_every_epochs: args.sgd.lr_every_epochs,
            aux_weight: args.aux_weight,
            polyak: args.sgd.polyak,
            flip: !args.no_flip,
            seed: args.seed + member as u64,
            cache_regions: cache.len(),
        };
        let params = TrainParams {
            recipe,
            steps,
            checkpoint_every: args.checkpoint_every,
            log_every: args.log_every,
            resume: args.resume,
            precision: args.precision,
        };
        let progress = progress_bar(
            steps as u64,
            "train [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
        );
        let (mut loss_avg, mut acc_avg) = (f64::NAN, f64::NAN);
        let mut last_ap = None;
        train(
            &cache,
            validation.as_ref(),
            &params,
            &out,
            device,
            |e| match e {
                Event::Started { step, .. } => progress.set_position(step as u64),
                Event::Step {
                    step,
                    loss,
                    accuracy,
                    lr,
                } => {
                    // Smoothed for the display only.
                    let k = 0.05;
                    loss_avg = if loss_avg.is_nan() {
                        loss
                    } else {
                        loss_avg + k * (loss - loss_avg)
                    };
                    acc_avg = if acc_avg.is_nan() {
                        accuracy
                    } else {
                        acc_avg + k * (accuracy - acc_avg)
                    };
                    progress.set_position(step as u64);
                    progress.set_message(format!(
                        "loss {loss_avg:.3} acc {acc_avg:.3} lr {lr:.2e}{}",
                        last_ap.map_or(String::new(), |ap: f64| format!(" val AP {ap:.3}"))
                    ));
                }
                Event::Checkpoint { step, val_ap } => {
                    last_ap = val_ap;
                    progress.suspend(|| match val_ap {
                        Some(ap) => {
                            tracing::info!("step {step}: checkpoint; validation AP50 {ap:.4}")
                        }
                        None => tracing::info!("step {step}: checkpoint"),
                    });
                }
            },
        )
        .with_context(|| format!("training into {}", out.display()))?;
        progress.finish_and_clear();
        let model_path = out.join("model.safetensors");
        println!(
            "member {}: {} ({} steps; log {}, curves {} and {})",
            member + 1,
            model_path.display(),
            steps,
            out.join("log.csv").display(),
            out.join("loss.png").display(),
            out.join("accuracy.png").display()
        );
        models.push(model_path);
    }
    let flags: Vec<String> = models
        .iter()
        .map(|m| format!("--model {}", m.display()))
        .collect();
    println!(
        "detect with: rcnn detect IMAGES {} --out DIR",
        flags.join(" ")
    );
    Ok(())
}

/// The members this process trains (0-based): all, or the one --member names.
fn members(member: Option<&str>, ensemble: usize) -> anyhow::Result<std::ops::Range<usize>> {
    let k = match member {
        None => return Ok(0..ensemble),
        Some("auto") => {
            let (k, n) = inception_rcnn::run::shard::ShardSpec::Auto
                .resolve()
                .map_err(|e| anyhow::anyhow!("--member auto: {e}"))?;
            anyhow::ensure!(
                n == ensemble,
                "--member auto: the scheduler runs {n} tasks but --ensemble is {ensemble}: \
                 one task per member"
            );
            k
        }
        Some(k) => k
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|k| (1..=ensemble).contains(k))
            .with_context(|| format!("--member {k}: want 1..={ensemble} (--ensemble) or auto"))?,
    };
    anyhow::ensure!(ensemble > 1, "--member needs --ensemble N with N > 1");
    Ok(k - 1..k)
}

/// The network to train: from --init's file when given (its layout and width), else from the
/// flags; always with the auxiliary heads and `classes` outputs.
fn network_config(args: &TrainArgs, classes: i64) -> anyhow::Result<GoogLeNetConfig> {
    let mut config = args.network.config()?;
    config.num_classes = classes;
    config.input_size = args.input_size;
    config.aux_logits = true;
    config.validate()?;
    Ok(config)
}

fn config_of_file(path: &Path) -> anyhow::Result<GoogLeNetConfig> {
    if let Ok((config, _)) = Model::read_config(path) {
        return Ok(config);
    }
    let tensors = inception_rcnn::model::weights::read_state_dict(path)?;
    Ok(inception_rcnn::model::weights::infer_config(
        &tensors, path,
    )?)
}
