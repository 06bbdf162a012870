//! R-CNN's heads trained over a trained network (`rcnn train-heads`): the pooled features of
//! every region in the training run's region index, computed once, then class-specific box regression
//! (ridge, closed form, lambda chosen on held-out images) and class SVMs with hard-negative
//! mining, both on those features. Each image's regions are together in the index, so an
//! image is decoded once.

use std::time::Instant;

use eval::{BBox, PixelConvention};
use tch::{Kind, Tensor};

use super::batches::Batches;
use super::TrainError;
use crate::ensemble::Ensemble;
use crate::heads::box_regression::{
    targets, BoxRegression, BoxRegressor, RegressionFeatures, MIN_SIZE,
};
use crate::heads::svm::{
    norm_scale, train_with_mining, ClassSvms, LinearSvm, MiningReport, SvmParams,
};
use crate::heads::{BoxRegressionInfo, Heads, HeadsInfo, SvmInfo};
use crate::run::tensor::host_values;

#[derive(Debug, Clone)]
pub struct HeadsParams {
    pub box_regression: bool,
    pub regression_features: RegressionFeatures,
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
    /// Box regression also learns from each pair mirrored left-right.
    pub flip: bool,
}

impl Default for HeadsParams {
    fn default() -> Self {
        HeadsParams {
            box_regression: true,
            regression_features: RegressionFeatures::Grid,
            svm: true,
            lambdas: vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
            min_iou: 0.6,
            max_negative_iou: 0.3,
            svm_params: SvmParams::default(),
            batch: 128,
            hold_out_every: 5,
            flip: true,
        }
    }
}

/// Features of the indexed regions: the pooled ones of every region (the SVMs'), and the
/// regression features of the regions that train box regression.
pub struct RegionFeatures {
    /// `[regions, pooled_dim]` row-major.
    pub pooled: Vec<f32>,
    pub pooled_dim: usize,
    /// `[regression rows, regression_dim]` row-major, in the order of `regression_rows`.
    pub regression: Vec<f32>,
    /// The same of the crops flipped left-right (when asked for): more pairs for regression,
    /// whose `tx` changes sign.
    pub regression_flipped: Vec<f32>,
    pub regression_dim: usize,
    pub regression_rows: Vec<usize>,
}

/// Runs every indexed region through the ensemble's first member (prepared for inference, as
/// at detect time) once: pooled features for all, regression features (`what`) for
/// `regression_rows` (sorted) only, so that a large grid is kept for the few that need it.
pub fn region_features(
    ensemble: &Ensemble,
    regions: &Batches,
    batch: usize,
    what: RegressionFeatures,
    regression_rows: Vec<usize>,
    flip: bool,
    on_batch: &dyn Fn(usize),
) -> Result<RegionFeatures, TrainError> {
    let model = &ensemble.models[0];
    let norm = regions.normaliser(ensemble.device);
    let pooled_dim = model.net.feature_dim() as usize;
    let regression_dim = what.dim(pooled_dim as i64) as usize;
    let mut pooled = Vec::with_capacity(regions.index.len() * pooled_dim);
    let mut regression = Vec::with_capacity(regression_rows.len() * regression_dim);
    let mut next = 0;
    let indices: Vec<usize> = (0..regions.index.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let picks: Vec<(usize, bool)> = chunk.iter().map(|&i| (i, false)).collect();
        let (crops, _) = regions
            .crops(&picks, &norm, ensemble.device)
            .map_err(unreadable)?;
        let out = tch::no_grad(|| model.net.forward_t(&ensemble.network_input(&crops), false));
        pooled.extend(host_values(&out.features));
        let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
        let mut take = Vec::new();
        while next < regression_rows.len() && regression_rows[next] <= last {
            take.push((regression_rows[next] - first) as i64);
            next += 1;
        }
        if !take.is_empty() {
            let rows = what
                .of(&out.features, &out.grid)
                .index_select(0, &Tensor::from_slice(&take).to_device(ensemble.device));
            regression.extend(host_values(&rows));
        }
        on_batch(chunk.len());
    }
    let mut regression_flipped = Vec::new();
    if flip {
        for chunk in regression_rows.chunks(batch.max(1)) {
            let picks: Vec<(usize, bool)> = chunk.iter().map(|&i| (i, true)).collect();
            let (crops, _) = regions
                .crops(&picks, &norm, ensemble.device)
                .map_err(unreadable)?;
            let input = ensemble.network_input(&crops);
            let out = tch::no_grad(|| model.net.forward_t(&input, false));
            regression_flipped.extend(host_values(what.of(&out.features, &out.grid)));
        }
    }
    Ok(RegionFeatures {
        pooled,
        pooled_dim,
        regression,
        regression_flipped,
        regression_dim,
        regression_rows,
    })
}

/// The error of a batch whose images could not be read: every region needs its features.
fn unreadable(failed: Vec<(u32, String)>) -> TrainError {
    let why: Vec<String> = failed.into_iter().map(|(_, w)| w).collect();
    TrainError::Data(format!(
        "{}: the features of every indexed region are needed; restore the image or train \
         again without it",
        why.join("; ")
    ))
}

/// Each region's best overlap with an object of each class: `[regions][classes]`, with the
/// object's box (inclusive pixels, as the index's labels).
fn overlaps(regions: &Batches, classes: usize) -> Vec<Vec<(f64, Option<BBox>)>> {
    regions
        .index
        .iter()
        .map(|r| {
            let mut best = vec![(0.0, None); classes];
            for o in &regions.index.spec.images[r.image as usize].objects {
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

/// Trains the heads `p` asks for over the ensemble's first member (`classes` outputs,
/// background first) on `regions`; returns them with the features they were trained on.
pub fn train_heads(
    ensemble: &Ensemble,
    regions: &Batches,
    p: &HeadsParams,
    on_batch: &dyn Fn(usize),
) -> Result<(Heads, RegionFeatures), TrainError> {
    let classes = ensemble.classes().len();
    let best = overlaps(regions, classes);
    let pairs = if p.box_regression {
        regression_pairs(regions, &best, p.min_iou)
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let f = region_features(
        ensemble,
        regions,
        p.batch,
        p.regression_features,
        pairs.iter().map(|r| r.0).collect(),
        p.box_regression && p.flip,
        on_batch,
    )?;
    let mut seconds = vec![("features".to_string(), start.elapsed().as_secs_f64())];
    tracing::info!(
        "features of {} regions ({}-d pooled, {} regression rows of {}) in {:.1} s",
        regions.index.len(),
        f.pooled_dim,
        f.regression_rows.len(),
        f.regression_dim,
        seconds[0].1
    );
    let (features, dim, n) = (&f.pooled[..], f.pooled_dim, regions.index.len());
    let mut heads = Heads::default();
    if p.box_regression {
        let start = Instant::now();
        let (regression, info) = fit_box_regression(regions, &f, &pairs, classes, p)?;
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
                .filter(|&i| {
                    regions.index.region(i).label as usize == c
                        && regions.index.region(i).iou >= 1.0
                })
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
    Ok((heads, f))
}

/// R-CNN's regression pairs: each region whose best overlap with an object (of any class) is
/// at least `min_iou`, with that object's class and box. `(region, class, object box)`, in
/// region order.
fn regression_pairs(
    regions: &Batches,
    best: &[Vec<(f64, Option<BBox>)>],
    min_iou: f64,
) -> Vec<(usize, usize, BBox)> {
    let mut pairs = Vec::new();
    for (i, r) in regions.index.iter().enumerate() {
        let Some((c, &(iou, Some(g)))) = best[i]
            .iter()
            .enumerate()
            .skip(1)
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        else {
            continue;
        };
        let (w, h) = (r.bbox.x2 - r.bbox.x1, r.bbox.y2 - r.bbox.y1);
        if iou >= min_iou && w >= MIN_SIZE && h >= MIN_SIZE {
            pairs.push((i, c, g));
        }
    }
    pairs
}

/// Per class: the rows of regions that train its regressor and their targets.
type ClassRows = Vec<(Vec<i64>, Vec<f32>)>;

fn fit_box_regression(
    regions: &Batches,
    f: &RegionFeatures,
    pairs: &[(usize, usize, BBox)],
    classes: usize,
    p: &HeadsParams,
) -> Result<(BoxRegression, BoxRegressionInfo), TrainError> {
    // Rows of `f.regression` per class, split into fitting and held-out images.
    let (mut fit_rows, mut held_rows): (ClassRows, ClassRows) = (
        vec![(Vec::new(), Vec::new()); classes],
        vec![(Vec::new(), Vec::new()); classes],
    );
    let mut counts = vec![0usize; classes];
    for (row, &(i, c, g)) in pairs.iter().enumerate() {
        let r = &regions.index.region(i);
        counts[c] += 1;
        let every = p.hold_out_every;
        let held = every > 1 && r.image as usize % every == every - 1;
        let rows = if held {
            &mut held_rows[c]
        } else {
            &mut fit_rows[c]
        };
        let t = targets(&r.bbox, &g).map(|t| t as f32);
        rows.0.push(row as i64);
        rows.1.extend(t);
        // The mirrored pair (rows after the unflipped ones) fits, never judges lambda.
        if !held && !f.regression_flipped.is_empty() {
            fit_rows[c].0.push((pairs.len() + row) as i64);
            fit_rows[c].1.extend([-t[0], t[1], t[2], t[3]]);
        }
    }
    let all = Tensor::cat(
        &[
            Tensor::from_slice(&f.regression),
            Tensor::from_slice(&f.regression_flipped),
        ],
        0,
    )
    .view([-1, f.regression_dim as i64]);
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
    let chosen = p
        .lambdas
        .iter()
        .zip(&held_out_mse)
        .filter(|(_, e)| e.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(l, _)| *l);
    // No held-out error at all (too few images to hold any out): the penalty is a default,
    // not a choice, and the user is told so.
    const DEFAULT_LAMBDA: f64 = 1_000.0;
    if chosen.is_none() {
        tracing::warn!(
            "box regression: no held-out regions to choose a penalty on (too few images, or \
             every {}th image has no object); using lambda {DEFAULT_LAMBDA}",
            p.hold_out_every
        );
    }
    let lambda = chosen.unwrap_or(DEFAULT_LAMBDA);
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
    Ok((
        BoxRegression::new(&regressors, f.regression_dim as i64),
        BoxRegressionInfo {
            features: p.regression_features,
            lambda,
            lambdas: p.lambdas.clone(),
            held_out_mse,
            min_iou: p.min_iou,
            flip: !f.regression_flipped.is_empty(),
            regions: counts,
        },
    ))
}
