//! From class scores per proposal to detections, as torchvision's `postprocess_detections`:
//! per-class candidates -> score threshold -> per-class NMS -> top k per class -> top k per image.

use eval::{BBox, PixelConvention};

use crate::detect::nms::{batched_nms, Corners};
use crate::heads::box_regression;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostParams {
    /// Drop candidates scoring below this.
    pub score_threshold: f32,
    /// Per-class NMS IoU (R-CNN's ILSVRC code: 0.3, inclusive pixels).
    pub nms_iou: f32,
    pub top_per_class: usize,
    pub top_per_image: usize,
    /// The background column of the scores, never a detection (0 for our 201-way heads).
    pub background: Option<usize>,
}

impl Default for PostParams {
    fn default() -> Self {
        PostParams {
            score_threshold: 0.01,
            nms_iou: 0.3,
            top_per_class: 100,
            top_per_image: 1000,
            background: Some(0),
        }
    }
}

/// One detection in an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// Column of the scores (background included in the numbering).
    pub class: usize,
    pub score: f32,
    pub bbox: BBox,
}

/// Class-specific box regression of an image's proposals.
#[derive(Debug, Clone, Copy)]
pub struct Refine<'a> {
    /// `[proposals, classes, 4]` deltas, row-major.
    pub deltas: &'a [f32],
    /// The image's size in pixels: regressed boxes are clipped to it.
    pub width: usize,
    pub height: usize,
}

impl Refine<'_> {
    /// Proposal `i`'s box for class `c`, clipped to the image in inclusive pixel coordinates
    /// (the last column is `width - 1`, as proposals and NMS count them).
    pub fn bbox(&self, proposal: &BBox, i: usize, c: usize, classes: usize) -> BBox {
        let d = &self.deltas[(i * classes + c) * 4..(i * classes + c + 1) * 4];
        box_regression::apply(
            proposal,
            [d[0] as f64, d[1] as f64, d[2] as f64, d[3] as f64],
            self.width.saturating_sub(1) as f64,
            self.height.saturating_sub(1) as f64,
        )
    }
}

/// Detections of one image from its proposals' boxes and score rows, highest score first; with
/// `refine`, each class's candidates sit at that class's regressed boxes (before NMS, as R-CNN).
pub fn postprocess(
    boxes: &[BBox],
    scores: &[Vec<f32>],
    refine: Option<&Refine>,
    p: &PostParams,
) -> Vec<Detected> {
    assert_eq!(boxes.len(), scores.len(), "a score row per proposal");
    let classes = scores.first().map_or(0, Vec::len);
    if let Some(r) = refine {
        assert_eq!(
            r.deltas.len(),
            boxes.len() * classes * 4,
            "4 deltas a class"
        );
    }
    let mut cand_bboxes: Vec<BBox> = Vec::new();
    // 1-2. Candidates: every (proposal, class) at or above the threshold (NaN never is).
    let mut cand_boxes: Vec<Corners> = Vec::new();
    let mut cand_scores = Vec::new();
    let mut cand_classes = Vec::new();
    for (i, row) in scores.iter().enumerate() {
        for (c, &s) in row.iter().enumerate() {
            if Some(c) != p.background && s >= p.score_threshold {
                let b = match refine {
                    Some(r) => r.bbox(&boxes[i], i, c, classes),
                    None => boxes[i],
                };
                cand_boxes.push([b.x1 as f32, b.y1 as f32, b.x2 as f32, b.y2 as f32]);
                cand_bboxes.push(b);
                cand_scores.push(s);
                cand_classes.push(c);
            }
        }
    }
    // 3. Per-class NMS; kept come highest score first.
    let kept = batched_nms(
        &cand_boxes,
        &cand_scores,
        &cand_classes,
        p.nms_iou,
        PixelConvention::Inclusive,
    );
    // 4-5. Top k per class, then per image.
    let mut per_class = std::collections::HashMap::<usize, usize>::new();
    let mut out = Vec::new();
    for k in kept {
        let n = per_class.entry(cand_classes[k]).or_default();
        if *n >= p.top_per_class {
            continue;
        }
        *n += 1;
        out.push(Detected {
            class: cand_classes[k],
            score: cand_scores[k],
            bbox: cand_bboxes[k],
        });
        if out.len() == p.top_per_image {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        let boxes = [
            BBox::new(0.0, 0.0, 99.0, 99.0),
            BBox::new(5.0, 0.0, 104.0, 99.0), // IoU 0.90 with the first
            BBox::new(200.0, 200.0, 299.0, 299.0),
        ];
        // Columns: background, cat, dog.
        let scores = vec![
            vec![0.1, 0.7, 0.2],
            vec![0.05, 0.8, 0.15],
            vec![0.5, 0.005, f32::NAN],
        ];
        let p = PostParams::default();
        let d = postprocess(&boxes, &scores, None, &p);
        // cat: box 1 (0.8) suppresses box 0 (0.7); dog: box 0 (0.2) suppresses box 1 (0.15);
        // box 2: cat below the threshold, dog NaN, background never.
        let got: Vec<(usize, f32, f64)> = d.iter().map(|x| (x.class, x.score, x.bbox.x1)).collect();
        assert_eq!(got, vec![(1, 0.8, 5.0), (2, 0.2, 0.0)]);
        // Top 1 per image keeps the best.
        let one = postprocess(
            &boxes,
            &scores,
            None,
            &PostParams {
                top_per_image: 1,
                ..p
            },
        );
        assert_eq!(one.len(), 1);
        // Without NMS (IoU 1) and one per class: still one cat and one dog, the best of each.
        let per_class = postprocess(
            &boxes,
            &scores,
            None,
            &PostParams {
                nms_iou: 1.0,
                top_per_class: 1,
                ..p
            },
        );
        assert_eq!(
            per_class
                .iter()
                .map(|x| (x.class, x.score))
                .collect::<Vec<_>>(),
            vec![(1, 0.8), (2, 0.2)]
        );
    }

    #[test]
    fn regression_moves_each_class_to_its_own_box_before_nms() {
        // Two proposals 0.9 IoU apart; columns background, cat, dog.
        let boxes = [
            BBox::new(0.0, 0.0, 99.0, 99.0),
            BBox::new(5.0, 0.0, 104.0, 99.0),
        ];
        let scores = vec![vec![0.1, 0.7, 0.2], vec![0.05, 0.8, 0.15]];
        // Proposal 0: cat moves right by a full width (no longer overlapping proposal 1's
        // cat), dog doubles in width; proposal 1: nothing moves. Background deltas are ignored.
        let ln2 = 2f32.ln();
        #[rustfmt::skip]
        let deltas = [
            9.0, 9.0, 9.0, 9.0,   1.0, 0.0, 0.0, 0.0,   0.0, 0.0, ln2, 0.0,
            0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.0, 0.0,
        ];
        let r = Refine {
            deltas: &deltas,
            width: 640,
            height: 480,
        };
        let d = postprocess(&boxes, &scores, Some(&r), &PostParams::default());
        let got: Vec<(usize, f32, [f64; 4])> = d
            .iter()
            // ln 2 in f32: the dog's box is right to 2e-7 px.
            .map(|x| {
                let b = [x.bbox.x1, x.bbox.y1, x.bbox.x2, x.bbox.y2];
                (x.class, x.score, b.map(|v| (v * 1e4).round() / 1e4))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0.8, [5.0, 0.0, 104.0, 99.0]),
                (1, 0.7, [99.0, 0.0, 198.0, 99.0]),
                // Dog: 198 wide centred at 49.5, clipped at 0; 0.2 suppresses 0.15 (IoU 0.67).
                (2, 0.2, [0.0, 0.0, 148.5, 99.0]),
            ]
        );
        // Clipped to the image: the last pixel is 639.
        let far = [0.0, 0.0, 0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let r = Refine {
            deltas: &far,
            width: 640,
            height: 480,
        };
        let d = postprocess(&boxes[..1], &scores[..1], Some(&r), &PostParams::default());
        assert_eq!((d[0].class, d[0].bbox.x1, d[0].bbox.x2), (1, 639.0, 639.0));
    }
}
