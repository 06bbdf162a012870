//! `rcnn detect`'s pipeline: decode -> proposals on `workers` CPU threads, results put back in
//! input order; the device stage (upload, warp, batches, the ensemble; [`crate::detect::batch`])
//! on this thread; post-processing closes each image. Only the decoded bytes and the boxes of
//! an image cross threads.
//!
//! The stages, in the order an image meets them: [`decode`], [`propose`], [`warp`], [`batch`]
//! (the device: crops batched across images through the ensemble), [`postprocess`] (box
//! regression, then [`nms`]).

pub mod batch;
pub mod decode;
pub mod nms;
pub mod postprocess;
pub mod propose;
pub mod warp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use eval::BBox;
use proposals::{RgbImage, SearchParams};

use serde::{Deserialize, Serialize};

use crate::detect::batch::{DeviceStage, Finished, WarpMode};
use crate::detect::decode::decode;
use crate::detect::postprocess::{postprocess, Detected, PostParams, Refine};
use crate::ensemble::Ensemble;
use crate::run::journal::{Journal, JournalError};
use crate::run::ordered::in_order;

/// What the journal keeps of one image (`--resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub image: String,
    pub proposals: usize,
    /// `[class, score, x1, y1, x2, y2]`, class as the scores' column.
    pub detections: Vec<(usize, f32, f64, f64, f64, f64)>,
    /// The image file's size and modification time when it was detected, so that `--resume`
    /// redoes an image replaced since (absent in journals of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<(u64, u64)>,
    /// Why the image was skipped (unreadable, too large, too narrow to search), so that
    /// `--resume` does not meet it again; it has no detections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Entry {
    pub fn new(image: String, proposals: usize, detections: &[Detected]) -> Self {
        let detections = detections
            .iter()
            .map(|d| (d.class, d.score, d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2))
            .collect();
        Entry {
            image,
            proposals,
            detections,
            file: None,
            skipped: None,
        }
    }

    /// The entry of an image skipped for `reason`.
    pub fn skipped(image: String, reason: String) -> Self {
        Entry {
            skipped: Some(reason),
            ..Entry::new(image, 0, &[])
        }
    }

    /// This entry, recording `path`'s size and modification time.
    pub fn of_file(self, path: &Path) -> Self {
        Entry {
            file: file_stamp(path),
            ..self
        }
    }

    pub fn detected(&self) -> Vec<Detected> {
        self.detections
            .iter()
            .map(|&(class, score, x1, y1, x2, y2)| Detected {
                class,
                score,
                bbox: BBox::new(x1, y1, x2, y2),
            })
            .collect()
    }
}

/// A file's size and modification time (seconds and nanoseconds folded into nanoseconds).
pub fn file_stamp(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((meta.len(), modified.as_nanos() as u64))
}

/// Opens `rcnn detect`'s journal in `dir`: with `resume`, checks that it was written with the
/// same `settings` (refusing, with the differences listed, before anything is changed) and
/// returns the images it holds (complete lines only); without, starts it afresh.
pub fn open_journal(
    dir: &Path,
    resume: bool,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> Result<(Journal, HashMap<String, Entry>), JournalError> {
    let (journal, entries) =
        Journal::open_file::<Entry>(&dir.join(".rcnn-detect.journal"), resume, settings)?;
    let done = entries.into_iter().map(|e| (e.image.clone(), e)).collect();
    Ok((journal, done))
}

#[derive(Debug, Clone)]
pub struct DetectParams {
    pub search: SearchParams,
    /// Keep at most this many proposals per image (R-CNN: about 2000).
    pub max_proposals: usize,
    pub post: PostParams,
    /// Crops per forward pass.
    pub batch: usize,
    /// Images decoded and proposed at once, each on its own thread.
    pub workers: usize,
    /// Where crops are warped.
    pub warp: WarpMode,
    /// Precomputed proposals by image path, instead of selective search.
    pub precomputed: Option<HashMap<PathBuf, Vec<BBox>>>,
    /// Learned proposals (MultiBox's best boxes), alone or mixed with selective search's, as
    /// training uses them ([`crate::detect::propose::LearnedProposals::proposals_for`]).
    pub learned: Option<crate::detect::propose::LearnedProposals>,
    /// Tops each image's proposals up to this many with seeded random boxes (benchmarks: R-CNN's
    /// 2000 regions per image where selective search finds fewer); 0 for none.
    pub min_proposals: usize,
}

/// Workers enough to keep a device fed: every core but the one that drives the device.
pub fn default_workers() -> usize {
    crate::run::device::default_threads()
        .saturating_sub(1)
        .max(1)
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

/// Seconds spent in each stage. CPU stages (decode, proposals) are summed over their workers,
/// which overlap each other and the device stage; the rest is this thread's.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    pub decode: f64,
    pub proposals: f64,
    /// Images to the device (device warp), or nothing.
    pub upload: f64,
    pub warp: f64,
    pub classify: f64,
    /// Scores back to the host, once per image.
    pub readback: f64,
    pub postprocess: f64,
    /// Time the device stage waited for the CPU stages.
    pub starved: f64,
    pub wall: f64,
}

/// A decoded image and its proposals: all that crosses to the device stage.
struct Prepared {
    image: PathBuf,
    rgb: RgbImage,
    boxes: Vec<BBox>,
    decode: f64,
    proposals: f64,
}

fn prepare(path: &Path, p: &DetectParams) -> Result<Prepared, String> {
    let start = Instant::now();
    let rgb = decode(path).map_err(|e| e.reason)?;
    let decode_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut boxes = match &p.precomputed {
        Some(map) => map
            .get(path)
            .cloned()
            .ok_or_else(|| "the proposals file has no boxes for this image".to_string())?,
        None => {
            let search = || proposals::selective_search(&rgb, &p.search);
            match &p.learned {
                Some(l) => l.proposals_for(path, search),
                None => search(),
            }
            .map_err(|e| e.to_string())?
        }
    };
    // Precomputed and learned boxes may reach outside the image: its detections may not.
    let (h, w, _) = rgb.dim();
    boxes = boxes.iter().filter_map(|b| b.clipped(w, h)).collect();
    boxes.truncate(p.max_proposals);
    top_up(&mut boxes, p.min_proposals.min(p.max_proposals), rgb.dim());
    Ok(Prepared {
        image: path.to_path_buf(),
        rgb,
        boxes,
        decode: decode_s,
        proposals: start.elapsed().as_secs_f64(),
    })
}

/// Random boxes (seeded by the count, so runs repeat) until there are `n`.
fn top_up(boxes: &mut Vec<BBox>, n: usize, (h, w, _): (usize, usize, usize)) {
    let mut rng = proposals::rng::SplitMix64::new(boxes.len() as u64);
    while boxes.len() < n {
        let (a, b) = (rng.uniform() * w as f64, rng.uniform() * w as f64);
        let (c, d) = (rng.uniform() * h as f64, rng.uniform() * h as f64);
        boxes.push(BBox::new(a.min(b), c.min(d), a.max(b), c.max(d)));
    }
}

/// Decodes and proposes `images` on `workers` threads, handing each result to `f` in order of
/// `images` (the CPU half of [`detect`], for benchmarks of it alone).
pub fn for_each_prepared(
    images: &[PathBuf],
    p: &DetectParams,
    workers: usize,
    mut f: impl FnMut(Result<(PathBuf, RgbImage, Vec<BBox>), (PathBuf, String)>),
) {
    in_order(
        images.len(),
        workers,
        2 * workers,
        |i| prepare(&images[i], p).map_err(|e| (images[i].clone(), e)),
        |r| {
            f(r.map(|p| (p.image, p.rgb, p.boxes)));
            true
        },
    );
}

/// Runs the pipeline over `images` in order, calling `on_image` as each one finishes (always
/// in the order of `images`, whatever the number of workers).
pub fn detect(
    images: &[PathBuf],
    ensemble: &Ensemble,
    p: &DetectParams,
    mut on_image: impl FnMut(Outcome),
) -> StageTimes {
    let wall = Instant::now();
    let mut stage: DeviceStage<PathBuf> = DeviceStage::new(ensemble, p.warp, p.batch);
    let mut t = StageTimes::default();
    let workers = p.workers.max(1);
    let (tx, rx) = sync_channel::<Result<Prepared, (PathBuf, String)>>(workers);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            in_order(
                images.len(),
                workers,
                2 * workers,
                |i| prepare(&images[i], p).map_err(|e| (images[i].clone(), e)),
                |r| tx.send(r).is_ok(),
            )
        });
        let mut open = true;
        // Post-processing closes an image whose scores are all back.
        let finish = |done: Finished<PathBuf>,
                      t: &mut StageTimes,
                      on_image: &mut dyn FnMut(Outcome)| {
            let scored = match done {
                Ok(scored) => scored,
                Err((image, reason)) => return on_image(Outcome::Failed { image, reason }),
            };
            let start = Instant::now();
            let refine = scored.deltas.as_ref().map(|deltas| Refine {
                deltas,
                width: scored.size.0,
                height: scored.size.1,
            });
            let detections = postprocess(&scored.boxes, &scored.scores, refine.as_ref(), &p.post);
            t.postprocess += start.elapsed().as_secs_f64();
            on_image(Outcome::Done {
                image: scored.tag,
                detections,
                proposals: scored.boxes.len(),
            });
        };
        loop {
            // Take images until a full batch waits (or the workers are done).
            while open && stage.waiting() < stage.batch() {
                let start = Instant::now();
                let received = rx.recv();
                t.starved += start.elapsed().as_secs_f64();
                match received {
                    Ok(Ok(prep)) => {
                        t.decode += prep.decode;
                        t.proposals += prep.proposals;
                        if let Err(reason) = stage.push(prep.image.clone(), &prep.rgb, prep.boxes) {
                            on_image(Outcome::Failed {
                                image: prep.image,
                                reason,
                            });
                        }
                    }
                    Ok(Err((image, reason))) => on_image(Outcome::Failed { image, reason }),
                    Err(_) => open = false,
                }
                // Images whose scores are complete (or that had no proposals) close in order.
                while let Some(done) = stage.pop_finished(!open) {
                    finish(done, &mut t, &mut on_image);
                }
            }
            if stage.waiting() == 0 {
                while let Some(done) = stage.pop_finished(true) {
                    finish(done, &mut t, &mut on_image);
                }
                break;
            }
            stage.run_batch();
            while let Some(done) = stage.pop_finished(false) {
                finish(done, &mut t, &mut on_image);
            }
        }
    });
    let d = stage.times;
    t.upload = d.upload;
    t.warp = d.warp;
    t.classify = d.classify;
    t.readback = d.readback;
    t.wall = wall.elapsed().as_secs_f64();
    t
}

#[cfg(test)]
mod journal_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_cut_last_line_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let settings = serde_json::json!({"nms_iou": 0.3, "formats": ["csv"]})
            .as_object()
            .unwrap()
            .clone();
        let (mut j, done) = open_journal(dir.path(), false, &settings).unwrap();
        assert!(done.is_empty());
        let d = [Detected {
            class: 2,
            score: 0.123_456_79,
            bbox: BBox::new(1.5, 2.0, 30.25, 40.0),
        }];
        j.append(&Entry::new("a".into(), 7, &d)).unwrap();
        j.append(&Entry::new("b".into(), 3, &[])).unwrap();
        drop(j);
        // A kill in the middle of the third line.
        let path = dir.path().join(".rcnn-detect.journal");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"image\":\"c\",\"propos").unwrap();
        drop(f);
        let (mut j, done) = open_journal(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(
            done["a"].detected(),
            d.to_vec(),
            "scores and boxes come back exactly"
        );
        j.append(&Entry::new("c".into(), 1, &[])).unwrap();
        drop(j);
        let (_, done) = open_journal(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 3, "the new line follows the last whole one");
        // Other settings: refused, every difference named, the journal left as it was.
        let mut other = settings.clone();
        other.insert("nms_iou".into(), serde_json::json!(0.5));
        other.insert("model".into(), serde_json::json!("b.safetensors"));
        let err = open_journal(dir.path(), true, &other)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nms_iou: 0.3 -> 0.5"), "{err}");
        assert!(err.contains("model: (none) -> \"b.safetensors\""), "{err}");
        let (_, done) = open_journal(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 3);
        let (_, done) = open_journal(dir.path(), false, &other).unwrap();
        assert!(done.is_empty());
    }
}
