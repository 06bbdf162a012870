//! `rcnn bench classifier`: crops per second and achieved multiply-adds per second of the
//! region classifier, per layout, precision and batch size.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::gpu::synchronize;
use crate::model::googlenet::to_channels_last;
use crate::model::precision::Precision;
use crate::model::summary::summarize;
use crate::model::{GoogLeNetConfig, Layout, Model, ModelError};

#[derive(Debug, Clone)]
pub struct ClassifierBench {
    pub layouts: Vec<Layout>,
    pub precisions: Vec<Precision>,
    pub batch_sizes: Vec<i64>,
    /// Memory orders to measure: false = NCHW, true = channels-last.
    pub channels_last: Vec<bool>,
    pub input_size: i64,
    pub width: f64,
    pub num_classes: i64,
    /// Untimed passes before the clock starts (allocator, cuDNN's algorithm search, caches).
    pub warmup: usize,
    /// Timed repeats; the row reports their median.
    pub repeats: usize,
    /// Each repeat runs forward passes until this much time has passed (at least one).
    pub min_time: Duration,
    pub device: Device,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierRow {
    pub layout: Layout,
    pub precision: Precision,
    pub channels_last: bool,
    pub batch: i64,
    /// Median over the repeats.
    pub crops_per_s: f64,
    /// Multiply-adds per second actually achieved (multiply-adds per crop x crops/s).
    pub macs_per_s: f64,
    pub passes: usize,
}

/// Median crops/s of `forward` over `repeats` timed runs of at least `min_time` each, after
/// `warmup` untimed passes; the device is synchronised before every clock reading.
pub fn median_rate(
    device: Device,
    batch: i64,
    warmup: usize,
    repeats: usize,
    min_time: Duration,
    mut forward: impl FnMut(),
) -> (f64, usize) {
    for _ in 0..warmup.max(1) {
        forward();
    }
    synchronize(device);
    let mut rates = Vec::new();
    let mut total = 0;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let mut passes = 0;
        while passes == 0 || start.elapsed() < min_time {
            forward();
            passes += 1;
            // Without this, a GPU's queue would hide the work from the clock.
            synchronize(device);
        }
        rates.push((passes as i64 * batch) as f64 / start.elapsed().as_secs_f64());
        total += passes;
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], total)
}

/// Times inference (no gradients, inference weights as `rcnn detect` runs them) and calls
/// `on_row` as each row is measured; `after_group` after each (layout, precision, order).
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
        for &precision in &bench.precisions {
            for &channels_last in &bench.channels_last {
                tch::manual_seed(0);
                let mut model = Model::new(&config, Vec::new(), bench.device)?;
                let macs_per_crop = summarize(&model).macs() as f64;
                model.net.prepare_inference(precision.kind(), channels_last);
                for &batch in &bench.batch_sizes {
                    let size = [batch, 3, bench.input_size, bench.input_size];
                    let input =
                        Tensor::randn(size, (Kind::Float, bench.device)).to_kind(precision.kind());
                    let input = if channels_last {
                        to_channels_last(&input)
                    } else {
                        input
                    };
                    let (crops_per_s, passes) = tch::no_grad(|| {
                        median_rate(
                            bench.device,
                            batch,
                            bench.warmup,
                            bench.repeats,
                            bench.min_time,
                            || {
                                let _ = model.net.forward_t(&input, false);
                            },
                        )
                    });
                    let row = ClassifierRow {
                        layout,
                        precision,
                        channels_last,
                        batch,
                        crops_per_s,
                        macs_per_s: crops_per_s * macs_per_crop,
                        passes,
                    };
                    on_row(&row);
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// Crops/s by batch size: PyTorch eager, torch.compile.
pub type ReferenceRates = std::collections::HashMap<i64, (Option<f64>, Option<f64>)>;

/// Crops/s of torchvision's GoogLeNet in PyTorch, eager and (with `compile`) compiled, for
/// every batch size of `bench`, on its device, in `precision` and memory order; and the
/// reference's version lines (torch, torchvision).
pub fn reference_rates(
    python: &std::path::Path,
    bench: &ClassifierBench,
    compile: bool,
    threads: usize,
    precision: Precision,
    channels_last: bool,
) -> Result<(ReferenceRates, Vec<serde_json::Value>), String> {
    let batches: Vec<String> = bench.batch_sizes.iter().map(i64::to_string).collect();
    let mut script_args = vec![
        "--batch-sizes".to_string(),
        batches.join(","),
        "--threads".into(),
        threads.to_string(),
        "--input-size".into(),
        bench.input_size.to_string(),
        "--num-classes".into(),
        bench.num_classes.to_string(),
        "--min-seconds".into(),
        bench.min_time.as_secs_f64().to_string(),
        "--warmup".into(),
        bench.warmup.to_string(),
        "--repeats".into(),
        bench.repeats.to_string(),
        "--device".into(),
        match bench.device {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        },
        "--dtype".into(),
        precision.name().into(),
    ];
    if channels_last {
        script_args.push("--channels-last".into());
    }
    if compile {
        script_args.push("--compile".into());
    }
    let script = super::reference::script("bench_classifier_reference.py");
    let lines = super::reference::run_json_lines(python, &script, &script_args)?;
    let mut out = ReferenceRates::default();
    let mut versions = Vec::new();
    for v in lines {
        if let Some(b) = v["batch"].as_i64() {
            let rate = v["crops_per_s"].as_f64();
            let entry = out.entry(b).or_default();
            match v["mode"].as_str() {
                Some("compile") => entry.1 = rate,
                _ => entry.0 = rate,
            }
        } else if v.get("torch").is_some() {
            versions.push(v);
        }
    }
    if out.is_empty() {
        return Err(format!("{} printed no result", script.display()));
    }
    Ok((out, versions))
}
