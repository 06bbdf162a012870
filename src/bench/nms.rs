//! `rcnn bench nms`: per-class NMS against torchvision's `batched_nms` on the same boxes
//! (boxes clustered around objects, scores with ties), checked to keep the same boxes.

use std::path::Path;
use std::time::Instant;

use proposals::rng::SplitMix64;

use super::reference;
use crate::detect::nms::{batched_nms, Corners};

/// The sizes measured: boxes and classes.
pub const CASES: [(usize, usize); 3] = [(2_000, 1), (20_000, 20), (100_000, 200)];

/// One size's measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct NmsRow {
    pub boxes: usize,
    pub classes: usize,
    pub kept: usize,
    /// Median of five runs, seconds.
    pub ours: f64,
    /// torchvision's, when the Python reference ran.
    pub torchvision: Option<f64>,
}

/// `n` boxes of `n_classes` classes around `n / 20 + 1` object centres in a 500x400 image,
/// scores rounded to 0.01 (ties), seeded by `n`.
fn clustered(n: usize, n_classes: usize) -> (Vec<Corners>, Vec<f32>, Vec<usize>) {
    let mut rng = SplitMix64::new(n as u64);
    let centres: Vec<(f32, f32)> = (0..n / 20 + 1)
        .map(|_| (rng.uniform() as f32 * 500.0, rng.uniform() as f32 * 400.0))
        .collect();
    let mut boxes: Vec<Corners> = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut classes = Vec::with_capacity(n);
    for _ in 0..n {
        let (cx, cy) = centres[rng.below(centres.len())];
        let (cx, cy) = (
            cx + (rng.uniform() as f32 - 0.5) * 20.0,
            cy + (rng.uniform() as f32 - 0.5) * 20.0,
        );
        let (w, h) = (
            20.0 + rng.uniform() as f32 * 150.0,
            20.0 + rng.uniform() as f32 * 150.0,
        );
        boxes.push([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]);
        scores.push((rng.uniform() * 100.0).round() as f32 / 100.0);
        classes.push(rng.below(n_classes));
    }
    (boxes, scores, classes)
}

/// torchvision's seconds for the same boxes, refused when it keeps other boxes.
fn torchvision(
    python: &Path,
    (boxes, scores, classes): &(Vec<Corners>, Vec<f32>, Vec<usize>),
    iou: f32,
    threads: usize,
    keep: &[usize],
) -> Result<Option<f64>, String> {
    let file = std::env::temp_dir().join(format!("rcnn-bench-nms-{}.bin", std::process::id()));
    let mut bytes = (boxes.len() as u64).to_le_bytes().to_vec();
    boxes
        .iter()
        .flatten()
        .for_each(|v| bytes.extend(v.to_le_bytes()));
    scores.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
    classes
        .iter()
        .for_each(|&c| bytes.extend((c as i64).to_le_bytes()));
    std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let script = reference::script("bench_nms_reference.py");
    let out = reference::run_json_lines(
        python,
        &script,
        &[
            file.display().to_string(),
            iou.to_string(),
            threads.to_string(),
        ],
    );
    let _ = std::fs::remove_file(&file);
    let v = out?
        .into_iter()
        .next()
        .ok_or_else(|| format!("no output from {}", script.display()))?;
    let checksum: u64 = keep.iter().map(|&v| (v * v + v) as u64).sum();
    if v["kept"].as_u64() != Some(keep.len() as u64) || v["checksum"].as_u64() != Some(checksum) {
        return Err(format!(
            "torchvision kept other boxes ({} against our {})",
            v["kept"],
            keep.len()
        ));
    }
    Ok(v["seconds"].as_f64())
}

/// Measures every size in [`CASES`], handing each row to `on_row` as it is done; with
/// `python`, torchvision beside us on `threads` threads.
pub fn run(
    iou: f32,
    threads: usize,
    python: Option<&Path>,
    mut on_row: impl FnMut(&NmsRow),
) -> Result<(), String> {
    for (n, n_classes) in CASES {
        let data = clustered(n, n_classes);
        let (boxes, scores, classes) = &data;
        let mut times = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            keep = batched_nms(
                boxes,
                scores,
                classes,
                iou,
                eval::PixelConvention::Continuous,
            );
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let theirs = match python {
            Some(py) => torchvision(py, &data, iou, threads, &keep)?,
            None => None,
        };
        on_row(&NmsRow {
            boxes: n,
            classes: n_classes,
            kept: keep.len(),
            ours: times[2],
            torchvision: theirs,
        });
    }
    Ok(())
}
