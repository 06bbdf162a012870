//! R-CNN's heads over the network's pooled features, kept in the model file beside the
//! network: class-specific box regression and class SVMs (`rcnn train-heads`). Tensors
//! `heads.box_regression.{weight,bias}` and `heads.svm.{weight,bias}`; how they were trained
//! in the `heads` metadata key (JSON).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub mod box_regression;
pub mod svm;

use box_regression::{BoxRegression, RegressionFeatures};
use svm::{ClassSvms, MiningReport, SvmParams};

/// How the box regressors were fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxRegressionInfo {
    pub features: RegressionFeatures,
    /// The ridge penalty, chosen on held-out training images from `lambdas`.
    pub lambda: f64,
    pub lambdas: Vec<f64>,
    /// Held-out mean squared error of the targets for each of `lambdas`.
    pub held_out_mse: Vec<f64>,
    /// A proposal trains the regressor of the class of its best-overlapping object when their
    /// IoU is at least this (R-CNN: 0.6).
    pub min_iou: f64,
    /// Whether each pair was also learnt mirrored left-right.
    pub flip: bool,
    /// Training regions of each class (column order, background first).
    pub regions: Vec<usize>,
}

/// How the class SVMs were trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmInfo {
    pub params: SvmParams,
    /// Negatives overlap no instance of the class by this IoU or more (R-CNN: 0.3).
    pub max_negative_iou: f64,
    /// Mining of each class (column order, background first: empty).
    pub classes: Vec<MiningReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadsInfo {
    pub box_regression: Option<BoxRegressionInfo>,
    pub svm: Option<SvmInfo>,
    /// Seconds spent: features of the training regions, regression, SVMs.
    pub seconds: Vec<(String, f64)>,
}

/// The heads a model carries (none for a network fresh from `rcnn train`).
#[derive(Debug, Default)]
pub struct Heads {
    pub box_regression: Option<BoxRegression>,
    pub svm: Option<ClassSvms>,
    pub info: HeadsInfo,
}

/// `features @ weight + bias` in f32, on the features' device: every head is such a map.
pub fn affine(features: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let device = features.device();
    features
        .to_kind(tch::Kind::Float)
        .matmul(&weight.to_device(device))
        + bias.to_device(device)
}

/// A model file whose heads cannot be used: which file and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct HeadsError {
    pub path: std::path::PathBuf,
    pub message: String,
}

const BOX_WEIGHT: &str = "heads.box_regression.weight";
const BOX_BIAS: &str = "heads.box_regression.bias";
const SVM_WEIGHT: &str = "heads.svm.weight";
const SVM_BIAS: &str = "heads.svm.bias";
const INFO_KEY: &str = "heads";

impl Heads {
    pub fn is_empty(&self) -> bool {
        self.box_regression.is_none() && self.svm.is_none()
    }

    /// The heads of a model file, checked against the network's pooled feature length `dim`
    /// and its `classes` outputs.
    pub fn from_file(
        path: &Path,
        tensors: &HashMap<String, Tensor>,
        metadata: &HashMap<String, String>,
        dim: i64,
        classes: i64,
        device: Device,
    ) -> Result<Heads, HeadsError> {
        let bad = |message: String| HeadsError {
            path: path.to_path_buf(),
            message,
        };
        let info: HeadsInfo = match metadata.get(INFO_KEY) {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| bad(format!("metadata `{INFO_KEY}` does not parse: {e}")))?,
            None => HeadsInfo::default(),
        };
        let pair =
            |w: &str, b: &str, dim: i64, per_class: i64| -> Result<Option<(Tensor, Tensor)>, _> {
                match (tensors.get(w), tensors.get(b)) {
                    (None, None) => Ok(None),
                    (Some(wt), Some(bt)) => {
                        let want_w = [dim, classes * per_class];
                        let want_b = [classes * per_class];
                        if wt.size() != want_w || bt.size() != want_b {
                            return Err(bad(format!(
                                "{w} {:?} / {b} {:?}: this network needs {want_w:?} / {want_b:?}",
                                wt.size(),
                                bt.size()
                            )));
                        }
                        let f = |t: &Tensor| t.to_kind(tch::Kind::Float).to_device(device);
                        Ok(Some((f(wt), f(bt))))
                    }
                    _ => Err(bad(format!("{w} and {b} come together; the file has one"))),
                }
            };
        let box_dim = info
            .box_regression
            .as_ref()
            .map_or(dim, |r| r.features.dim(dim));
        let box_regression = pair(BOX_WEIGHT, BOX_BIAS, box_dim, 4)?
            .map(|(weight, bias)| BoxRegression { weight, bias });
        let svm =
            pair(SVM_WEIGHT, SVM_BIAS, dim, 1)?.map(|(weight, bias)| ClassSvms { weight, bias });
        if box_regression.is_some() != info.box_regression.is_some()
            || svm.is_some() != info.svm.is_some()
        {
            return Err(bad(format!(
                "the `{INFO_KEY}` metadata and the head tensors do not describe the same heads"
            )));
        }
        Ok(Heads {
            box_regression,
            svm,
            info,
        })
    }

    /// Adds the heads' tensors and metadata entry to those of a model file being written.
    pub fn write_into(
        &self,
        named: &mut Vec<(String, Tensor)>,
        metadata: &mut HashMap<String, String>,
    ) {
        if self.is_empty() {
            return;
        }
        if let Some(r) = &self.box_regression {
            named.push((BOX_WEIGHT.to_string(), r.weight.shallow_clone()));
            named.push((BOX_BIAS.to_string(), r.bias.shallow_clone()));
        }
        if let Some(s) = &self.svm {
            named.push((SVM_WEIGHT.to_string(), s.weight.shallow_clone()));
            named.push((SVM_BIAS.to_string(), s.bias.shallow_clone()));
        }
        let json = serde_json::to_string(&self.info).expect("the heads' info serialises");
        metadata.insert(INFO_KEY.to_string(), json);
    }

    /// The name of a head tensor holding NaN or infinity, if any.
    pub fn non_finite(&self) -> Option<&'static str> {
        let bad = |t: &Tensor| t.isfinite().all().int64_value(&[]) == 0;
        let r = self.box_regression.as_ref();
        let s = self.svm.as_ref();
        [
            (BOX_WEIGHT, r.map(|r| &r.weight)),
            (BOX_BIAS, r.map(|r| &r.bias)),
            (SVM_WEIGHT, s.map(|s| &s.weight)),
            (SVM_BIAS, s.map(|s| &s.bias)),
        ]
        .into_iter()
        .find(|(_, t)| t.is_some_and(bad))
        .map(|(name, _)| name)
    }
}
