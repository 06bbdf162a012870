//! Colour spaces of the diversification strategies (Uijlings et al., section 3.2), each as
//! channels of f32 on a 0..255 scale (the range the histograms bin).

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;

use crate::image::RgbImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColourSpace {
    Rgb,
    /// Intensity (grey).
    I,
    /// CIE L*a*b*.
    Lab,
    /// Normalised r and g, plus intensity.
    RgI,
    Hsv,
    /// Hue alone.
    H,
    /// Opponent colours normalised by intensity (invariant to shading), plus intensity.
    C,
}

impl ColourSpace {
    pub const ALL: [ColourSpace; 7] = [
        ColourSpace::Rgb,
        ColourSpace::I,
        ColourSpace::Lab,
        ColourSpace::RgI,
        ColourSpace::Hsv,
        ColourSpace::H,
        ColourSpace::C,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ColourSpace::Rgb => "rgb",
            ColourSpace::I => "i",
            ColourSpace::Lab => "lab",
            ColourSpace::RgI => "rgi",
            ColourSpace::Hsv => "hsv",
            ColourSpace::H => "h",
            ColourSpace::C => "c",
        }
    }
}

impl fmt::Display for ColourSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColourSpace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ColourSpace::ALL
            .into_iter()
            .find(|c| c.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown colour space `{s}` (rgb, i, lab, rgi, hsv, h, c)"))
    }
}

fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn lab_f(t: f32) -> f32 {
    if t > 0.008856 {
        t.cbrt()
    } else {
        7.787 * t + 16.0 / 116.0
    }
}

/// One pixel in the space, each channel on 0..255.
fn convert_pixel(space: ColourSpace, r: u8, g: u8, b: u8, out: &mut [f32; 3]) -> usize {
    let (rf, gf, bf) = (r as f32, g as f32, b as f32);
    let intensity = (rf + gf + bf) / 3.0;
    match space {
        ColourSpace::Rgb => {
            *out = [rf, gf, bf];
            3
        }
        ColourSpace::I => {
            out[0] = intensity;
            1
        }
        ColourSpace::Lab => {
            let (rl, gl, bl) = (
                srgb_to_linear(rf / 255.0),
                srgb_to_linear(gf / 255.0),
                srgb_to_linear(bf / 255.0),
            );
            let x = (0.412453 * rl + 0.357580 * gl + 0.180423 * bl) / 0.950456;
            let y = 0.212671 * rl + 0.715160 * gl + 0.072169 * bl;
            let z = (0.019334 * rl + 0.119193 * gl + 0.950227 * bl) / 1.088754;
            let (fx, fy, fz) = (lab_f(x), lab_f(y), lab_f(z));
            let l = if y > 0.008856 {
                116.0 * fy - 16.0
            } else {
                903.3 * y
            };
            // OpenCV's 8-bit scaling: L * 255/100, a + 128, b + 128.
            *out = [
                l * 2.55,
                (500.0 * (fx - fy) + 128.0).clamp(0.0, 255.0),
                (200.0 * (fy - fz) + 128.0).clamp(0.0, 255.0),
            ];
            3
        }
        ColourSpace::RgI => {
            let sum = (rf + gf + bf).max(1.0);
            *out = [255.0 * rf / sum, 255.0 * gf / sum, intensity];
            3
        }
        ColourSpace::Hsv | ColourSpace::H => {
            let max = rf.max(gf).max(bf);
            let min = rf.min(gf).min(bf);
            let delta = max - min;
            let hue = if delta == 0.0 {
                0.0
            } else if max == rf {
                60.0 * ((gf - bf) / delta).rem_euclid(6.0)
            } else if max == gf {
                60.0 * ((bf - rf) / delta + 2.0)
            } else {
                60.0 * ((rf - gf) / delta + 4.0)
            };
            let h = hue * 255.0 / 360.0;
            if space == ColourSpace::H {
                out[0] = h;
                return 1;
            }
            let s = if max == 0.0 { 0.0 } else { 255.0 * delta / max };
            *out = [h, s, max];
            3
        }
        ColourSpace::C => {
            // Opponent colours O1 = (R - G)/sqrt2, O2 = (R + G - 2B)/sqrt6, divided by intensity.
            let i = intensity.max(1.0);
            let o1 = (rf - gf) / std::f32::consts::SQRT_2 / i;
            let o2 = (rf + gf - 2.0 * bf) / 6f32.sqrt() / i;
            // o1 in [-1.8, 1.8], o2 in [-2.5, 2.5] for intensity-normalised values.
            *out = [
                ((o1 / 1.8 + 1.0) * 127.5).clamp(0.0, 255.0),
                ((o2 / 2.5 + 1.0) * 127.5).clamp(0.0, 255.0),
                intensity,
            ];
            3
        }
    }
}

/// The image in `space`, one array per channel.
pub fn convert(img: &RgbImage, space: ColourSpace) -> Vec<Array2<f32>> {
    let (h, w, _) = img.dim();
    let n = match space {
        ColourSpace::I | ColourSpace::H => 1,
        _ => 3,
    };
    let mut channels = vec![Array2::<f32>::zeros((h, w)); n];
    let mut px = [0f32; 3];
    for y in 0..h {
        for x in 0..w {
            convert_pixel(
                space,
                img[[y, x, 0]],
                img[[y, x, 1]],
                img[[y, x, 2]],
                &mut px,
            );
            for (c, ch) in channels.iter_mut().enumerate() {
                ch[[y, x]] = px[c];
            }
        }
    }
    channels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(space: ColourSpace, rgb: [u8; 3]) -> Vec<f32> {
        let mut px = [0f32; 3];
        let n = convert_pixel(space, rgb[0], rgb[1], rgb[2], &mut px);
        px[..n].to_vec()
    }

    #[test]
    fn known_colours() {
        // Pure red: hue 0, full saturation and value.
        assert_eq!(one(ColourSpace::Hsv, [255, 0, 0]), vec![0.0, 255.0, 255.0]);
        // Pure blue: hue 240 degrees = 170 on 0..255.
        assert!((one(ColourSpace::H, [0, 0, 255])[0] - 170.0).abs() < 1e-3);
        // White in Lab: L = 100 (255), a = b = 0 (128).
        let lab = one(ColourSpace::Lab, [255, 255, 255]);
        assert!(
            (lab[0] - 255.0).abs() < 0.5
                && (lab[1] - 128.0).abs() < 0.5
                && (lab[2] - 128.0).abs() < 0.5,
            "{lab:?}"
        );
        // Grey has no opponent colour, at any intensity.
        let c1 = one(ColourSpace::C, [50, 50, 50]);
        let c2 = one(ColourSpace::C, [200, 200, 200]);
        assert_eq!(c1[..2], c2[..2]);
        assert_eq!(one(ColourSpace::I, [30, 60, 90]), vec![60.0]);
        for s in ColourSpace::ALL {
            assert_eq!(s.name().parse::<ColourSpace>().unwrap(), s);
        }
    }
}
