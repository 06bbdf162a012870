//! The one-threshold metrics: ILSVRC (eval_detection.m) and PASCAL VOC (VOCevaldet.m).
//!
//! Both use inclusive pixel boxes and rank a class's detections by confidence, ties in input
//! order. They differ in matching: VOC takes each detection's best-overlapping object and calls
//! a second hit on it a false positive; ILSVRC takes the best-overlapping object not yet
//! matched whose own size-dependent threshold the overlap reaches.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::ap::{ap_11_points, ap_all_points, PrCurve};
use super::ClassResult;
use crate::dataset::{Detections, GroundTruth};
use boxes::{BBox, PixelConvention};

const INC: PixelConvention = PixelConvention::Inclusive;

/// Which VOC-family rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PascalRules {
    /// eval_detection.m: per-object threshold min(iou, wh / ((w+10)(h+10))), unmatched objects
    /// only, blacklist, all-point AP.
    Ilsvrc,
    /// VOCevaldet.m with 11-point AP.
    Voc07,
    /// VOCevaldet.m with all-point AP.
    Voc,
}

/// ILSVRC's threshold for an object: 0.5 (`iou`) for large ones, looser for small ones.
pub fn ilsvrc_threshold(gt: &BBox, iou: f64) -> f64 {
    let (w, h) = (gt.width(INC), gt.height(INC));
    iou.min(w * h / ((w + 10.0) * (h + 10.0)))
}

struct ClassData<'a> {
    /// Objects of the class per image: (box, difficult).
    gt: HashMap<usize, Vec<(&'a BBox, bool)>>,
    /// Detections of the class in input order: (image, score, box).
    dets: Vec<(usize, f64, &'a BBox)>,
}

fn group_by_class<'a>(
    gt: &'a GroundTruth,
    dets: &'a Detections,
    n_classes: usize,
    blacklist: &HashSet<(usize, usize)>,
) -> Vec<ClassData<'a>> {
    let mut classes: Vec<ClassData> = (0..n_classes)
        .map(|_| ClassData {
            gt: HashMap::new(),
            dets: Vec::new(),
        })
        .collect();
    for g in &gt.boxes {
        if !blacklist.contains(&(g.image, g.class)) {
            classes[g.class]
                .gt
                .entry(g.image)
                .or_default()
                .push((&g.bbox, g.difficult));
        }
    }
    for d in &dets.dets {
        if !blacklist.contains(&(d.image, d.class)) {
            classes[d.class].dets.push((d.image, d.score, &d.bbox));
        }
    }
    classes
}

/// Sorts indices by score, highest first, equal scores in their given order.
fn rank_by_score(scores: impl Fn(usize) -> f64, idx: &mut [usize]) {
    idx.sort_by(|&a, &b| scores(b).total_cmp(&scores(a)));
}

/// VOCevaldet.m for one class: true-positive flags in rank order (difficult hits dropped).
fn voc_flags(data: &ClassData, iou: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..data.dets.len()).collect();
    rank_by_score(|i| data.dets[i].1, &mut order);
    let mut matched: HashMap<usize, Vec<bool>> = HashMap::new();
    let mut flags = Vec::with_capacity(order.len());
    for i in order {
        let (image, _, det) = data.dets[i];
        let Some(objects) = data.gt.get(&image) else {
            flags.push(false);
            continue;
        };
        // The first object with the highest overlap (MATLAB's max).
        let mut best = (f64::NEG_INFINITY, usize::MAX);
        for (j, (g, _)) in objects.iter().enumerate() {
            let ov = det.iou(g, INC);
            if ov > best.0 {
                best = (ov, j);
            }
        }
        if best.0 >= iou && best.0 > 0.0 {
            let (_, difficult) = objects[best.1];
            if difficult {
                continue; // neither hit nor miss
            }
            let seen = matched
                .entry(image)
                .or_insert_with(|| vec![false; objects.len()]);
            flags.push(!seen[best.1]);
            seen[best.1] = true;
        } else {
            flags.push(false);
        }
    }
    flags
}

/// eval_detection.m for one class: greedy matching image by image, then one ranking over the
/// images in index order (MATLAB's stable sort of the concatenation).
fn ilsvrc_flags(data: &ClassData, iou: f64) -> Vec<bool> {
    let mut by_image: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, d) in data.dets.iter().enumerate() {
        by_image.entry(d.0).or_default().push(i);
    }
    let mut images: Vec<usize> = by_image.keys().copied().collect();
    images.sort_unstable();
    let mut ranked: Vec<(f64, bool)> = Vec::with_capacity(data.dets.len());
    for image in images {
        let mut idx = by_image.remove(&image).unwrap_or_default();
        rank_by_score(|i| data.dets[i].1, &mut idx);
        let objects = data.gt.get(&image).map(Vec::as_slice).unwrap_or(&[]);
        let thresholds: Vec<f64> = objects
            .iter()
            .map(|(g, _)| ilsvrc_threshold(g, iou))
            .collect();
        let mut detected = vec![false; objects.len()];
        for i in idx {
            let (_, score, det) = data.dets[i];
            let mut best = (f64::NEG_INFINITY, None);
            for (k, (g, _)) in objects.iter().enumerate() {
                if detected[k] {
                    continue;
                }
                let ov = det.iou(g, INC);
                if ov > 0.0 && ov >= thresholds[k] && ov > best.0 {
                    best = (ov, Some(k));
                }
            }
            if let (_, Some(k)) = best {
                detected[k] = true;
            }
            ranked.push((score, best.1.is_some()));
        }
    }
    let mut order: Vec<usize> = (0..ranked.len()).collect();
    rank_by_score(|i| ranked[i].0, &mut order);
    order.into_iter().map(|i| ranked[i].1).collect()
}

/// AP and its companions for every class, classes in parallel.
pub fn evaluate(
    gt: &GroundTruth,
    dets: &Detections,
    n_classes: usize,
    rules: PascalRules,
    iou: f64,
    blacklist: &HashSet<(usize, usize)>,
) -> Vec<ClassResult> {
    let data = group_by_class(gt, dets, n_classes, blacklist);
    data.par_iter()
        .enumerate()
        .map(|(class, d)| {
            let n_gt =
                d.gt.values()
                    .flatten()
                    .filter(|(_, difficult)| rules == PascalRules::Ilsvrc || !difficult)
                    .count();
            let flags = match rules {
                PascalRules::Ilsvrc => ilsvrc_flags(d, iou),
                PascalRules::Voc07 | PascalRules::Voc => voc_flags(d, iou),
            };
            let curve = PrCurve::new(flags, n_gt);
            let ap = match rules {
                PascalRules::Voc07 => ap_11_points(&curve),
                _ => ap_all_points(&curve),
            };
            ClassResult::new(class, ap, n_gt, d.dets.len(), curve)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ilsvrc_threshold_loosens_for_small_objects() {
        // 100x100 (inclusive: 0..99): 10000/12100 > 0.5, so 0.5.
        assert_eq!(ilsvrc_threshold(&BBox::new(0.0, 0.0, 99.0, 99.0), 0.5), 0.5);
        // 10x10: 100 / 400 = 0.25, the devkit's own example.
        assert_eq!(ilsvrc_threshold(&BBox::new(0.0, 0.0, 9.0, 9.0), 0.5), 0.25);
        // 1x1: 1/121.
        assert!(
            (ilsvrc_threshold(&BBox::new(5.0, 5.0, 5.0, 5.0), 0.5) - 1.0 / 121.0).abs() < 1e-15
        );
    }
}
