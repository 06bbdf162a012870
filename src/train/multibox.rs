//! `rcnn train-multibox`: MultiBox's training (Erhan et al. 2014) with `rcnn train`'s
//! machinery (the paper's SGD schedule, Polyak averaging, checkpoints, `--resume`, log and
//! curves).
//!
//! - Priors: k-means of the training boxes in normalised coordinates, over the boxes as the
//!   augmentation shows them (each image whole, mirrored, and in jittered crops).
//! - Matching: each ground-truth box to one prior by bipartite matching (Hungarian algorithm,
//!   minimal total L2 distance between the box and the prior's corners).
//! - Loss: `alpha * 1/2 ||l - g||^2` over matched pairs plus the logistic loss of every
//!   prediction's objectness (1 for matched, 0 otherwise), summed per image, mean over images.
//! - Augmentation: left-right flips and a random crop of each axis (scale and aspect jitter).

use std::path::Path;
use std::time::Instant;

use eval::BBox;
use proposals::rng::SplitMix64;
use proposals::{quality_curve, ImageProposals};
use serde::Serialize;
use tch::{Device, Kind, Reduction, Tensor};

use super::data::TrainImage;
use super::log::{LogRow, TrainLog};
use super::sgd::{Polyak, Schedule, Sgd};
use super::{checkpoint, Event, Init, TrainError};
use crate::model::normalise::Normaliser;
use crate::model::{GoogLeNetConfig, ModelError};
use crate::multibox::{image_tensor, normalise, MultiBox, MultiBoxInfo};

/// The settings that decide what a run computes; a checkpoint resumes only under the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultiBoxRecipe {
    pub config: GoogLeNetConfig,
    pub init: Init,
    /// K: priors, and boxes predicted per image.
    pub priors: usize,
    /// Weight of the location loss (the paper: 0.3).
    pub alpha: f64,
    /// Images per mini-batch.
    pub batch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub lr_decay: f64,
    pub lr_every_epochs: f64,
    pub polyak: f64,
    pub flip: bool,
    /// Each axis of a training crop keeps at least this fraction of the image (1: no crops).
    pub min_crop: f64,
    /// The gradient's norm is clipped to this.
    pub clip: f64,
    pub seed: u64,
    /// The training images' keys, in order (a resumed run must see the same set).
    pub images: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MultiBoxParams {
    pub recipe: MultiBoxRecipe,
    pub steps: usize,
    pub checkpoint_every: usize,
    pub log_every: usize,
    pub resume: bool,
    /// Boxes per image scored by validation recall (the entry: 200).
    pub val_top: usize,
}

/// Images decoded once, as u8 `[H, W, 3]` tensors on the CPU, with their objects normalised.
pub struct ImageSet {
    pub images: Vec<(Tensor, Vec<[f64; 4]>)>,
    /// Pixel boxes of each image (for recall) and its size.
    pub objects: Vec<(Vec<BBox>, (usize, usize))>,
    /// Images that could not be read, with the reason.
    pub skipped: Vec<String>,
    /// The decoded images themselves (kept for validation, which proposes on them).
    decoded: Vec<proposals::RgbImage>,
}

impl ImageSet {
    /// Decodes `images` (in parallel); `keep_decoded` keeps the RGB images for proposing.
    pub fn load(images: &[TrainImage], keep_decoded: bool) -> ImageSet {
        use rayon::prelude::*;
        let decoded: Vec<_> = images
            .par_iter()
            .map(|im| crate::detect::decode::decode(&im.path).map_err(|e| e.to_string()))
            .collect();
        let mut set = ImageSet {
            images: Vec::new(),
            objects: Vec::new(),
            skipped: Vec::new(),
            decoded: Vec::new(),
        };
        for (im, d) in images.iter().zip(decoded) {
            match d {
                Ok(rgb) => {
                    let (h, w, _) = rgb.dim();
                    let boxes: Vec<BBox> = im.objects.iter().map(|o| o.bbox).collect();
                    let norm = boxes
                        .iter()
                        .map(|b| normalise(b, w as f64, h as f64))
                        .collect();
                    set.images.push((image_tensor(&rgb, Device::Cpu), norm));
                    set.objects.push((boxes, (w, h)));
                    if keep_decoded {
                        set.decoded.push(rgb);
                    }
                }
                Err(e) => set.skipped.push(e),
            }
        }
        set
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// A training view of an image: the crop (normalised), whether it is mirrored, and the boxes
/// as the view shows them (a box kept when at least half of it is inside the crop).
pub fn jitter(
    rng: &mut SplitMix64,
    boxes: &[[f64; 4]],
    flip: bool,
    min_crop: f64,
) -> ([f64; 4], bool, Vec<[f64; 4]>) {
    let mut side = || {
        let len = min_crop + (1.0 - min_crop) * rng.uniform();
        let start = (1.0 - len) * rng.uniform();
        (start, start + len)
    };
    let (x1, x2) = side();
    let (y1, y2) = side();
    let mirrored = flip && rng.uniform() < 0.5;
    let area = |b: &[f64; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let seen = boxes
        .iter()
        .filter_map(|b| {
            let c = [b[0].max(x1), b[1].max(y1), b[2].min(x2), b[3].min(y2)];
            if area(&c) < 0.5 * area(b) || area(&c) <= 0.0 {
                return None;
            }
            let (w, h) = (x2 - x1, y2 - y1);
            let mut v = [
                (c[0] - x1) / w,
                (c[1] - y1) / h,
                (c[2] - x1) / w,
                (c[3] - y1) / h,
            ];
            if mirrored {
                v = [1.0 - v[2], v[1], 1.0 - v[0], v[3]];
            }
            Some(v)
        })
        .collect();
    ([x1, y1, x2, y2], mirrored, seen)
}

/// Points the priors are clustered from: every box whole and mirrored, and in `views` jittered
/// views of each image (as training shows them).
pub fn prior_points(
    set: &[Vec<[f64; 4]>],
    views: usize,
    min_crop: f64,
    seed: u64,
) -> Vec<[f64; 4]> {
    let mut rng = SplitMix64::new(seed ^ 0x5052_494f_5253);
    let mut points = Vec::new();
    for boxes in set {
        for b in boxes {
            points.push(*b);
            points.push([1.0 - b[2], b[1], 1.0 - b[0], b[3]]);
        }
        for _ in 0..views {
            points.extend(jitter(&mut rng, boxes, true, min_crop).2);
        }
    }
    points
}

fn dist2(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// `k` cluster centres of `points` (k-means++ seeding, then Lloyd's iterations until nothing
/// moves or 100 rounds), seeded. With fewer distinct points than `k`, the centres are the
/// points and copies of them.
pub fn kmeans(points: &[[f64; 4]], k: usize, seed: u64) -> Vec<[f64; 4]> {
    if points.is_empty() || k == 0 {
        return Vec::new();
    }
    let mut rng = SplitMix64::new(seed);
    let mut centres = vec![points[rng.below(points.len())]];
    let mut nearest: Vec<f64> = points.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().sum();
        let next = if total <= 0.0 {
            points[rng.below(points.len())]
        } else {
            let mut r = rng.uniform() * total;
            let mut pick = points.len() - 1;
            for (i, d) in nearest.iter().enumerate() {
                if r < *d {
                    pick = i;
                    break;
                }
                r -= d;
            }
            points[pick]
        };
        for (n, p) in nearest.iter_mut().zip(points) {
            *n = n.min(dist2(p, &next));
        }
        centres.push(next);
    }
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..100 {
        let mut moved = false;
        for (a, p) in assignment.iter_mut().zip(points) {
            let best = (0..k)
                .min_by(|&i, &j| dist2(p, &centres[i]).total_cmp(&dist2(p, &centres[j])))
                .expect("k > 0");
            moved |= *a != best;
            *a = best;
        }
        if !moved {
            break;
        }
        let mut sums = vec![([0.0; 4], 0usize); k];
        for (a, p) in assignment.iter().zip(points) {
            for (s, v) in sums[*a].0.iter_mut().zip(p) {
                *s += v;
            }
            sums[*a].1 += 1;
        }
        for (c, (s, n)) in centres.iter_mut().zip(sums) {
            // An empty cluster keeps its centre.
            if n > 0 {
                *c = s.map(|v| v / n as f64);
            }
        }
    }
    centres
}

/// Minimum-cost assignment of each row to a distinct column (rows <= columns): the Hungarian
/// algorithm with potentials, O(rows^2 x columns).
pub fn hungarian(cost: &[Vec<f64>], columns: usize) -> Vec<usize> {
    let n = cost.len();
    assert!(n <= columns, "more rows than columns");
    let inf = f64::INFINITY;
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; columns + 1]);
    // p[j]: the row (1-based) on column j; column 0 is the row being placed.
    let (mut p, mut way) = (vec![0usize; columns + 1], vec![0usize; columns + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![inf; columns + 1];
        let mut used = vec![false; columns + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let (mut delta, mut j1) = (inf, 0);
            for j in 1..=columns {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=columns {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut rows = vec![0; n];
    for j in 1..=columns {
        if p[j] != 0 {
            rows[p[j] - 1] = j - 1;
        }
    }
    rows
}

/// MultiBox's matching: each ground-truth box to a distinct prior, minimising the summed L2
/// distance of corners. Where an image has more boxes than priors, the largest are matched.
pub fn assign(gt: &[[f64; 4]], priors: &[[f64; 4]]) -> Matches {
    let mut boxes = gt.to_vec();
    if boxes.len() > priors.len() {
        let area = |b: &[f64; 4]| (b[2] - b[0]) * (b[3] - b[1]);
        boxes.sort_by(|a, b| area(b).total_cmp(&area(a)));
        boxes.truncate(priors.len());
    }
    let cost: Vec<Vec<f64>> = boxes
        .iter()
        .map(|g| priors.iter().map(|p| dist2(g, p).sqrt()).collect())
        .collect();
    hungarian(&cost, priors.len())
        .into_iter()
        .zip(boxes)
        .collect()
}

/// The loss of a batch: predicted boxes `[N, K, 4]`, logits `[N, K]`, each image's matches
/// (prior, target). Returns the loss and the mean IoU of matched predictions with their
/// targets (a training diagnostic; NaN without matches).
pub fn loss(boxes: &Tensor, logits: &Tensor, matches: &[Matches], alpha: f64) -> (Tensor, f64) {
    let (n, k) = (logits.size()[0], logits.size()[1]);
    let device = logits.device();
    let mut index = Vec::new();
    let mut targets = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        for (j, g) in m {
            index.push(i as i64 * k + *j as i64);
            targets.extend(g.iter().map(|&v| v as f32));
        }
    }
    let mut labels = Tensor::zeros([n * k], (Kind::Float, device));
    let logits = logits.to_kind(Kind::Float);
    let mut total = if index.is_empty() {
        labels = labels.view([n, k]);
        logits.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, Reduction::Sum)
    } else {
        let idx = Tensor::from_slice(&index).to_device(device);
        let _ = labels.index_fill_(0, &idx, 1.0);
        let conf = logits.binary_cross_entropy_with_logits::<Tensor>(
            &labels.view([n, k]),
            None,
            None,
            Reduction::Sum,
        );
        let g = Tensor::from_slice(&targets).view([-1, 4]).to_device(device);
        let l = boxes
            .to_kind(Kind::Float)
            .view([-1, 4])
            .index_select(0, &idx);
        conf + (&l - &g).square().sum(Kind::Float) * (0.5 * alpha)
    };
    total /= n as f64;
    let iou = if index.is_empty() {
        f64::NAN
    } else {
        tch::no_grad(|| {
            let idx = Tensor::from_slice(&index).to_device(device);
            let l: Vec<f32> = crate::run::tensor::host_values(
                &boxes
                    .to_kind(Kind::Float)
                    .view([-1, 4])
                    .index_select(0, &idx),
            );
            let ious: f64 = l
                .chunks_exact(4)
                .zip(targets.chunks_exact(4))
                .map(|(p, g)| {
                    let b =
                        |v: &[f32]| BBox::new(v[0] as f64, v[1] as f64, v[2] as f64, v[3] as f64);
                    b(p).iou(&b(g), eval::PixelConvention::Continuous)
                })
                .sum();
            ious / index.len() as f64
        })
    };
    (total, iou)
}

/// Recall at IoU 0.5 of each image's `top` boxes over every object (class-agnostic).
pub fn recall(mb: &MultiBox, set: &ImageSet, top: usize) -> f64 {
    let mut found = Vec::with_capacity(set.decoded.len());
    for chunk in set.decoded.chunks(16) {
        let refs: Vec<&proposals::RgbImage> = chunk.iter().collect();
        found.extend(
            mb.propose(&refs, top)
                .into_iter()
                .map(|v| v.into_iter().map(|(b, _)| b).collect::<Vec<_>>()),
        );
    }
    let gt: Vec<Vec<(usize, BBox)>> = set
        .objects
        .iter()
        .map(|(b, _)| b.iter().map(|b| (0, *b)).collect())
        .collect();
    let images: Vec<ImageProposals> = gt
        .iter()
        .zip(&found)
        .map(|(g, p)| ImageProposals {
            gt: g,
            proposals: p,
        })
        .collect();
    quality_curve(&images, 1, &[top])
        .first()
        .map_or(0.0, |q| q.recall_50)
}

/// An image's matches: (prior, target box).
pub type Matches = Vec<(usize, [f64; 4])>;

/// The mini-batch of `step`: seeded by (seed, step), so a resumed run draws the same.
fn batch(
    set: &ImageSet,
    r: &MultiBoxRecipe,
    step: usize,
    norm: &Normaliser,
    priors: &[[f64; 4]],
) -> (Tensor, Vec<Matches>) {
    let mut rng = SplitMix64::new(r.seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let size = r.config.input_size;
    let mut inputs = Vec::with_capacity(r.batch);
    let mut matches = Vec::with_capacity(r.batch);
    for _ in 0..r.batch {
        let (img, boxes) = &set.images[rng.below(set.len())];
        let (crop, mirrored, seen) = jitter(&mut rng, boxes, r.flip, r.min_crop);
        let mut x = crate::multibox::network_input(img, Some(crop), size, norm);
        if mirrored {
            x = x.flip([2]);
        }
        inputs.push(x);
        matches.push(assign(&seen, priors));
    }
    (Tensor::stack(&inputs, 0), matches)
}

/// The two networks of a run: live and averaged, from the recipe and the priors.
fn build(
    r: &MultiBoxRecipe,
    priors: &[[f64; 4]],
    info: &MultiBoxInfo,
    device: Device,
) -> Result<(MultiBox, MultiBox), TrainError> {
    tch::manual_seed(r.seed as i64);
    let mut net = MultiBox::new(&r.config, priors, info.clone(), device)?;
    if let Init::File(path) = &r.init {
        // The backbone only: a MultiBox file's head and priors belong to other priors.
        let tensors: std::collections::HashMap<_, _> =
            crate::model::weights::read_state_dict(path)?
                .into_iter()
                .filter(|(n, _)| !n.starts_with("multibox."))
                .collect();
        let fresh = crate::model::weights::load_matching(&mut net.model.vs, &tensors);
        let total = net.model.vs.variables().len();
        if fresh.len() + 3 >= total {
            return Err(TrainError::Data(format!(
                "{}: no backbone tensor fits this network (layout, width or names differ)",
                path.display()
            )));
        }
        tracing::info!(
            "backbone from {}: {} of {total} tensors; fresh: {}",
            path.display(),
            total - fresh.len(),
            fresh.join(", ")
        );
    }
    let mut avg = MultiBox::new(&r.config, priors, info.clone(), device)?;
    avg.model
        .vs
        .copy(&net.model.vs)
        .map_err(ModelError::Torch)?;
    avg.model.vs.freeze();
    Ok((net, avg))
}

/// Trains a MultiBox network into `out`: `checkpoint.safetensors`, `model.safetensors` (the
/// averaged weights), `log.csv` (its `accuracy` column: mean IoU of matched predictions; its
/// `val_ap` column: validation recall@0.5 of the top `val_top` boxes), `loss.png`,
/// `accuracy.png`.
pub fn train_multibox(
    set: &ImageSet,
    validation: Option<&ImageSet>,
    priors: &[[f64; 4]],
    params: &MultiBoxParams,
    out: &Path,
    device: Device,
    mut on_event: impl FnMut(Event),
) -> Result<MultiBox, TrainError> {
    let r = &params.recipe;
    if set.is_empty() {
        return Err(TrainError::Data("no training image could be read".into()));
    }
    // One run per folder: another would replace this one's checkpoint, model and log.
    let _lock = crate::run::lock::lock_output(out, "rcnn train-multibox")?;
    let recipe_json = serde_json::to_string(r).expect("the recipe serialises");
    let objects: usize = set.images.iter().map(|(_, b)| b.len()).sum();
    let mut info = MultiBoxInfo {
        priors: priors.len(),
        alpha: r.alpha,
        matching: "bipartite (Hungarian) on the priors, L2 distance of corners".into(),
        prior_source: format!(
            "k-means of the training boxes, whole, mirrored and in 8 jittered views per image \
             (min crop {})",
            r.min_crop
        ),
        training_images: set.len(),
        training_objects: objects,
        steps: params.steps,
    };
    let (mut net, mut avg) = build(r, priors, &info, device)?;
    let mut sgd = Sgd::new(&net.model.vs, r.momentum, r.weight_decay);
    let mut polyak = Polyak::new(&avg.model.vs, &net.model.vs);
    let ckpt_path = out.join("checkpoint.safetensors");
    let mut start = 0;
    if params.resume && ckpt_path.is_file() {
        start = checkpoint::load(
            &ckpt_path,
            &mut net.model,
            &mut avg.model,
            &mut sgd,
            &recipe_json,
        )?;
        tracing::info!("resumed from {} at step {start}", ckpt_path.display());
    }
    let mut log = TrainLog::open(&out.join("log.csv"), params.resume.then_some(start))?;
    let schedule = Schedule {
        base_lr: r.lr,
        decay: r.lr_decay,
        every_epochs: r.lr_every_epochs,
        steps_per_epoch: set.len() as f64 / r.batch as f64,
    };
    on_event(Event::Started {
        step: start,
        steps: params.steps,
    });
    let clock = Instant::now();
    let seconds_before = log.seconds();
    let (mut sum_loss, mut sum_iou, mut n) = (0.0, 0.0, 0usize);
    let norm = Normaliser::new(r.config.mean, r.config.std, Device::Cpu);
    let priors_cpu = priors.to_vec();
    for step in start..params.steps {
        let lr = schedule.lr(step);
        let (x, matches) = batch(set, r, step, &norm, &priors_cpu);
        tch::manual_seed((r.seed.wrapping_mul(1_000_003)).wrapping_add(step as u64) as i64);
        let (boxes, logits) = net.forward_t(&x.to_device(device), true);
        let (loss, iou) = loss(&boxes, &logits, &matches, r.alpha);
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged {
                step,
                loss: loss_value,
            });
        }
        // Clipped to a norm of `clip`: dense images (BCCD: 13 objects each) sum many matched
        // terms, and an unclipped early step diverged at any rate that trains the sparse sets.
        sgd.zero_grad();
        loss.backward();
        let mut g = sgd.grad();
        let norm = g.norm().double_value(&[]);
        if norm > r.clip {
            g *= r.clip / norm;
        }
        sgd.step_with(&g, lr);
        polyak.update(sgd.weights(), r.polyak, step);
        sum_loss += loss_value;
        if iou.is_finite() {
            sum_iou += iou;
        }
        n += 1;
        let done = step + 1;
        on_event(Event::Step {
            step: done,
            loss: loss_value,
            accuracy: iou,
            lr,
        });
        let at_checkpoint = done % params.checkpoint_every.max(1) == 0 || done == params.steps;
        if done % params.log_every.max(1) == 0 || at_checkpoint {
            let mut row = LogRow {
                step: done,
                epoch: schedule.epoch(done),
                lr,
                loss: sum_loss / n as f64,
                accuracy: sum_iou / n as f64,
                val_ap: None,
                dropped_images: 0,
                seconds: seconds_before + clock.elapsed().as_secs_f64(),
            };
            (sum_loss, sum_iou, n) = (0.0, 0.0, 0);
            if at_checkpoint {
                info.steps = done;
                avg.info = info.clone();
                avg.save(&out.join("model.safetensors"))?;
                if let Some(v) = validation.filter(|v| !v.is_empty()) {
                    row.val_ap = Some(recall(&avg, v, params.val_top));
                }
            }
            let val = row.val_ap;
            log.append(row)?;
            if at_checkpoint {
                checkpoint::save(&ckpt_path, done, &net.model, &avg.model, &sgd, &recipe_json)?;
                if let Err(e) = log.plot_with(out, &super::log::MULTIBOX_PLOTS) {
                    tracing::warn!("training curves not drawn: {e}");
                }
                on_event(Event::Checkpoint {
                    step: done,
                    val_ap: val,
                });
            }
        }
    }
    info.steps = params.steps;
    avg.info = info;
    Ok(avg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_finds_the_cheapest_assignment() {
        // Brute force over every injective assignment of 3 rows into 5 columns.
        let mut rng = SplitMix64::new(7);
        for _ in 0..50 {
            let cost: Vec<Vec<f64>> = (0..3)
                .map(|_| (0..5).map(|_| rng.uniform()).collect())
                .collect();
            let got = hungarian(&cost, 5);
            let total = |a: &[usize]| a.iter().enumerate().map(|(i, &j)| cost[i][j]).sum::<f64>();
            let mut best = f64::INFINITY;
            for a in 0..5 {
                for b in 0..5 {
                    for c in 0..5 {
                        if a != b && b != c && a != c {
                            best = best.min(total(&[a, b, c]));
                        }
                    }
                }
            }
            let mut distinct = got.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            assert!(
                (total(&got) - best).abs() < 1e-12,
                "{} vs {best}",
                total(&got)
            );
        }
    }

    #[test]
    fn matching_takes_distinct_priors_even_when_one_is_nearest_to_both() {
        let priors = [
            [0.0, 0.0, 0.5, 0.5],
            [0.5, 0.5, 1.0, 1.0],
            [0.1, 0.0, 0.6, 0.5],
        ];
        let gt = [[0.02, 0.0, 0.52, 0.5], [0.5, 0.5, 1.0, 1.0]];
        let m = assign(&gt, &priors);
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        // Both nearest prior 0 on their own: the second gives way to prior 2, the cheaper whole.
        let gt = [[0.0, 0.0, 0.5, 0.5], [0.04, 0.0, 0.54, 0.5]];
        let m = assign(&gt, &priors);
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn kmeans_recovers_separated_clusters() {
        let mut rng = SplitMix64::new(3);
        let centres = [
            [0.1, 0.1, 0.3, 0.3],
            [0.5, 0.5, 0.9, 0.9],
            [0.0, 0.4, 1.0, 0.6],
        ];
        let points: Vec<[f64; 4]> = (0..300)
            .map(|i| centres[i % 3].map(|c| c + 0.01 * (rng.uniform() - 0.5)))
            .collect();
        let mut got = kmeans(&points, 3, 1);
        got.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        let mut want = centres.to_vec();
        want.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        for (g, w) in got.iter().zip(&want) {
            assert!(dist2(g, w).sqrt() < 0.01, "{g:?} vs {w:?}");
        }
    }

    #[test]
    fn jitter_moves_boxes_with_the_crop_and_mirror() {
        let mut rng = SplitMix64::new(11);
        let boxes = [[0.2, 0.2, 0.4, 0.6]];
        for _ in 0..100 {
            let (c, m, seen) = jitter(&mut rng, &boxes, true, 0.7);
            assert!(c[2] - c[0] >= 0.7 - 1e-12 && c[0] >= 0.0 && c[2] <= 1.0 + 1e-12);
            if let Some(v) = seen.first() {
                // Back to the image's coordinates.
                let (w, h) = (c[2] - c[0], c[3] - c[1]);
                let x = if m {
                    [1.0 - v[2], 1.0 - v[0]]
                } else {
                    [v[0], v[2]]
                };
                let back = [
                    x[0] * w + c[0],
                    v[1] * h + c[1],
                    x[1] * w + c[0],
                    v[3] * h + c[1],
                ];
                let clipped = [
                    0.2f64.max(c[0]),
                    0.2f64.max(c[1]),
                    0.4f64.min(c[2]),
                    0.6f64.min(c[3]),
                ];
                for d in 0..4 {
                    assert!((back[d] - clipped[d]).abs() < 1e-9, "{back:?} {clipped:?}");
                }
            }
        }
    }

    #[test]
    fn the_loss_is_the_papers_by_hand() {
        // One image, K = 2: prior 1 matched to g.
        let boxes =
            Tensor::from_slice(&[0.0f32, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0]).view([1, 2, 4]);
        let logits = Tensor::from_slice(&[0.3f32, -0.2]).view([1, 2]);
        let g = [0.6, 0.5, 1.0, 0.9];
        let (l, iou) = loss(&boxes, &logits, &[vec![(1, g)]], 0.3);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let conf = -(1.0 - sig(0.3)).ln() - sig(-0.2).ln();
        let loc = 0.5 * (0.01 + 0.0 + 0.0 + 0.01);
        let want = conf + 0.3 * loc;
        assert!(
            (l.double_value(&[]) - want).abs() < 1e-5,
            "{} vs {want}",
            l.double_value(&[])
        );
        let want_iou = BBox::new(0.5, 0.5, 1.0, 1.0).iou(
            &BBox::new(0.6, 0.5, 1.0, 0.9),
            eval::PixelConvention::Continuous,
        );
        assert!((iou - want_iou).abs() < 1e-6);
    }
}
