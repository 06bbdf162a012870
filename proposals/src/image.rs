//! The image type of this crate and the one resize it needs.

use ndarray::Array3;

/// An RGB image, `[height, width, 3]`, 8 bits per channel.
pub type RgbImage = Array3<u8>;

/// Bilinear resize (pixel centres aligned, as OpenCV's INTER_LINEAR) to `width` x `height`.
pub fn resize_bilinear(img: &RgbImage, width: usize, height: usize) -> RgbImage {
    let (h0, w0, _) = img.dim();
    let mut out = Array3::<u8>::zeros((height, width, 3));
    if h0 == 0 || w0 == 0 || width == 0 || height == 0 {
        return out;
    }
    let sx = w0 as f32 / width as f32;
    let sy = h0 as f32 / height as f32;
    let coord = |i: usize, scale: f32, n: usize| {
        let f = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let lo = (f.floor() as usize).min(n - 1);
        let hi = (lo + 1).min(n - 1);
        (lo, hi, f - lo as f32)
    };
    let xs: Vec<(usize, usize, f32)> = (0..width).map(|x| coord(x, sx, w0)).collect();
    for y in 0..height {
        let (y0, y1, fy) = coord(y, sy, h0);
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = img[[y0, x0, c]] as f32 * (1.0 - fx) + img[[y0, x1, c]] as f32 * fx;
                let bottom = img[[y1, x0, c]] as f32 * (1.0 - fx) + img[[y1, x1, c]] as f32 * fx;
                out[[y, x, c]] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_flat_colour_and_halves_a_ramp() {
        let mut img = RgbImage::zeros((4, 8, 3));
        img.slice_mut(ndarray::s![.., .., 0]).fill(200);
        for x in 0..8 {
            img.slice_mut(ndarray::s![.., x, 1]).fill((x * 30) as u8);
        }
        let small = resize_bilinear(&img, 4, 2);
        assert_eq!(small.dim(), (2, 4, 3));
        assert!(small
            .slice(ndarray::s![.., .., 0])
            .iter()
            .all(|&v| v == 200));
        // Output x covers input x 2x..2x+1: the mean of 30*2x and 30*(2x+1).
        assert_eq!(small[[0, 1, 1]], 75);
    }
}
