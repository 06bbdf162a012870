//! `rcnn bench classify`: `rcnn classify`'s pipeline with each crop count and ensemble size:
//! images/s, and crops/s against the networks' raw crops/s at the same batch size, measured in
//! the same run.

use std::path::PathBuf;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use super::classifier::median_rate;
use super::gpu::synchronize;
use crate::classify::{classify, Classified, ClassifyParams, ClassifyTimes, Crops};
use crate::ensemble::Ensemble;
use crate::jobs::{ensure, Inference, JobError};
use crate::model::{GoogLeNetConfig, Layout, Model};

#[derive(Debug, Clone)]
pub struct ClassifyBench {
    /// Images, cycled through.
    pub from: PathBuf,
    /// Timed images per row (default: whole batches of crops, at least four, and at least 40
    /// images on CUDA, 2 on the CPU).
    pub images: Option<usize>,
    pub crops: Vec<Crops>,
    pub networks: Vec<usize>,
    /// Width multiplier of the untrained torchvision-layout, 1000-class networks.
    pub width: f64,
    pub inference: Inference,
}

/// The run's settings, once decided (for the header).
#[derive(Debug, Clone)]
pub struct ClassifySetup {
    pub device: Device,
    pub batch: usize,
    pub workers: usize,
    pub channels_last: bool,
}

/// One ensemble size and crop count.
#[derive(Debug, Clone)]
pub struct ClassifyRow {
    pub networks: usize,
    pub crops: Crops,
    pub images: usize,
    pub images_per_s: f64,
    /// Crops classified per second by the whole ensemble, each through every network.
    pub crops_per_s: f64,
    /// The networks' forward passes alone on a ready batch.
    pub raw_crops_per_s: f64,
    /// Seconds per image in each stage.
    pub per_image: ClassifyTimes,
}

#[derive(Debug, Clone)]
pub enum ClassifyLine {
    Setup(ClassifySetup),
    Row(ClassifyRow),
}

/// Runs the benchmark, handing each line to `report` as it is measured.
pub fn run(b: &ClassifyBench, mut report: impl FnMut(ClassifyLine)) -> Result<(), JobError> {
    let device = crate::run::device::select(b.inference.device, b.inference.threads)?;
    let cuda = device.is_cuda();
    let batch = b.inference.batch(device);
    // Whole batches only (a run's last batch is padded, which a short row would feel): a
    // multiple of the images whose crops fill a batch exactly, at least four batches' worth.
    let n_images = |crops: Crops| {
        let c = crops.count();
        let gcd = (1..=c.min(batch))
            .rev()
            .find(|&d| c.is_multiple_of(d) && batch.is_multiple_of(d))
            .unwrap_or(1);
        let unit = batch / gcd;
        let least = (4 * batch).div_ceil(c).max(if cuda { 40 } else { 2 });
        b.images.unwrap_or(least.div_ceil(unit) * unit)
    };
    let workers = b.inference.workers();
    let channels_last = b.inference.channels_last(device);
    let all = crate::detect::decode::collect_images(std::slice::from_ref(&b.from))?;
    ensure(!all.is_empty(), || {
        format!("no images in {}", b.from.display())
    })?;
    let config = GoogLeNetConfig {
        width: b.width,
        num_classes: 1000,
        transform_input: true,
        ..GoogLeNetConfig::new(Layout::Torchvision)
    };
    report(ClassifyLine::Setup(ClassifySetup {
        device,
        batch,
        workers,
        channels_last,
    }));
    for &n in b.networks.iter().filter(|&&n| n > 0) {
        let models = (0..n)
            .map(|i| {
                tch::manual_seed(i as i64);
                Model::new(&config, Vec::new(), device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ensemble =
            Ensemble::of_image_classifiers(models, b.inference.precision.kind(), channels_last)?;
        let s = ensemble.input_size();
        let input = ensemble.network_input(&Tensor::randn(
            [batch as i64, 3, s, s],
            (Kind::Float, device),
        ));
        let (raw, _) = tch::no_grad(|| {
            median_rate(
                device,
                batch as i64,
                if cuda { 5 } else { 1 },
                3,
                Duration::from_secs(1),
                || {
                    for m in &ensemble.models {
                        let _ = m.net.forward_t(&input, false);
                    }
                },
            )
        });
        for &crops in &b.crops {
            let params = ClassifyParams {
                crops,
                batch,
                workers,
            };
            let images: Vec<PathBuf> = all.iter().cycle().take(n_images(crops)).cloned().collect();
            // One untimed image: allocator and cuDNN's algorithm search.
            classify(&images[..1], &ensemble, &params, |_| {});
            synchronize(device);
            let mut done = 0;
            let t = classify(&images, &ensemble, &params, |c| {
                done += usize::from(matches!(c, Classified::Done { .. }));
            });
            let per = |x: f64| x / done.max(1) as f64;
            let crops_per_s = (done * crops.count()) as f64 / t.wall;
            report(ClassifyLine::Row(ClassifyRow {
                networks: n,
                crops,
                images: done,
                images_per_s: done as f64 / t.wall,
                crops_per_s,
                raw_crops_per_s: raw,
                per_image: ClassifyTimes {
                    decode: per(t.decode),
                    crops: per(t.crops),
                    classify: per(t.classify),
                    readback: per(t.readback),
                    starved: per(t.starved),
                    ..t
                },
            }));
        }
    }
    Ok(())
}
