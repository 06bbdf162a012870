//! Precision-recall curves and average precision.

/// Precision and recall after each ranked detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrCurve {
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    /// Cumulative true and false positives after each detection.
    pub tp: Vec<u64>,
    pub fp: Vec<u64>,
}

impl PrCurve {
    /// From true-positive flags in rank order and the number of ground-truth objects.
    pub fn new(is_tp: impl IntoIterator<Item = bool>, n_gt: usize) -> Self {
        let mut c = PrCurve::default();
        let (mut tp, mut fp) = (0u64, 0u64);
        for hit in is_tp {
            if hit {
                tp += 1;
            } else {
                fp += 1;
            }
            c.tp.push(tp);
            c.fp.push(fp);
            c.precision.push(tp as f64 / (tp + fp) as f64);
            c.recall.push(if n_gt > 0 {
                tp as f64 / n_gt as f64
            } else {
                0.0
            });
        }
        c
    }

    /// Index of the point with the highest F1 (first of equals), if any detection was a hit.
    pub fn best_f1(&self) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, (p, r)) in self.precision.iter().zip(&self.recall).enumerate() {
            if p + r > 0.0 {
                let f1 = 2.0 * p * r / (p + r);
                if best.is_none_or(|(_, b)| f1 > b) {
                    best = Some((i, f1));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    pub fn final_recall(&self) -> f64 {
        self.recall.last().copied().unwrap_or(0.0)
    }
}

/// All-point interpolated AP (VOC 2010+, ILSVRC's VOCap): the area under the precision
/// envelope, summed where recall changes.
pub fn ap_all_points(curve: &PrCurve) -> f64 {
    let n = curve.recall.len();
    let mut mrec = Vec::with_capacity(n + 2);
    let mut mpre = Vec::with_capacity(n + 2);
    mrec.push(0.0);
    mpre.push(0.0);
    mrec.extend_from_slice(&curve.recall);
    mpre.extend_from_slice(&curve.precision);
    mrec.push(1.0);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (1..mrec.len())
        .filter(|&i| mrec[i] != mrec[i - 1])
        .map(|i| (mrec[i] - mrec[i - 1]) * mpre[i])
        .sum()
}

/// VOC2007's 11-point AP: the mean over recall 0, 0.1, ..., 1 of the best precision at or
/// beyond that recall.
///
/// The recall points are `i * 0.1` in floating point, as py-faster-rcnn's and detectron2's
/// `voc_eval` (`np.arange(0., 1.1, 0.1)`) and the published reference values have them: the
/// seventh is 0.6000000000000001, which a recall of exactly 0.6 does not reach. (MATLAB's
/// `0:0.1:1` in VOCdevkit gives 0.6 exactly.)
pub fn ap_11_points(curve: &PrCurve) -> f64 {
    (0..=10)
        .map(|i| {
            let t = i as f64 * 0.1;
            curve
                .recall
                .iter()
                .zip(&curve.precision)
                .filter(|(r, _)| **r >= t)
                .map(|(_, p)| *p)
                .fold(0.0, f64::max)
        })
        .sum::<f64>()
        / 11.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_by_hand() {
        // Hit, miss, hit with 2 objects: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
        let c = PrCurve::new([true, false, true], 2);
        assert_eq!(c.precision, vec![1.0, 0.5, 2.0 / 3.0]);
        assert_eq!(c.recall, vec![0.5, 0.5, 1.0]);
        // All points: 0.5 * 1 + 0.5 * 2/3.
        assert!((ap_all_points(&c) - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
        // 11 points: recall 0..0.5 (6 points) at precision 1, 0.6..1 (5 points) at 2/3.
        assert!((ap_11_points(&c) - (6.0 + 5.0 * 2.0 / 3.0) / 11.0).abs() < 1e-15);
        assert_eq!(c.best_f1(), Some(2));
    }

    #[test]
    fn eleven_points_are_numpys() {
        // 9 of 15 found: recall exactly 0.6 misses the point 6 * 0.1 = 0.6000000000000001.
        let c = PrCurve::new((0..15).map(|i| i < 9), 15);
        assert_eq!(c.final_recall(), 0.6);
        assert!((ap_11_points(&c) - 6.0 / 11.0).abs() < 1e-15);
    }

    #[test]
    fn empty_curves() {
        let c = PrCurve::new([], 3);
        assert_eq!(ap_all_points(&c), 0.0);
        assert_eq!(ap_11_points(&c), 0.0);
        assert_eq!(c.best_f1(), None);
        assert_eq!(c.final_recall(), 0.0);
    }
}
