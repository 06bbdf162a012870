//! The device stage of `rcnn detect`: everything that touches the device in one place. Each
//! decoded image goes up once as bytes; its crops are warped there (grid sampling on
//! [`crate::warp::placement`]'s arithmetic) or, with `--warp cpu`, by OpenCV on the host;
//! batches take crops from as many images as they need, always padded to the same size; the
//! ensemble's averaged scores stay on
//! the device until an image is complete, then come back in one copy.

use std::collections::VecDeque;
use std::time::Instant;

use eval::BBox;
use proposals::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::classifier::{host_values, rows, Ensemble};
use crate::warp::{normalisation, placement, WarpParams, WarpSource};

/// Where the R-CNN warp runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WarpMode {
    /// Grid sampling on the network's device, from the image uploaded once as bytes.
    #[default]
    Device,
    /// OpenCV's bilinear resize on the host, crops uploaded as f32.
    Cpu,
}

/// Crops per forward pass when the user does not say: large fixed batches keep a GPU busy;
/// on the CPU larger batches gain little and cost memory.
pub fn default_batch(device: Device) -> usize {
    match device {
        Device::Cuda(_) => 256,
        _ => 32,
    }
}

/// `t` in pinned (page-locked) host memory when `device` is a GPU, so that its upload with
/// `non_blocking` is asynchronous and the host goes on working; as it is otherwise.
pub fn pinned(t: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) => t.pin_memory(device),
        _ => t,
    }
}

/// An image on the device: `[1, 3, H, W]` f32 (0..255), uploaded once as bytes.
pub fn upload(img: &RgbImage, device: Device) -> Tensor {
    let (h, w, _) = img.dim();
    let host =
        Tensor::from_slice(img.as_slice().expect("standard layout")).view([h as i64, w as i64, 3]);
    pinned(host, device)
        .to_device_(device, Kind::Uint8, true, false)
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
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

/// How an image's crops are made.
enum Source {
    Device(Tensor),
    Cpu(WarpSource),
}

struct Pending<T> {
    tag: T,
    boxes: Vec<BBox>,
    source: Source,
    /// Crops already sent to the device.
    sent: usize,
    /// Score tensors of the sent crops, on the device, in order.
    scores: Vec<Tensor>,
    /// Their box-regression deltas, with regression.
    deltas: Vec<Tensor>,
    /// The image's width and height.
    size: (usize, usize),
    /// Batches launched when its last crop was sent.
    finished_after: usize,
    /// Why its crops could not be made (OpenCV failed on it): it is reported, not scored.
    failure: Option<String>,
}

/// An image through the device stage.
pub struct Scored<T> {
    pub tag: T,
    pub boxes: Vec<BBox>,
    /// `[boxes, classes]`.
    pub scores: Vec<Vec<f32>>,
    /// `[boxes, classes, 4]` box-regression deltas, row-major, when the ensemble regresses.
    pub deltas: Option<Vec<f32>>,
    /// Width and height of the image.
    pub size: (usize, usize),
}

/// An image scored, or its tag and why it failed.
pub type Finished<T> = Result<Scored<T>, (T, String)>;

/// Seconds spent in the device stage's parts.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceTimes {
    /// Upload of images (device warp) or OpenCV's warp and the upload of its crops.
    pub upload: f64,
    pub warp: f64,
    /// Forward passes (on a GPU: their launch, plus waits where the queue is full).
    pub classify: f64,
    /// Copying each image's scores back (on a GPU: waiting for its work to finish).
    pub readback: f64,
}

/// Images queued for the device, in order; `T` is what the caller needs back with the scores.
pub struct DeviceStage<'e, T> {
    ensemble: &'e Ensemble,
    warp: WarpMode,
    params: WarpParams,
    norm: Normaliser,
    /// Crops in every forward pass: a short batch is padded to it.
    batch: usize,
    pending: VecDeque<Pending<T>>,
    /// Batches launched so far.
    launched: usize,
    pub times: DeviceTimes,
}

impl<'e, T> DeviceStage<'e, T> {
    pub fn new(ensemble: &'e Ensemble, warp: WarpMode, batch: usize) -> Self {
        let config = ensemble.models[0].config();
        let params = WarpParams::new(config.input_size as i32, config.mean, config.std);
        DeviceStage {
            ensemble,
            warp,
            params,
            norm: Normaliser::new(params.mean, params.std, ensemble.device),
            batch: batch.max(1),
            pending: VecDeque::new(),
            launched: 0,
            times: DeviceTimes::default(),
        }
    }

    /// Queues an image and its proposals; the pixels go to the device now (device warp).
    pub fn push(&mut self, tag: T, img: &RgbImage, boxes: Vec<BBox>) -> Result<(), String> {
        let start = Instant::now();
        let source = match self.warp {
            WarpMode::Device => Source::Device(upload(img, self.ensemble.device)),
            WarpMode::Cpu => Source::Cpu(WarpSource::new(img).map_err(|e| format!("OpenCV: {e}"))?),
        };
        self.times.upload += start.elapsed().as_secs_f64();
        let (h, w, _) = img.dim();
        self.pending.push_back(Pending {
            tag,
            boxes,
            source,
            sent: 0,
            scores: Vec::new(),
            deltas: Vec::new(),
            size: (w, h),
            finished_after: self.launched,
            failure: None,
        });
        Ok(())
    }

    /// Crops queued but not yet sent to the device.
    pub fn waiting(&self) -> usize {
        self.pending.iter().map(|p| p.boxes.len() - p.sent).sum()
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// One forward pass over up to `batch` waiting crops, taken from as many images as needed.
    /// An image whose crops cannot be made is set aside as failed; the others go on.
    pub fn run_batch(&mut self) {
        let s = self.params.size as i64;
        let mut parts: Vec<Tensor> = Vec::new();
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut taken = 0;
        for (i, item) in self.pending.iter_mut().enumerate() {
            let take = (item.boxes.len() - item.sent).min(self.batch - taken);
            if take == 0 {
                continue;
            }
            let boxes = &item.boxes[item.sent..item.sent + take];
            let start = Instant::now();
            let crops = match &item.source {
                Source::Device(image) => Ok(warp_boxes(image, boxes, &self.params, &self.norm)),
                Source::Cpu(src) => {
                    let mut crops = vec![0f32; take * 3 * (s * s) as usize];
                    boxes
                        .iter()
                        .zip(crops.chunks_mut(3 * (s * s) as usize))
                        .try_for_each(|(b, out)| src.warp_into(b, &self.params, out))
                        .map(|()| {
                            Tensor::from_slice(&crops)
                                .view([take as i64, 3, s, s])
                                .to_device(self.ensemble.device)
                        })
                        .map_err(|e| format!("OpenCV: {e}"))
                }
            };
            self.times.warp += start.elapsed().as_secs_f64();
            match crops {
                Ok(crops) => parts.push(crops),
                Err(reason) => {
                    item.failure = Some(reason);
                    item.sent = item.boxes.len();
                    item.finished_after = self.launched;
                    continue;
                }
            }
            item.sent += take;
            item.finished_after = self.launched + 1;
            owners.push((i, take));
            taken += take;
            if taken == self.batch {
                break;
            }
        }
        if taken == 0 {
            return;
        }
        let start = Instant::now();
        // Every batch has `batch` crops: cuDNN sees one shape, and a crop's scores do not depend
        // on which crops share its batch (libtorch's CPU kernels vary with the batch size, not
        // with the companions: measured bitwise), so shards and resumed runs equal one run.
        if taken < self.batch {
            parts.push(Tensor::zeros(
                [(self.batch - taken) as i64, 3, s, s],
                (Kind::Float, self.ensemble.device),
            ));
        }
        let input = Tensor::cat(&parts, 0);
        let (scores, deltas) = self.ensemble.classify(&input);
        self.launched += 1;
        let mut offset = 0;
        for (i, take) in owners {
            let item = &mut self.pending[i];
            item.scores.push(scores.narrow(0, offset, take as i64));
            if let Some(d) = &deltas {
                item.deltas.push(d.narrow(0, offset, take as i64));
            }
            offset += take as i64;
        }
        self.times.classify += start.elapsed().as_secs_f64();
    }

    /// The first queued image, once all its crops are scored: its tag, boxes and `[boxes,
    /// classes]` scores, copied back in one piece. Unless `drain`, only once a later batch has
    /// been launched: the copy waits for the image's work, and a GPU with the next batch queued
    /// keeps busy meanwhile.
    pub fn pop_finished(&mut self, drain: bool) -> Option<Finished<T>> {
        let front = self.pending.front()?;
        if front.sent < front.boxes.len() || !(drain || front.finished_after < self.launched) {
            return None;
        }
        let item = self.pending.pop_front().expect("checked");
        if let Some(reason) = item.failure {
            return Some(Err((item.tag, reason)));
        }
        let start = Instant::now();
        let scores = if item.scores.is_empty() {
            Vec::new()
        } else {
            rows(&Tensor::cat(&item.scores, 0))
        };
        let deltas = self.ensemble.box_regression.then(|| {
            if item.deltas.is_empty() {
                return Vec::new();
            }
            host_values(&Tensor::cat(&item.deltas, 0))
        });
        self.times.readback += start.elapsed().as_secs_f64();
        Some(Ok(Scored {
            tag: item.tag,
            boxes: item.boxes,
            scores,
            deltas,
            size: item.size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warp::WarpParams;

    /// Largest difference, in grey levels, between the device warp and OpenCV's of each box, and
    /// whether the mean-filled pixels are exactly the same.
    fn compare(img: &RgbImage, boxes: &[BBox], p: &WarpParams) -> Vec<f32> {
        let s = p.size as usize;
        let source = WarpSource::new(img).unwrap();
        // On RCNN_TEST_DEVICE: the same code runs on CPU and CUDA tensors.
        let device = crate::device::test_device();
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
        let photo =
            crate::decode::decode(std::path::Path::new("data/raccoon/images/raccoon-1.jpg"))
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
