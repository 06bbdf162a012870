//! `rcnn train`: fine-tuning (or training from scratch) the region classifier on warped
//! regions, as R-CNN and GoogLeNet's detection entry did.
//!
//! Stages: [`data`] (images and annotations), [`regions`] (proposals labelled by overlap, an
//! index of boxes memory-mapped; mini-batches of 32 positives and 96 background), [`batches`]
//! (their pixels, decoded and warped as each batch is drawn, or from a pixel cache),
//! [`sgd`] (the paper's optimisation and Polyak averaging), [`checkpoint`], [`log`]. Validation
//! runs the detect pipeline itself on held-out images and scores it with the eval crate.

pub mod batches;
pub mod checkpoint;
pub mod data;
pub mod heads;
pub mod log;
pub mod multibox;
pub mod regions;
pub mod sgd;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use eval::{BBox, Detection, Detections, EvalParams, GroundTruth, GtBox, Metric};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::detect::postprocess::PostParams;
use crate::detect::{detect, DetectParams, Outcome};
use crate::ensemble::Ensemble;
use crate::model::{GoogLeNetConfig, Model, ModelError};
use batches::{Batches, PixelSource};
use data::TrainImage;
use log::{LogRow, TrainLog};
use sgd::{Polyak, Schedule, Sgd};

use crate::model::precision::Precision;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    // Not `source`: the message carries the reason once (a source would repeat it in chains).
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Data(String),
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("training diverged: the loss is {loss} at step {step}; lower --lr (the last checkpoint is kept)")]
    Diverged { step: usize, loss: f64 },
    #[error(transparent)]
    Eval(#[from] eval::EvalError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Lock(#[from] crate::run::lock::LockError),
}

/// `map_err` for I/O on `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |error| TrainError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Where the first weights come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Init {
    /// He-initialised convolutions, as `Model::new` (seeded).
    Scratch,
    /// A model file or state dict: every tensor whose name and shape fit is copied; the rest
    /// (a classifier for other classes) starts fresh.
    File(PathBuf),
}

/// The settings that decide what a run computes; a checkpoint resumes only under the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    pub config: GoogLeNetConfig,
    pub classes: Vec<String>,
    pub init: Init,
    /// Positives and background regions per mini-batch (R-CNN: 32 and 96).
    pub positives: usize,
    pub background: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// The paper: 0.96 every 8 epochs.
    pub lr_decay: f64,
    pub lr_every_epochs: f64,
    /// Weight of each auxiliary classifier's loss (the paper: 0.3).
    pub aux_weight: f64,
    /// Cap of the averaging decay.
    pub polyak: f64,
    pub flip: bool,
    pub seed: u64,
    /// Regions in the index (decides the epoch's length).
    pub regions: usize,
    /// Streamed or cached pixels (the same crops up to a grey level's rounding).
    pub pixels: PixelSource,
}

/// A run: the recipe and how long and how often.
#[derive(Debug, Clone)]
pub struct TrainParams {
    pub recipe: Recipe,
    pub steps: usize,
    pub checkpoint_every: usize,
    pub log_every: usize,
    pub resume: bool,
    /// Precision of activations (weights stay f32 masters; fp16 scales the loss).
    pub precision: Precision,
}

/// What the caller hears of a run.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        step: usize,
        steps: usize,
    },
    Step {
        step: usize,
        loss: f64,
        accuracy: f64,
        lr: f64,
    },
    Checkpoint {
        step: usize,
        val_ap: Option<f64>,
    },
}

/// Held-out images with precomputed proposals, scored through the detect pipeline.
pub struct Validation {
    images: Vec<PathBuf>,
    /// Each image's index in `gt`.
    index: HashMap<PathBuf, usize>,
    gt: GroundTruth,
    n_classes: usize,
    params: DetectParams,
}

impl Validation {
    /// Proposals of every image once (the first `max_proposals`; selective search's, with
    /// `learned` MultiBox's mixed in or alone), and its ground truth.
    pub fn prepare(
        images: &[TrainImage],
        n_classes: usize,
        search: &proposals::SearchParams,
        learned: Option<&crate::detect::propose::LearnedProposals>,
        max_proposals: usize,
    ) -> Validation {
        let mut gt = GroundTruth::default();
        let mut precomputed: HashMap<PathBuf, Vec<BBox>> = HashMap::new();
        let found: Vec<(usize, Vec<BBox>)> = {
            use rayon::prelude::*;
            images
                .par_iter()
                .enumerate()
                .filter_map(|(i, im)| {
                    let img = crate::detect::decode::decode(&im.path).map_err(|e| e.to_string());
                    let boxes = img.and_then(|img| {
                        let ss = || proposals::selective_search(&img, search);
                        match learned {
                            Some(l) => l.proposals_for(&im.path, ss),
                            None => ss(),
                        }
                        .map_err(|e| format!("{}: {e}", im.path.display()))
                    });
                    match boxes {
                        Ok(mut b) => {
                            b.truncate(max_proposals);
                            Some((i, b))
                        }
                        Err(e) => {
                            tracing::warn!("validation: {e}; left out");
                            None
                        }
                    }
                })
                .collect()
        };
        let mut paths = Vec::new();
        let mut index = HashMap::new();
        for (i, boxes) in found {
            let im = &images[i];
            let idx = gt.images.intern(&im.key);
            for o in &im.objects {
                gt.boxes.push(GtBox {
                    image: idx,
                    class: o.label as usize - 1,
                    bbox: o.bbox,
                    difficult: false,
                    crowd: false,
                    area: None,
                });
            }
            precomputed.insert(im.path.clone(), boxes);
            index.insert(im.path.clone(), idx);
            paths.push(im.path.clone());
        }
        Validation {
            images: paths,
            index,
            gt,
            n_classes,
            params: DetectParams {
                search: search.clone(),
                max_proposals,
                post: PostParams::default(),
                batch: 128,
                workers: crate::detect::default_workers(),
                warp: crate::detect::batch::WarpMode::Device,
                precomputed: Some(precomputed),
                learned: None,
                min_proposals: 0,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Mean AP at IoU 0.5 under the ILSVRC rules of `model` on these images.
    pub fn ap(&self, model: Model) -> Result<f64, TrainError> {
        let ensemble = Ensemble::new(vec![model], Kind::Float)?;
        let mut dets = Vec::new();
        detect(&self.images, &ensemble, &self.params, |o| {
            if let Outcome::Done {
                image, detections, ..
            } = o
            {
                let idx = self.index[&image];
                dets.extend(detections.iter().map(|d| Detection {
                    image: idx,
                    class: d.class - 1,
                    score: d.score as f64,
                    bbox: d.bbox,
                }));
            }
        });
        let dets = Detections {
            dets,
            first_unknown_image: self.gt.images.len(),
        };
        let e = eval::evaluate(
            &self.gt,
            &dets,
            self.n_classes,
            &EvalParams::new(Metric::Ilsvrc),
        );
        Ok(e.mean_ap.unwrap_or(0.0))
    }
}

/// The network for inference (no auxiliary heads) with the averaged weights.
pub fn inference_model(avg: &Model) -> Result<Model, TrainError> {
    let config = GoogLeNetConfig {
        aux_logits: false,
        ..avg.config().clone()
    };
    let mut m = Model::new(&config, avg.classes.clone(), avg.vs.device())?;
    m.vs.copy(&avg.vs).map_err(ModelError::Torch)?;
    Ok(m)
}

/// fp16's dynamic loss scale, as PyTorch's GradScaler: start at 2^16, halve when the
/// gradients overflow (the step is skipped), double after 2,000 steps without overflow.
#[derive(Debug, Clone)]
pub struct LossScaler {
    pub scale: f64,
    good_steps: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    /// Whether the unscaled gradient `g` is finite (the step may go ahead); adjusts the scale.
    pub fn update(&mut self, g: &Tensor) -> bool {
        let finite = g.isfinite().all().int64_value(&[]) == 1;
        if finite {
            self.good_steps += 1;
            if self.good_steps == 2000 {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.good_steps = 0;
            tracing::debug!(
                "fp16 gradients overflowed: step skipped, loss scale {}",
                self.scale
            );
        }
        finite
    }
}

/// Gradients of `loss`, then one SGD update: directly, or with fp16's loss scale (a step whose
/// scaled gradients overflowed is skipped and the scale halved).
pub fn backward_and_step(loss: &Tensor, sgd: &mut Sgd, scaler: Option<&mut LossScaler>, lr: f64) {
    sgd.zero_grad();
    match scaler {
        None => {
            loss.backward();
            sgd.step(lr);
        }
        Some(s) => {
            (loss * s.scale).backward();
            let g = sgd.grad() * (1.0 / s.scale);
            if s.update(&g) {
                sgd.step_with(&g, lr);
            }
        }
    }
}

/// Softmax cross-entropy of the main head plus `aux_weight` times each auxiliary head's.
pub fn loss_of(logits: &crate::model::Logits, labels: &Tensor, aux_weight: f64) -> Tensor {
    // In f32 whatever the activations' precision.
    let ce = |t: &Tensor| t.to_kind(Kind::Float).cross_entropy_for_logits(labels);
    let mut loss = ce(&logits.main);
    for aux in [&logits.aux1, &logits.aux2].into_iter().flatten() {
        loss += ce(aux) * aux_weight;
    }
    loss
}

/// The two networks of a run, initialised from the recipe.
fn build(recipe: &Recipe, device: Device) -> Result<(Model, Model), TrainError> {
    tch::manual_seed(recipe.seed as i64);
    let mut net = Model::new(&recipe.config, recipe.classes.clone(), device)?;
    if let Init::File(path) = &recipe.init {
        let tensors = crate::model::weights::read_state_dict(path)?;
        let fresh = crate::model::weights::load_matching(&mut net.vs, &tensors);
        let total = net.vs.variables().len();
        if fresh.len() == total {
            return Err(TrainError::Data(format!(
                "{}: no tensor fits this network (layout, width or names differ)",
                path.display()
            )));
        }
        tracing::info!(
            "initialised from {}: {} of {total} tensors; fresh: {}",
            path.display(),
            total - fresh.len(),
            if fresh.is_empty() {
                "none".to_string()
            } else {
                fresh.join(", ")
            }
        );
    }
    let mut avg = Model::new(&recipe.config, recipe.classes.clone(), device)?;
    avg.vs.copy(&net.vs).map_err(ModelError::Torch)?;
    avg.vs.freeze();
    Ok((net, avg))
}

/// Trains one network into `out`: `checkpoint.safetensors` (to resume), `model.safetensors`
/// (the averaged weights, for `rcnn detect`), `log.csv`, `loss.png`, `accuracy.png`.
pub fn train(
    batches: &Batches,
    validation: Option<&Validation>,
    params: &TrainParams,
    out: &Path,
    device: Device,
    mut on_event: impl FnMut(Event),
) -> Result<Model, TrainError> {
    let r = &params.recipe;
    // One run per folder: another would replace this one's checkpoint, model and log.
    let _lock = crate::run::lock::lock_output(out, "rcnn train")?;
    let recipe_json = serde_json::to_string(r).expect("the recipe serialises");
    let (mut net, mut avg) = build(r, device)?;
    // Both flatten their variables: an update is a few kernels, not one per tensor.
    let mut sgd = Sgd::new(&net.vs, r.momentum, r.weight_decay);
    let mut polyak = Polyak::new(&avg.vs, &net.vs);
    let ckpt_path = out.join("checkpoint.safetensors");
    let mut start = 0;
    if params.resume && ckpt_path.is_file() {
        start = checkpoint::load(&ckpt_path, &mut net, &mut avg, &mut sgd, &recipe_json)?;
        tracing::info!("resumed from {} at step {start}", ckpt_path.display());
    } else if params.resume {
        tracing::info!("no checkpoint in {}; starting at step 0", out.display());
    }
    let mut log = TrainLog::open(&out.join("log.csv"), params.resume.then_some(start))?;
    let schedule = Schedule {
        base_lr: r.lr,
        decay: r.lr_decay,
        every_epochs: r.lr_every_epochs,
        steps_per_epoch: batches.index.len() as f64 / (r.positives + r.background) as f64,
    };
    on_event(Event::Started {
        step: start,
        steps: params.steps,
    });
    let clock = Instant::now();
    let seconds_before = log.seconds();
    let (mut sum_loss, mut sum_acc, mut n) = (0.0, 0.0, 0usize);
    let kind = params.precision.kind();
    let mut scaler = (params.precision == Precision::Fp16).then(LossScaler::default);
    std::thread::scope(|scope| -> Result<(), TrainError> {
        // Mini-batches are drawn, decoded and warped on their own thread, two steps ahead of
        // the network's.
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            let norm = batches.normaliser(device);
            for step in start..params.steps {
                let b = batches.step(
                    r.seed,
                    step as u64,
                    r.positives,
                    r.background,
                    r.flip,
                    &norm,
                    device,
                );
                let failed = b.is_err();
                if tx.send(b).is_err() || failed {
                    break;
                }
            }
        });
        for step in start..params.steps {
            let lr = schedule.lr(step);
            let (x, labels) = rx
                .recv()
                .expect("the batch thread runs until the last step or an error")?;
            // Dropout's masks from (seed, step), so a resumed run draws the same ones.
            tch::manual_seed((r.seed.wrapping_mul(1_000_003)).wrapping_add(step as u64) as i64);
            let logits = net.net.forward_t(&x.to_kind(kind), true);
            let loss = loss_of(&logits, &labels, r.aux_weight);
            let loss_value = loss.double_value(&[]);
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    loss: loss_value,
                });
            }
            backward_and_step(&loss, &mut sgd, scaler.as_mut(), lr);
            polyak.update(sgd.weights(), r.polyak, step);
            let accuracy = tch::no_grad(|| {
                logits
                    .main
                    .argmax(1, false)
                    .eq_tensor(&labels)
                    .to_kind(Kind::Float)
                    .mean(Kind::Float)
                    .double_value(&[])
            });
            sum_loss += loss_value;
            sum_acc += accuracy;
            n += 1;
            let done = step + 1;
            on_event(Event::Step {
                step: done,
                loss: loss_value,
                accuracy,
                lr,
            });
            let at_checkpoint = done % params.checkpoint_every.max(1) == 0 || done == params.steps;
            if done % params.log_every.max(1) == 0 || at_checkpoint {
                let mut row = LogRow {
                    step: done,
                    epoch: schedule.epoch(done),
                    lr,
                    loss: sum_loss / n as f64,
                    accuracy: sum_acc / n as f64,
                    val_ap: None,
                    dropped_images: batches.dropped(),
                    seconds: seconds_before + clock.elapsed().as_secs_f64(),
                };
                (sum_loss, sum_acc, n) = (0.0, 0.0, 0);
                if at_checkpoint {
                    let model = inference_model(&avg)?;
                    model.save(&out.join("model.safetensors"))?;
                    if let Some(v) = validation.filter(|v| !v.is_empty()) {
                        row.val_ap = Some(v.ap(model)?);
                    }
                }
                let val_ap = row.val_ap;
                // The log line before the checkpoint: a run killed between the two resumes from
                // the checkpoint before and cuts the log back to it.
                log.append(row)?;
                if at_checkpoint {
                    checkpoint::save(&ckpt_path, done, &net, &avg, &sgd, &recipe_json)?;
                    if let Err(e) = log.plot(out) {
                        tracing::warn!("training curves not drawn: {e}");
                    }
                    on_event(Event::Checkpoint { step: done, val_ap });
                }
            }
        }
        Ok(())
    })?;
    inference_model(&avg)
}
