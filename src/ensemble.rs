//! The device stage: warped crops through an ensemble of region classifiers, softmax scores
//! averaged over the networks (six in GoogLeNet's ILSVRC2014 entry).

use tch::{Device, Kind, Tensor};

use crate::model::googlenet::to_channels_last;
use crate::model::{Model, ModelError};

/// What scores a region: the network's softmax, or R-CNN's class SVMs on its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Head {
    /// The fine-tuned network's softmax, averaged over the members.
    #[default]
    Softmax,
    /// The class SVMs (`rcnn train-heads`): sigmoid of the members' mean margin.
    Svm,
}

/// The networks of an ensemble, on one device, in one precision, prepared for inference
/// (batch norm folded, weights cast; see [`crate::model::GoogLeNet::prepare_inference`]).
pub struct Ensemble {
    pub models: Vec<Model>,
    pub device: Device,
    pub kind: Kind,
    /// Inputs and weights in channels-last memory order.
    pub channels_last: bool,
    pub head: Head,
    /// Class-specific box regression of every proposal (every member carries a regressor).
    pub box_regression: bool,
    /// Each member's own normalisation of 0..255 pixels, on the device
    /// ([`Ensemble::image_scores`]).
    normalisers: Vec<crate::model::normalise::Normaliser>,
}

impl Ensemble {
    /// Members must agree on input size, classes and normalisation, or their scores could not
    /// be averaged; the error says which member differs and how.
    pub fn new(models: Vec<Model>, kind: Kind) -> Result<Self, ModelError> {
        Self::with_layout(models, kind, false)
    }

    /// As [`Ensemble::new`], with weights and inputs channels-last when `channels_last`.
    pub fn with_layout(
        models: Vec<Model>,
        kind: Kind,
        channels_last: bool,
    ) -> Result<Self, ModelError> {
        Self::build(models, kind, channels_last, true)
    }

    /// An ensemble of whole-image classifiers: members must agree on input size and classes,
    /// but each keeps its own normalisation (and `transform_input`), applied by
    /// [`Ensemble::image_scores`] to the same pixels.
    pub fn of_image_classifiers(
        models: Vec<Model>,
        kind: Kind,
        channels_last: bool,
    ) -> Result<Self, ModelError> {
        Self::build(models, kind, channels_last, false)
    }

    fn build(
        models: Vec<Model>,
        kind: Kind,
        channels_last: bool,
        same_normalisation: bool,
    ) -> Result<Self, ModelError> {
        let first = models
            .first()
            .ok_or_else(|| ModelError::Config("an ensemble needs at least one model".into()))?;
        let device = first.vs.device();
        for (i, m) in models.iter().enumerate().skip(1) {
            let (a, b) = (first.config(), m.config());
            if a.input_size != b.input_size
                || a.num_classes != b.num_classes
                || (same_normalisation && (a.mean != b.mean || a.std != b.std))
            {
                return Err(ModelError::Config(format!(
                    "model {} (input {}, {} classes) does not match model 1 (input {}, {} classes) or its normalisation",
                    i + 1,
                    b.input_size,
                    b.num_classes,
                    a.input_size,
                    a.num_classes
                )));
            }
            if m.classes != first.classes {
                return Err(ModelError::Config(format!(
                    "model {} names its classes differently from model 1",
                    i + 1
                )));
            }
        }
        let mut models = models;
        for m in &mut models {
            m.net.prepare_inference(kind, channels_last);
        }
        let normalisers = models
            .iter()
            .map(|m| {
                crate::model::normalise::Normaliser::new(m.config().mean, m.config().std, device)
            })
            .collect();
        Ok(Ensemble {
            normalisers,
            models,
            device,
            kind,
            channels_last,
            head: Head::Softmax,
            box_regression: false,
        })
    }

    /// Chooses the head that scores regions and whether boxes are regressed. The SVM head needs
    /// SVMs in every member; regression is used when `box_regression` is asked for and every
    /// member carries it (a model without it detects as before), refused when only some do.
    /// Returns whether boxes will be regressed.
    pub fn use_heads(&mut self, head: Head, box_regression: bool) -> Result<bool, ModelError> {
        let count = |has: &dyn Fn(&Model) -> bool| self.models.iter().filter(|m| has(m)).count();
        let n = self.models.len();
        let svms = count(&|m| m.heads.svm.is_some());
        if head == Head::Svm && svms < n {
            return Err(ModelError::Config(format!(
                "--head svm: {} of the {n} model(s) carry no class SVMs (train them with `rcnn \
                 train-heads --svm`)",
                n - svms
            )));
        }
        let regressors = count(&|m| m.heads.box_regression.is_some());
        if box_regression && regressors > 0 && regressors < n {
            return Err(ModelError::Config(format!(
                "{regressors} of the {n} models carry box regressors and the others do not: \
                 regress with all or none (--no-bbox-reg)"
            )));
        }
        for m in &mut self.models {
            let heads = &mut m.heads;
            heads.box_regression = heads
                .box_regression
                .take()
                .map(|r| r.to_device(self.device));
            heads.svm = heads.svm.take().map(|s| s.to_device(self.device));
        }
        self.head = head;
        self.box_regression = box_regression && regressors == n;
        Ok(self.box_regression)
    }

    /// Side of the square input the crops must have.
    pub fn input_size(&self) -> i64 {
        self.models[0].config().input_size
    }

    pub fn classes(&self) -> &[String] {
        &self.models[0].classes
    }

    /// `input` in the members' kind and memory order.
    pub fn network_input(&self, input: &Tensor) -> Tensor {
        let input = input.to_kind(self.kind);
        if self.channels_last {
            to_channels_last(&input)
        } else {
            input
        }
    }

    /// Mean softmax over the members for a batch `[n, 3, s, s]` on the ensemble's device (any
    /// float kind; cast to the ensemble's). The result, `[n, classes]` f32, stays on the
    /// device: the caller decides when to copy it back (once per image in `detect`).
    pub fn scores_tensor(&self, input: &Tensor) -> Tensor {
        let input = self.network_input(input);
        tch::no_grad(|| {
            mean(
                self.models
                    .iter()
                    .map(|m| m.net.forward_t(&input, false).main.softmax(-1, Kind::Float)),
            )
        })
    }

    /// Mean softmax over the members for `[n, 3, s, s]` pixels (0..255, any float kind) on the
    /// device, each member normalising them with its own mean and std; `[n, classes]` f32 on
    /// the device.
    pub fn image_scores(&self, pixels: &Tensor) -> Tensor {
        tch::no_grad(|| {
            mean(self.models.iter().zip(&self.normalisers).map(|(m, norm)| {
                let input = self.network_input(&norm.apply(pixels));
                m.net.forward_t(&input, false).main.softmax(-1, Kind::Float)
            }))
        })
    }

    /// The mean softmax of the members and each member's pooled features (`[N, 1024 x
    /// width]`, f32), from one forward pass of each member.
    pub fn scores_and_features(&self, input: &Tensor) -> (Tensor, Vec<Tensor>) {
        let input = self.network_input(input);
        tch::no_grad(|| {
            let mut features = Vec::with_capacity(self.models.len());
            let scores = mean(self.models.iter().map(|m| {
                let out = m.net.forward_t(&input, false);
                features.push(out.features.to_kind(Kind::Float));
                out.main.softmax(-1, Kind::Float)
            }));
            (scores, features)
        })
    }

    /// What the device stage needs of a batch: `[n, classes]` scores (the chosen head's,
    /// averaged over the members) and, with box regression, the members' mean `[n, classes, 4]`
    /// deltas. Both f32 and on the device.
    pub fn classify(&self, input: &Tensor) -> (Tensor, Option<Tensor>) {
        if self.head == Head::Softmax && !self.box_regression {
            return (self.scores_tensor(input), None);
        }
        let input = self.network_input(input);
        tch::no_grad(|| {
            let mut deltas = Vec::new();
            let scores = mean(self.models.iter().map(|m| {
                let out = m.net.forward_t(&input, false);
                let features = out.features.to_kind(Kind::Float);
                if let (true, Some(r), Some(info)) = (
                    self.box_regression,
                    &m.heads.box_regression,
                    &m.heads.info.box_regression,
                ) {
                    let f = info.features.of(&out.features, &out.grid);
                    deltas.push(r.deltas(&f.to_kind(Kind::Float)));
                }
                match (self.head, &m.heads.svm) {
                    (Head::Svm, Some(svm)) => svm.margins(&features),
                    _ => out.main.softmax(-1, Kind::Float),
                }
            }));
            let scores = match self.head {
                Head::Svm => scores.sigmoid(),
                Head::Softmax => scores,
            };
            (scores, self.box_regression.then(|| mean(deltas)))
        })
    }

    /// Mean softmax over the members for `n` crops given as CHW f32 in one slice; returns
    /// `[n, classes]` scores on the CPU, row by row.
    pub fn scores(&self, crops: &[f32], n: usize) -> Vec<Vec<f32>> {
        let s = self.input_size();
        assert_eq!(crops.len(), n * 3 * (s * s) as usize, "n CHW crops");
        if n == 0 {
            return Vec::new();
        }
        let input = Tensor::from_slice(crops)
            .view([n as i64, 3, s, s])
            .to_device(self.device);
        crate::run::tensor::rows(&self.scores_tensor(&input))
    }
}

/// The members' mean of one tensor each (summed in member order, then divided: every path
/// averages the same way, so their scores agree to the bit).
fn mean(parts: impl IntoIterator<Item = Tensor>) -> Tensor {
    let mut n = 0;
    let sum = parts
        .into_iter()
        .inspect(|_| n += 1)
        .reduce(|a, b| a + b)
        .expect("at least one model");
    sum / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GoogLeNetConfig, Layout};

    fn small(seed: i64) -> Model {
        tch::manual_seed(seed);
        let config = GoogLeNetConfig {
            width: 0.125,
            input_size: 64,
            num_classes: 5,
            ..GoogLeNetConfig::new(Layout::Torchvision)
        };
        Model::new(&config, Vec::new(), crate::run::device::test_device()).unwrap()
    }

    #[test]
    fn the_mean_of_the_members_softmax() {
        let crops: Vec<f32> = (0..2 * 3 * 64 * 64)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let (a, b) = (small(1), small(2));
        // Each member's softmax, computed here from its own logits.
        let softmax = |m: &Model| -> Vec<f32> {
            let x = Tensor::from_slice(&crops)
                .view([2, 3, 64, 64])
                .to_device(m.vs.device());
            let logits = tch::no_grad(|| m.net.forward_t(&x, false).main);
            let rows: Vec<f32> =
                Vec::try_from(logits.flatten(0, -1).to_device(Device::Cpu)).unwrap();
            rows.chunks(5)
                .flat_map(|r| {
                    let max = r.iter().cloned().fold(f32::MIN, f32::max);
                    let e: Vec<f32> = r.iter().map(|v| (v - max).exp()).collect();
                    let sum: f32 = e.iter().sum();
                    e.into_iter().map(move |v| v / sum)
                })
                .collect()
        };
        let (pa, pb) = (softmax(&a), softmax(&b));
        assert!(
            pa.iter().zip(&pb).any(|(x, y)| (x - y).abs() > 1e-3),
            "two different members"
        );
        let both = Ensemble::new(vec![a, b], Kind::Float)
            .unwrap()
            .scores(&crops, 2);
        for r in 0..2 {
            assert!(
                (both[r].iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "rows sum to 1"
            );
            for c in 0..5 {
                let want = (pa[r * 5 + c] + pb[r * 5 + c]) / 2.0;
                assert!(
                    (both[r][c] - want).abs() < 1e-6,
                    "row {r} class {c}: {} vs {want}",
                    both[r][c]
                );
            }
        }
        assert!(Ensemble::new(vec![small(3)], Kind::Float)
            .unwrap()
            .scores(&[], 0)
            .is_empty());
    }

    #[test]
    fn members_that_do_not_match_are_refused() {
        let mut config = small(1).config().clone();
        config.num_classes = 7;
        let other = Model::new(&config, Vec::new(), crate::run::device::test_device()).unwrap();
        let err = Ensemble::new(vec![small(1), other], Kind::Float)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model 2") && err.contains("7 classes"),
            "{err}"
        );
        assert!(Ensemble::new(Vec::new(), Kind::Float).is_err());
    }
}
