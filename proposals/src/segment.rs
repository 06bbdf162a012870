//! Felzenszwalb-Huttenlocher graph segmentation (IJCV 2004), on a multi-channel image with
//! 8-connected pixels and Euclidean colour distances, as OpenCV's GraphSegmentation.

use ndarray::Array2;

/// Disjoint sets with the size and internal-difference threshold of each component.
struct Forest {
    parent: Vec<u32>,
    size: Vec<u32>,
    threshold: Vec<f32>,
}

impl Forest {
    fn new(n: usize, k: f32) -> Self {
        Forest {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
            threshold: vec![k; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize]; // path halving
            x = p;
        }
        x
    }

    /// Joins two roots; returns the new root.
    fn join(&mut self, a: u32, b: u32) -> u32 {
        let (big, small) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        big
    }
}

/// Gaussian smoothing, separable, radius ceil(4 sigma), borders replicated.
pub fn smooth(channel: &Array2<f32>, sigma: f32) -> Array2<f32> {
    if sigma <= 0.0 {
        return channel.clone();
    }
    let radius = (4.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|v| *v /= sum);
    let (h, w) = channel.dim();
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut tmp = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            tmp[[y, x]] = kernel
                .iter()
                .enumerate()
                .map(|(i, k)| k * channel[[y, clamp(x as isize + i as isize - radius, w)]])
                .sum();
        }
    }
    let mut out = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            out[[y, x]] = kernel
                .iter()
                .enumerate()
                .map(|(i, k)| k * tmp[[clamp(y as isize + i as isize - radius, h), x]])
                .sum();
        }
    }
    out
}

/// A segmentation: a label per pixel, labels 0..count.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub labels: Array2<u32>,
    pub count: usize,
}

/// Segments `channels` (already smoothed) with scale `k` and minimum component size `min_size`.
pub fn segment(channels: &[Array2<f32>], k: f32, min_size: usize) -> Segmentation {
    let (h, w) = channels[0].dim();
    let n = h * w;
    if n == 0 {
        return Segmentation {
            labels: Array2::zeros((h, w)),
            count: 0,
        };
    }
    let slices: Vec<&[f32]> = channels
        .iter()
        .map(|c| c.as_slice().expect("standard layout"))
        .collect();
    let dist = |a: usize, b: usize| {
        slices
            .iter()
            .map(|s| (s[a] - s[b]) * (s[a] - s[b]))
            .sum::<f32>()
            .sqrt()
    };
    let mut edges: Vec<(f32, u32, u32)> = Vec::with_capacity(n * 4);
    for y in 0..h {
        for x in 0..w {
            let a = y * w + x;
            if x + 1 < w {
                edges.push((dist(a, a + 1), a as u32, (a + 1) as u32));
            }
            if y + 1 < h {
                edges.push((dist(a, a + w), a as u32, (a + w) as u32));
                if x + 1 < w {
                    edges.push((dist(a, a + w + 1), a as u32, (a + w + 1) as u32));
                }
                if x > 0 {
                    edges.push((dist(a, a + w - 1), a as u32, (a + w - 1) as u32));
                }
            }
        }
    }
    // Stable, so that equal weights merge in scan order on every run.
    edges.sort_by(|p, q| p.0.total_cmp(&q.0));
    let mut forest = Forest::new(n, k);
    for &(weight, a, b) in &edges {
        let (ra, rb) = (forest.find(a), forest.find(b));
        if ra != rb
            && weight <= forest.threshold[ra as usize]
            && weight <= forest.threshold[rb as usize]
        {
            let r = forest.join(ra, rb);
            forest.threshold[r as usize] = weight + k / forest.size[r as usize] as f32;
        }
    }
    for &(_, a, b) in &edges {
        let (ra, rb) = (forest.find(a), forest.find(b));
        if ra != rb
            && ((forest.size[ra as usize] as usize) < min_size
                || (forest.size[rb as usize] as usize) < min_size)
        {
            forest.join(ra, rb);
        }
    }
    // Dense labels in order of first appearance.
    let mut remap = vec![u32::MAX; n];
    let mut labels = Array2::<u32>::zeros((h, w));
    let mut count = 0u32;
    for (i, l) in labels.iter_mut().enumerate() {
        let r = forest.find(i as u32) as usize;
        if remap[r] == u32::MAX {
            remap[r] = count;
            count += 1;
        }
        *l = remap[r];
    }
    Segmentation {
        labels,
        count: count as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four flat quadrants of different colours.
    pub(crate) fn quadrants(h: usize, w: usize) -> Vec<Array2<f32>> {
        let colours = [
            [200.0, 30.0, 30.0],
            [30.0, 200.0, 30.0],
            [30.0, 30.0, 200.0],
            [220.0, 220.0, 40.0],
        ];
        (0..3)
            .map(|c| {
                Array2::from_shape_fn((h, w), |(y, x)| {
                    colours[(y >= h / 2) as usize * 2 + (x >= w / 2) as usize][c]
                })
            })
            .collect()
    }

    #[test]
    fn four_flat_squares_give_four_segments() {
        // Unsmoothed: the quadrants' edges are sharp, so exactly four segments.
        let s = segment(&quadrants(40, 60), 100.0, 20);
        assert_eq!(s.count, 4);
        assert_eq!(s.labels[[0, 0]], 0);
        assert_eq!(s.labels[[0, 59]], 1);
        assert_eq!(s.labels[[39, 0]], 2);
        assert_eq!(s.labels[[39, 59]], 3);
        // Each quadrant is one label throughout.
        for y in 0..40 {
            for x in 0..60 {
                assert_eq!(
                    s.labels[[y, x]] as usize,
                    (y >= 20) as usize * 2 + (x >= 30) as usize
                );
            }
        }
    }

    #[test]
    fn smoothing_blurs_edges_into_strips_that_min_size_removes() {
        let img: Vec<Array2<f32>> = quadrants(40, 60).iter().map(|c| smooth(c, 0.8)).collect();
        // Blurred edges form thin strips of intermediate colour (20-30 px each) ...
        assert!(segment(&img, 100.0, 20).count > 4);
        // ... which a minimum size above their size folds into the quadrants.
        assert_eq!(segment(&img, 100.0, 100).count, 4);
    }

    #[test]
    fn small_components_are_merged_away() {
        // A single odd pixel joins its surroundings when min_size > 1.
        let mut ch = Array2::<f32>::zeros((10, 10));
        ch[[5, 5]] = 255.0;
        let s = segment(&[ch.clone()], 1.0, 5);
        assert_eq!(s.count, 1);
        let s = segment(&[ch], 1.0, 1);
        assert_eq!(s.count, 2);
    }

    #[test]
    fn degenerate_images() {
        assert_eq!(segment(&[Array2::<f32>::zeros((1, 1))], 50.0, 50).count, 1);
        assert_eq!(segment(&[Array2::<f32>::zeros((0, 0))], 50.0, 50).count, 0);
        assert_eq!(
            segment(&[Array2::<f32>::from_elem((30, 30), 7.0)], 50.0, 50).count,
            1
        );
    }
}
