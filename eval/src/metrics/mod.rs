//! Metrics: `ilsvrc`, `voc07`, `voc` (one IoU threshold, AP per class) and `coco`.

pub mod ap;
pub mod coco;
pub mod pascal;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::dataset::{Detections, GroundTruth};
use crate::EvalError;
pub use ap::PrCurve;
pub use coco::CocoStats;
use pascal::PascalRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// ILSVRC's eval_detection.m (the default).
    Ilsvrc,
    /// PASCAL VOC 2007: 11-point AP, difficult objects ignored.
    Voc07,
    /// PASCAL VOC 2010+: all-point AP, difficult objects ignored.
    Voc,
    /// COCO: the 12 numbers of pycocotools' COCOeval for boxes.
    Coco,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Ilsvrc, Metric::Voc07, Metric::Voc, Metric::Coco];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Ilsvrc => "ilsvrc",
            Metric::Voc07 => "voc07",
            Metric::Voc => "voc",
            Metric::Coco => "coco",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                EvalError::Usage(format!(
                    "unknown metric `{s}` (expected ilsvrc, voc07, voc or coco)"
                ))
            })
    }
}

/// The numbers of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub class: usize,
    pub ap: f64,
    /// Objects that count (difficult ones excluded under the VOC rules).
    pub n_gt: usize,
    pub n_dets: usize,
    /// True and false positives, precision and recall at the rank with the best F1.
    pub best_f1: Option<BestF1>,
    pub final_recall: f64,
    #[serde(skip)]
    pub curve: PrCurve,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BestF1 {
    pub f1: f64,
    pub tp: u64,
    pub fp: u64,
    pub precision: f64,
    pub recall: f64,
    /// How many ranked detections that point keeps.
    pub rank: usize,
}

impl ClassResult {
    pub fn new(class: usize, ap: f64, n_gt: usize, n_dets: usize, curve: PrCurve) -> Self {
        let best_f1 = curve.best_f1().map(|i| {
            let (p, r) = (curve.precision[i], curve.recall[i]);
            BestF1 {
                f1: 2.0 * p * r / (p + r),
                tp: curve.tp[i],
                fp: curve.fp[i],
                precision: p,
                recall: r,
                rank: i + 1,
            }
        });
        ClassResult {
            class,
            ap,
            n_gt,
            n_dets,
            best_f1,
            final_recall: curve.final_recall(),
            curve,
        }
    }
}

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalParams {
    pub metric: Metric,
    /// The IoU threshold of `ilsvrc` (its cap), `voc07` and `voc`.
    pub iou: f64,
    /// (image, class) pairs whose objects and detections are ignored (ILSVRC's blacklist).
    pub blacklist: HashSet<(usize, usize)>,
}

impl EvalParams {
    pub fn new(metric: Metric) -> Self {
        EvalParams {
            metric,
            iou: 0.5,
            blacklist: HashSet::new(),
        }
    }
}

/// The result of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub metric: Metric,
    pub iou: f64,
    /// Per class, `ilsvrc`/`voc07`/`voc`; for `coco`, AP at IoU 0.5 per class by the VOC
    /// all-point rule is not computed, so this is empty.
    pub per_class: Vec<ClassResult>,
    /// Mean and median AP over the classes that have ground truth.
    pub mean_ap: Option<f64>,
    pub median_ap: Option<f64>,
    pub coco: Option<CocoStats>,
}

/// Evaluates `dets` against `gt` with `n_classes` classes.
pub fn evaluate(
    gt: &GroundTruth,
    dets: &Detections,
    n_classes: usize,
    params: &EvalParams,
) -> Evaluation {
    let rules = match params.metric {
        Metric::Ilsvrc => Some(PascalRules::Ilsvrc),
        Metric::Voc07 => Some(PascalRules::Voc07),
        Metric::Voc => Some(PascalRules::Voc),
        Metric::Coco => None,
    };
    let (per_class, coco) = match rules {
        Some(rules) => (
            pascal::evaluate(gt, dets, n_classes, rules, params.iou, &params.blacklist),
            None,
        ),
        None => (Vec::new(), Some(coco::evaluate(gt, dets, n_classes))),
    };
    let mut aps: Vec<f64> = per_class
        .iter()
        .filter(|c| c.n_gt > 0)
        .map(|c| c.ap)
        .collect();
    aps.sort_by(f64::total_cmp);
    let mean_ap = (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64);
    let median_ap = (!aps.is_empty()).then(|| {
        let n = aps.len();
        if n % 2 == 1 {
            aps[n / 2]
        } else {
            (aps[n / 2 - 1] + aps[n / 2]) / 2.0
        }
    });
    Evaluation {
        metric: params.metric,
        iou: params.iou,
        per_class,
        mean_ap,
        median_ap,
        coco,
    }
}
