//! `rcnn bench train`: regions per second through a whole training step (upload, forward with
//! the auxiliary heads, loss, backward, SGD, Polyak averaging), per precision.

use std::time::Duration;

use tch::{Device, Kind, Tensor};

use super::classifier::median_rate;
use crate::model::config::{IMAGENET_MEAN, IMAGENET_STD};
use crate::model::normalise::Normaliser;
use crate::model::precision::Precision;
use crate::model::{GoogLeNetConfig, Layout, Model, ModelError};
use crate::run::tensor::pinned;
use crate::train::sgd::{Polyak, Sgd};
use crate::train::{backward_and_step, loss_of, LossScaler};

#[derive(Debug, Clone)]
pub struct TrainBench {
    pub layout: Layout,
    pub width: f64,
    pub input_size: i64,
    pub num_classes: i64,
    /// Regions per step (R-CNN: 128).
    pub batch: i64,
    pub precisions: Vec<Precision>,
    pub warmup: usize,
    pub repeats: usize,
    pub min_time: Duration,
    pub device: Device,
}

#[derive(Debug, Clone)]
pub struct TrainRow {
    pub precision: Precision,
    /// Median over the repeats.
    pub regions_per_s: f64,
    pub steps: usize,
}

/// Times training steps on random regions and labels (the speed does not depend on them).
pub fn run(
    bench: &TrainBench,
    mut on_row: impl FnMut(&TrainRow),
) -> Result<Vec<TrainRow>, ModelError> {
    let config = GoogLeNetConfig {
        width: bench.width,
        input_size: bench.input_size,
        num_classes: bench.num_classes,
        aux_logits: true,
        ..GoogLeNetConfig::new(bench.layout)
    };
    let s = bench.input_size;
    let (crops, labels) = {
        tch::manual_seed(0);
        let crops = Tensor::randint(256, [bench.batch, 3, s, s], (Kind::Uint8, Device::Cpu));
        let labels = Tensor::randint(bench.num_classes, [bench.batch], (Kind::Int64, Device::Cpu));
        (pinned(crops, bench.device), pinned(labels, bench.device))
    };
    let norm = Normaliser::new(IMAGENET_MEAN, IMAGENET_STD, bench.device);
    let mut rows = Vec::new();
    for &precision in &bench.precisions {
        tch::manual_seed(0);
        let net = Model::new(&config, Vec::new(), bench.device)?;
        let mut avg = Model::new(&config, Vec::new(), bench.device)?;
        avg.vs.freeze();
        let mut sgd = Sgd::new(&net.vs, 0.9, 2e-4);
        let mut polyak = Polyak::new(&avg.vs, &net.vs);
        let mut scaler = (precision == Precision::Fp16).then(LossScaler::default);
        let mut step = 0;
        let (regions_per_s, steps) = median_rate(
            bench.device,
            bench.batch,
            bench.warmup,
            bench.repeats,
            bench.min_time,
            || {
                // Bytes up from pinned memory each step and normalised there, as `rcnn train
                // --pixels cache` does.
                let x = norm.apply(&crops.to_device_(bench.device, Kind::Uint8, true, false));
                let labels = labels.to_device_(bench.device, Kind::Int64, true, false);
                let logits = net.net.forward_t(&x.to_kind(precision.kind()), true);
                let loss = loss_of(&logits, &labels, 0.3);
                backward_and_step(&loss, &mut sgd, scaler.as_mut(), 1e-3);
                polyak.update(sgd.weights(), 0.999, step);
                // The step reads its loss back, as `rcnn train` does (divergence check, log).
                let _ = loss.double_value(&[]);
                step += 1;
            },
        );
        let row = TrainRow {
            precision,
            regions_per_s,
            steps,
        };
        on_row(&row);
        rows.push(row);
    }
    Ok(rows)
}
