//! `rcnn detect`'s pipeline: decode -> proposals -> warp on a CPU thread, the ensemble on the
//! device in this one, joined by a bounded channel so the CPU stages overlap the device stage.
//! Post-processing closes each image.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use eval::BBox;
use proposals::SearchParams;

use crate::classifier::Ensemble;
use crate::decode::decode;
use crate::postprocess::{postprocess, Detected, PostParams};
use crate::propose::image_key;
use crate::warp::{WarpParams, WarpSource};

#[derive(Debug, Clone)]
pub struct DetectParams {
    pub search: SearchParams,
    /// Keep at most this many proposals per image (R-CNN: about 2000).
    pub max_proposals: usize,
    pub post: PostParams,
    /// Crops per forward pass.
    pub batch: usize,
    /// Images prepared ahead of the device stage.
    pub queue: usize,
    /// Precomputed proposals by image name (file stem), instead of selective search.
    pub precomputed: Option<HashMap<String, Vec<BBox>>>,
}

/// What became of one image.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done {
        image: PathBuf,
        detections: Vec<Detected>,
        proposals: usize,
    },
    Failed {
        image: PathBuf,
        reason: String,
    },
}

/// Seconds spent in each stage (CPU stages on their own thread, so they overlap the device).
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    pub decode: f64,
    pub proposals: f64,
    pub warp: f64,
    pub classify: f64,
    pub postprocess: f64,
    pub wall: f64,
}

struct Prepared {
    image: PathBuf,
    boxes: Vec<BBox>,
    crops: Vec<f32>,
}

fn prepare(
    path: &Path,
    p: &DetectParams,
    warp: &WarpParams,
    t: &mut StageTimes,
) -> Result<Prepared, String> {
    let start = Instant::now();
    let img = decode(path).map_err(|e| e.reason)?;
    t.decode += start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut boxes = match &p.precomputed {
        Some(map) => map
            .get(&image_key(path))
            .cloned()
            .ok_or_else(|| "the proposals file has no boxes for this image".to_string())?,
        None => proposals::selective_search(&img, &p.search),
    };
    boxes.truncate(p.max_proposals);
    t.proposals += start.elapsed().as_secs_f64();
    let start = Instant::now();
    let s = warp.size as usize;
    let mut crops = vec![0f32; boxes.len() * 3 * s * s];
    let source = WarpSource::new(&img).map_err(|e| format!("OpenCV: {e}"))?;
    for (b, out) in boxes.iter().zip(crops.chunks_mut(3 * s * s)) {
        source
            .warp_into(b, warp, out)
            .map_err(|e| format!("OpenCV: {e}"))?;
    }
    t.warp += start.elapsed().as_secs_f64();
    Ok(Prepared {
        image: path.to_path_buf(),
        boxes,
        crops,
    })
}

/// Runs the pipeline over `images` in order, calling `on_image` as each one finishes.
pub fn detect(
    images: &[PathBuf],
    ensemble: &Ensemble,
    p: &DetectParams,
    mut on_image: impl FnMut(Outcome),
) -> StageTimes {
    let wall = Instant::now();
    let config = ensemble.models[0].config();
    let warp = WarpParams::new(config.input_size as i32, config.mean, config.std);
    let s = warp.size as usize;
    let (tx, rx) = sync_channel::<Result<Prepared, (PathBuf, String)>>(p.queue.max(1));
    let mut times = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut t = StageTimes::default();
            for path in images {
                let item = prepare(path, p, &warp, &mut t).map_err(|e| (path.clone(), e));
                if tx.send(item).is_err() {
                    break;
                }
            }
            drop(tx);
            t
        });
        let mut t = StageTimes::default();
        let crop_len = 3 * s * s;
        let batch = p.batch.max(1);
        // Images waiting for the device, in order, each with the scores it has so far. A batch
        // takes crops from as many of them as it needs, so small images do not leave the
        // device half idle.
        let mut pending: VecDeque<(Prepared, Vec<Vec<f32>>)> = VecDeque::new();
        let mut open = true;
        loop {
            while open
                && pending
                    .iter()
                    .map(|(pr, sc)| pr.boxes.len() - sc.len())
                    .sum::<usize>()
                    < batch
            {
                match rx.recv() {
                    Ok(Ok(prep)) => pending.push_back((prep, Vec::new())),
                    Ok(Err((image, reason))) => on_image(Outcome::Failed { image, reason }),
                    Err(_) => open = false,
                }
            }
            if pending.is_empty() {
                break;
            }
            let mut crops: Vec<f32> = Vec::with_capacity(batch * crop_len);
            let mut owners: Vec<(usize, usize)> = Vec::new();
            for (i, (prep, scores)) in pending.iter().enumerate() {
                let take = (prep.boxes.len() - scores.len()).min(batch - crops.len() / crop_len);
                if take > 0 {
                    crops.extend_from_slice(
                        &prep.crops[scores.len() * crop_len..(scores.len() + take) * crop_len],
                    );
                    owners.push((i, take));
                }
                if crops.len() == batch * crop_len {
                    break;
                }
            }
            if !owners.is_empty() {
                let start = Instant::now();
                let mut rows = ensemble.scores(&crops, crops.len() / crop_len).into_iter();
                for (i, take) in owners {
                    pending[i].1.extend(rows.by_ref().take(take));
                }
                t.classify += start.elapsed().as_secs_f64();
            }
            while pending
                .front()
                .is_some_and(|(pr, sc)| sc.len() == pr.boxes.len())
            {
                let (prep, scores) = pending.pop_front().expect("checked");
                let start = Instant::now();
                let detections = postprocess(&prep.boxes, &scores, &p.post);
                t.postprocess += start.elapsed().as_secs_f64();
                on_image(Outcome::Done {
                    image: prep.image,
                    detections,
                    proposals: prep.boxes.len(),
                });
            }
        }
        let cpu = producer.join().expect("the CPU stage does not panic");
        StageTimes {
            decode: cpu.decode,
            proposals: cpu.proposals,
            warp: cpu.warp,
            ..t
        }
    });
    times.wall = wall.elapsed().as_secs_f64();
    times
}
