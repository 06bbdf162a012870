//! R-CNN's class SVMs (Girshick et al. 2014, section 2.3 and appendix B): one linear SVM per
//! class on a region's pooled features, positives the ground-truth boxes, negatives proposals
//! overlapping no instance of the class by 0.3 IoU or more, the negatives mined in rounds.
//!
//! The solver is dual coordinate descent for the hinge loss (Hsieh et al. 2008, liblinear's
//! `-s 3`, which R-CNN calls): exact on the problem R-CNN solves, a few dozen lines, and fast
//! on the dense low-dimensional features here. Kernel solvers (SMO, as in linfa-svm) cost far
//! more on 10^4-10^5 examples and gain nothing for a linear model.

use proposals::rng::SplitMix64;
use tch::{Device, Tensor};

fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// R-CNN's settings (rcnn_train.m): C = 0.001, positives weighted 2, a bias feature of 10,
/// features scaled to a mean norm of 20, hard negatives those scoring above -1.0001, easy ones
/// (dropped from the working set) below -1.2.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SvmParams {
    pub c: f64,
    pub positive_weight: f64,
    pub bias_feature: f64,
    pub feature_norm: f64,
    pub hard_threshold: f64,
    pub easy_threshold: f64,
    /// Mining stops when a round finds at most this fraction of the working set's negatives new.
    pub stop_fraction: f64,
    pub max_rounds: usize,
    /// Negatives in the first working set (random), per positive.
    pub first_negatives_per_positive: usize,
    pub seed: u64,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams {
            c: 1e-3,
            positive_weight: 2.0,
            bias_feature: 10.0,
            feature_norm: 20.0,
            hard_threshold: -1.0001,
            easy_threshold: -1.2,
            stop_fraction: 0.01,
            max_rounds: 10,
            first_negatives_per_positive: 2,
            seed: 1,
        }
    }
}

/// A linear SVM `w . x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvm {
    pub w: Vec<f64>,
    pub b: f64,
}

impl LinearSvm {
    pub fn score(&self, x: &[f32]) -> f64 {
        self.b
            + self
                .w
                .iter()
                .zip(x)
                .map(|(w, &x)| w * x as f64)
                .sum::<f64>()
    }
}

/// A hinge-loss problem: `min 1/2 |w|^2 + sum_i C_i max(0, 1 - y_i (w . x_i + b))`, the bias
/// learnt as the weight of a constant feature `bias_feature` (and so lightly regularised, as
/// liblinear does). `rows[i]` is example i, `y[i]` +1 or -1, `cost[i]` its C.
pub struct Problem<'a> {
    pub rows: &'a [&'a [f32]],
    pub y: &'a [f64],
    pub cost: &'a [f64],
    pub bias_feature: f64,
}

/// Dual coordinate descent on `problem`. `alpha` warm-starts the dual (one per example; zeros
/// for a cold start) and holds the solution on return. Stops when the projected gradient's
/// spread is below `eps` (liblinear: 0.1) or after `max_epochs`.
pub fn fit_dual_cd(
    problem: &Problem,
    alpha: &mut [f64],
    eps: f64,
    max_epochs: usize,
    seed: u64,
) -> LinearSvm {
    let Problem {
        rows,
        y,
        cost,
        bias_feature,
    } = *problem;
    let n = rows.len();
    assert!(y.len() == n && cost.len() == n && alpha.len() == n);
    let d = rows.first().map_or(0, |r| r.len());
    let mut w = vec![0f64; d];
    let mut wb = 0f64;
    let qii: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() + bias_feature.powi(2))
        .collect();
    for i in 0..n {
        alpha[i] = alpha[i].clamp(0.0, cost[i]);
        if alpha[i] != 0.0 {
            let a = alpha[i] * y[i];
            for (w, &x) in w.iter_mut().zip(rows[i]) {
                *w += a * x as f64;
            }
            wb += a * bias_feature;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for _ in 0..max_epochs {
        shuffle(&mut order, &mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let x = rows[i];
            let f = wb * bias_feature + w.iter().zip(x).map(|(w, &x)| w * x as f64).sum::<f64>();
            let g = y[i] * f - 1.0;
            let pg = if alpha[i] <= 0.0 {
                g.min(0.0)
            } else if alpha[i] >= cost[i] {
                g.max(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 && qii[i] > 0.0 {
                let old = alpha[i];
                alpha[i] = (old - g / qii[i]).clamp(0.0, cost[i]);
                let step = (alpha[i] - old) * y[i];
                for (w, &x) in w.iter_mut().zip(x) {
                    *w += step * x as f64;
                }
                wb += step * bias_feature;
            }
        }
        if n == 0 || pg_max - pg_min < eps {
            break;
        }
    }
    LinearSvm {
        w,
        b: wb * bias_feature,
    }
}

/// What mining did for one class.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiningReport {
    pub positives: usize,
    /// Negatives that could be mined (IoU < 0.3 with every instance of the class).
    pub candidates: usize,
    /// New hard negatives found in each round (the first round's set is random).
    pub new_hard: Vec<usize>,
    /// Negatives in the final working set.
    pub working_set: usize,
}

/// Trains one class's SVM on `features` (`[rows, dim]` row-major) by hard-negative mining:
/// `positives` and `negatives` index its rows. Features are scaled by `scale` first (R-CNN's
/// mean norm 20); the returned SVM takes unscaled features (the scale is folded into `w`).
pub fn train_with_mining(
    features: &[f32],
    dim: usize,
    positives: &[usize],
    negatives: &[usize],
    scale: f32,
    p: &SvmParams,
) -> (LinearSvm, MiningReport) {
    let scaled: Vec<f32> = features.iter().map(|v| v * scale).collect();
    let row = |i: usize| &scaled[i * dim..(i + 1) * dim];
    let mut rng = SplitMix64::new(p.seed);
    let mut pool = negatives.to_vec();
    shuffle(&mut pool, &mut rng);
    let first = (p.first_negatives_per_positive * positives.len().max(1)).min(pool.len());
    // The working set's negatives, with their dual variables kept across rounds (warm starts).
    let mut working: Vec<(usize, f64)> = pool[..first].iter().map(|&i| (i, 0.0)).collect();
    let mut in_set = vec![false; features.len() / dim.max(1)];
    working.iter().for_each(|&(i, _)| in_set[i] = true);
    let mut pos_alpha = vec![0f64; positives.len()];
    let mut report = MiningReport {
        positives: positives.len(),
        candidates: negatives.len(),
        new_hard: vec![first],
        working_set: 0,
    };
    let solve = |working: &mut Vec<(usize, f64)>, pos_alpha: &mut Vec<f64>, round: usize| {
        let rows: Vec<&[f32]> = positives
            .iter()
            .chain(working.iter().map(|(i, _)| i))
            .map(|&i| row(i))
            .collect();
        let mut y = vec![1.0; positives.len()];
        y.resize(rows.len(), -1.0);
        let mut cost = vec![p.c * p.positive_weight; positives.len()];
        cost.resize(rows.len(), p.c);
        let mut alpha: Vec<f64> = pos_alpha
            .iter()
            .copied()
            .chain(working.iter().map(|w| w.1))
            .collect();
        let problem = Problem {
            rows: &rows,
            y: &y,
            cost: &cost,
            bias_feature: p.bias_feature,
        };
        let svm = fit_dual_cd(&problem, &mut alpha, 0.1, 1000, p.seed ^ round as u64);
        pos_alpha.copy_from_slice(&alpha[..positives.len()]);
        for (w, a) in working.iter_mut().zip(&alpha[positives.len()..]) {
            w.1 = *a;
        }
        svm
    };
    let mut svm = solve(&mut working, &mut pos_alpha, 0);
    for round in 1..p.max_rounds {
        let hard: Vec<usize> = negatives
            .iter()
            .copied()
            .filter(|&i| !in_set[i] && svm.score(row(i)) > p.hard_threshold)
            .collect();
        report.new_hard.push(hard.len());
        let stop = (hard.len() as f64) <= p.stop_fraction * working.len().max(1) as f64;
        // Easy negatives leave the working set (their dual variables are zero at the optimum).
        working.retain(|&(i, _)| {
            let keep = svm.score(row(i)) >= p.easy_threshold;
            in_set[i] = keep;
            keep
        });
        for &i in &hard {
            in_set[i] = true;
            working.push((i, 0.0));
        }
        if hard.is_empty() {
            break;
        }
        svm = solve(&mut working, &mut pos_alpha, round);
        if stop {
            break;
        }
    }
    report.working_set = working.len();
    let w = svm.w.iter().map(|w| w * scale as f64).collect();
    (LinearSvm { w, b: svm.b }, report)
}

/// Every class's SVM: `raw = features @ weight + bias`, `[n, classes]` (column 0, the
/// background, scores nothing: its weights are zero). Detections carry `sigmoid(raw)`, which
/// orders them as the raw margins do and keeps scores in 0..1 for every writer.
#[derive(Debug)]
pub struct ClassSvms {
    /// `[features, classes]`, f32.
    pub weight: Tensor,
    /// `[classes]`, f32.
    pub bias: Tensor,
}

impl ClassSvms {
    pub fn new(svms: &[Option<LinearSvm>], dim: usize) -> Self {
        let classes = svms.len();
        let mut weight = vec![0f32; dim * classes];
        let mut bias = vec![0f32; classes];
        for (c, svm) in svms.iter().enumerate() {
            let Some(svm) = svm else {
                // No positives: a class that never scores (sigmoid(-30) ~ 1e-13).
                bias[c] = -30.0;
                continue;
            };
            for (k, w) in svm.w.iter().enumerate() {
                weight[k * classes + c] = *w as f32;
            }
            bias[c] = svm.b as f32;
        }
        ClassSvms {
            weight: Tensor::from_slice(&weight).view([dim as i64, classes as i64]),
            bias: Tensor::from_slice(&bias),
        }
    }

    /// Raw margins `[n, classes]` for `[n, dim]` features, on the features' device.
    pub fn margins(&self, features: &Tensor) -> Tensor {
        super::affine(features, &self.weight, &self.bias)
    }

    pub fn to_device(&self, device: Device) -> Self {
        ClassSvms {
            weight: self.weight.to_device(device),
            bias: self.bias.to_device(device),
        }
    }
}

/// The factor that scales `features` (`[rows, dim]`) to a mean L2 norm of `target`.
pub fn norm_scale(features: &[f32], dim: usize, target: f64) -> f32 {
    let rows = features.len() / dim.max(1);
    if rows == 0 {
        return 1.0;
    }
    let mean = features
        .chunks_exact(dim)
        .map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / rows as f64;
    if mean > 0.0 {
        (target / mean) as f32
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The primal objective the solver minimises.
    fn objective(svm: &LinearSvm, rows: &[&[f32]], y: &[f64], cost: &[f64], bias: f64) -> f64 {
        let wb = svm.b / bias;
        let reg = 0.5 * (svm.w.iter().map(|w| w * w).sum::<f64>() + wb * wb);
        reg + rows
            .iter()
            .zip(y)
            .zip(cost)
            .map(|((r, y), c)| c * (1.0 - y * svm.score(r)).max(0.0))
            .sum::<f64>()
    }

    #[test]
    fn dual_coordinate_descent_finds_the_separating_hyperplane() {
        // By hand: 1-d points -2, -1 (negative) and 1, 2 (positive), hard margin (large C), no
        // bias feature: the optimum is w = 1 (margins exactly 1 at -1 and 1).
        let pts = [[-2f32], [-1.0], [1.0], [2.0]];
        let rows: Vec<&[f32]> = pts.iter().map(|p| &p[..]).collect();
        let y = [-1.0, -1.0, 1.0, 1.0];
        let mut alpha = [0.0; 4];
        let problem = Problem {
            rows: &rows,
            y: &y,
            cost: &[1e6; 4],
            bias_feature: 0.0,
        };
        let svm = fit_dual_cd(&problem, &mut alpha, 1e-9, 10_000, 1);
        assert!((svm.w[0] - 1.0).abs() < 1e-6, "{svm:?}");
        assert!(svm.b.abs() < 1e-9);
        // Only the two points on the margin are support vectors.
        assert!(alpha[0].abs() < 1e-9 && alpha[3].abs() < 1e-9);
        assert!((alpha[1] - 0.5).abs() < 1e-6 && (alpha[2] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn the_solution_is_optimal_not_just_separating() {
        // Random overlapping 2-d classes; a soft margin. No coordinate move lowers the primal
        // objective: perturbing (w, b) in any direction costs.
        let mut rng = SplitMix64::new(5);
        let mut noise = move || (rng.uniform() * 2.0 - 1.0) as f32;
        let pts: Vec<[f32; 2]> = (0..200)
            .map(|i| {
                let s = if i % 2 == 0 { 1.0 } else { -1.0 };
                [s * 0.7 + noise(), s * 0.3 + noise()]
            })
            .collect();
        let rows: Vec<&[f32]> = pts.iter().map(|p| &p[..]).collect();
        let y: Vec<f64> = (0..200)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let cost = vec![0.5; 200];
        let mut alpha = vec![0.0; 200];
        let problem = Problem {
            rows: &rows,
            y: &y,
            cost: &cost,
            bias_feature: 1.0,
        };
        let svm = fit_dual_cd(&problem, &mut alpha, 1e-6, 100_000, 2);
        let best = objective(&svm, &rows, &y, &cost, 1.0);
        for k in 0..3 {
            for delta in [-1e-3, 1e-3] {
                let mut other = svm.clone();
                if k < 2 {
                    other.w[k] += delta;
                } else {
                    other.b += delta;
                }
                let o = objective(&other, &rows, &y, &cost, 1.0);
                assert!(o >= best - 1e-6, "moving {k} by {delta}: {o} < {best}");
            }
        }
        // Warm-started from its own solution, it stays there.
        let again = fit_dual_cd(&problem, &mut alpha, 1e-6, 100_000, 3);
        assert!((objective(&again, &rows, &y, &cost, 1.0) - best).abs() < 1e-6);
    }

    #[test]
    fn the_solver_finds_liblinears_svm() {
        // liblinear -s 3 (scikit-learn's LinearSVC) on the same data: tests/fixtures/svm.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/svm/liblinear.json"
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let num = |k: &str| f[k].as_f64().unwrap();
        let pts: Vec<Vec<f32>> = f["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect();
        let rows: Vec<&[f32]> = pts.iter().map(|p| &p[..]).collect();
        let y: Vec<f64> = f["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let (c, bias) = (num("c"), num("bias_feature"));
        let cost: Vec<f64> = y
            .iter()
            .map(|&y| {
                if y > 0.0 {
                    c * num("positive_weight")
                } else {
                    c
                }
            })
            .collect();
        let problem = Problem {
            rows: &rows,
            y: &y,
            cost: &cost,
            bias_feature: bias,
        };
        let mut alpha = vec![0.0; y.len()];
        let svm = fit_dual_cd(&problem, &mut alpha, 1e-8, 1_000_000, 4);
        let objective = objective(&svm, &rows, &y, &cost, bias);
        assert!(
            (objective - num("objective")).abs() < 1e-6 * num("objective"),
            "{objective}"
        );
        let want: Vec<f64> = f["w"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in svm.w.iter().zip(&want) {
            assert!((a - b).abs() < 1e-3, "w {:?} vs liblinear {want:?}", svm.w);
        }
        assert!(
            (svm.b - num("b")).abs() < 1e-3,
            "b {} vs {}",
            svm.b,
            num("b")
        );
    }

    #[test]
    fn mining_finds_the_hard_negatives_the_random_start_missed() {
        // Positives near x = 1; 2000 easy negatives near x = -1 and 20 hard ones near x = 0.6,
        // which the random first set (4 negatives a positive... of 10 positives) likely misses.
        let dim = 2;
        let mut features = Vec::new();
        let mut rng = SplitMix64::new(9);
        let mut push = |x: f32, features: &mut Vec<f32>| {
            let mut noise = || (rng.uniform() * 0.1 - 0.05) as f32;
            features.extend([x + noise(), noise()])
        };
        for _ in 0..10 {
            push(1.0, &mut features);
        }
        for _ in 0..2000 {
            push(-1.0, &mut features);
        }
        for _ in 0..20 {
            push(0.6, &mut features);
        }
        let positives: Vec<usize> = (0..10).collect();
        let negatives: Vec<usize> = (10..2030).collect();
        let p = SvmParams {
            c: 10.0,
            ..SvmParams::default()
        };
        let (svm, report) = train_with_mining(&features, dim, &positives, &negatives, 1.0, &p);
        assert!(report.new_hard.len() >= 2, "{report:?}");
        assert!(
            report.new_hard[1] > 0,
            "a round found hard negatives: {report:?}"
        );
        // Every negative, hard ones included, ends on the right side; every positive too.
        for i in 10..2030 {
            assert!(svm.score(&features[i * 2..i * 2 + 2]) < 0.0, "negative {i}");
        }
        for i in 0..10 {
            assert!(svm.score(&features[i * 2..i * 2 + 2]) > 0.0, "positive {i}");
        }
        // The working set stays small: easy negatives leave it.
        assert!(report.working_set < 200, "{report:?}");
    }

    #[test]
    fn class_svms_score_as_their_parts() {
        let a = LinearSvm {
            w: vec![1.0, -2.0],
            b: 0.5,
        };
        let s = ClassSvms::new(&[None, Some(a.clone())], 2);
        let x = Tensor::from_slice(&[3f32, 1.0, 0.0, 2.0]).view([2, 2]);
        let m: Vec<f32> = Vec::try_from(s.margins(&x).flatten(0, -1)).unwrap();
        assert_eq!(m, vec![-30.0, 1.5, -30.0, -3.5]);
        assert!((a.score(&[3.0, 1.0]) - 1.5).abs() < 1e-12);
        assert!((norm_scale(&[3.0, 4.0, 0.0, 0.0], 2, 20.0) - 8.0).abs() < 1e-6);
    }
}
