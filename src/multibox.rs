//! Learned proposals: MultiBox (Erhan et al., "Scalable Object Detection using Deep Neural
//! Networks", CVPR 2014), as GoogLeNet's detection entry added its 200 best boxes to selective
//! search's. A GoogLeNet sees the whole image resized to its input size; a linear head on its
//! last inception map (averaged on the 3x3 grid, so that it knows where things are) predicts,
//! for each of K priors, an offset of the prior's corners and an objectness logit.
//! Class-agnostic; boxes in coordinates normalised to the image (0..1).
//!
//! In the model file: the backbone's tensors as any of our networks (its one-output `fc` is
//! not used), `multibox.head.{weight,bias}` (`[5K, grid]`: 4K offsets, then K logits),
//! `multibox.priors` (`[K, 4]`), and metadata `task: multibox` with `multibox` (JSON: how it
//! was trained).

use std::path::Path;

use eval::BBox;
use proposals::RgbImage;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::model::normalise::Normaliser;
use crate::model::weights::{
    config_from_metadata, load_state_dict, metadata_of, read_tensors, write_tensors, Task,
};
use crate::model::{GoogLeNetConfig, Model, ModelError};

const INFO_KEY: &str = "multibox";

/// How a MultiBox network was trained (kept in its file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiBoxInfo {
    /// Number of priors, K.
    pub priors: usize,
    /// Weight of the location loss against the confidence loss (the paper: 0.3).
    pub alpha: f64,
    /// How ground truth was assigned to predictions.
    pub matching: String,
    /// Where the priors came from.
    pub prior_source: String,
    pub training_images: usize,
    pub training_objects: usize,
    /// Steps trained.
    pub steps: usize,
}

/// A MultiBox network on a device.
#[derive(Debug)]
pub struct MultiBox {
    /// The backbone and the variables of the head and priors (one VarStore, so that the
    /// optimiser, averaging and checkpoints of `rcnn train` serve it unchanged).
    pub model: Model,
    head: nn::Linear,
    /// `[K, 4]`, normalised `x1, y1, x2, y2`.
    priors: Tensor,
    pub info: MultiBoxInfo,
}

/// Whether `path` is a MultiBox model file (its metadata says so); false for anything that
/// cannot be read as one of our model files.
pub fn is_multibox_file(path: &Path) -> bool {
    crate::model::weights::read_file_metadata(path).is_ok_and(|m| Task::of(&m) == Task::Multibox)
}

/// A box in normalised coordinates from inclusive pixel corners of a `w` x `h` image.
pub fn normalise(b: &BBox, w: f64, h: f64) -> [f64; 4] {
    [b.x1 / w, b.y1 / h, (b.x2 + 1.0) / w, (b.y2 + 1.0) / h]
}

/// The inverse of [`normalise`], clipped to the image.
pub fn to_pixels(n: [f64; 4], w: f64, h: f64) -> BBox {
    let clip = |v: f64, hi: f64| if v.is_finite() { v.clamp(0.0, hi) } else { 0.0 };
    let (x1, x2) = (clip(n[0] * w, w - 1.0), clip(n[2] * w - 1.0, w - 1.0));
    let (y1, y2) = (clip(n[1] * h, h - 1.0), clip(n[3] * h - 1.0, h - 1.0));
    BBox::new(x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2))
}

impl MultiBox {
    /// A fresh network (seed with `tch::manual_seed`) with `priors` (normalised boxes): the
    /// head starts at zero, so the first predictions are the priors, and every logit at -ln K, so
    /// the confidence loss starts near its value for a matched object among K.
    pub fn new(
        config: &GoogLeNetConfig,
        priors: &[[f64; 4]],
        info: MultiBoxInfo,
        device: Device,
    ) -> Result<MultiBox, ModelError> {
        let k = priors.len() as i64;
        if k == 0 {
            return Err(ModelError::Config(
                "MultiBox needs at least one prior".into(),
            ));
        }
        let config = GoogLeNetConfig {
            num_classes: 1,
            aux_logits: false,
            ..config.clone()
        };
        let model = Model::new(&config, vec!["object".into()], device)?;
        let root = model.vs.root() / "multibox";
        let grid = model.net.grid_dim();
        let head = nn::linear(
            &root / "head",
            grid,
            5 * k,
            nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        let mut priors_var = root.zeros_no_train("priors", &[k, 4]);
        let flat: Vec<f32> = priors.iter().flatten().map(|&v| v as f32).collect();
        tch::no_grad(|| {
            priors_var.copy_(&Tensor::from_slice(&flat).view([k, 4]));
            if let Some(b) = &head.bs {
                let _ = b.narrow(0, 4 * k, k).fill_(-(k as f64).ln());
            }
        });
        Ok(MultiBox {
            model,
            head,
            priors: priors_var,
            info,
        })
    }

    /// Number of priors (and of boxes per image).
    pub fn k(&self) -> i64 {
        self.priors.size()[0]
    }

    pub fn config(&self) -> &GoogLeNetConfig {
        self.model.config()
    }

    pub fn device(&self) -> Device {
        self.model.vs.device()
    }

    /// The priors as normalised boxes.
    pub fn priors(&self) -> Vec<[f64; 4]> {
        let v: Vec<f32> =
            Vec::try_from(self.priors.reshape([-1]).to_kind(Kind::Float)).expect("priors are f32");
        v.chunks_exact(4)
            .map(|c| [c[0] as f64, c[1] as f64, c[2] as f64, c[3] as f64])
            .collect()
    }

    /// Predicted boxes `[N, K, 4]` (normalised: prior + offset) and objectness logits `[N, K]`
    /// for a normalised batch `[N, 3, S, S]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor) {
        let logits = self.model.net.forward_t(xs, train);
        let p_drop = if self.config().layout == crate::model::Layout::Paper {
            0.4
        } else {
            0.2
        };
        let grid = logits.grid.to_kind(Kind::Float).dropout(p_drop, train);
        let n = grid.size()[0];
        let k = self.k();
        let out = grid.apply(&self.head);
        let boxes = out.narrow(1, 0, 4 * k).view([n, k, 4]) + self.priors.unsqueeze(0);
        let conf = out.narrow(1, 4 * k, k);
        (boxes, conf)
    }

    /// Reads a MultiBox model file; a classifier's file is refused by name.
    pub fn load(path: &Path, device: Device) -> Result<MultiBox, ModelError> {
        let bad = |message: String| ModelError::Format {
            path: path.to_path_buf(),
            message,
        };
        let (tensors, metadata) = read_tensors(path)?;
        if Task::of(&metadata) != Task::Multibox {
            return Err(bad(
                "not a MultiBox model (no `task: multibox` metadata): a region classifier goes \
                 to --model, a MultiBox network from `rcnn train-multibox` to --multibox"
                    .into(),
            ));
        }
        let (config, _) = config_from_metadata(path, &metadata)?;
        let info: MultiBoxInfo = metadata
            .get(INFO_KEY)
            .ok_or_else(|| bad(format!("metadata lacks `{INFO_KEY}`")))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| bad(format!("metadata `{INFO_KEY}`: {e}")))
            })?;
        let k = tensors
            .get("multibox.priors")
            .map(|t| t.size())
            .ok_or_else(|| bad("no tensor multibox.priors".into()))?;
        if k.len() != 2 || k[1] != 4 || k[0] < 1 || k[0] > 100_000 {
            return Err(bad(format!("multibox.priors has shape {k:?}; want [K, 4]")));
        }
        let placeholder = vec![[0.0; 4]; k[0] as usize];
        let mut mb = MultiBox::new(&config, &placeholder, info, device)?;
        load_state_dict(&mut mb.model.vs, &tensors, path)?;
        if mb.info.priors as i64 != mb.k() {
            return Err(bad(format!(
                "metadata says {} priors, the tensors hold {}",
                mb.info.priors,
                mb.k()
            )));
        }
        mb.model.validate(path)?;
        Ok(mb)
    }

    /// Writes the model file atomically; refuses NaN weights as [`Model::save`] does.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.model.validate(path)?;
        let named: Vec<(String, Tensor)> = self.model.vs.variables().into_iter().collect();
        let mut metadata = metadata_of(self.config(), &self.model.classes);
        Task::Multibox.write_into(&mut metadata);
        metadata.insert(
            INFO_KEY.into(),
            serde_json::to_string(&self.info).expect("info serialises"),
        );
        write_tensors(path, named, metadata)
    }

    /// One image as the network sees it: `[3, S, S]` f32 on the device, normalised, from the
    /// part `crop` (normalised `x1, y1, x2, y2`; the whole image when `None`) of a `[H, W, 3]`
    /// u8 image, resized with antialiasing (the same arithmetic in training and at test time).
    pub fn input(&self, image: &Tensor, crop: Option<[f64; 4]>, norm: &Normaliser) -> Tensor {
        network_input(image, crop, self.config().input_size, norm)
    }

    /// The `top` best boxes of each image (in pixels, best first, with their objectness),
    /// batched on the device.
    pub fn propose(&self, images: &[&RgbImage], top: usize) -> Vec<Vec<(BBox, f32)>> {
        if images.is_empty() {
            return Vec::new();
        }
        let device = self.device();
        let c = self.config();
        let norm = Normaliser::new(c.mean, c.std, device);
        tch::no_grad(|| {
            let batch: Vec<Tensor> = images
                .iter()
                .map(|img| self.input(&image_tensor(img, device), None, &norm))
                .collect();
            let (boxes, conf) = self.forward_t(&Tensor::stack(&batch, 0), false);
            let k = self.k() as usize;
            let boxes = crate::run::tensor::host_values(&boxes);
            let conf = crate::run::tensor::host_values(&conf.sigmoid());
            images
                .iter()
                .enumerate()
                .map(|(i, img)| {
                    let (h, w, _) = img.dim();
                    let mut order: Vec<usize> = (0..k).collect();
                    let s = &conf[i * k..(i + 1) * k];
                    // Stable: equal scores keep the priors' order.
                    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
                    order.truncate(top);
                    order
                        .into_iter()
                        .map(|j| {
                            let o = (i * k + j) * 4;
                            let n = [0, 1, 2, 3].map(|d| boxes[o + d] as f64);
                            (to_pixels(n, w as f64, h as f64), s[j])
                        })
                        .collect()
                })
                .collect()
        })
    }
}

/// A decoded image as a `[H, W, 3]` u8 tensor on `device`.
pub fn image_tensor(img: &RgbImage, device: Device) -> Tensor {
    let (h, w, _) = img.dim();
    let data: Vec<u8> = match img.as_slice() {
        Some(s) => s.to_vec(),
        None => img.iter().copied().collect(),
    };
    Tensor::from_slice(&data)
        .view([h as i64, w as i64, 3])
        .to_device(device)
}

/// See [`MultiBox::input`].
pub fn network_input(
    image: &Tensor,
    crop: Option<[f64; 4]>,
    size: i64,
    norm: &Normaliser,
) -> Tensor {
    let (h, w) = (image.size()[0], image.size()[1]);
    let [x1, y1, x2, y2] = crop.unwrap_or([0.0, 0.0, 1.0, 1.0]);
    let px = |v: f64, n: i64| ((v * n as f64).round() as i64).clamp(0, n);
    let (c0, c1) = (px(x1, w), px(x2, w).max(px(x1, w) + 1).min(w));
    let (r0, r1) = (px(y1, h), px(y2, h).max(px(y1, h) + 1).min(h));
    let c0 = c0.min(c1 - 1);
    let r0 = r0.min(r1 - 1);
    let part = image
        .narrow(0, r0, r1 - r0)
        .narrow(1, c0, c1 - c0)
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float);
    let resized = part.internal_upsample_bilinear2d_aa([size, size], false, None, None);
    norm.apply(&resized).squeeze_dim(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_boxes_go_back_to_the_same_pixels_and_are_clipped() {
        let b = BBox::new(10.0, 20.0, 109.0, 59.0);
        let n = normalise(&b, 200.0, 100.0);
        assert_eq!(n, [0.05, 0.2, 0.55, 0.6]);
        let back = to_pixels(n, 200.0, 100.0);
        assert!((back.x1 - 10.0).abs() < 1e-9 && (back.y2 - 59.0).abs() < 1e-9);
        let out = to_pixels([-0.5, 0.2, 1.7, f64::NAN], 200.0, 100.0);
        assert_eq!(out, BBox::new(0.0, 0.0, 199.0, 20.0));
    }
}
