//! R-CNN's class-specific bounding-box regression (Girshick et al. 2014, appendix C): a linear
//! map from a region's pooled features to `(tx, ty, tw, th)`, the shift of its centre in units
//! of its size and the log-ratio of its size, fitted by ridge regression in closed form.
//!
//! Boxes are in continuous coordinates (`width = x2 - x1`), as every other stage here.

use eval::BBox;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::affine;

/// The last inception map is averaged over a `GRID` x `GRID` grid for the regressors.
pub const GRID: i64 = 3;

/// What the regressors read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RegressionFeatures {
    /// The last inception map averaged over a 3x3 grid (9 x 1024 x width values; R-CNN's
    /// pool5 is likewise a spatial map): where the object sits in the crop survives.
    #[default]
    Grid,
    /// The global average pool (1024 x width), as the SVMs: translation-invariant.
    Pooled,
}

impl RegressionFeatures {
    /// Which of a forward pass's outputs the regressors read: its `pooled` features or its
    /// `grid` (the network's `Logits::features` and `Logits::grid`).
    pub fn of<'a>(&self, pooled: &'a Tensor, grid: &'a Tensor) -> &'a Tensor {
        match self {
            RegressionFeatures::Grid => grid,
            RegressionFeatures::Pooled => pooled,
        }
    }

    /// Length of the features for a network whose pooled features have `pooled_dim` values.
    pub fn dim(&self, pooled_dim: i64) -> i64 {
        match self {
            RegressionFeatures::Grid => pooled_dim * GRID.pow(2),
            RegressionFeatures::Pooled => pooled_dim,
        }
    }
}

/// Largest log size change applied (Faster R-CNN's `log(1000 / 16)`): a wild prediction makes
/// a box at most ~62 times larger, never an overflow.
pub const MAX_LOG_SCALE: f64 = 4.135_166_556_742_356;

/// Proposals narrower or lower than this (pixels) are not used for fitting: their targets blow up.
pub const MIN_SIZE: f64 = 1.0;

/// `(tx, ty, tw, th)` that take `proposal` to `target`.
pub fn targets(proposal: &BBox, target: &BBox) -> [f64; 4] {
    let (pw, ph) = (proposal.x2 - proposal.x1, proposal.y2 - proposal.y1);
    let (gw, gh) = (target.x2 - target.x1, target.y2 - target.y1);
    let (pcx, pcy) = (proposal.x1 + 0.5 * pw, proposal.y1 + 0.5 * ph);
    let (gcx, gcy) = (target.x1 + 0.5 * gw, target.y1 + 0.5 * gh);
    [
        (gcx - pcx) / pw,
        (gcy - pcy) / ph,
        (gw / pw).ln(),
        (gh / ph).ln(),
    ]
}

/// `proposal` moved by `d = (dx, dy, dw, dh)` and clipped to an image of `width` x `height`.
pub fn apply(proposal: &BBox, d: [f64; 4], width: f64, height: f64) -> BBox {
    let (pw, ph) = (
        (proposal.x2 - proposal.x1).max(MIN_SIZE),
        (proposal.y2 - proposal.y1).max(MIN_SIZE),
    );
    let (pcx, pcy) = (proposal.x1 + 0.5 * pw, proposal.y1 + 0.5 * ph);
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let (cx, cy) = (pcx + pw * finite(d[0]), pcy + ph * finite(d[1]));
    let w = pw * finite(d[2]).clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE).exp();
    let h = ph * finite(d[3]).clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE).exp();
    let clip = |v: f64, hi: f64| v.clamp(0.0, hi);
    BBox::new(
        clip(cx - 0.5 * w, width),
        clip(cy - 0.5 * h, height),
        clip(cx + 0.5 * w, width),
        clip(cy + 0.5 * h, height),
    )
}

/// One class's regressor: `deltas = features @ weight + bias`.
#[derive(Debug)]
pub struct BoxRegressor {
    /// `[features, 4]`, f32.
    pub weight: Tensor,
    /// `[4]`, f32.
    pub bias: Tensor,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{features} feature rows but {targets} target rows")]
    Rows { features: i64, targets: i64 },
    #[error("no training regions")]
    Empty,
    #[error("the ridge system could not be solved: {0}")]
    Solve(String),
}

impl BoxRegressor {
    /// Ridge regression in closed form: minimises `|X W + b - T|^2 + lambda |W|^2` over W and b
    /// (the bias is not shrunk: features and targets are centred first), solved in f64.
    /// `features` is `[N, D]`, `targets` `[N, 4]`.
    pub fn fit(features: &Tensor, targets: &Tensor, lambda: f64) -> Result<Self, FitError> {
        let (n, t) = (features.size()[0], targets.size()[0]);
        if n != t {
            return Err(FitError::Rows {
                features: n,
                targets: t,
            });
        }
        if n == 0 {
            return Err(FitError::Empty);
        }
        let x = features.to_device(Device::Cpu).to_kind(Kind::Double);
        let y = targets.to_device(Device::Cpu).to_kind(Kind::Double);
        let (x_mean, y_mean) = (
            x.mean_dim(0, true, Kind::Double),
            y.mean_dim(0, true, Kind::Double),
        );
        let (xc, yc) = (&x - &x_mean, &y - &y_mean);
        let d = x.size()[1];
        let gram =
            xc.transpose(0, 1).matmul(&xc) + Tensor::eye(d, (Kind::Double, Device::Cpu)) * lambda;
        let rhs = xc.transpose(0, 1).matmul(&yc);
        let weight = Tensor::f_linalg_solve(&gram, &rhs, true)
            .map_err(|e| FitError::Solve(e.to_string()))?;
        let bias = (y_mean - x_mean.matmul(&weight)).squeeze_dim(0);
        Ok(BoxRegressor {
            weight: weight.to_kind(Kind::Float),
            bias: bias.to_kind(Kind::Float),
        })
    }

    /// `[N, 4]` deltas for `[N, D]` features (on the features' device).
    pub fn deltas(&self, features: &Tensor) -> Tensor {
        affine(features, &self.weight, &self.bias)
    }
}

/// Every class's regressor in one map: `deltas = features @ weight + bias`, read as `[n,
/// classes, 4]`. A class without a regressor (the background, or one without training regions)
/// has zeros: its boxes stay where they are.
#[derive(Debug)]
pub struct BoxRegression {
    /// `[features, classes x 4]`, f32.
    pub weight: Tensor,
    /// `[classes x 4]`, f32.
    pub bias: Tensor,
}

impl BoxRegression {
    pub fn new(regressors: &[Option<BoxRegressor>], dim: i64) -> Self {
        let parts: Vec<(Tensor, Tensor)> = regressors
            .iter()
            .map(|r| match r {
                Some(r) => (
                    r.weight.to_device(Device::Cpu),
                    r.bias.to_device(Device::Cpu),
                ),
                None => (
                    Tensor::zeros([dim, 4], (Kind::Float, Device::Cpu)),
                    Tensor::zeros([4], (Kind::Float, Device::Cpu)),
                ),
            })
            .collect();
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.0).collect();
        let biases: Vec<&Tensor> = parts.iter().map(|p| &p.1).collect();
        BoxRegression {
            weight: Tensor::cat(&weights, 1),
            bias: Tensor::cat(&biases, 0),
        }
    }

    pub fn classes(&self) -> i64 {
        self.bias.size()[0] / 4
    }

    /// `[n, classes, 4]` deltas for `[n, features]`, on the features' device.
    pub fn deltas(&self, features: &Tensor) -> Tensor {
        let n = features.size()[0];
        affine(features, &self.weight, &self.bias).view([n, self.classes(), 4])
    }

    pub fn to_device(&self, device: Device) -> Self {
        BoxRegression {
            weight: self.weight.to_device(device),
            bias: self.bias.to_device(device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_then_apply_give_back_the_target_box() {
        let cases = [
            (
                BBox::new(10.0, 20.0, 50.0, 80.0),
                BBox::new(12.5, 18.0, 61.0, 90.0),
            ),
            (BBox::new(0.0, 0.0, 5.0, 3.0), BBox::new(1.0, 1.0, 4.0, 2.5)),
            (
                BBox::new(100.0, 40.0, 300.0, 240.0),
                BBox::new(90.0, 35.0, 310.0, 260.0),
            ),
        ];
        for (p, g) in cases {
            let b = apply(&p, targets(&p, &g), 1000.0, 1000.0);
            for (a, e) in [(b.x1, g.x1), (b.y1, g.y1), (b.x2, g.x2), (b.y2, g.y2)] {
                assert!((a - e).abs() < 1e-9, "{b:?} vs {g:?}");
            }
        }
        // R-CNN's definitions, by hand: the centre moves by a quarter width, the width doubles.
        let p = BBox::new(0.0, 0.0, 40.0, 20.0);
        let g = BBox::new(-10.0, 0.0, 70.0, 20.0);
        let t = targets(&p, &g);
        assert!((t[0] - 0.25).abs() < 1e-12 && t[1].abs() < 1e-12);
        assert!((t[2] - 2f64.ln()).abs() < 1e-12 && t[3].abs() < 1e-12);
    }

    #[test]
    fn applied_boxes_stay_in_the_image_whatever_the_deltas() {
        let p = BBox::new(10.0, 10.0, 30.0, 30.0);
        for d in [
            [0.0, 0.0, 50.0, 50.0],
            [1e9, -1e9, 0.0, 0.0],
            [f64::NAN, 0.0, f64::INFINITY, -f64::INFINITY],
        ] {
            let b = apply(&p, d, 64.0, 48.0);
            assert!(b.is_valid(), "{d:?}: {b:?}");
            assert!(
                b.x1 >= 0.0 && b.x2 <= 64.0 && b.y1 >= 0.0 && b.y2 <= 48.0,
                "{b:?}"
            );
        }
    }

    #[test]
    fn ridge_recovers_a_linear_map_and_shrinks_only_the_weights() {
        tch::manual_seed(3);
        let x = Tensor::randn([300, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]);
        let y = x.matmul(&w) + &b;
        let r = BoxRegressor::fit(&x, &y, 1e-9).unwrap();
        let err = (&r.weight - &w).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");
        assert!((&r.bias - &b).abs().max().double_value(&[]) < 1e-4);
        assert!((r.deltas(&x) - &y).abs().max().double_value(&[]) < 1e-4);
        // A huge lambda shrinks the weights to nothing; the bias becomes the targets' mean.
        let r = BoxRegressor::fit(&x, &y, 1e12).unwrap();
        assert!(r.weight.abs().max().double_value(&[]) < 1e-6);
        let mean = y.mean_dim(0, false, Kind::Float);
        assert!((&r.bias - mean).abs().max().double_value(&[]) < 1e-5);
        // Mismatched rows and no rows are errors.
        assert!(BoxRegressor::fit(&x, &y.narrow(0, 0, 10), 1.0).is_err());
        assert!(BoxRegressor::fit(&x.narrow(0, 0, 0), &y.narrow(0, 0, 0), 1.0).is_err());
    }

    #[test]
    fn stacked_regressors_give_each_class_its_own_deltas() {
        tch::manual_seed(4);
        let x = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
        let r = BoxRegressor {
            weight: Tensor::randn([3, 4], (Kind::Float, Device::Cpu)),
            bias: Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0]),
        };
        let want = r.deltas(&x);
        let all = BoxRegression::new(&[None, Some(r)], 3);
        let d = all.deltas(&x);
        assert_eq!(d.size(), [5, 2, 4]);
        assert_eq!(d.select(1, 0).abs().max().double_value(&[]), 0.0);
        assert!((d.select(1, 1) - want).abs().max().double_value(&[]) < 1e-6);
    }
}
