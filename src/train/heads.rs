//! R-CNN's heads trained over a trained network (`rcnn train-heads`): the pooled features of
//! every region in the training run's cache, computed once, then class-specific box regression
//! (ridge, closed form, lambda chosen on held-out images) and class SVMs with hard-negative
//! mining, both on those features: nothing is warped again.

use std::time::Instant;

use eval::{BBox, PixelConvention};
use tch::{Device, Kind, Tensor};

use super::regions::RegionCache;
use super::TrainError;
use crate::box_regression::{targets, BoxRegression, BoxRegressor, MIN_SIZE};
use crate::classifier::Ensemble;
use crate::model::heads::{BoxRegressionInfo, Heads, HeadsInfo, SvmInfo};
use crate::svm::{norm_scale, train_with_mining, ClassSvms, LinearSvm, MiningReport, SvmParams};

#[derive(Debug, Clone)]
pub struct HeadsParams {
    pub box_regression: bool,
    pub svm: bool,
    /// Ridge penalties tried; the one with the least held-out error is used.
    pub lambdas: Vec<f64>,
    /// R-CNN: a proposal trains box regression when its best overlap is at least 0.6.
    pub min_iou: f64,
    /// R-CNN: SVM negatives overlap no instance of the class by 0.3 or more.
    pub max_negative_iou: f64,
    pub svm_params: SvmParams,
    /// Regions per forward pass while computing features.
    pub batch: usize,
    /// Every `hold_out_every`-th training image is held out to choose lambda.
    pub hold_out_every: usize,
}

impl Default for HeadsParams {
    fn default() -> Self {
        HeadsParams {
            box_regression: true,
            svm: true,
            lambdas: vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
            min_iou: 0.6,
            max_negative_iou: 0.3,
            svm_params: SvmParams::default(),
            batch: 128,
            hold_out_every: 5,
        }
    }
}

/// The pooled features of every cached region, `[regions, dim]` row-major, through the
/// ensemble's first member (prepared for inference, as at detect time).
pub fn region_features(
    ensemble: &Ensemble,
    cache: &RegionCache,
    batch: usize,
    on_batch: &dyn Fn(usize),
) -> (Vec<f32>, usize) {
    let config = ensemble.models[0].config();
    let dim = ensemble.models[0].net.feature_dim() as usize;
    let mut out = Vec::with_capacity(cache.len() * dim);
    let indices: Vec<usize> = (0..cache.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let picks: Vec<(usize, bool)> = chunk.iter().map(|&i| (i, false)).collect();
        let (crops, _) = cache.batch(&picks, config.mean, config.std, ensemble.device);
        let (_, features) = ensemble.scores_and_features(&crops);
        let f = features[0].to_device(Device::Cpu).contiguous();
        out.extend(Vec::<f32>::try_from(f.flatten(0, -1)).expect("f32 features"));
        on_batch(chunk.len());
    }
    (out, dim)
}

/// Each region's best overlap with an object of each class: `[regions][classes]`, with the
/// object's box (inclusive pixels, as the cache's labels).
fn overlaps(cache: &RegionCache, classes: usize) -> Vec<Vec<(f64, Option<BBox>)>> {
    cache
        .regions
        .iter()
        .map(|r| {
            let mut best = vec![(0.0, None); classes];
            for o in &cache.spec.images[r.image as usize].objects {
                let iou = o.bbox.iou(&r.bbox, PixelConvention::Inclusive);
                let slot = &mut best[o.label as usize];
                if iou > slot.0 {
                    *slot = (iou, Some(o.bbox));
                }
            }
            best
        })
        .collect()
}

/// Trains the heads `p` asks for on `cache` with `features` (from [`region_features`]) for a
/// network of `classes` outputs (background first).
pub fn train_heads(
    cache: &RegionCache,
    features: &[f32],
    dim: usize,
    classes: usize,
    p: &HeadsParams,
    mut seconds: Vec<(String, f64)>,
) -> Result<Heads, TrainError> {
    let n = cache.len();
    if features.len() != n * dim {
        return Err(TrainError::Data(format!(
            "{} feature values for {n} regions of {dim}",
            features.len()
        )));
    }
    let best = overlaps(cache, classes);
    let all = Tensor::from_slice(features).view([n as i64, dim as i64]);
    let mut heads = Heads::default();
    if p.box_regression {
        let start = Instant::now();
        let (regression, info) = fit_box_regression(cache, &all, &best, classes, p)?;
        heads.box_regression = Some(regression);
        heads.info.box_regression = Some(info);
        seconds.push(("box regression".into(), start.elapsed().as_secs_f64()));
    }
    if p.svm {
        let start = Instant::now();
        let mut svms: Vec<Option<LinearSvm>> = vec![None];
        let mut reports = vec![MiningReport::default()];
        let scale = norm_scale(features, dim, p.svm_params.feature_norm);
        #[allow(clippy::needless_range_loop)] // c is a class column, not only an index
        for c in 1..classes {
            let positives: Vec<usize> = (0..n)
                .filter(|&i| cache.regions[i].label as usize == c && cache.regions[i].iou >= 1.0)
                .collect();
            let negatives: Vec<usize> = (0..n)
                .filter(|&i| best[i][c].0 < p.max_negative_iou)
                .collect();
            if positives.is_empty() || negatives.is_empty() {
                tracing::warn!(
                    "class {c}: {} positives, {} negatives: no SVM (it never scores)",
                    positives.len(),
                    negatives.len()
                );
                svms.push(None);
                reports.push(MiningReport::default());
                continue;
            }
            let (svm, report) =
                train_with_mining(features, dim, &positives, &negatives, scale, &p.svm_params);
            tracing::info!(
                "class {c}: SVM on {} positives, new hard negatives per round {:?}, {} kept",
                report.positives,
                report.new_hard,
                report.working_set
            );
            svms.push(Some(svm));
            reports.push(report);
        }
        heads.svm = Some(ClassSvms::new(&svms, dim));
        heads.info.svm = Some(SvmInfo {
            params: p.svm_params,
            max_negative_iou: p.max_negative_iou,
            classes: reports,
        });
        seconds.push(("svm".into(), start.elapsed().as_secs_f64()));
    }
    heads.info = HeadsInfo {
        seconds,
        ..heads.info
    };
    Ok(heads)
}

/// Per class: the rows of regions that train its regressor and their targets.
type ClassRows = Vec<(Vec<i64>, Vec<f32>)>;

fn fit_box_regression(
    cache: &RegionCache,
    all: &Tensor,
    best: &[Vec<(f64, Option<BBox>)>],
    classes: usize,
    p: &HeadsParams,
) -> Result<(BoxRegression, BoxRegressionInfo), TrainError> {
    // R-CNN: each region trains the regressor of the class of its best-overlapping object.
    let (mut fit_rows, mut held_rows): (ClassRows, ClassRows) = (
        vec![(Vec::new(), Vec::new()); classes],
        vec![(Vec::new(), Vec::new()); classes],
    );
    let mut counts = vec![0usize; classes];
    for (i, r) in cache.regions.iter().enumerate() {
        let Some((c, &(iou, Some(g)))) = best[i]
            .iter()
            .enumerate()
            .skip(1)
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        else {
            continue;
        };
        let (w, h) = (r.bbox.x2 - r.bbox.x1, r.bbox.y2 - r.bbox.y1);
        if iou < p.min_iou || w < MIN_SIZE || h < MIN_SIZE {
            continue;
        }
        counts[c] += 1;
        let held =
            p.hold_out_every > 1 && r.image as usize % p.hold_out_every == p.hold_out_every - 1;
        let rows = if held {
            &mut held_rows[c]
        } else {
            &mut fit_rows[c]
        };
        rows.0.push(i as i64);
        rows.1.extend(targets(&r.bbox, &g).map(|t| t as f32));
    }
    let take = |rows: &(Vec<i64>, Vec<f32>)| {
        let idx = Tensor::from_slice(&rows.0);
        (
            all.index_select(0, &idx),
            Tensor::from_slice(&rows.1).view([rows.0.len() as i64, 4]),
        )
    };
    let fit = |x: &Tensor, t: &Tensor, lambda: f64| {
        BoxRegressor::fit(x, t, lambda).map_err(|e| TrainError::Data(e.to_string()))
    };
    // Lambda: the least squared error on the held-out images, over every class's regions.
    let mut held_out_mse = Vec::new();
    for &lambda in &p.lambdas {
        let (mut sum, mut count) = (0.0, 0usize);
        for c in 1..classes {
            if fit_rows[c].0.is_empty() || held_rows[c].0.is_empty() {
                continue;
            }
            let (x, t) = take(&fit_rows[c]);
            let r = fit(&x, &t, lambda)?;
            let (hx, ht) = take(&held_rows[c]);
            sum += (r.deltas(&hx) - ht)
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
            count += held_rows[c].0.len() * 4;
        }
        held_out_mse.push(if count > 0 {
            sum / count as f64
        } else {
            f64::NAN
        });
    }
    let lambda = p
        .lambdas
        .iter()
        .zip(&held_out_mse)
        .filter(|(_, e)| e.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(1_000.0, |(l, _)| *l);
    tracing::info!("box regression: lambda {lambda} (held-out MSE {held_out_mse:?})");
    // Refit on every region with the chosen lambda.
    let mut regressors = vec![None];
    for c in 1..classes {
        let mut rows = fit_rows[c].clone();
        rows.0.extend(&held_rows[c].0);
        rows.1.extend(&held_rows[c].1);
        regressors.push(if rows.0.is_empty() {
            None
        } else {
            let (x, t) = take(&rows);
            Some(fit(&x, &t, lambda)?)
        });
    }
    let dim = all.size()[1];
    Ok((
        BoxRegression::new(&regressors, dim),
        BoxRegressionInfo {
            lambda,
            lambdas: p.lambdas.clone(),
            held_out_mse,
            min_iou: p.min_iou,
            regions: counts,
        },
    ))
}
