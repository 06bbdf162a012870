//! A network's input normalisation, `(pixel / 255 - mean) / std` per channel, as the model file
//! records it: on the host for OpenCV's warp, on the device for everything else.

use tch::{Device, Kind, Tensor};

/// `(scale, shift)` per channel such that `byte * scale - shift` is `(byte / 255 - mean) / std`.
pub fn normalisation(mean: [f32; 3], std: [f32; 3]) -> ([f32; 3], [f32; 3]) {
    (
        std::array::from_fn(|c| 1.0 / (255.0 * std[c])),
        std::array::from_fn(|c| mean[c] / std[c]),
    )
}

/// Per-channel `scale` and `shift` that normalise 0..255 pixels, `x * scale - shift`, kept on
/// the device for the whole run.
pub struct Normaliser {
    scale: Tensor,
    shift: Tensor,
}

impl Normaliser {
    /// For RGB `mean` and `std` on the 0..1 scale.
    pub fn new(mean: [f32; 3], std: [f32; 3], device: Device) -> Self {
        let (scale, shift) = normalisation(mean, std);
        let put = |v: &[f32]| Tensor::from_slice(v).view([1, 3, 1, 1]).to_device(device);
        Normaliser {
            scale: put(&scale),
            shift: put(&shift),
        }
    }

    /// `[n, 3, h, w]` pixels (bytes or floats, 0..255) normalised, in f32.
    pub fn apply(&self, pixels: &Tensor) -> Tensor {
        pixels.to_kind(Kind::Float) * &self.scale - &self.shift
    }
}
