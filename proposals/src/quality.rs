//! Proposal quality as in Uijlings et al.: recall at an IoU threshold as a function of the
//! number of boxes, and the average best overlap (ABO) per class with its mean (MABO).
//! Boxes are compared with inclusive pixel IoU (ILSVRC/VOC annotations).

use boxes::{BBox, PixelConvention};

const INC: PixelConvention = PixelConvention::Inclusive;

/// For each ground-truth box, the highest IoU reached by any of the first `top` proposals
/// (proposals are ranked, best first). Zero where there is no proposal.
pub fn best_overlaps(
    gt: &[BBox],
    proposals: &[BBox],
    top: usize,
    conv: PixelConvention,
) -> Vec<f64> {
    let ranked = &proposals[..top.min(proposals.len())];
    gt.iter()
        .map(|g| ranked.iter().map(|p| g.iou(p, conv)).fold(0.0, f64::max))
        .collect()
}

/// Fraction of best overlaps at or above `threshold`; `None` when there is no ground truth.
pub fn recall_at(best: &[f64], threshold: f64) -> Option<f64> {
    if best.is_empty() {
        return None;
    }
    Some(best.iter().filter(|&&o| o >= threshold).count() as f64 / best.len() as f64)
}

/// One image: its objects `(class, box)` and its ranked proposals.
pub struct ImageProposals<'a> {
    pub gt: &'a [(usize, BBox)],
    pub proposals: &'a [BBox],
}

/// Quality at one number of boxes per image.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityPoint {
    /// At most this many proposals per image.
    pub top: usize,
    /// Proposals actually used per image, on average.
    pub mean_boxes: f64,
    pub recall_50: f64,
    pub recall_70: f64,
    /// Mean over classes (with objects) of the average best overlap.
    pub mabo: f64,
    /// ABO per class (`None` for a class without objects).
    pub abo: Vec<Option<f64>>,
}

/// Quality of the proposals at each `top` (use `usize::MAX` for all of them).
pub fn quality_curve(
    images: &[ImageProposals],
    n_classes: usize,
    tops: &[usize],
) -> Vec<QualityPoint> {
    // Per object, the running best overlap along the ranking: read off at any `top`.
    let running: Vec<Vec<(usize, Vec<f64>)>> = images
        .iter()
        .map(|im| {
            im.gt
                .iter()
                .map(|(c, g)| {
                    let mut best = 0.0f64;
                    let prefix = im.proposals.iter().map(|p| {
                        best = best.max(g.iou(p, INC));
                        best
                    });
                    (*c, prefix.collect())
                })
                .collect()
        })
        .collect();
    tops.iter()
        .map(|&top| {
            let mut sums = vec![(0.0f64, 0usize); n_classes];
            let (mut hit50, mut hit70, mut n) = (0usize, 0usize, 0usize);
            let mut boxes = 0usize;
            for (im, objects) in images.iter().zip(&running) {
                let used = top.min(im.proposals.len());
                boxes += used;
                for (c, prefix) in objects {
                    let o = if used == 0 { 0.0 } else { prefix[used - 1] };
                    sums[*c].0 += o;
                    sums[*c].1 += 1;
                    hit50 += (o >= 0.5) as usize;
                    hit70 += (o >= 0.7) as usize;
                    n += 1;
                }
            }
            let abo: Vec<Option<f64>> = sums
                .iter()
                .map(|&(s, k)| (k > 0).then(|| s / k as f64))
                .collect();
            let present: Vec<f64> = abo.iter().flatten().copied().collect();
            QualityPoint {
                top,
                mean_boxes: boxes as f64 / images.len().max(1) as f64,
                recall_50: hit50 as f64 / n.max(1) as f64,
                recall_70: hit70 as f64 / n.max(1) as f64,
                mabo: present.iter().sum::<f64>() / present.len().max(1) as f64,
                abo,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONT: PixelConvention = PixelConvention::Continuous;

    #[test]
    fn best_overlap_and_recall_by_hand() {
        let gt = [
            BBox::new(0.0, 0.0, 10.0, 10.0),
            BBox::new(20.0, 20.0, 30.0, 30.0),
        ];
        let proposals = [
            BBox::new(0.0, 0.0, 10.0, 5.0),    // IoU 0.5 with the first
            BBox::new(20.0, 20.0, 30.0, 30.0), // exact on the second
            BBox::new(0.0, 0.0, 10.0, 10.0),   // exact on the first, but ranked third
        ];
        assert_eq!(best_overlaps(&gt, &proposals, 1, CONT), vec![0.5, 0.0]);
        assert_eq!(best_overlaps(&gt, &proposals, 2, CONT), vec![0.5, 1.0]);
        assert_eq!(best_overlaps(&gt, &proposals, 100, CONT), vec![1.0, 1.0]);
        let best = best_overlaps(&gt, &proposals, 2, CONT);
        assert_eq!(recall_at(&best, 0.5), Some(1.0));
        assert_eq!(recall_at(&best, 0.7), Some(0.5));
        assert_eq!(recall_at(&[], 0.5), None);
    }

    #[test]
    fn curve_abo_and_mabo_by_hand() {
        // Inclusive pixels: 10x10 objects (0..9). Class 0 in image A, class 1 twice in image B.
        let a_gt = [(0, BBox::new(0.0, 0.0, 9.0, 9.0))];
        let a_props = [BBox::new(0.0, 0.0, 9.0, 4.0), BBox::new(0.0, 0.0, 9.0, 9.0)]; // 0.5, then 1
        let b_gt = [
            (1, BBox::new(0.0, 0.0, 9.0, 9.0)),
            (1, BBox::new(50.0, 50.0, 59.0, 59.0)),
        ];
        let b_props = [BBox::new(50.0, 50.0, 59.0, 59.0)];
        let images = [
            ImageProposals {
                gt: &a_gt,
                proposals: &a_props,
            },
            ImageProposals {
                gt: &b_gt,
                proposals: &b_props,
            },
        ];
        let curve = quality_curve(&images, 3, &[1, usize::MAX]);
        // top 1: A's object at 0.5; B's: 0 and 1. ABO class 0 = 0.5, class 1 = 0.5; MABO 0.5.
        assert_eq!(curve[0].abo, vec![Some(0.5), Some(0.5), None]);
        assert_eq!(curve[0].mabo, 0.5);
        assert_eq!(curve[0].recall_50, 2.0 / 3.0);
        assert_eq!(curve[0].recall_70, 1.0 / 3.0);
        assert_eq!(curve[0].mean_boxes, 1.0);
        // All: A's object at 1. ABO class 0 = 1, class 1 = 0.5; MABO 0.75.
        assert_eq!(curve[1].mabo, 0.75);
        assert_eq!(curve[1].recall_50, 2.0 / 3.0);
        assert_eq!(curve[1].mean_boxes, 1.5);
    }
}
