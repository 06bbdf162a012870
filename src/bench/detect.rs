//! `rcnn bench detect`: the detect pipeline in steady state (untimed images first), seconds per
//! image in each stage with one and several full-size networks, images/s, the GPU's busy share
//! and peak memory; optionally the CPU stages alone for a sweep of worker counts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tch::Device;

use super::gpu::{peak_host_memory, synchronize, Busy, Sampler};
use crate::detect::batch::WarpMode;
use crate::detect::postprocess::PostParams;
use crate::detect::warp::{warp_boxes, WarpParams};
use crate::detect::{detect, for_each_prepared, DetectParams, Outcome, StageTimes};
use crate::ensemble::Ensemble;
use crate::jobs::{ensure, Inference, JobError};
use crate::model::config::{IMAGENET_MEAN, IMAGENET_STD};
use crate::model::normalise::Normaliser;
use crate::model::{GoogLeNetConfig, Layout, Model};
use crate::run::tensor::upload;

#[derive(Debug, Clone)]
pub struct DetectBench {
    /// Images, cycled through when more are asked for than there are.
    pub from: PathBuf,
    /// Timed images (default: 50 on CUDA, 2 on the CPU).
    pub images: Option<usize>,
    /// Untimed images first (default: 3 on CUDA, 0 on the CPU).
    pub warmup: Option<usize>,
    /// Proposals per image (default: 2000 on CUDA, 100 on the CPU).
    pub max_proposals: Option<usize>,
    /// Ensemble sizes to time.
    pub networks: Vec<usize>,
    pub warp: WarpMode,
    pub input_size: i64,
    pub inference: Inference,
    /// Worker counts for the CPU stages alone (none: not timed).
    pub worker_sweep: Vec<usize>,
}

/// The run's settings, once decided (for the header).
#[derive(Debug, Clone)]
pub struct DetectSetup {
    pub device: Device,
    pub timed: usize,
    pub warm: usize,
    pub max_proposals: usize,
    pub batch: usize,
    pub workers: usize,
    pub channels_last: bool,
}

/// One ensemble size: the stage times per image, and the machine's load.
#[derive(Debug, Clone)]
pub struct DetectRow {
    pub networks: usize,
    pub crops: usize,
    /// Seconds per image (decode and proposals summed over the workers).
    pub per_image: StageTimes,
    pub images_per_s: f64,
    /// NVML's samples, on CUDA.
    pub busy: Option<Busy>,
    pub peak_host_bytes: u64,
}

#[derive(Debug, Clone)]
pub enum DetectLine {
    Setup(DetectSetup),
    Row(DetectRow),
    /// The CPU stages alone, over this many images.
    SweepStart(usize),
    /// Images/s with this many workers.
    Sweep {
        workers: usize,
        images_per_s: f64,
    },
}

/// Runs the benchmark, handing each line to `report` as it is measured.
pub fn run(b: &DetectBench, mut report: impl FnMut(DetectLine)) -> Result<(), JobError> {
    let device = crate::run::device::select(b.inference.device, b.inference.threads)?;
    let cuda = device.is_cuda();
    // R-CNN's load on a GPU; a CPU would take minutes per image at that size.
    let n_images = b.images.unwrap_or(if cuda { 50 } else { 2 });
    let max_proposals = b.max_proposals.unwrap_or(if cuda { 2000 } else { 100 });
    let warmup = b.warmup.unwrap_or(if cuda { 3 } else { 0 });
    let workers = b.inference.workers();
    let batch = b.inference.batch(device);
    let channels_last = b.inference.channels_last(device);
    let all = crate::detect::decode::collect_images(std::slice::from_ref(&b.from))?;
    ensure(!all.is_empty(), || {
        format!("no images in {}", b.from.display())
    })?;
    let images: Vec<PathBuf> = all
        .iter()
        .cycle()
        .take(n_images + warmup)
        .cloned()
        .collect();
    let (warm, timed) = images.split_at(warmup);
    report(DetectLine::Setup(DetectSetup {
        device,
        timed: timed.len(),
        warm: warm.len(),
        max_proposals,
        batch,
        workers,
        channels_last,
    }));
    let params = DetectParams {
        search: proposals::SearchParams::new(proposals::Mode::Fast),
        max_proposals,
        post: PostParams::default(),
        batch,
        workers,
        warp: b.warp,
        precomputed: None,
        learned: None,
        min_proposals: max_proposals,
    };
    for &n in b.networks.iter().filter(|&&n| n > 0) {
        let models = (0..n)
            .map(|i| {
                tch::manual_seed(i as i64);
                let config = GoogLeNetConfig {
                    input_size: b.input_size,
                    ..GoogLeNetConfig::new(Layout::Paper)
                };
                Model::new(&config, Vec::new(), device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ensemble = Ensemble::with_layout(models, b.inference.precision.kind(), channels_last)?;
        detect(warm, &ensemble, &params, |_| {});
        synchronize(device);
        let sampler = Sampler::start(Duration::from_millis(50));
        let mut crops = 0;
        let t = detect(timed, &ensemble, &params, |o| {
            if let Outcome::Done { proposals, .. } = o {
                crops += proposals;
            }
        });
        let busy = sampler.map(Sampler::finish);
        let per = |s: f64| s / timed.len() as f64;
        report(DetectLine::Row(DetectRow {
            networks: n,
            crops,
            per_image: StageTimes {
                decode: per(t.decode),
                proposals: per(t.proposals),
                upload: per(t.upload),
                warp: per(t.warp),
                classify: per(t.classify),
                readback: per(t.readback),
                postprocess: per(t.postprocess),
                starved: per(t.starved),
                wall: per(t.wall),
            },
            images_per_s: timed.len() as f64 / t.wall,
            busy,
            peak_host_bytes: peak_host_memory(),
        }));
    }
    if !b.worker_sweep.is_empty() {
        cpu_stages(b, &images, device, max_proposals, &mut report);
    }
    Ok(())
}

/// The CPU side alone (decode, proposals, and the device warp of every box) with each worker
/// count: whether the CPU keeps a device fed.
fn cpu_stages(
    b: &DetectBench,
    images: &[PathBuf],
    device: Device,
    max_proposals: usize,
    report: &mut impl FnMut(DetectLine),
) {
    let warp = WarpParams::new(b.input_size as i32, IMAGENET_MEAN, IMAGENET_STD);
    let norm = Normaliser::new(warp.mean, warp.std, device);
    let params = DetectParams {
        search: proposals::SearchParams::new(proposals::Mode::Fast),
        max_proposals,
        post: PostParams::default(),
        batch: 1,
        workers: 1,
        warp: b.warp,
        precomputed: None,
        learned: None,
        min_proposals: max_proposals,
    };
    report(DetectLine::SweepStart(images.len()));
    for &w in &b.worker_sweep {
        let start = Instant::now();
        for_each_prepared(images, &params, w, |r| {
            if let Ok((_, rgb, boxes)) = r {
                let image = upload(&rgb, device);
                for chunk in boxes.chunks(256) {
                    let _ = warp_boxes(&image, chunk, &warp, &norm);
                }
            }
        });
        synchronize(device);
        report(DetectLine::Sweep {
            workers: w,
            images_per_s: images.len() as f64 / start.elapsed().as_secs_f64(),
        });
    }
}
