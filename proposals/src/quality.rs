//! Recall and average best overlap of proposals against ground truth.

use eval::{BBox, PixelConvention};

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
}
