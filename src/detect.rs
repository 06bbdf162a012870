//! `rcnn detect`'s pipeline: decode -> proposals on `workers` CPU threads, results put back in
//! input order; the device stage (upload, warp, batches, the ensemble; [`crate::device_stage`])
//! on this thread; post-processing closes each image. Only the decoded bytes and the boxes of
//! an image cross threads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use eval::BBox;
use proposals::{RgbImage, SearchParams};

use crate::classifier::Ensemble;
use crate::decode::decode;
use crate::device_stage::{DeviceStage, Finished, WarpMode};
use crate::postprocess::{postprocess, Detected, PostParams, Refine};

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
    /// training uses them ([`crate::propose::LearnedProposals::proposals_for`]).
    pub learned: Option<crate::propose::LearnedProposals>,
    /// Tops each image's proposals up to this many with seeded random boxes (benchmarks: R-CNN's
    /// 2000 regions per image where selective search finds fewer); 0 for none.
    pub min_proposals: usize,
}

/// Workers enough to keep a device fed: every core but the one that drives the device.
pub fn default_workers() -> usize {
    crate::device::default_threads().saturating_sub(1).max(1)
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
        }
    };
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

/// Runs `work(i)` for `0..n` on `workers` threads and hands the results to `consume` in order
/// of `i`. At most `window` results wait ahead of the next one due, so memory stays bounded
/// however uneven the items are.
pub(crate) fn in_order<R: Send>(
    n: usize,
    workers: usize,
    window: usize,
    work: impl Fn(usize) -> R + Sync,
    mut consume: impl FnMut(R) -> bool,
) {
    let window = window.max(workers).max(1);
    // (next index to take, next index to hand over, stop)
    let state = Mutex::new((0usize, 0usize, false));
    let turn = Condvar::new();
    let (tx, rx) = sync_channel::<(usize, R)>(window);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (state, turn, work) = (&state, &turn, &work);
            scope.spawn(move || loop {
                let i = {
                    let mut s = state.lock().expect("no worker panics");
                    while !s.2 && s.0 < n && s.0 >= s.1 + window {
                        s = turn.wait(s).expect("no worker panics");
                    }
                    if s.2 || s.0 >= n {
                        return;
                    }
                    s.0 += 1;
                    s.0 - 1
                };
                if tx.send((i, work(i))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut early: BTreeMap<usize, R> = BTreeMap::new();
        let mut next = 0;
        let mut stop = false;
        while !stop && next < n {
            let Ok((i, r)) = rx.recv() else { break };
            early.insert(i, r);
            while let Some(r) = early.remove(&next) {
                next += 1;
                state.lock().expect("no worker panics").1 = next;
                turn.notify_all();
                if !consume(r) {
                    stop = true;
                    break;
                }
            }
        }
        state.lock().expect("no worker panics").2 = true;
        turn.notify_all();
        drop(rx);
    });
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
mod tests {
    use super::*;

    #[test]
    fn in_order_hands_results_over_in_order_whatever_the_workers() {
        for workers in [1, 3, 8] {
            let mut seen = Vec::new();
            in_order(
                50,
                workers,
                4,
                |i| {
                    // Uneven work: later items often finish first.
                    std::thread::sleep(std::time::Duration::from_micros(
                        ((50 - i) * 37 % 11) as u64 * 100,
                    ));
                    i * i
                },
                |r| {
                    seen.push(r);
                    true
                },
            );
            assert_eq!(
                seen,
                (0..50).map(|i| i * i).collect::<Vec<_>>(),
                "{workers} workers"
            );
        }
        // A consumer that stops early stops the workers too.
        let mut seen = 0;
        in_order(
            1000,
            4,
            4,
            |i| i,
            |_| {
                seen += 1;
                seen < 10
            },
        );
        assert_eq!(seen, 10);
    }
}
