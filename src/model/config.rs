//! What a GoogLeNet is: layout, classes, width and input size.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::ModelError;

/// Which of the two GoogLeNets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The paper's Table 1: LRN in the stem, no batch norm, 5x5 convolutions, 40% dropout.
    Paper,
    /// torchvision.models.googlenet: batch norm (eps 1e-3) after every convolution, no LRN,
    /// a 3x3 convolution in the "5x5" branch, 20% dropout. Loads torchvision's state dicts.
    Torchvision,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Paper => "paper",
            Layout::Torchvision => "torchvision",
        })
    }
}

impl FromStr for Layout {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paper" => Ok(Layout::Paper),
            "torchvision" => Ok(Layout::Torchvision),
            other => Err(ModelError::Config(format!(
                "unknown layout `{other}` (expected paper or torchvision)"
            ))),
        }
    }
}

/// ImageNet's per-channel RGB mean and standard deviation on the 0..1 scale.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Everything needed to build the network and to feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoogLeNetConfig {
    pub layout: Layout,
    /// Outputs of the final classifier (201 for ILSVRC detection: 200 classes + background).
    pub num_classes: i64,
    /// Multiplies every layer's width; 1.0 is the paper's network.
    pub width: f64,
    /// Side of the square input in pixels (224 in the paper).
    pub input_size: i64,
    /// Build the two auxiliary classifiers (after 4a and 4d); used in training only.
    pub aux_logits: bool,
    /// torchvision's `transform_input`: re-normalise inputs made with ImageNet mean/std to
    /// the (x - 0.5) / 0.5 scaling its ported weights expect.
    pub transform_input: bool,
    /// Per-channel RGB mean and std (0..1 scale) that inputs are normalised with.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl GoogLeNetConfig {
    /// The full-size network of a layout with the ILSVRC detection head (201 outputs).
    pub fn new(layout: Layout) -> Self {
        GoogLeNetConfig {
            layout,
            num_classes: 201,
            width: 1.0,
            input_size: 224,
            aux_logits: false,
            transform_input: false,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// A layer's width after the multiplier (at least one channel).
    pub fn scaled(&self, channels: i64) -> i64 {
        ((channels as f64 * self.width).round() as i64).max(1)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.num_classes < 1 {
            return Err(ModelError::Config(format!(
                "num_classes must be at least 1, got {}",
                self.num_classes
            )));
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 8.0) {
            return Err(ModelError::Config(format!(
                "width must be in (0, 8], got {}",
                self.width
            )));
        }
        // Five stride-2 stages; the paper's 5x5/3 auxiliary pool needs a 5x5 map after 4a, which
        // conv1 and three ceil-mode pools leave from an input of 79 px up.
        let min = if self.aux_logits && self.layout == Layout::Paper {
            79
        } else {
            32
        };
        if self.input_size < min || self.input_size > 4096 {
            return Err(ModelError::Config(format!(
                "input size must be in [{min}, 4096] for this layout, got {}",
                self.input_size
            )));
        }
        if self.transform_input && self.layout != Layout::Torchvision {
            return Err(ModelError::Config(
                "transform_input exists only in the torchvision layout".into(),
            ));
        }
        Ok(())
    }
}

/// Table 1's inception modules: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
pub const INCEPTION_WIDTHS: [(&str, [i64; 6]); 9] = [
    ("inception3a", [64, 96, 128, 16, 32, 32]),
    ("inception3b", [128, 128, 192, 32, 96, 64]),
    ("inception4a", [192, 96, 208, 16, 48, 64]),
    ("inception4b", [160, 112, 224, 24, 64, 64]),
    ("inception4c", [128, 128, 256, 24, 64, 64]),
    ("inception4d", [112, 144, 288, 32, 64, 64]),
    ("inception4e", [256, 160, 320, 32, 128, 128]),
    ("inception5a", [256, 160, 320, 32, 128, 128]),
    ("inception5b", [384, 192, 384, 48, 128, 128]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_multiplier_rounds_and_keeps_a_channel() {
        let mut c = GoogLeNetConfig::new(Layout::Paper);
        c.width = 0.25;
        assert_eq!(c.scaled(64), 16);
        assert_eq!(c.scaled(2), 1);
        c.width = 1.0;
        assert_eq!(c.scaled(192), 192);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = GoogLeNetConfig::new(Layout::Paper);
        c.transform_input = true;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("transform_input"));
        let mut c = GoogLeNetConfig::new(Layout::Torchvision);
        c.input_size = 16;
        assert!(c.validate().unwrap_err().to_string().contains("input size"));
        assert!(GoogLeNetConfig::new(Layout::Torchvision).validate().is_ok());
    }
}
