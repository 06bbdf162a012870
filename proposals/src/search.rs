//! Selective search: strategies, the paper's `fast` and `quality` modes, ranking and
//! deduplication, and R-CNN's resizing and small-box filter.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use boxes::BBox;
use rayon::prelude::*;

use crate::colour::{convert, ColourSpace};
use crate::grouping::{group, initial_regions, pixel_bins, Similarities};
use crate::image::{resize_bilinear, RgbImage};
use crate::rng::SplitMix64;
use crate::segment::{segment, smooth};

/// One diversification strategy: colour space, similarity set, segmentation scale k.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strategy {
    pub space: ColourSpace,
    pub sims: Similarities,
    pub k: f32,
}

/// The paper's modes (section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HSV and Lab x {C+T+S+F, T+S+F} x k in {50, 100}: 8 strategies.
    Fast,
    /// HSV, Lab, rgI, H and I x {C+T+S+F, T+S+F, F+S, S} x k in {50, 100, 150, 300}: 80.
    Quality,
}

impl Mode {
    pub fn strategies(self) -> Vec<Strategy> {
        let (spaces, sims, ks): (&[ColourSpace], &[Similarities], &[f32]) = match self {
            Mode::Fast => (
                &[ColourSpace::Hsv, ColourSpace::Lab],
                &[Similarities::CTSF, Similarities::TSF],
                &[50.0, 100.0],
            ),
            Mode::Quality => (
                &[
                    ColourSpace::Hsv,
                    ColourSpace::Lab,
                    ColourSpace::RgI,
                    ColourSpace::H,
                    ColourSpace::I,
                ],
                &[
                    Similarities::CTSF,
                    Similarities::TSF,
                    Similarities::FS,
                    Similarities::S,
                ],
                &[50.0, 100.0, 150.0, 300.0],
            ),
        };
        let mut out = Vec::new();
        for &space in spaces {
            for &k in ks {
                for &s in sims {
                    out.push(Strategy { space, sims: s, k });
                }
            }
        }
        out
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Fast => "fast",
            Mode::Quality => "quality",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Mode::Fast),
            "quality" => Ok(Mode::Quality),
            other => Err(format!("unknown mode `{other}` (fast or quality)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchParams {
    pub strategies: Vec<Strategy>,
    /// Multiplies k and the minimum segment size: 2 is GoogLeNet's "twice the superpixel size".
    pub scale: f32,
    /// Gaussian smoothing before segmentation.
    pub sigma: f32,
    /// Resize to this width before segmenting (R-CNN: 500); boxes are mapped back.
    pub resize_width: Option<usize>,
    /// Drop boxes narrower or shorter than this, in the resized image (R-CNN: 20).
    pub min_box: u32,
    pub seed: u64,
}

impl SearchParams {
    /// GoogLeNet's ILSVRC2014 setting of a mode: R-CNN's width 500 and 20 px filter, x2 scale.
    pub fn new(mode: Mode) -> Self {
        SearchParams {
            strategies: mode.strategies(),
            scale: 2.0,
            sigma: 0.8,
            resize_width: Some(500),
            min_box: 20,
            seed: 0,
        }
    }
}

/// Ranked, deduplicated proposals in the original image's pixels (inclusive corners); refused,
/// before any work, for an image so narrow that R-CNN's fixed width would blow it up
/// ([`search_size`]).
pub fn selective_search(img: &RgbImage, params: &SearchParams) -> Result<Vec<BBox>, TooNarrow> {
    let (h0, w0, _) = img.dim();
    if h0 == 0 || w0 == 0 {
        return Ok(Vec::new());
    }
    let (work, scale) = resize_for_search(img, params.resize_width)?;
    // Colour conversion and per-pixel bins once per colour space, segmentation once per
    // (space, k); strategies that share them run on the same regions.
    let mut spaces: Vec<ColourSpace> = params.strategies.iter().map(|s| s.space).collect();
    spaces.dedup();
    let mut keys: Vec<(ColourSpace, u32)> = params
        .strategies
        .iter()
        .map(|s| (s.space, s.k.to_bits()))
        .collect();
    keys.dedup();
    let hierarchies: Vec<(usize, Vec<[u32; 4]>)> = spaces
        .par_iter()
        .flat_map(|&space| {
            let channels = convert(&work, space);
            let smoothed: Vec<_> = channels.iter().map(|c| smooth(c, params.sigma)).collect();
            let bins = pixel_bins(&channels);
            let ks: Vec<u32> = keys
                .iter()
                .filter(|(s, _)| *s == space)
                .map(|(_, k)| *k)
                .collect();
            ks.into_par_iter()
                .flat_map(|k_bits| {
                    let k = f32::from_bits(k_bits) * params.scale;
                    let seg = segment(&smoothed, k, k.round().max(1.0) as usize);
                    let init = initial_regions(&seg, &bins);
                    params
                        .strategies
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.space == space && s.k.to_bits() == k_bits)
                        .map(|(i, s)| (i, group(&init, s.sims)))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(rank(hierarchies, params, scale, w0, h0))
}

/// The most pixels selective search is asked to work on beyond the image's own: R-CNN's width
/// 500 at an aspect of 20 (the bound `rcnn classify` keeps), 5 million pixels, about 0.5 GB of
/// segmentation buffers. A 1 x 50000 strip at width 500 would be 12.5 billion.
pub const MAX_SEARCH_PIXELS: u64 = 500 * 10_000;

/// An image that selective search's fixed width would blow up past [`MAX_SEARCH_PIXELS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {w0} x {h0} image would be {w} x {h} at selective search's width, more than {} million \
     pixels: too narrow to search; skipped",
    MAX_SEARCH_PIXELS / 1_000_000
)]
pub struct TooNarrow {
    pub h0: usize,
    pub w0: usize,
    pub h: u64,
    pub w: u64,
}

/// `(height, width, scale)` of the image selective search works on for an `h0 x w0` image:
/// resized to `width` (up or down) when one is given. Refused where that is more than
/// [`MAX_SEARCH_PIXELS`] and more than the image's own pixels (which the decoder's limit
/// bounds), from the sizes alone, before any buffer is made.
pub fn search_size(
    h0: usize,
    w0: usize,
    width: Option<usize>,
) -> Result<(usize, usize, f64), TooNarrow> {
    match width {
        Some(w) if w > 0 && w0 > 0 && w != w0 => {
            let s = w as f64 / w0 as f64;
            let h = (h0 as f64 * s).round().max(1.0);
            let pixels = h * w as f64;
            if pixels > MAX_SEARCH_PIXELS as f64 && pixels > (h0 * w0) as f64 {
                return Err(TooNarrow {
                    h0,
                    w0,
                    h: h as u64,
                    w: w as u64,
                });
            }
            Ok((h as usize, w, s))
        }
        _ => Ok((h0, w0, 1.0)),
    }
}

/// R-CNN's resize to a fixed width (up or down); returns the image and its scale factor.
pub fn resize_for_search(
    img: &RgbImage,
    width: Option<usize>,
) -> Result<(RgbImage, f64), TooNarrow> {
    let (h0, w0, _) = img.dim();
    let (h, w, s) = search_size(h0, w0, width)?;
    Ok(if s == 1.0 && (h, w) == (h0, w0) {
        (img.clone(), 1.0)
    } else {
        (resize_bilinear(img, w, h), s)
    })
}

/// A box of the resized image (inclusive pixel corners) in the original's pixels: pixel edges
/// scale, so x2 + 1 maps to (x2 + 1) / scale; clipped to the image.
pub fn box_to_original(b: [u32; 4], scale: f64, w0: usize, h0: usize) -> BBox {
    let x1 = (b[0] as f64 / scale).floor();
    let y1 = (b[1] as f64 / scale).floor();
    let x2 = ((b[2] + 1) as f64 / scale - 1.0)
        .ceil()
        .min(w0 as f64 - 1.0)
        .max(x1);
    let y2 = ((b[3] + 1) as f64 / scale - 1.0)
        .ceil()
        .min(h0 as f64 - 1.0)
        .max(y1);
    BBox::new(x1, y1, x2, y2)
}

/// Drops repeated boxes, keeping the first (best-ranked) of each.
pub fn dedup_boxes(boxes: &mut Vec<BBox>) {
    let mut seen = HashSet::new();
    boxes.retain(|b| seen.insert([b.x1, b.y1, b.x2, b.y2].map(f64::to_bits)));
}

/// Ranks as the paper: within a hierarchy the last merge has position 1, the one before 2 ...;
/// each box's value is its position times a uniform random number; all strategies' boxes are
/// sorted by value and duplicates dropped, keeping the best-ranked copy.
fn rank(
    mut hierarchies: Vec<(usize, Vec<[u32; 4]>)>,
    params: &SearchParams,
    scale: f64,
    w0: usize,
    h0: usize,
) -> Vec<BBox> {
    hierarchies.sort_by_key(|(i, _)| *i);
    let mut scored: Vec<(f64, [u32; 4])> = Vec::new();
    for (i, boxes) in &hierarchies {
        // One stream per strategy, so the ranking does not depend on thread scheduling.
        let mut rng =
            SplitMix64::new(params.seed ^ (*i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let n = boxes.len();
        for (j, b) in boxes.iter().enumerate() {
            let position = (n - j) as f64;
            scored.push((position * rng.uniform(), *b));
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (_, b) in scored {
        let (w, h) = (b[2] - b[0] + 1, b[3] - b[1] + 1);
        if w < params.min_box || h < params.min_box || !seen.insert(b) {
            continue;
        }
        out.push(box_to_original(b, scale, w0, h0));
    }
    dedup_boxes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quadrant_image(h: usize, w: usize) -> RgbImage {
        let colours = [
            [200u8, 30, 30],
            [30, 200, 30],
            [30, 30, 200],
            [220, 220, 40],
        ];
        RgbImage::from_shape_fn((h, w, 3), |(y, x, c)| {
            colours[(y >= h / 2) as usize * 2 + (x >= w / 2) as usize][c]
        })
    }

    #[test]
    fn mode_sizes() {
        assert_eq!(Mode::Fast.strategies().len(), 8);
        assert_eq!(Mode::Quality.strategies().len(), 80);
    }

    #[test]
    fn quadrants_are_found_and_the_result_is_deterministic() {
        let img = quadrant_image(80, 120);
        let mut p = SearchParams::new(Mode::Fast);
        p.resize_width = None;
        p.sigma = 0.0; // sharp edges: exact quadrants
        let a = selective_search(&img, &p).unwrap();
        for q in [
            [0.0, 0.0, 59.0, 39.0],
            [60.0, 0.0, 119.0, 39.0],
            [0.0, 40.0, 59.0, 79.0],
            [60.0, 40.0, 119.0, 79.0],
            [0.0, 0.0, 119.0, 79.0],
        ] {
            assert!(
                a.contains(&BBox::new(q[0], q[1], q[2], q[3])),
                "{q:?} missing from {a:?}"
            );
        }
        assert_eq!(
            a,
            selective_search(&img, &p).unwrap(),
            "same seed, same boxes"
        );
        p.seed = 7;
        let b = selective_search(&img, &p).unwrap();
        let mut sa = a
            .iter()
            .map(|b| [b.x1, b.y1, b.x2, b.y2].map(f64::to_bits))
            .collect::<Vec<_>>();
        let mut sb = b
            .iter()
            .map(|b| [b.x1, b.y1, b.x2, b.y2].map(f64::to_bits))
            .collect::<Vec<_>>();
        sa.sort();
        sb.sort();
        assert_eq!(
            sa, sb,
            "another seed ranks the same boxes differently, never others"
        );
    }

    #[test]
    fn resizing_maps_boxes_back_and_smoothing_moves_edges_at_most_a_pixel() {
        let img = quadrant_image(200, 300);
        let mut p = SearchParams::new(Mode::Fast);
        p.resize_width = Some(150);
        let boxes = selective_search(&img, &p).unwrap();
        assert!(
            boxes.contains(&BBox::new(0.0, 0.0, 299.0, 199.0)),
            "{boxes:?}"
        );
        // Each quadrant, found within a pixel of the resized image (2 px here).
        for q in [
            [0.0, 0.0, 149.0, 99.0],
            [150.0, 0.0, 299.0, 99.0],
            [0.0, 100.0, 149.0, 199.0],
            [150.0, 100.0, 299.0, 199.0],
        ] {
            let q = BBox::new(q[0], q[1], q[2], q[3]);
            let best = boxes
                .iter()
                .map(|b| b.iou(&q, boxes::PixelConvention::Inclusive))
                .fold(0.0, f64::max);
            assert!(best > 0.96, "{q:?}: best IoU {best}");
        }
    }

    #[test]
    fn degenerate_images_never_panic() {
        let p = SearchParams::new(Mode::Fast);
        assert!(selective_search(&RgbImage::zeros((0, 0, 3)), &p)
            .unwrap()
            .is_empty());
        // 1x1, resized to 500x500, one region: the whole image.
        assert_eq!(
            selective_search(&RgbImage::from_elem((1, 1, 3), 9), &p).unwrap(),
            vec![BBox::new(0.0, 0.0, 0.0, 0.0)]
        );
        // Constant and grey images: one region.
        assert_eq!(
            selective_search(&RgbImage::from_elem((60, 80, 3), 128), &p)
                .unwrap()
                .len(),
            1
        );
        // Wide and thin, smaller than the 20 px filter after resizing: nothing, no panic.
        let thin = RgbImage::from_elem((3, 2000, 3), 50);
        assert!(selective_search(&thin, &p).unwrap().is_empty());
        // Tall and narrow: width 500 would make a 1 x 50000 strip 25 million pixels tall (a
        // 37.5 GB buffer that aborted the run). Refused from the sizes, before any buffer.
        let strip = RgbImage::from_elem((50_000, 1, 3), 50);
        let err = selective_search(&strip, &p).unwrap_err();
        assert_eq!((err.w, err.h), (500, 25_000_000));
        assert!(err.to_string().contains("a 1 x 50000 image"), "{err}");
        // Very large: resized to width 500 first; boxes come back in its own pixels.
        let big = RgbImage::from_shape_fn((3000, 4000, 3), |(y, x, c)| {
            ((x / 500 + y / 500 + c) * 40 % 256) as u8
        });
        let boxes = selective_search(&big, &p).unwrap();
        assert!(
            boxes.contains(&BBox::new(0.0, 0.0, 3999.0, 2999.0)),
            "the whole image"
        );
        assert!(boxes
            .iter()
            .all(|b| b.x2 <= 3999.0 && b.y2 <= 2999.0 && b.x2 - b.x1 >= 20.0 * 8.0 - 8.0));
    }

    use proptest::strategy::{Just, Strategy};

    proptest::proptest! {
        /// Whatever the image's size (up to 50 million pixels, --max-pixels' default order),
        /// the search works on at most MAX_SEARCH_PIXELS or the image's own pixels.
        #[test]
        fn the_searched_image_is_bounded_whatever_the_size(
            (w0, h0) in (1usize..200_000).prop_flat_map(|w| (Just(w), 1usize..=50_000_000 / w)),
            width in proptest::option::of(1usize..2000),
        ) {
            if let Ok((h, w, _)) = search_size(h0, w0, width) {
                let pixels = (h * w) as u64;
                proptest::prop_assert!(
                    pixels <= MAX_SEARCH_PIXELS.max((h0 * w0) as u64),
                    "{} x {} -> {} x {}", w0, h0, w, h
                );
            }
        }
    }
}
