//! Greedy non-maximum suppression, per class (R-CNN's ILSVRC code: IoU 0.3).
//!
//! Scores are ranked highest first, ties in input order; a box is dropped when its IoU with a
//! kept box of the same class is above the threshold. Arithmetic is in f32, as torchvision's
//! kernel, so that kept indices match `torchvision.ops.nms` even at the threshold.

use eval::PixelConvention;
use rayon::prelude::*;

/// Corners `[x1, y1, x2, y2]`.
pub type Corners = [f32; 4];

fn area(b: &Corners, extra: f32) -> f32 {
    (b[2] - b[0] + extra) * (b[3] - b[1] + extra)
}

/// Indices of the boxes kept, highest score first.
pub fn nms(
    boxes: &[Corners],
    scores: &[f32],
    iou_threshold: f32,
    conv: PixelConvention,
) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "one score per box");
    let extra = if conv == PixelConvention::Inclusive {
        1.0
    } else {
        0.0
    };
    let mut order: Vec<usize> = (0..boxes.len()).filter(|&i| !scores[i].is_nan()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let areas: Vec<f32> = boxes.iter().map(|b| area(b, extra)).collect();
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j];
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + extra).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + extra).max(0.0);
            let inter = w * h;
            if inter / (areas[i] + areas[j] - inter) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// NMS within each class, classes in parallel; kept indices ordered by score (ties by index),
/// as `torchvision.ops.batched_nms`.
pub fn batched_nms(
    boxes: &[Corners],
    scores: &[f32],
    classes: &[usize],
    iou_threshold: f32,
    conv: PixelConvention,
) -> Vec<usize> {
    assert!(
        boxes.len() == scores.len() && boxes.len() == classes.len(),
        "one score and class per box"
    );
    let n_classes = classes.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &c) in classes.iter().enumerate() {
        members[c].push(i);
    }
    let mut keep: Vec<usize> = members
        .par_iter()
        .filter(|m| !m.is_empty())
        .flat_map_iter(|m| {
            let b: Vec<Corners> = m.iter().map(|&i| boxes[i]).collect();
            let s: Vec<f32> = m.iter().map(|&i| scores[i]).collect();
            nms(&b, &s, iou_threshold, conv)
                .into_iter()
                .map(|k| m[k])
                .collect::<Vec<_>>()
        })
        .collect();
    keep.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONT: PixelConvention = PixelConvention::Continuous;

    #[test]
    fn by_hand() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 0.0, 11.0, 10.0],
            [20.0, 20.0, 30.0, 30.0],
            [0.0, 0.0, 10.0, 5.0],
        ];
        let scores = [0.9, 0.8, 0.7, 0.95];
        // Box 1 overlaps box 0 at 90/110 = 0.82; box 3 overlaps box 0 at 0.5 (kept: not above).
        assert_eq!(nms(&boxes, &scores, 0.5, CONT), vec![3, 0, 2]);
        assert_eq!(nms(&boxes, &scores, 0.49, CONT), vec![3, 1, 2]);
        // At 0.3 box 1 (IoU 45/105 = 0.43 with box 3) goes too.
        assert_eq!(nms(&boxes, &scores, 0.3, CONT), vec![3, 2]);
        // Per class: box 1 in another class survives.
        assert_eq!(
            batched_nms(&boxes, &scores, &[0, 1, 0, 0], 0.5, CONT),
            vec![3, 0, 1, 2]
        );
        // Ties keep input order; NaN scores are dropped.
        assert_eq!(nms(&boxes[..2], &[0.5, 0.5], 0.5, CONT), vec![0]);
        assert_eq!(
            nms(&boxes[..1], &[f32::NAN], 0.5, CONT),
            Vec::<usize>::new()
        );
    }
}
