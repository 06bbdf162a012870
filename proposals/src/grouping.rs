//! Hierarchical grouping (Uijlings et al., section 3.1): start from the segmentation's regions,
//! repeatedly merge the most similar pair of neighbours, and record every region's box.
//!
//! Neighbours live in adjacency lists and candidate pairs in a priority queue; merged-away
//! regions leave stale entries that are skipped when popped, so nothing is re-sorted.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ndarray::Array2;

use crate::segment::Segmentation;

/// Which similarity measures are summed (section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Similarities {
    pub colour: bool,
    pub texture: bool,
    pub size: bool,
    pub fill: bool,
}

impl Similarities {
    pub const CTSF: Similarities = Similarities {
        colour: true,
        texture: true,
        size: true,
        fill: true,
    };
    pub const TSF: Similarities = Similarities {
        colour: false,
        texture: true,
        size: true,
        fill: true,
    };
    pub const FS: Similarities = Similarities {
        colour: false,
        texture: false,
        size: true,
        fill: true,
    };
    pub const S: Similarities = Similarities {
        colour: false,
        texture: false,
        size: true,
        fill: false,
    };

    pub fn name(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.colour, 'C'),
            (self.texture, 'T'),
            (self.size, 'S'),
            (self.fill, 'F'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

pub const COLOUR_BINS: usize = 25;
pub const TEXTURE_BINS: usize = 10;
pub const ORIENTATIONS: usize = 8;

/// Per-pixel histogram bins of an image in one colour space.
pub struct PixelBins {
    /// `[pixel][channel]` colour bin.
    pub colour: Vec<u8>,
    /// `[pixel][channel * 8 + orientation]` texture bin.
    pub texture: Vec<u8>,
    pub channels: usize,
}

/// Gaussian derivative responses (sigma 1) in 8 orientations per channel, each scaled by its
/// maximum over the image and binned, with the colour bins.
pub fn pixel_bins(channels: &[Array2<f32>]) -> PixelBins {
    let (h, w) = channels[0].dim();
    let n = h * w;
    let nc = channels.len();
    let mut colour = vec![0u8; n * nc];
    let mut texture = vec![0u8; n * nc * ORIENTATIONS];
    for (c, ch) in channels.iter().enumerate() {
        for (i, v) in ch.iter().enumerate() {
            colour[i * nc + c] = ((v.clamp(0.0, 255.0) * COLOUR_BINS as f32 / 256.0) as usize)
                .min(COLOUR_BINS - 1) as u8;
        }
        let (gx, gy) = gaussian_derivatives(ch, 1.0);
        let mut responses = vec![0f32; n * ORIENTATIONS];
        let mut max = [0f32; ORIENTATIONS];
        for o in 0..ORIENTATIONS {
            let theta = o as f32 * std::f32::consts::FRAC_PI_4;
            let (cos, sin) = (theta.cos(), theta.sin());
            for i in 0..n {
                let r = (cos * gx[i] + sin * gy[i]).max(0.0);
                responses[i * ORIENTATIONS + o] = r;
                max[o] = max[o].max(r);
            }
        }
        for i in 0..n {
            for o in 0..ORIENTATIONS {
                let r = responses[i * ORIENTATIONS + o] / max[o].max(1e-6);
                texture[(i * nc + c) * ORIENTATIONS + o] =
                    ((r * TEXTURE_BINS as f32) as usize).min(TEXTURE_BINS - 1) as u8;
            }
        }
    }
    PixelBins {
        colour,
        texture,
        channels: nc,
    }
}

/// x and y derivatives of a Gaussian (separable, radius 4 sigma, borders replicated).
fn gaussian_derivatives(ch: &Array2<f32>, sigma: f32) -> (Vec<f32>, Vec<f32>) {
    let (h, w) = ch.dim();
    let radius = (4.0 * sigma).ceil() as isize;
    let g: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| v / norm).collect();
    let d: Vec<f32> = (-radius..=radius)
        .zip(&g)
        .map(|(i, v)| -(i as f32) / (sigma * sigma) * v)
        .collect();
    let src = ch.as_slice().expect("standard layout");
    let conv_x = |k: &[f32], img: &[f32]| {
        let mut out = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let xx = (x as isize + j as isize - radius).clamp(0, w as isize - 1) as usize;
                    acc += kv * img[y * w + xx];
                }
                out[y * w + x] = acc;
            }
        }
        out
    };
    let conv_y = |k: &[f32], img: &[f32]| {
        let mut out = vec![0f32; h * w];
        for y in 0..h {
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - radius).clamp(0, h as isize - 1) as usize;
                for x in 0..w {
                    out[y * w + x] += kv * img[yy * w + x];
                }
            }
        }
        out
    };
    // The derivative flips sign under the convolution's mirror: d/dx of (I * g) is I * g'.
    let gx = conv_y(
        &g,
        &conv_x(&d.iter().rev().copied().collect::<Vec<_>>(), src),
    );
    let gy = conv_x(
        &g,
        &conv_y(&d.iter().rev().copied().collect::<Vec<_>>(), src),
    );
    (gx, gy)
}

/// A region: box (inclusive pixel corners), size and L1-normalised histograms.
#[derive(Debug, Clone)]
struct Region {
    bbox: [u32; 4],
    size: u32,
    colour: Vec<f32>,
    texture: Vec<f32>,
}

fn intersection(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.min(*y)).sum()
}

fn union_box(a: &[u32; 4], b: &[u32; 4]) -> [u32; 4] {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

fn box_area(b: &[u32; 4]) -> f32 {
    ((b[2] - b[0] + 1) * (b[3] - b[1] + 1)) as f32
}

fn similarity(a: &Region, b: &Region, sims: Similarities, image_size: f32) -> f32 {
    let mut s = 0.0;
    if sims.colour {
        s += intersection(&a.colour, &b.colour);
    }
    if sims.texture {
        s += intersection(&a.texture, &b.texture);
    }
    if sims.size {
        s += 1.0 - (a.size + b.size) as f32 / image_size;
    }
    if sims.fill {
        s += 1.0
            - (box_area(&union_box(&a.bbox, &b.bbox)) - a.size as f32 - b.size as f32) / image_size;
    }
    s
}

/// A candidate merge, highest similarity first, then lowest region ids (deterministic).
#[derive(PartialEq)]
struct Candidate(f32, Reverse<u32>, Reverse<u32>);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then(self.1.cmp(&other.1))
            .then(self.2.cmp(&other.2))
    }
}

/// Regions of a segmentation with their features, and their 4-connected neighbours.
pub struct InitialRegions {
    regions: Vec<Region>,
    neighbours: Vec<Vec<u32>>,
    image_size: f32,
}

pub fn initial_regions(seg: &Segmentation, bins: &PixelBins) -> InitialRegions {
    let (h, w) = seg.labels.dim();
    let nc = bins.channels;
    let n = seg.count;
    let colour_len = nc * COLOUR_BINS;
    let texture_len = nc * ORIENTATIONS * TEXTURE_BINS;
    let mut regions: Vec<Region> = (0..n)
        .map(|_| Region {
            bbox: [u32::MAX, u32::MAX, 0, 0],
            size: 0,
            colour: vec![0.0; colour_len],
            texture: vec![0.0; texture_len],
        })
        .collect();
    let labels = seg.labels.as_slice().expect("standard layout");
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let l = labels[i];
            let r = &mut regions[l as usize];
            r.size += 1;
            r.bbox = [
                r.bbox[0].min(x as u32),
                r.bbox[1].min(y as u32),
                r.bbox[2].max(x as u32),
                r.bbox[3].max(y as u32),
            ];
            for c in 0..nc {
                r.colour[c * COLOUR_BINS + bins.colour[i * nc + c] as usize] += 1.0;
                for o in 0..ORIENTATIONS {
                    let bin = bins.texture[(i * nc + c) * ORIENTATIONS + o] as usize;
                    r.texture[(c * ORIENTATIONS + o) * TEXTURE_BINS + bin] += 1.0;
                }
            }
            if x + 1 < w && labels[i + 1] != l {
                pairs.push((l.min(labels[i + 1]), l.max(labels[i + 1])));
            }
            if y + 1 < h && labels[i + w] != l {
                pairs.push((l.min(labels[i + w]), l.max(labels[i + w])));
            }
        }
    }
    for r in &mut regions {
        let (cs, ts) = (
            r.colour.iter().sum::<f32>().max(1.0),
            r.texture.iter().sum::<f32>().max(1.0),
        );
        r.colour.iter_mut().for_each(|v| *v /= cs);
        r.texture.iter_mut().for_each(|v| *v /= ts);
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut neighbours = vec![Vec::new(); n];
    for (a, b) in pairs {
        neighbours[a as usize].push(b);
        neighbours[b as usize].push(a);
    }
    InitialRegions {
        regions,
        neighbours,
        image_size: (h * w) as f32,
    }
}

/// Runs the grouping; returns every region's box (x1, y1, x2, y2 inclusive) in the order the
/// hierarchy creates them: the initial regions, then each merge.
pub fn group(init: &InitialRegions, sims: Similarities) -> Vec<[u32; 4]> {
    let mut regions = init.regions.clone();
    let mut neighbours = init.neighbours.clone();
    let mut alive = vec![true; regions.len()];
    let mut heap = BinaryHeap::new();
    for (a, ns) in neighbours.iter().enumerate() {
        for &b in ns.iter().filter(|&&b| b as usize > a) {
            let s = similarity(&regions[a], &regions[b as usize], sims, init.image_size);
            heap.push(Candidate(s, Reverse(a as u32), Reverse(b)));
        }
    }
    let mut boxes: Vec<[u32; 4]> = regions.iter().map(|r| r.bbox).collect();
    while let Some(Candidate(_, Reverse(a), Reverse(b))) = heap.pop() {
        let (a, b) = (a as usize, b as usize);
        if !alive[a] || !alive[b] {
            continue;
        }
        let (ra, rb) = (&regions[a], &regions[b]);
        let size = ra.size + rb.size;
        let (wa, wb) = (ra.size as f32 / size as f32, rb.size as f32 / size as f32);
        let merged = Region {
            bbox: union_box(&ra.bbox, &rb.bbox),
            size,
            colour: ra
                .colour
                .iter()
                .zip(&rb.colour)
                .map(|(x, y)| x * wa + y * wb)
                .collect(),
            texture: ra
                .texture
                .iter()
                .zip(&rb.texture)
                .map(|(x, y)| x * wa + y * wb)
                .collect(),
        };
        let t = regions.len() as u32;
        alive[a] = false;
        alive[b] = false;
        let mut ns: Vec<u32> = neighbours[a]
            .iter()
            .chain(&neighbours[b])
            .copied()
            .filter(|&n| alive[n as usize])
            .collect();
        ns.sort_unstable();
        ns.dedup();
        for &n in &ns {
            let list = &mut neighbours[n as usize];
            list.retain(|&m| m as usize != a && m as usize != b);
            list.push(t);
            let s = similarity(&merged, &regions[n as usize], sims, init.image_size);
            heap.push(Candidate(s, Reverse(n), Reverse(t)));
        }
        boxes.push(merged.bbox);
        regions.push(merged);
        alive.push(true);
        neighbours.push(ns);
        // Free what the merged-away regions held.
        for dead in [a, b] {
            regions[dead].colour = Vec::new();
            regions[dead].texture = Vec::new();
            neighbours[dead] = Vec::new();
        }
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment;

    #[test]
    fn four_squares_give_the_squares_and_their_unions() {
        // Quadrants of 20x30: top-left, top-right, bottom-left, bottom-right.
        let colours = [
            [200.0, 30.0, 30.0],
            [30.0, 200.0, 30.0],
            [30.0, 30.0, 200.0],
            [220.0, 220.0, 40.0],
        ];
        let (h, w) = (40, 60);
        let channels: Vec<Array2<f32>> = (0..3)
            .map(|c| {
                Array2::from_shape_fn((h, w), |(y, x)| {
                    colours[(y >= h / 2) as usize * 2 + (x >= w / 2) as usize][c]
                })
            })
            .collect();
        let seg = segment(&channels, 100.0, 20);
        assert_eq!(seg.count, 4);
        let init = initial_regions(&seg, &pixel_bins(&channels));
        for sims in [
            Similarities::CTSF,
            Similarities::TSF,
            Similarities::FS,
            Similarities::S,
        ] {
            let boxes = group(&init, sims);
            assert_eq!(boxes.len(), 7, "4 squares + 3 merges ({})", sims.name());
            assert_eq!(
                &boxes[..4],
                &[
                    [0, 0, 29, 19],
                    [30, 0, 59, 19],
                    [0, 20, 29, 39],
                    [30, 20, 59, 39]
                ]
            );
            assert_eq!(
                boxes[6],
                [0, 0, 59, 39],
                "the last merge is the whole image"
            );
            // Quadrants only touch along edges, so each intermediate merge is two adjacent
            // squares: a half of the image.
            for b in &boxes[4..6] {
                let halves = [
                    [0, 0, 59, 19],
                    [0, 20, 59, 39],
                    [0, 0, 29, 39],
                    [30, 0, 59, 39],
                ];
                let three = b[2] - b[0] + 1 == 60 && b[3] - b[1] + 1 == 40;
                assert!(halves.contains(b) || three, "{b:?}");
            }
        }
    }
}
