//! GoogLeNet's classification test (Szegedy et al. 2014, section 7): every image cropped 1, 10
//! or 144 times, the softmax averaged over the crops and the networks.
//!
//! Resizing is bilinear with antialiasing (libtorch's `_upsample_bilinear2d_aa`, which is what
//! torchvision's `resize(..., antialias=True)` runs on tensors) on f32 pixels, never rounded
//! to bytes in between: PIL's resize and torchvision's on uint8 tensors round after each
//! step, which moves probabilities by ~1e-3. Sizes and offsets follow torchvision's rules, so
//! that its transforms reproduce our crops exactly: a resize to a shorter side truncates the
//! longer side (`int(S * long / short)`), a centre crop's offset is `round((outer - inner) /
//! 2)` with Python's rounding (half to even), and a mirrored crop is the same crop of the
//! mirrored image (torchvision's `TenCrop`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use proposals::RgbImage;
use tch::{Kind, Tensor};

use crate::ensemble::Ensemble;
use crate::run::tensor::host_values;
use crate::run::tensor::upload;

/// How many crops of each image are classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Crops {
    /// The centre crop of the image resized to 256 on its shorter side (torchvision's
    /// ImageNet evaluation).
    #[cfg_attr(feature = "cli", value(name = "1"))]
    One,
    /// The four corners and the centre at 256, and their mirror images (torchvision's
    /// `TenCrop`).
    #[cfg_attr(feature = "cli", value(name = "10"))]
    Ten,
    /// The paper's 144: shorter side 256, 288, 320 and 352; the left, centre and right
    /// squares (top, centre and bottom for portraits); from each, the four corners, the
    /// centre and the whole square resized; each and its mirror image.
    #[cfg_attr(feature = "cli", value(name = "144"))]
    Paper,
}

impl Crops {
    pub fn count(self) -> usize {
        match self {
            Crops::One => 1,
            Crops::Ten => 10,
            Crops::Paper => 144,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Crops::One => "1",
            Crops::Ten => "10",
            Crops::Paper => "144",
        }
    }

    /// The shorter sides the image is resized to, for a network fed `input`-pixel squares:
    /// the paper's 256..352 for 224, in proportion for other inputs.
    pub fn scales(self, input: i64) -> Vec<i64> {
        let scale = |s: i64| (s * input + 112) / 224;
        match self {
            Crops::One | Crops::Ten => vec![scale(256)],
            Crops::Paper => [256, 288, 320, 352].map(scale).to_vec(),
        }
    }
}

/// One crop: the square window `[x, x + side) x [y, y + side)` of the image resized to
/// `short` on its shorter side, resized to the network's input when `side` differs from it,
/// then mirrored left to right when `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropSpec {
    pub short: i64,
    pub x: i64,
    pub y: i64,
    pub side: i64,
    pub flip: bool,
}

/// `(height, width)` of an `h x w` image resized to `short` on its shorter side, as
/// torchvision computes it (the longer side truncated).
pub fn resized_size(h: i64, w: i64, short: i64) -> (i64, i64) {
    let long = |a: i64, b: i64| (short as f64 * a as f64 / b as f64) as i64;
    if w <= h {
        (long(h, w), short)
    } else {
        (short, long(w, h))
    }
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r as i64 % 2 != 0 {
        (r - x.signum()) as i64
    } else {
        r as i64
    }
}

/// torchvision's `center_crop` offset of `inner` in `outer`.
fn centre(outer: i64, inner: i64) -> i64 {
    round_half_even((outer - inner) as f64 / 2.0)
}

/// torchvision's `five_crop` of a `w x h` region: `(x, y)` of the top-left, top-right,
/// bottom-left, bottom-right and centre `side` squares.
fn five(w: i64, h: i64, side: i64) -> [(i64, i64); 5] {
    [
        (0, 0),
        (w - side, 0),
        (0, h - side),
        (w - side, h - side),
        (centre(w, side), centre(h, side)),
    ]
}

/// The crops of an `h x w` image for a network fed `input`-pixel squares, in torchvision's
/// order (a crop of the mirrored region is its window mirrored back, flipped).
pub fn plan(h: i64, w: i64, crops: Crops, input: i64) -> Vec<CropSpec> {
    let mut out = Vec::with_capacity(crops.count());
    for short in crops.scales(input) {
        let (rh, rw) = resized_size(h, w, short);
        // The region's five crops, then the five of its mirror image, as windows of the image.
        let ten = |out: &mut Vec<CropSpec>, x0: i64, y0: i64, rw: i64, rh: i64, whole: bool| {
            for flip in [false, true] {
                for (x, y) in five(rw, rh, input) {
                    let x = if flip { rw - input - x } else { x };
                    out.push(CropSpec {
                        short,
                        x: x0 + x,
                        y: y0 + y,
                        side: input,
                        flip,
                    });
                }
                if whole {
                    out.push(CropSpec {
                        short,
                        x: x0,
                        y: y0,
                        side: rw,
                        flip,
                    });
                }
            }
        };
        match crops {
            Crops::One => out.push(CropSpec {
                short,
                x: centre(rw, input),
                y: centre(rh, input),
                side: input,
                flip: false,
            }),
            Crops::Ten => ten(&mut out, 0, 0, rw, rh, false),
            Crops::Paper => {
                let squares = if rw >= rh {
                    [(0, 0), (centre(rw, short), 0), (rw - short, 0)]
                } else {
                    [(0, 0), (0, centre(rh, short)), (0, rh - short)]
                };
                for (x0, y0) in squares {
                    ten(&mut out, x0, y0, short, short, true);
                }
            }
        }
    }
    debug_assert_eq!(out.len(), crops.count());
    out
}

/// `x` (`[n, 3, h, w]` f32) resized to `h x w` with antialiased bilinear interpolation; as it
/// is when already that size (as torchvision does).
fn resize(x: &Tensor, h: i64, w: i64) -> Tensor {
    let size = x.size();
    if size[2] == h && size[3] == w {
        return x.shallow_clone();
    }
    x.internal_upsample_bilinear2d_aa([h, w], false, None, None)
}

/// The crops of `plan` from an uploaded image (`[1, 3, H, W]` f32, 0..255): `[n, 3, input,
/// input]` f32 pixels on the image's device, in the plan's order.
pub fn make_crops(image: &Tensor, plan: &[CropSpec], input: i64) -> Tensor {
    let (h, w) = (image.size()[2], image.size()[3]);
    let mut resized: Option<(i64, Tensor)> = None;
    let crops: Vec<Tensor> = plan
        .iter()
        .map(|c| {
            if resized.as_ref().is_none_or(|(s, _)| *s != c.short) {
                let (rh, rw) = resized_size(h, w, c.short);
                resized = Some((c.short, resize(image, rh, rw)));
            }
            let source = &resized.as_ref().expect("resized above").1;
            let window = source.narrow(2, c.y, c.side).narrow(3, c.x, c.side);
            let crop = resize(&window, input, input);
            if c.flip {
                crop.flip([3])
            } else {
                crop
            }
        })
        .collect();
    Tensor::cat(&crops, 0)
}

/// Longest side over shortest beyond which an image is refused: resized to 352 on its shorter
/// side, a 1 x 5000 strip would become 1.76 million pixels long (gigabytes of crops' source)
/// and no crop of it would show anything.
pub const MAX_ASPECT: usize = 20;

fn check_aspect(h: usize, w: usize) -> Result<(), String> {
    let (short, long) = (h.min(w), h.max(w));
    if long > MAX_ASPECT * short {
        return Err(format!(
            "{w} x {h}: one side is more than {MAX_ASPECT} times the other; skipped"
        ));
    }
    Ok(())
}

/// Settings of a classification run.
#[derive(Debug, Clone)]
pub struct ClassifyParams {
    pub crops: Crops,
    /// Crops per forward pass, padded to this size (crops of many images share a batch).
    pub batch: usize,
    /// Threads decoding images ahead of the device.
    pub workers: usize,
}

/// One image's result.
pub enum Classified {
    /// The mean probability of each class over the crops and the networks.
    Done {
        image: PathBuf,
        probabilities: Vec<f32>,
    },
    Failed {
        image: PathBuf,
        reason: String,
    },
}

/// Seconds spent in each stage of a run (decode summed over the workers).
#[derive(Debug, Default, Clone, Copy)]
pub struct ClassifyTimes {
    pub decode: f64,
    pub crops: f64,
    pub classify: f64,
    pub readback: f64,
    /// The device stage waiting for decoded images.
    pub starved: f64,
    pub wall: f64,
}

/// An image in the device stage: its crops not yet in a batch, and the scores of those that
/// were.
struct Job {
    image: PathBuf,
    /// `Err` for an image that failed; it leaves in its turn, so results stay in order.
    crops: Result<Tensor, String>,
    total: i64,
    taken: i64,
    scores: Vec<Tensor>,
    scored: i64,
}

/// Classifies `images` (decoded on `p.workers` threads), calling `on_image` for each in the
/// order of `images`.
pub fn classify(
    images: &[PathBuf],
    ensemble: &Ensemble,
    p: &ClassifyParams,
    mut on_image: impl FnMut(Classified),
) -> ClassifyTimes {
    let wall = Instant::now();
    let mut t = ClassifyTimes::default();
    let input = ensemble.input_size();
    let device = ensemble.device;
    let batch = p.batch.max(1) as i64;
    let workers = p.workers.max(1);
    let (tx, rx) =
        std::sync::mpsc::sync_channel::<(PathBuf, Result<RgbImage, String>, f64)>(workers);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            crate::run::ordered::in_order(
                images.len(),
                workers,
                2 * workers,
                |i| {
                    let start = Instant::now();
                    let r = crate::detect::decode::decode(&images[i]).map_err(|e| e.reason);
                    (images[i].clone(), r, start.elapsed().as_secs_f64())
                },
                |r| tx.send(r).is_ok(),
            )
        });
        let mut jobs: VecDeque<Job> = VecDeque::new();
        let waiting = |jobs: &VecDeque<Job>| jobs.iter().map(|j| j.total - j.taken).sum::<i64>();
        let mut open = true;
        loop {
            while open && waiting(&jobs) < batch {
                let start = Instant::now();
                let received = rx.recv();
                t.starved += start.elapsed().as_secs_f64();
                let Ok((image, decoded, seconds)) = received else {
                    open = false;
                    break;
                };
                t.decode += seconds;
                let start = Instant::now();
                let crops = decoded.and_then(|rgb| {
                    let (h, w, _) = rgb.dim();
                    check_aspect(h, w)?;
                    let plan = plan(h as i64, w as i64, p.crops, input);
                    Ok(tch::no_grad(|| {
                        make_crops(&upload(&rgb, device), &plan, input)
                    }))
                });
                t.crops += start.elapsed().as_secs_f64();
                let total = crops.as_ref().map_or(0, |c| c.size()[0]);
                jobs.push_back(Job {
                    image,
                    crops,
                    total,
                    taken: 0,
                    scores: Vec::new(),
                    scored: 0,
                });
            }
            if waiting(&jobs) > 0 {
                run_batch(&mut jobs, ensemble, batch, &mut t);
            }
            // Finished images leave in order.
            while jobs
                .front()
                .is_some_and(|j| j.crops.is_err() || j.scored == j.total)
            {
                let job = jobs.pop_front().expect("a front job");
                match job.crops {
                    Err(reason) => on_image(Classified::Failed {
                        image: job.image,
                        reason,
                    }),
                    Ok(_) => {
                        let start = Instant::now();
                        let mean = Tensor::cat(&job.scores, 0).mean_dim(0, false, Kind::Float);
                        let probabilities = host_values(&mean);
                        t.readback += start.elapsed().as_secs_f64();
                        on_image(Classified::Done {
                            image: job.image,
                            probabilities,
                        })
                    }
                }
            }
            if !open && jobs.is_empty() {
                break;
            }
        }
    });
    t.wall = wall.elapsed().as_secs_f64();
    t
}

/// One forward pass over the next `batch` waiting crops (of as many images as it takes), padded
/// to `batch` so that every pass has the same shape; the scores go back to their images.
fn run_batch(jobs: &mut VecDeque<Job>, ensemble: &Ensemble, batch: i64, t: &mut ClassifyTimes) {
    let start = Instant::now();
    let mut parts = Vec::new();
    let mut owners = Vec::new();
    let mut n = 0;
    for (i, job) in jobs.iter_mut().enumerate() {
        let Ok(crops) = &job.crops else { continue };
        let take = (job.total - job.taken).min(batch - n);
        if take > 0 {
            parts.push(crops.narrow(0, job.taken, take));
            owners.push((i, take));
            job.taken += take;
            n += take;
        }
        if n == batch {
            break;
        }
    }
    let first = &parts[0];
    if n < batch {
        let size = first.size();
        parts.push(Tensor::zeros(
            [batch - n, size[1], size[2], size[3]],
            (first.kind(), first.device()),
        ));
    }
    let scores = ensemble.image_scores(&Tensor::cat(&parts, 0));
    let mut row = 0;
    for (i, take) in owners {
        let job = &mut jobs[i];
        job.scores.push(scores.narrow(0, row, take));
        job.scored += take;
        row += take;
    }
    t.classify += start.elapsed().as_secs_f64();
}

/// The `k` most probable classes, best first (ties: the lower index first).
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|i| (i, probabilities[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_and_torchvision_sizes() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(16.5), 16);
        assert_eq!(round_half_even(17.5), 18);
        assert_eq!(round_half_even(3.2), 3);
        // 500 x 375 -> 256 on the shorter side: 341.33 truncated.
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(300, 300, 352), (352, 352));
        assert_eq!(Crops::Paper.scales(224), vec![256, 288, 320, 352]);
        assert_eq!(Crops::Paper.scales(96), vec![110, 123, 137, 151]);
    }

    #[test]
    fn one_and_ten_crops_as_torchvision_takes_them() {
        // 341 x 256 after resizing: 117 columns to spare, an odd number.
        let one = plan(375, 500, Crops::One, 224);
        assert_eq!(
            one,
            vec![CropSpec {
                short: 256,
                x: 58,
                y: 16,
                side: 224,
                flip: false
            }]
        );
        let ten = plan(375, 500, Crops::Ten, 224);
        let xy: Vec<(i64, i64, bool)> = ten.iter().map(|c| (c.x, c.y, c.flip)).collect();
        assert_eq!(
            xy,
            vec![
                (0, 0, false),
                (117, 0, false),
                (0, 32, false),
                (117, 32, false),
                (58, 16, false),
                // Crops of the mirrored image: its top-left is the right edge mirrored, and its
                // centre (column 58 there) is column 117 - 58 = 59 here.
                (117, 0, true),
                (0, 0, true),
                (117, 32, true),
                (0, 32, true),
                (59, 16, true),
            ]
        );
    }

    #[test]
    fn the_papers_144_crops() {
        for (h, w) in [(375, 500), (500, 375), (300, 300), (100, 1000)] {
            let p = plan(h, w, Crops::Paper, 224);
            assert_eq!(p.len(), 144, "{h} x {w}");
            // Per scale: 3 squares x (5 + whole) x 2 mirrors.
            for (k, short) in [256, 288, 320, 352].into_iter().enumerate() {
                let s = &p[k * 36..(k + 1) * 36];
                assert!(s.iter().all(|c| c.short == short));
                assert_eq!(s.iter().filter(|c| c.side == short).count(), 6);
                assert_eq!(s.iter().filter(|c| c.flip).count(), 18);
                let (rh, rw) = resized_size(h, w, short);
                assert!(s
                    .iter()
                    .all(|c| c.x >= 0 && c.y >= 0 && c.x + c.side <= rw && c.y + c.side <= rh));
            }
        }
        // A landscape's squares at 256 (341 wide): left, centre (round(42.5) = 42), right.
        let p = plan(375, 500, Crops::Paper, 224);
        let wholes: Vec<(i64, i64)> = p[..36]
            .iter()
            .filter(|c| c.side == 256 && !c.flip)
            .map(|c| (c.x, c.y))
            .collect();
        assert_eq!(wholes, vec![(0, 0), (42, 0), (85, 0)]);
        // A portrait's go down.
        let p = plan(500, 375, Crops::Paper, 224);
        let wholes: Vec<(i64, i64)> = p[..36]
            .iter()
            .filter(|c| c.side == 256 && !c.flip)
            .map(|c| (c.x, c.y))
            .collect();
        assert_eq!(wholes, vec![(0, 0), (0, 42), (0, 85)]);
        // The centre 224 crop of the centre square, and its mirror.
        assert!(p.contains(&CropSpec {
            short: 256,
            x: 16,
            y: 58,
            side: 224,
            flip: false
        }));
        assert!(p.contains(&CropSpec {
            short: 256,
            x: 16,
            y: 58,
            side: 224,
            flip: true
        }));
    }

    #[test]
    fn crops_are_the_windows_of_the_resized_image() {
        let device = crate::run::device::test_device();
        let image = Tensor::arange(3 * 40 * 50, (Kind::Float, device))
            .view([1, 3, 40, 50])
            .remainder(251.0);
        let specs = [
            CropSpec {
                short: 40,
                x: 3,
                y: 5,
                side: 32,
                flip: false,
            },
            CropSpec {
                short: 40,
                x: 3,
                y: 5,
                side: 32,
                flip: true,
            },
            CropSpec {
                short: 40,
                x: 10,
                y: 0,
                side: 40,
                flip: false,
            },
        ];
        let crops = make_crops(&image, &specs, 32);
        assert_eq!(crops.size(), [3, 3, 32, 32]);
        // At the image's own size nothing is resampled: exact windows.
        let window = image.narrow(2, 5, 32).narrow(3, 3, 32);
        assert_eq!(
            f64::try_from((crops.get(0) - window.get(0)).abs().max()).unwrap(),
            0.0
        );
        assert_eq!(
            f64::try_from((crops.get(1) - window.get(0).flip([2])).abs().max()).unwrap(),
            0.0
        );
        // A 40-pixel square resized to 32 keeps the mean of a smooth image.
        let whole = image.narrow(3, 10, 40);
        let m = |t: &Tensor| f64::try_from(t.mean(Kind::Double)).unwrap();
        assert!((m(&crops.get(2)) - m(&whole)).abs() < 2.0);
    }

    #[test]
    fn strips_are_refused_not_resized_to_gigabytes() {
        assert!(check_aspect(375, 500).is_ok());
        assert!(check_aspect(10, 200).is_ok());
        let err = check_aspect(1, 5000).unwrap_err();
        assert!(err.contains("5000 x 1"), "{err}");
    }

    #[test]
    fn top_k_best_first_ties_by_index() {
        let p = [0.1, 0.4, 0.1, 0.4];
        assert_eq!(top_k(&p, 3), vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
        assert_eq!(top_k(&p, 9).len(), 4);
    }
}
