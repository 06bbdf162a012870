//! pycocotools' COCOeval for boxes: evaluate (match per image and category, once), accumulate
//! (precision at 101 recall points for each IoU threshold, area range and detection limit),
//! summarize (the 12 numbers).
//!
//! Same semantics as cocoeval.py, but only (image, category) pairs that have a ground-truth box
//! or a detection are visited, never the full grid.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::boxes::{BBox, PixelConvention};
use crate::dataset::{Detections, GroundTruth};

/// The 12 numbers of `COCOeval.summarize()`, in `stats` order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CocoStats {
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_small: f64,
    pub ap_medium: f64,
    pub ap_large: f64,
    pub ar1: f64,
    pub ar10: f64,
    pub ar100: f64,
    pub ar_small: f64,
    pub ar_medium: f64,
    pub ar_large: f64,
}

impl CocoStats {
    pub fn as_array(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }

    pub const NAMES: [&'static str; 12] = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];
}

/// numpy.linspace(start, stop, num) exactly: i * ((stop - start) / (num - 1)) + start, last = stop.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

const AREA_RANGES: [(f64, f64); 4] = [
    (0.0, 1e10),
    (0.0, 32.0 * 32.0),
    (32.0 * 32.0, 96.0 * 96.0),
    (96.0 * 96.0, 1e10),
];
const MAX_DETS: [usize; 3] = [1, 10, 100];

/// COCO's box IoU (continuous coordinates); against a crowd box, intersection over the
/// detection's own area.
fn coco_iou(d: &BBox, g: &BBox, crowd: bool) -> f64 {
    let w = d.x2.min(g.x2) - d.x1.max(g.x1);
    let h = d.y2.min(g.y2) - d.y1.max(g.y1);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = (d.x2 - d.x1) * (d.y2 - d.y1);
    let u = if crowd {
        da
    } else {
        da + (g.x2 - g.x1) * (g.y2 - g.y1) - i
    };
    i / u
}

/// One (image, category) after matching, for one area range.
struct ImageEval {
    /// Scores of the (at most 100) detections, highest first.
    scores: Vec<f64>,
    /// Per IoU threshold, per detection: matched to a non-ignored object.
    matched: Vec<Vec<bool>>,
    /// Per IoU threshold, per detection: ignored (matched an ignored object, or unmatched
    /// outside the area range).
    ignored: Vec<Vec<bool>>,
    /// Objects not ignored.
    n_gt: usize,
}

struct Pair<'a> {
    /// Objects: (box, crowd, area).
    gt: Vec<(&'a BBox, bool, f64)>,
    /// Detections: (score, box), highest score first (ties in input order), at most 100.
    dt: Vec<(f64, &'a BBox)>,
}

fn evaluate_pair(pair: &Pair, iou_thrs: &[f64], range: (f64, f64)) -> Option<ImageEval> {
    if pair.gt.is_empty() && pair.dt.is_empty() {
        return None;
    }
    // Objects outside the range, and crowds, are ignored; ignored ones go last (stable).
    let ignore: Vec<bool> = pair
        .gt
        .iter()
        .map(|&(_, crowd, a)| crowd || a < range.0 || a > range.1)
        .collect();
    let mut gt_order: Vec<usize> = (0..pair.gt.len()).collect();
    gt_order.sort_by_key(|&g| ignore[g]);
    let ious: Vec<Vec<f64>> = pair
        .dt
        .iter()
        .map(|(_, d)| {
            gt_order
                .iter()
                .map(|&g| coco_iou(d, pair.gt[g].0, pair.gt[g].1))
                .collect()
        })
        .collect();
    let g_ignore: Vec<bool> = gt_order.iter().map(|&g| ignore[g]).collect();
    let g_crowd: Vec<bool> = gt_order.iter().map(|&g| pair.gt[g].1).collect();
    let n_dt = pair.dt.len();
    let mut matched = vec![vec![false; n_dt]; iou_thrs.len()];
    let mut ignored = vec![vec![false; n_dt]; iou_thrs.len()];
    for (t, &thr) in iou_thrs.iter().enumerate() {
        let mut gt_taken = vec![false; gt_order.len()];
        for d in 0..n_dt {
            let mut iou = thr.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for g in 0..gt_order.len() {
                if gt_taken[g] && !g_crowd[g] {
                    continue;
                }
                // Once matched to a real object, stop at the ignored ones.
                if let Some(mm) = m {
                    if !g_ignore[mm] && g_ignore[g] {
                        break;
                    }
                }
                if ious[d][g] < iou {
                    continue;
                }
                iou = ious[d][g];
                m = Some(g);
            }
            if let Some(g) = m {
                ignored[t][d] = g_ignore[g];
                matched[t][d] = true;
                gt_taken[g] = true;
            }
        }
        // Unmatched detections outside the area range do not count.
        for (d, (_, b)) in pair.dt.iter().enumerate() {
            let area = (b.x2 - b.x1) * (b.y2 - b.y1);
            if !matched[t][d] && (area < range.0 || area > range.1) {
                ignored[t][d] = true;
            }
        }
    }
    Some(ImageEval {
        scores: pair.dt.iter().map(|&(s, _)| s).collect(),
        matched,
        ignored,
        n_gt: g_ignore.iter().filter(|&&i| !i).count(),
    })
}

/// Precision at 101 recall points per IoU threshold, and final recall per IoU threshold, for
/// one category, area range and detection limit; `None` when there is no object to find.
fn accumulate(
    evals: &[&ImageEval],
    max_det: usize,
    iou_thrs: &[f64],
    rec_thrs: &[f64],
) -> Option<(Vec<Vec<f64>>, Vec<f64>)> {
    let n_gt: usize = evals.iter().map(|e| e.n_gt).sum();
    if n_gt == 0 {
        return None;
    }
    // Concatenate each image's first max_det detections (images in order), then rank all by
    // score with a stable sort, as numpy's mergesort.
    let mut entries: Vec<(f64, usize, usize)> = Vec::new(); // (score, eval, detection)
    for (e, ev) in evals.iter().enumerate() {
        for d in 0..ev.scores.len().min(max_det) {
            entries.push((ev.scores[d], e, d));
        }
    }
    entries.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut precisions = Vec::with_capacity(iou_thrs.len());
    let mut recalls = Vec::with_capacity(iou_thrs.len());
    for t in 0..iou_thrs.len() {
        let mut rc = Vec::with_capacity(entries.len());
        let mut pr = Vec::with_capacity(entries.len());
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        for &(_, e, d) in &entries {
            if evals[e].ignored[t][d] {
                continue;
            }
            if evals[e].matched[t][d] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            rc.push(tp / n_gt as f64);
            pr.push(tp / (fp + tp + f64::EPSILON));
        }
        recalls.push(rc.last().copied().unwrap_or(0.0));
        for i in (1..pr.len()).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        // numpy.searchsorted(rc, recThrs, side='left'): first index with rc[i] >= r.
        let q: Vec<f64> = rec_thrs
            .iter()
            .map(|&r| {
                let i = rc.partition_point(|&x| x < r);
                if i < pr.len() {
                    pr[i]
                } else {
                    0.0
                }
            })
            .collect();
        precisions.push(q);
    }
    Some((precisions, recalls))
}

/// COCOeval(gt, dt, 'bbox') with the default parameters. Images are taken in the ground truth's
/// order (COCO readers give them sorted by id, as pycocotools).
pub fn evaluate(gt: &GroundTruth, dets: &Detections, n_classes: usize) -> CocoStats {
    let iou_thrs = linspace(0.5, 0.95, 10);
    let rec_thrs = linspace(0.0, 1.0, 101);
    // Group by (category, image); images in index order.
    let mut pairs: Vec<HashMap<usize, Pair>> = (0..n_classes).map(|_| HashMap::new()).collect();
    for g in &gt.boxes {
        let area = g
            .area
            .unwrap_or_else(|| g.bbox.area(PixelConvention::Continuous));
        pairs[g.class]
            .entry(g.image)
            .or_insert_with(|| Pair {
                gt: Vec::new(),
                dt: Vec::new(),
            })
            .gt
            .push((&g.bbox, g.crowd, area));
    }
    for d in &dets.dets {
        pairs[d.class]
            .entry(d.image)
            .or_insert_with(|| Pair {
                gt: Vec::new(),
                dt: Vec::new(),
            })
            .dt
            .push((d.score, &d.bbox));
    }
    // Per category: per area range, per max_det -> (precision [T][R], recall [T]) or None.
    type Acc = Vec<Vec<Option<(Vec<Vec<f64>>, Vec<f64>)>>>;
    let per_class: Vec<Acc> = pairs
        .into_par_iter()
        .map(|mut by_image| {
            let mut images: Vec<usize> = by_image.keys().copied().collect();
            images.sort_unstable();
            let pairs: Vec<Pair> = images
                .iter()
                .map(|i| {
                    let mut p = by_image.remove(i).expect("key exists");
                    p.dt.sort_by(|a, b| b.0.total_cmp(&a.0));
                    p.dt.truncate(MAX_DETS[2]);
                    p
                })
                .collect();
            AREA_RANGES
                .iter()
                .map(|&range| {
                    let evals: Vec<ImageEval> = pairs
                        .iter()
                        .filter_map(|p| evaluate_pair(p, &iou_thrs, range))
                        .collect();
                    let refs: Vec<&ImageEval> = evals.iter().collect();
                    MAX_DETS
                        .iter()
                        .map(|&m| accumulate(&refs, m, &iou_thrs, &rec_thrs))
                        .collect()
                })
                .collect()
        })
        .collect();

    // summarize(): the mean over categories (and thresholds, recall points) of values that exist.
    let summarize = |ap: bool, iou: Option<usize>, area: usize, max_det: usize| -> f64 {
        let mut sum = 0.0;
        let mut n = 0usize;
        for acc in &per_class {
            let Some((precision, recall)) = &acc[area][max_det] else {
                continue;
            };
            let thresholds: Vec<usize> = match iou {
                Some(t) => vec![t],
                None => (0..iou_thrs.len()).collect(),
            };
            for t in thresholds {
                if ap {
                    sum += precision[t].iter().sum::<f64>();
                    n += precision[t].len();
                } else {
                    sum += recall[t];
                    n += 1;
                }
            }
        }
        if n == 0 {
            -1.0
        } else {
            sum / n as f64
        }
    };
    let t50 = iou_thrs.iter().position(|&t| t == 0.5);
    let t75 = iou_thrs.iter().position(|&t| t == 0.75);
    CocoStats {
        ap: summarize(true, None, 0, 2),
        ap50: summarize(true, t50, 0, 2),
        ap75: summarize(true, t75, 0, 2),
        ap_small: summarize(true, None, 1, 2),
        ap_medium: summarize(true, None, 2, 2),
        ap_large: summarize(true, None, 3, 2),
        ar1: summarize(false, None, 0, 0),
        ar10: summarize(false, None, 0, 1),
        ar100: summarize(false, None, 0, 2),
        ar_small: summarize(false, None, 1, 2),
        ar_medium: summarize(false, None, 2, 2),
        ar_large: summarize(false, None, 3, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpys() {
        let t = linspace(0.5, 0.95, 10);
        assert_eq!(t[0], 0.5);
        assert_eq!(t[5], 0.75);
        assert_eq!(t[9], 0.95);
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r[1], 0.01);
        assert_eq!(r[100], 1.0);
    }

    #[test]
    fn crowd_iou_is_over_the_detection() {
        let d = BBox::new(0.0, 0.0, 10.0, 10.0);
        let g = BBox::new(0.0, 0.0, 100.0, 100.0);
        assert_eq!(coco_iou(&d, &g, true), 1.0);
        assert!((coco_iou(&d, &g, false) - 0.01).abs() < 1e-15);
    }
}
