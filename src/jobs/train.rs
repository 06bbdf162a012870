//! The `rcnn train` job: the region classifier fine-tuned as R-CNN does it (or trained from
//! scratch), one network or the members of an ensemble, with checkpoints, `--resume` and
//! validation AP. The steps themselves are [`crate::train::train`]; this file decides the
//! data, the region cache and the members.

use std::path::{Path, PathBuf};

use super::{ensure, JobError, Progress};
use crate::detect::propose::ProposalSource;
use crate::model::precision::Precision;
use crate::model::{GoogLeNetConfig, Layout, Model};
use crate::run::device::DeviceChoice;
use crate::run::shard::ShardSpec;
use crate::train::batches::{Batches, PixelSource};
use crate::train::data::{load_images_from, read_split, GtSource, Loaded, TrainImage};
use crate::train::regions::{cache_dir, Precomputed, RegionIndex, RegionSpec};
use crate::train::{train, Event, Init, Recipe, TrainParams, Validation};

/// The training data: `rcnn train` and `rcnn train-multibox` read the same.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Folder of training images (searched recursively).
    pub images: PathBuf,
    /// The ground truth: VOC / ILSVRC XML (a folder, also DET's class folders), COCO JSON,
    /// CSV, txt or YOLO labels, read as `map-eval` reads them.
    pub annotations: PathBuf,
    /// Its format, where the path does not tell it.
    pub gt_format: Option<eval::formats::Format>,
    /// The class list file, which names YOLO's class numbers where the dataset does not.
    pub classes_file: Option<PathBuf>,
    /// Train on these images only (one name a line).
    pub split: Option<PathBuf>,
    /// Held-out images scored at each checkpoint.
    pub val_split: Option<PathBuf>,
}

impl TrainData {
    /// Where the ground truth is and how to read it.
    pub fn gt_source(&self) -> GtSource {
        GtSource {
            path: self.annotations.clone(),
            format: self.gt_format,
            classes: self.classes_file.clone(),
        }
    }

    /// The held-out images of `split`, their objects in `classes`.
    pub fn load_split(
        &self,
        split: &Path,
        classes: Option<&eval::ClassList>,
    ) -> Result<Loaded, JobError> {
        let keys = read_split(split)?;
        Ok(load_images_from(
            &self.images,
            &self.gt_source(),
            Some(&keys),
            classes,
        )?)
    }

    /// The training images of `split` (warnings logged), registered with `also` (other input
    /// files) as inputs that no output may replace.
    pub fn load(
        &self,
        classes: Option<&eval::ClassList>,
        also: impl IntoIterator<Item = PathBuf>,
    ) -> Result<Loaded, JobError> {
        let split = self.split.as_deref().map(read_split).transpose()?;
        let train_set =
            load_images_from(&self.images, &self.gt_source(), split.as_deref(), classes)?;
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

/// The paper's optimisation: SGD with momentum, a stepped schedule, Polyak averaging.
#[derive(Debug, Clone)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    /// Not on biases.
    pub weight_decay: f64,
    /// The learning rate is multiplied by this every `lr_every_epochs`.
    pub lr_decay: f64,
    pub lr_every_epochs: f64,
    /// Cap of the Polyak average's decay.
    pub polyak: f64,
}

/// Which members of an ensemble this process trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// Member K (1-based).
    One(usize),
    /// K from the scheduler, as `--shard auto`.
    Auto,
}

/// Everything that decides a training run.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub data: TrainData,
    /// First weights: from scratch (of `layout` and `width`), or a file whose fitting tensors
    /// are copied (it decides the layout and width).
    pub init: Init,
    pub layout: Layout,
    pub width: f64,
    /// Side of the warped regions.
    pub input_size: i64,
    /// Class list (default: the annotations' classes, sorted); `__background__` comes first.
    pub classes: Option<PathBuf>,
    pub out: PathBuf,
    /// Steps (default: `epochs`' worth).
    pub steps: Option<usize>,
    pub epochs: f64,
    pub batch_positives: usize,
    pub batch_background: usize,
    pub sgd: Sgd,
    pub aux_weight: f64,
    pub flip: bool,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub log_every: usize,
    pub resume: bool,
    /// Start afresh over an earlier run's model and checkpoint (refused without it).
    pub overwrite: bool,
    /// Networks trained with seeds seed..seed+N-1, into member-1 ... member-N.
    pub ensemble: usize,
    pub member: Option<Member>,
    pub max_proposals: usize,
    pub max_background: usize,
    pub val_proposals: usize,
    pub source: ProposalSource,
    /// Precomputed proposals (a file of `rcnn proposals`, or a folder of its shard files)
    /// instead of selective search in this process.
    pub proposals: Option<PathBuf>,
    /// Streamed pixels (default) or a pixel cache.
    pub pixels: PixelSource,
    /// RAM for decoded images when streamed, in bytes.
    pub image_cache_bytes: usize,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
    pub precision: Precision,
}

/// What a finished run made.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Each trained member's folder (the run's own without an ensemble).
    pub members: Vec<(usize, PathBuf)>,
    pub steps: usize,
}

/// The members this process trains (0-based): all, or the one `member` names.
fn members(member: Option<Member>, ensemble: usize) -> Result<std::ops::Range<usize>, JobError> {
    let k = match member {
        None => return Ok(0..ensemble),
        Some(Member::Auto) => {
            let (k, n) = ShardSpec::Auto
                .resolve()
                .map_err(|e| JobError::Refused(format!("--member auto: {e}")))?;
            ensure(n == ensemble, || {
                format!(
                    "--member auto: the scheduler runs {n} tasks but --ensemble is {ensemble}: \
                     one task per member"
                )
            })?;
            k
        }
        Some(Member::One(k)) => {
            ensure((1..=ensemble).contains(&k), || {
                format!("--member {k}: want 1..={ensemble} (--ensemble) or auto")
            })?;
            k
        }
    };
    ensure(ensemble > 1, || {
        "--member needs --ensemble N with N > 1".into()
    })?;
    Ok(k - 1..k)
}

/// The network of a file: one of our model files, else a state dict's inferred shape.
pub fn config_of_file(path: &Path) -> Result<GoogLeNetConfig, JobError> {
    if let Ok((config, _)) = Model::read_config(path) {
        return Ok(config);
    }
    let tensors = crate::model::weights::read_state_dict(path)?;
    Ok(crate::model::weights::infer_config(&tensors, path)?)
}

/// What a member's folder holds once trained, each refused as an output if it is an input.
const MEMBER_OUTPUTS: [&str; 5] = [
    "model.safetensors",
    "checkpoint.safetensors",
    "log.csv",
    "loss.png",
    "accuracy.png",
];

/// A class list for training: `__background__` is added as column 0, so it may only come
/// first (where it is the same column), and no name twice (two columns for one class).
fn check_class_list(names: &[String], path: &std::path::Path) -> Result<(), JobError> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.iter().enumerate() {
        ensure(
            i == 0 || !crate::model::weights::is_background(name),
            || {
                format!(
                    "{}: {name} at line {}: training adds the background as the first column; \
                 remove it or put it first",
                    path.display(),
                    i + 1
                )
            },
        )?;
        ensure(seen.insert(name.as_str()), || {
            format!("{}: class {name} is listed twice", path.display())
        })?;
    }
    Ok(())
}

impl TrainJob {
    /// The folder member `member` (0-based) trains into: the run's own without an ensemble.
    fn member_out(&self, member: usize) -> PathBuf {
        if self.ensemble == 1 {
            self.out.clone()
        } else {
            self.out.join(format!("member-{}", member + 1))
        }
    }

    /// Refuses, before any work, a member folder whose outputs would replace an input (`--init
    /// OUT/model.safetensors --out OUT`) or an earlier run (without --resume or --overwrite).
    fn check_member_out(&self, out: &std::path::Path) -> Result<(), JobError> {
        for f in MEMBER_OUTPUTS {
            eval::check_not_input(&out.join(f))?;
        }
        let earlier = ["model.safetensors", "checkpoint.safetensors"]
            .into_iter()
            .find(|f| out.join(f).is_file());
        if let (Some(f), false, false) = (earlier, self.resume, self.overwrite) {
            return Err(JobError::Refused(format!(
                "{} holds an earlier run ({f}): --resume continues it, --overwrite replaces it",
                out.display()
            )));
        }
        Ok(())
    }

    /// The network to train: from the init file when given (its layout and width), else from
    /// the settings; always with the auxiliary heads and `classes` outputs.
    fn network_config(&self, classes: i64) -> Result<GoogLeNetConfig, JobError> {
        let mut config = match &self.init {
            Init::Scratch => GoogLeNetConfig {
                width: self.width,
                ..GoogLeNetConfig::new(self.layout)
            },
            Init::File(path) => config_of_file(path)?,
        };
        config.num_classes = classes;
        config.input_size = self.input_size;
        config.aux_logits = true;
        config.validate()?;
        Ok(config)
    }

    /// Runs the job: checks the settings and output folder, builds (or reuses) the region
    /// cache, then trains each member this process owns.
    pub fn run(&self, progress: &dyn Progress) -> Result<TrainSummary, JobError> {
        let job = self;
        ensure(job.ensemble >= 1, || "--ensemble must be at least 1".into())?;
        let members = members(job.member, job.ensemble)?;
        ensure(job.batch_positives + job.batch_background > 0, || {
            "a mini-batch needs at least one region".into()
        })?;
        // The output folder is checked before hours of work, and no output replaces an input.
        eval::check_output_dir(&job.out)?;
        let classes = job
            .classes
            .as_deref()
            .map(eval::ClassList::read)
            .transpose()?;
        if let (Some(list), Some(path)) = (&classes, &job.classes) {
            check_class_list(&list.names, path)?;
        }
        let init_file = match &job.init {
            Init::File(p) => Some(p.clone()),
            Init::Scratch => None,
        };
        eval::protect_inputs(job.classes.iter().chain(&init_file));
        for member in members.clone() {
            job.check_member_out(&job.member_out(member))?;
        }
        let train_set = job.data.load(
            classes.as_ref(),
            job.classes.clone().into_iter().chain(init_file),
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
        let config = job.network_config(class_names.len() as i64)?;
        let device = crate::run::device::select(job.device, job.threads)?;

        let multibox = job.source.load_multibox::<JobError>(|| Ok(device))?;
        // MultiBox's boxes for the training and validation images, batched on the device,
        // before the cache (whose workers add selective search's).
        let learned = |images: &[TrainImage]| {
            let paths: Vec<PathBuf> = images.iter().map(|i| i.path.clone()).collect();
            job.source
                .learned(multibox.as_ref(), &paths, || {})
                .map(|(l, _)| l)
        };
        tracing::debug!("peak memory after loading the ground truth: {}", peak_mb());
        // The index's build time includes reading precomputed proposals.
        let started = std::time::Instant::now();
        let precomputed = match &job.proposals {
            Some(path) => read_precomputed(path, &train_set.images, &cache_dir(&job.out))?,
            None => Precomputed::default(),
        };
        tracing::debug!("peak memory after reading proposals: {}", peak_mb());
        let spec = RegionSpec {
            max_proposals: job.max_proposals,
            max_background: job.max_background,
            search_mode: job
                .source
                .mode
                .search()
                .map_or("none".into(), |m| m.to_string()),
            search_scale: job.source.scale,
            learned: learned(&train_set.images),
            proposals: precomputed.stamp.clone(),
            ..RegionSpec::new(train_set.images.clone(), job.seed)
        };
        let cache_dir = cache_dir(&job.out);
        // A resumed run continues on the regions it was trained on: other settings would
        // rebuild the index under the checkpoint, so they are refused before anything is
        // touched.
        ensure(
            !(job.resume && RegionIndex::built_otherwise(&cache_dir, "train", &spec)),
            || {
                format!(
                    "--resume: the region index in {} was built with other settings (images, \
                     split, proposals, background per image or seed) and would be rebuilt under \
                     the checkpoint; rerun with the flags of the run you resume, or without \
                     --resume",
                    cache_dir.display()
                )
            },
        )?;
        progress.start("regions", spec.images.len() as u64);
        let index = RegionIndex::open_or_build(&cache_dir, "train", &spec, &precomputed, &|| {
            progress.advance()
        })?;
        progress.finish();
        tracing::info!(
            "region index ready in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        tracing::debug!("peak memory with the index built: {}", peak_mb());
        ensure(!index.is_empty(), || {
            "no training regions: no training image could be read".into()
        })?;
        tracing::info!(
            "{} regions ({} positives) indexed, {:.1} MB at {}",
            index.len(),
            index.positives(),
            index.disk_bytes() as f64 / 1e6,
            cache_dir.display()
        );
        if index.positives() == 0 {
            tracing::warn!("no positive regions: every mini-batch is background");
        }
        let warp =
            crate::detect::warp::WarpParams::new(config.input_size as i32, config.mean, config.std);
        let batches = match job.pixels {
            PixelSource::Stream => Batches::stream(&index, warp, job.image_cache_bytes),
            PixelSource::Cache => {
                progress.start("pixels", spec.images.len() as u64);
                let b = Batches::cached(&index, warp, &|| progress.advance())?;
                progress.finish();
                tracing::info!(
                    "pixel cache: {:.0} MB at {}",
                    b.cache_bytes() as f64 / 1e6,
                    cache_dir.display()
                );
                b
            }
        };
        let validation = match &job.data.val_split {
            Some(path) => {
                let val = job.data.load_split(path, Some(&train_set.classes))?;
                for w in &val.warnings {
                    tracing::warn!("validation: {w}");
                }
                let v = Validation::prepare(
                    &val.images,
                    train_set.classes.len(),
                    &spec.search_params(),
                    learned(&val.images).as_ref(),
                    job.val_proposals,
                );
                tracing::info!("{} validation images", v.len());
                Some(v)
            }
            None => None,
        };
        let batch = job.batch_positives + job.batch_background;
        let steps = job
            .steps
            .unwrap_or_else(|| (job.epochs * index.len() as f64 / batch as f64).ceil() as usize)
            .max(1);
        tracing::debug!("peak memory before training: {}", peak_mb());
        let mut trained = Vec::new();
        for member in members {
            let out = job.member_out(member);
            let params = TrainParams {
                recipe: self.recipe(&config, &class_names, member, index.len()),
                steps,
                checkpoint_every: job.checkpoint_every,
                log_every: job.log_every,
                resume: job.resume,
                precision: job.precision,
            };
            train_member(
                &batches,
                validation.as_ref(),
                &params,
                &out,
                device,
                progress,
            )?;
            trained.push((member + 1, out));
        }
        Ok(TrainSummary {
            members: trained,
            steps,
        })
    }

    fn recipe(
        &self,
        config: &GoogLeNetConfig,
        classes: &[String],
        member: usize,
        regions: usize,
    ) -> Recipe {
        Recipe {
            config: config.clone(),
            classes: classes.to_vec(),
            init: self.init.clone(),
            positives: self.batch_positives,
            background: self.batch_background,
            lr: self.sgd.lr,
            momentum: self.sgd.momentum,
            weight_decay: self.sgd.weight_decay,
            lr_decay: self.sgd.lr_decay,
            lr_every_epochs: self.sgd.lr_every_epochs,
            aux_weight: self.aux_weight,
            polyak: self.sgd.polyak,
            flip: self.flip,
            seed: self.seed + member as u64,
            regions,
            pixels: self.pixels,
        }
    }
}

/// One member's training, its progress shown as steps with smoothed loss and accuracy.
fn train_member(
    batches: &Batches,
    validation: Option<&Validation>,
    params: &TrainParams,
    out: &Path,
    device: tch::Device,
    progress: &dyn Progress,
) -> Result<(), JobError> {
    progress.start("train", params.steps as u64);
    let (mut loss_avg, mut acc_avg) = (f64::NAN, f64::NAN);
    let mut last_ap = None;
    // Smoothed for the display only.
    let smooth = |avg: f64, x: f64| {
        if avg.is_nan() {
            x
        } else {
            avg + 0.05 * (x - avg)
        }
    };
    train(batches, validation, params, out, device, |e| match e {
        Event::Started { step, .. } => progress.position(step as u64),
        Event::Step {
            step,
            loss,
            accuracy,
            lr,
        } => {
            loss_avg = smooth(loss_avg, loss);
            acc_avg = smooth(acc_avg, accuracy);
            progress.position(step as u64);
            progress.message(&format!(
                "loss {loss_avg:.3} acc {acc_avg:.3} lr {lr:.2e}{}",
                last_ap.map_or(String::new(), |ap: f64| format!(" val AP {ap:.3}"))
            ));
        }
        Event::Checkpoint { step, val_ap } => {
            last_ap = val_ap;
            progress.suspend(&mut || match val_ap {
                Some(ap) => tracing::info!("step {step}: checkpoint; validation AP50 {ap:.4}"),
                None => tracing::info!("step {step}: checkpoint"),
            });
        }
    })
    .map_err(|e| JobError::context(format!("training into {}", out.display()), e))?;
    progress.finish();
    Ok(())
}

/// This process's peak resident memory, for the debug log's phases.
fn peak_mb() -> String {
    format!(
        "{:.0} MB",
        crate::run::device::peak_host_memory() as f64 / (1 << 20) as f64
    )
}

/// Precomputed proposals for `images`: one file of `rcnn proposals` (CSV or JSON), or a folder
/// of them (the shard files of an array job), read whole. Images are matched by their names
/// in the training set, then by file stem; images the files lack are trained on their ground
/// truth alone (warned). CSV rows stream to a scratch file in `scratch` as they are read.
pub fn read_precomputed(
    path: &Path,
    images: &[TrainImage],
    scratch: &Path,
) -> Result<Precomputed, JobError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| JobError::Refused(format!("{}: {e}", path.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("json")
                })
            })
            .collect();
        f.sort();
        ensure(!f.is_empty(), || {
            format!(
                "--proposals {}: no .csv or .json proposals files in this folder",
                path.display()
            )
        })?;
        f
    } else {
        vec![path.to_path_buf()]
    };
    eval::protect_inputs(files.iter().cloned());
    // Each image by its unique name in the set, and by its key where that is not a name.
    let paths: Vec<PathBuf> = images.iter().map(|i| i.path.clone()).collect();
    let names = crate::detect::decode::image_names(&paths);
    let mut wanted: std::collections::HashMap<String, usize> = Default::default();
    for (i, im) in images.iter().enumerate() {
        wanted.insert(im.key.clone(), i);
    }
    for (i, n) in names.iter().enumerate() {
        wanted.insert(n.clone(), i);
    }
    let mut stamp = crate::train::regions::ProposalsStamp {
        path: path.to_path_buf(),
        bytes: 0,
        modified: 0,
    };
    let mut pre = Precomputed::default();
    let mut spill = Precomputed::spill_writer(scratch)?;
    // Which file gave each image its boxes: two files giving one image is refused.
    let mut from: Vec<Option<usize>> = vec![None; images.len()];
    let mut twice: Option<String> = None;
    for (k, f) in files.iter().enumerate() {
        let mut issues = eval::Issues::new(false);
        let mut claim = |i: usize, name: &str| match from[i] {
            Some(other) if other != k => {
                twice.get_or_insert_with(|| name.to_string());
                false
            }
            _ => {
                from[i] = Some(k);
                true
            }
        };
        let is_json = f
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            for (name, boxes) in crate::detect::propose::read_proposals(f, &mut issues)? {
                if let Some(&i) = wanted.get(&name) {
                    if claim(i, &name) {
                        pre.insert(images[i].path.clone(), boxes);
                    }
                }
            }
        } else {
            let mut failed = None;
            crate::detect::propose::for_each_csv_proposal(f, &mut issues, |name, rank, b| {
                if let Some(&i) = wanted.get(name) {
                    if failed.is_none() && claim(i, name) {
                        if let Err(e) = spill.push(&images[i].path, rank, &b) {
                            failed = Some(e);
                        }
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        if issues.total() > 0 {
            tracing::warn!("{}: {issues}", f.display());
        }
        if let Some(name) = &twice {
            return Err(JobError::Refused(format!(
                "--proposals {}: image {name} has proposals in two files",
                path.display()
            )));
        }
        if let Some((b, m)) = crate::detect::file_stamp(f) {
            stamp.bytes += b;
            stamp.modified = stamp.modified.max(m);
        }
    }
    pre.add_spill(spill)?;
    pre.stamp = Some(stamp);
    let missing: Vec<&str> = images
        .iter()
        .zip(&from)
        .filter(|(_, f)| f.is_none())
        .map(|(im, _)| im.key.as_str())
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            "--proposals {}: no proposals for {} of {} training images (e.g. {}); they train on \
             their ground-truth boxes alone",
            path.display(),
            missing.len(),
            images.len(),
            missing[..missing.len().min(3)].join(", ")
        );
    }
    Ok(pre)
}
