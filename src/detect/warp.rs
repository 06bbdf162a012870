//! R-CNN's warp (rcnn_im_crop, `warp` mode, padding 16): each proposal is dilated so that,
//! once warped to the network's input size, 16 px of image context surround it; each axis is
//! scaled on its own; what falls outside the image takes the mean colour. Crops come out as
//! normalised CHW f32, `(x / 255 - mean) / std` per channel, so the mean fill is exactly 0.
//!
//! Two implementations of the same arithmetic ([`placement`]): OpenCV core/imgproc on the host
//! (crop and bilinear resize, no antialiasing, as R-CNN), and [`warp_boxes`], grid sampling on
//! the network's device from the image uploaded once as bytes.

use eval::BBox;
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;
use proposals::RgbImage;
use tch::{Kind, Tensor};

use crate::model::normalise::{normalisation, Normaliser};
use crate::run::tensor::rgb_mat;

/// How crops are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpParams {
    /// Side of the square network input (224).
    pub size: i32,
    /// Context in output pixels on each side (R-CNN: 16).
    pub padding: i32,
    /// RGB mean and std on the 0..1 scale, as the model file says.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl WarpParams {
    pub fn new(size: i32, mean: [f32; 3], std: [f32; 3]) -> Self {
        WarpParams {
            size,
            padding: 16,
            mean,
            std,
        }
    }
}

/// Where a proposal's context window lands: the image pixels to take (inclusive, 0-based) and
/// where their resized copy goes in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Clipped source window: x1, y1, x2, y2 (inclusive).
    pub source: [i32; 4],
    /// Top-left of the copy in the output, and its size.
    pub pad_x: i32,
    pub pad_y: i32,
    pub width: i32,
    pub height: i32,
}

/// rcnn_im_crop's arithmetic, in 0-based pixels. `None` when the window misses the image.
pub fn placement(b: &BBox, image_w: i32, image_h: i32, p: &WarpParams) -> Option<Placement> {
    let size = p.size as f64;
    let scale = size / (size - 2.0 * p.padding as f64);
    let half_w = (b.x2 - b.x1 + 1.0) / 2.0;
    let half_h = (b.y2 - b.y1 + 1.0) / 2.0;
    let (cx, cy) = (b.x1 + half_w, b.y1 + half_h);
    // MATLAB's round: halves away from zero, as f64::round.
    let x1 = (cx - half_w * scale).round() as i32;
    let y1 = (cy - half_h * scale).round() as i32;
    let x2 = (cx + half_w * scale).round() as i32;
    let y2 = (cy + half_h * scale).round() as i32;
    let (unclipped_w, unclipped_h) = ((x2 - x1 + 1) as f64, (y2 - y1 + 1) as f64);
    // rcnn_im_crop works in 1-based pixels: pad = max(0, 1 - x1) there is max(0, -x1) here.
    let pad_x = (-x1).max(0) as f64;
    let pad_y = (-y1).max(0) as f64;
    let (cx1, cy1, cx2, cy2) = (
        x1.max(0),
        y1.max(0),
        x2.min(image_w - 1),
        y2.min(image_h - 1),
    );
    if cx2 < cx1 || cy2 < cy1 {
        return None;
    }
    let (sx, sy) = (size / unclipped_w, size / unclipped_h);
    let pad_x = (pad_x * sx).round() as i32;
    let pad_y = (pad_y * sy).round() as i32;
    let mut width = (((cx2 - cx1 + 1) as f64) * sx).round() as i32;
    let mut height = (((cy2 - cy1 + 1) as f64) * sy).round() as i32;
    width = width.min(p.size - pad_x).max(1);
    height = height.min(p.size - pad_y).max(1);
    Some(Placement {
        source: [cx1, cy1, cx2, cy2],
        pad_x,
        pad_y,
        width,
        height,
    })
}

/// An image prepared for cropping (OpenCV owns a copy of its pixels).
pub struct WarpSource {
    mat: Mat,
    width: i32,
    height: i32,
}

impl WarpSource {
    pub fn new(img: &RgbImage) -> opencv::Result<Self> {
        let (h, w, _) = img.dim();
        Ok(WarpSource {
            mat: rgb_mat(img)?,
            width: w as i32,
            height: h as i32,
        })
    }

    /// The context window of `b` resized to its place in the output, or `None` when the window
    /// misses the image.
    fn resized(&self, b: &BBox, p: &WarpParams) -> opencv::Result<Option<(Placement, Mat)>> {
        let Some(pl) = placement(b, self.width, self.height, p) else {
            return Ok(None);
        };
        let [x1, y1, x2, y2] = pl.source;
        let window = Mat::roi(&self.mat, Rect::new(x1, y1, x2 - x1 + 1, y2 - y1 + 1))?;
        let mut resized = Mat::default();
        imgproc::resize(
            &window,
            &mut resized,
            Size::new(pl.width, pl.height),
            0.0,
            0.0,
            imgproc::INTER_LINEAR,
        )?;
        Ok(Some((pl, resized)))
    }

    /// Writes the crop of `b` into `out` (`3 * size * size`, CHW): `fill[c]` where the context
    /// window leaves the image (everywhere when it misses it), `value(byte, c)` of each resized
    /// pixel elsewhere.
    fn warp_with<T: Copy>(
        &self,
        b: &BBox,
        p: &WarpParams,
        out: &mut [T],
        fill: [T; 3],
        value: impl Fn(u8, usize) -> T,
    ) -> opencv::Result<()> {
        let s = p.size as usize;
        assert_eq!(out.len(), 3 * s * s, "one CHW crop");
        for c in 0..3 {
            out[c * s * s..(c + 1) * s * s].fill(fill[c]);
        }
        let Some((pl, resized)) = self.resized(b, p)? else {
            return Ok(());
        };
        let bytes = resized.data_bytes()?;
        for y in 0..pl.height as usize {
            let oy = y + pl.pad_y as usize;
            for x in 0..pl.width as usize {
                let ox = x + pl.pad_x as usize;
                let src = (y * pl.width as usize + x) * 3;
                for c in 0..3 {
                    out[c * s * s + oy * s + ox] = value(bytes[src + c], c);
                }
            }
        }
        Ok(())
    }

    /// Writes the warped, normalised crop of `b` into `out` (`3 * size * size`, CHW). A box
    /// whose window misses the image gives the mean everywhere (zeros).
    pub fn warp_into(&self, b: &BBox, p: &WarpParams, out: &mut [f32]) -> opencv::Result<()> {
        let (scale, shift) = normalisation(p.mean, p.std);
        self.warp_with(b, p, out, [0.0; 3], |v, c| v as f32 * scale[c] - shift[c])
    }

    /// The same crop as [`WarpSource::warp_into`] before normalisation, as CHW bytes, with the
    /// mean colour rounded to bytes as the fill (a quarter of the memory, for training caches).
    pub fn warp_u8_into(&self, b: &BBox, p: &WarpParams, out: &mut [u8]) -> opencv::Result<()> {
        self.warp_with(b, p, out, mean_bytes(p.mean), |v, _| v)
    }
}

/// The mean colour (0..1 scale) as bytes.
pub fn mean_bytes(mean: [f32; 3]) -> [u8; 3] {
    mean.map(|m| (m * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// Per-crop sampling parameters along one axis: output pixel `o` inside `[start, start + len)`
/// reads the source at `clamp(a * o + b, lo, hi)`; outside it, the crop takes the mean.
/// `[a, b, lo, hi, start, start + len]`.
fn axis_params(start: i32, len: i32, src_lo: i32, src_hi: i32) -> [f32; 6] {
    // OpenCV's INTER_LINEAR on the window: source = lo + (j + 0.5) * ratio - 0.5 for output
    // pixel j of the resized window, clamped to the window (it replicates the window's edge).
    let ratio = (src_hi - src_lo + 1) as f64 / len as f64;
    let b = src_lo as f64 + (0.5 - start as f64) * ratio - 0.5;
    [
        ratio as f32,
        b as f32,
        src_lo as f32,
        src_hi as f32,
        start as f32,
        (start + len) as f32,
    ]
}

/// The R-CNN crops of `boxes` from one uploaded image (see [`upload`]), normalised, `[n, 3, s,
/// s]` f32 on the image's device: the same crops as [`WarpSource::warp_into`] up to OpenCV's
/// rounding to bytes (within a grey level).
pub fn warp_boxes(image: &Tensor, boxes: &[BBox], p: &WarpParams, norm: &Normaliser) -> Tensor {
    let (h, w) = (image.size()[2], image.size()[3]);
    let device = image.device();
    let s = p.size as i64;
    let n = boxes.len() as i64;
    // Twelve numbers a crop, computed on the host in f64 and uploaded once for the batch.
    let mut params: Vec<f32> = Vec::with_capacity(boxes.len() * 12);
    for b in boxes {
        match placement(b, w as i32, h as i32, p) {
            Some(pl) => {
                let [x1, y1, x2, y2] = pl.source;
                params.extend(axis_params(pl.pad_x, pl.width, x1, x2));
                params.extend(axis_params(pl.pad_y, pl.height, y1, y2));
            }
            // The window misses the image: an empty mask, the mean everywhere.
            None => params.extend([0.0; 12]),
        }
    }
    let params = Tensor::from_slice(&params).view([n, 12]).to_device(device);
    let o = Tensor::arange(s, (Kind::Float, device)).view([1, s]);
    // Normalised coordinates of grid_sample with align_corners = false: pixel centre i of a side
    // of `size` pixels is at (2i + 1) / size - 1.
    let axis = |first: i64, size: i64| {
        let col = |k: i64| params.narrow(1, first + k, 1);
        let src = (col(0) * &o + col(1)).maximum(&col(2)).minimum(&col(3));
        let grid = (src * 2.0 + 1.0) / size as f64 - 1.0;
        let inside = o.ge_tensor(&col(4)).logical_and(&o.lt_tensor(&col(5)));
        (grid, inside)
    };
    let (gx, mx) = axis(0, w);
    let (gy, my) = axis(6, h);
    let grid = Tensor::stack(
        &[
            gx.unsqueeze(1).expand([n, s, s], false),
            gy.unsqueeze(2).expand([n, s, s], false),
        ],
        -1,
    );
    let sampled = Tensor::grid_sampler_2d(
        &image.expand([n, 3, h, w], false),
        &grid,
        0, // bilinear
        0, // zeros (never read: every coordinate is clamped inside the window)
        false,
    );
    let mask = my.unsqueeze(2).logical_and(&mx.unsqueeze(1)).unsqueeze(1);
    norm.apply(&sampled) * mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> WarpParams {
        WarpParams::new(224, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    }

    #[test]
    fn placement_by_hand() {
        // A 96x96 box (inclusive 100..195) in a large image: context scale 224/192 = 7/6, so the
        // window reaches 56 px either side of the centre 148: 92..204, no padding, all 224x224.
        let pl = placement(
            &BBox::new(100.0, 100.0, 195.0, 195.0),
            1000,
            1000,
            &params(),
        )
        .unwrap();
        assert_eq!(pl.source, [92, 92, 204, 204]);
        assert_eq!((pl.pad_x, pl.pad_y, pl.width, pl.height), (0, 0, 224, 224));
        // At the corner: the window starts at -8, so 8 of its 113 px are outside, which
        // become round(8 * 224 / 113) = 16 px of mean fill at the top left.
        let pl = placement(&BBox::new(0.0, 0.0, 95.0, 95.0), 1000, 1000, &params()).unwrap();
        assert_eq!(pl.source, [0, 0, 104, 104]);
        assert_eq!((pl.pad_x, pl.pad_y), (16, 16));
        assert_eq!((pl.width, pl.height), (208, 208));
        // Outside the image entirely.
        assert_eq!(
            placement(
                &BBox::new(2000.0, 2000.0, 2100.0, 2100.0),
                1000,
                1000,
                &params()
            ),
            None
        );
    }

    #[test]
    fn flat_image_gives_its_colour_inside_and_the_mean_outside() {
        let img = RgbImage::from_elem((120, 160, 3), 191); // (191/255 - 0.5)/0.25 = 0.996
        let src = WarpSource::new(&img).unwrap();
        let p = params();
        let mut out = vec![f32::NAN; 3 * 224 * 224];
        src.warp_into(&BBox::new(0.0, 0.0, 59.0, 59.0), &p, &mut out)
            .unwrap();
        let pl = placement(&BBox::new(0.0, 0.0, 59.0, 59.0), 160, 120, &p).unwrap();
        let expected = 191.0 / 255.0 / 0.25 - 2.0;
        for c in 0..3 {
            for y in 0..224 {
                for x in 0..224 {
                    let v = out[c * 224 * 224 + y * 224 + x];
                    let inside = x >= pl.pad_x as usize
                        && y >= pl.pad_y as usize
                        && x < (pl.pad_x + pl.width) as usize
                        && y < (pl.pad_y + pl.height) as usize;
                    let want = if inside { expected } else { 0.0 };
                    assert!((v - want).abs() < 1e-5, "({c}, {y}, {x}): {v} vs {want}");
                }
            }
        }
    }

    #[test]
    fn the_crop_equals_an_independent_bilinear_resize() {
        // A ramp image; our pure-Rust bilinear resize (pixel centres aligned, as INTER_LINEAR)
        // of the same window must agree with OpenCV's to one grey level.
        let img = RgbImage::from_shape_fn((300, 400, 3), |(y, x, c)| {
            ((x * 3 + y * 2 + c * 50) % 256) as u8
        });
        let p = params();
        let b = BBox::new(120.0, 80.0, 219.0, 159.0);
        let mut out = vec![0.0; 3 * 224 * 224];
        WarpSource::new(&img)
            .unwrap()
            .warp_into(&b, &p, &mut out)
            .unwrap();
        let pl = placement(&b, 400, 300, &p).unwrap();
        let [x1, y1, x2, y2] = pl.source.map(|v| v as usize);
        let window = img.slice(ndarray::s![y1..=y2, x1..=x2, ..]).to_owned();
        let ours =
            proposals::image::resize_bilinear(&window, pl.width as usize, pl.height as usize);
        let mut worst = 0.0f32;
        for y in 0..pl.height as usize {
            for x in 0..pl.width as usize {
                for c in 0..3 {
                    let got = (out
                        [c * 224 * 224 + (y + pl.pad_y as usize) * 224 + x + pl.pad_x as usize]
                        + 2.0)
                        * 0.25
                        * 255.0;
                    worst = worst.max((got - ours[[y, x, c]] as f32).abs());
                }
            }
        }
        assert!(worst <= 1.01, "largest difference {worst} grey levels");
    }

    #[test]
    fn byte_crop_is_the_float_crop_before_normalisation() {
        let img = RgbImage::from_shape_fn((150, 200, 3), |(y, x, c)| {
            ((x * 5 + y * 3 + c * 70) % 256) as u8
        });
        let src = WarpSource::new(&img).unwrap();
        let p = params();
        let b = BBox::new(-20.0, 30.0, 120.0, 160.0); // reaches outside: mean fill on the left
        let mut f = vec![0.0f32; 3 * 224 * 224];
        let mut u = vec![0u8; 3 * 224 * 224];
        src.warp_into(&b, &p, &mut f).unwrap();
        src.warp_u8_into(&b, &p, &mut u).unwrap();
        let fill = mean_bytes(p.mean);
        assert_eq!(fill, [128, 128, 128]);
        let pl = placement(&b, 200, 150, &p).unwrap();
        assert!(pl.pad_x > 0);
        for (i, (&fv, &uv)) in f.iter().zip(&u).enumerate() {
            let (c, y, x) = (i / (224 * 224), (i / 224) % 224, i % 224);
            let inside = x >= pl.pad_x as usize
                && y >= pl.pad_y as usize
                && x < (pl.pad_x + pl.width) as usize
                && y < (pl.pad_y + pl.height) as usize;
            if inside {
                let back = ((fv * p.std[c] + p.mean[c]) * 255.0).round() as u8;
                assert_eq!(back, uv, "({c}, {y}, {x})");
            } else {
                assert_eq!((fv, uv), (0.0, fill[c]), "({c}, {y}, {x})");
            }
        }
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;
    use crate::detect::warp::WarpParams;
    use crate::run::tensor::upload;
    use tch::Device;

    /// Largest difference, in grey levels, between the device warp and OpenCV's of each box, and
    /// whether the mean-filled pixels are exactly the same.
    fn compare(img: &RgbImage, boxes: &[BBox], p: &WarpParams) -> Vec<f32> {
        let s = p.size as usize;
        let source = WarpSource::new(img).unwrap();
        // On RCNN_TEST_DEVICE: the same code runs on CPU and CUDA tensors.
        let device = crate::run::device::test_device();
        let norm = Normaliser::new(p.mean, p.std, device);
        let image = upload(img, device);
        let ours = warp_boxes(&image, boxes, p, &norm);
        assert_eq!(ours.size(), [boxes.len() as i64, 3, s as i64, s as i64]);
        let ours: Vec<f32> = Vec::try_from(ours.flatten(0, -1).to_device(Device::Cpu)).unwrap();
        let (h, w, _) = img.dim();
        boxes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut cv = vec![0f32; 3 * s * s];
                source.warp_into(b, p, &mut cv).unwrap();
                let mine = &ours[i * 3 * s * s..(i + 1) * 3 * s * s];
                let pl = placement(b, w as i32, h as i32, p);
                let mut worst = 0f32;
                for (k, (&a, &c)) in mine.iter().zip(&cv).enumerate() {
                    let (ch, y, x) = (k / (s * s), (k / s) % s, k % s);
                    let inside = pl.is_some_and(|pl| {
                        x >= pl.pad_x as usize
                            && y >= pl.pad_y as usize
                            && x < (pl.pad_x + pl.width) as usize
                            && y < (pl.pad_y + pl.height) as usize
                    });
                    if !inside {
                        // The same filled rectangle: the mean, exactly, in both.
                        assert_eq!((a, c), (0.0, 0.0), "box {b:?} pixel ({ch}, {y}, {x})");
                    }
                    worst = worst.max((a - c).abs() * 255.0 * p.std[ch]);
                }
                worst
            })
            .collect()
    }

    #[test]
    fn the_device_warp_is_opencvs_within_a_grey_level() {
        let p = WarpParams::new(224, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        let photo = crate::detect::decode::decode(std::path::Path::new(
            "data/raccoon/images/raccoon-1.jpg",
        ))
        .unwrap();
        let (h, w, _) = photo.dim();
        let (w, h) = (w as f64, h as f64);
        let boxes = [
            BBox::new(50.0, 40.0, 249.0, 199.0),  // inside, downscaled
            BBox::new(100.0, 80.0, 139.0, 111.0), // inside, upscaled x6
            BBox::new(0.0, 0.0, 99.0, 149.0),     // on the top-left edge
            BBox::new(w - 60.0, h - 90.0, w - 1.0, h - 1.0), // on the bottom-right edge
            BBox::new(-30.0, 10.0, w + 30.0, h - 10.0), // wider than the image
            BBox::new(w + 100.0, 0.0, w + 300.0, 100.0), // fully outside
            BBox::new(120.0, 30.0, 120.0, 230.0), // 1 px wide
            BBox::new(10.0, 150.0, w - 10.0, 152.0), // 3 px high, extreme aspect
            BBox::new(200.0, 5.0, 211.0, h - 5.0), // tall and thin
            BBox::new(0.5, 0.25, w - 0.5, h - 0.75), // the whole image, fractional
        ];
        let worst = compare(&photo, &boxes, &p);
        eprintln!("largest differences per box, grey levels: {worst:?}");
        for (b, d) in boxes.iter().zip(&worst) {
            assert!(*d <= 1.0, "box {b:?}: {d} grey levels apart");
        }
        // A small image, upscaled a lot everywhere, with a sharp checkerboard (the hardest case
        // for rounding: every sample interpolates between 0 and 255).
        let checker =
            RgbImage::from_shape_fn(
                (23, 31, 3),
                |(y, x, c)| {
                    if (x + y + c) % 2 == 0 {
                        255
                    } else {
                        0
                    }
                },
            );
        let boxes = [
            BBox::new(2.0, 3.0, 20.0, 18.0),
            BBox::new(0.0, 0.0, 30.0, 22.0),
            BBox::new(5.0, 5.0, 5.0, 5.0),
        ];
        for (b, d) in boxes.iter().zip(compare(&checker, &boxes, &p)) {
            assert!(d <= 1.0, "box {b:?}: {d} grey levels apart");
        }
    }
}
