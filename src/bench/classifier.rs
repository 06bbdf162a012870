//! `rcnn bench classifier`: crops per second and achieved multiply-adds per second of the
//! region classifier, per layout, precision and batch size.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::model::summary::summarize;
use crate::model::{GoogLeNetConfig, Layout, Model, ModelError};

/// Floating-point precision of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Fp16 => Kind::Half,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClassifierBench {
    pub layouts: Vec<Layout>,
    pub precisions: Vec<Precision>,
    pub batch_sizes: Vec<i64>,
    pub input_size: i64,
    pub width: f64,
    pub num_classes: i64,
    /// Each measurement repeats forward passes until this much time has passed (at least one).
    pub min_time: Duration,
    pub device: Device,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierRow {
    pub layout: Layout,
    pub precision: Precision,
    pub batch: i64,
    pub crops_per_s: f64,
    /// Multiply-adds per second actually achieved (multiply-adds per crop x crops/s).
    pub macs_per_s: f64,
    pub passes: usize,
}

fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Times inference (no gradients, eval mode) and calls `on_row` as each row is measured.
pub fn run(
    bench: &ClassifierBench,
    mut on_row: impl FnMut(&ClassifierRow),
) -> Result<Vec<ClassifierRow>, ModelError> {
    let mut rows = Vec::new();
    for &layout in &bench.layouts {
        let mut config = GoogLeNetConfig::new(layout);
        config.input_size = bench.input_size;
        config.width = bench.width;
        config.num_classes = bench.num_classes;
        tch::manual_seed(0);
        let mut model = Model::new(&config, Vec::new(), bench.device)?;
        let macs_per_crop = summarize(&model).macs() as f64;
        for &precision in &bench.precisions {
            model.vs.set_kind(precision.kind());
            for &batch in &bench.batch_sizes {
                let size = [batch, 3, bench.input_size, bench.input_size];
                let input =
                    Tensor::randn(size, (Kind::Float, bench.device)).to_kind(precision.kind());
                let row = tch::no_grad(|| {
                    // One untimed pass: allocator, kernel selection and caches warm up.
                    let _ = model.net.forward_t(&input, false);
                    synchronize(bench.device);
                    let start = Instant::now();
                    let mut passes = 0;
                    while passes == 0 || start.elapsed() < bench.min_time {
                        let _ = model.net.forward_t(&input, false);
                        synchronize(bench.device);
                        passes += 1;
                    }
                    let crops_per_s =
                        (passes as i64 * batch) as f64 / start.elapsed().as_secs_f64();
                    ClassifierRow {
                        layout,
                        precision,
                        batch,
                        crops_per_s,
                        macs_per_s: crops_per_s * macs_per_crop,
                        passes,
                    }
                });
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}
