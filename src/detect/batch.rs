//! The device stage of `rcnn detect`: everything that touches the device in one place. Each
//! decoded image goes up once as bytes; its crops are warped there (grid sampling on
//! [`crate::detect::warp::placement`]'s arithmetic) or, with `--warp cpu`, by OpenCV on the host;
//! batches take crops from as many images as they need, always padded to the same size; the
//! ensemble's averaged scores stay on
//! the device until an image is complete, then come back in one copy.

use std::collections::VecDeque;
use std::time::Instant;

use eval::BBox;
use proposals::RgbImage;
use tch::{Device, Kind, Tensor};

use crate::detect::warp::{warp_boxes, WarpParams, WarpSource};
use crate::ensemble::Ensemble;
use crate::model::normalise::Normaliser;
use crate::run::tensor::upload;
use crate::run::tensor::{host_values, rows};

/// Where the R-CNN warp runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
