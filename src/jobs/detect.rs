//! The `rcnn detect` job: images in, detections out in every format asked for, with drawings,
//! `--resume` from the journal and `--shard K/N`. The per-image pipeline is
//! [`crate::detect::detect`]; this file decides what goes in and what is written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::outputs::{image_paths_csv, write_outputs, write_shard_file};
use super::{ensure, warn, Inference, JobError, Progress};
use crate::detect::decode::{decode, image_names};
use crate::detect::postprocess::{Detected, PostParams};
use crate::detect::propose::{read_proposals, ProposalMode, ProposalSource};
use crate::detect::{detect, open_journal, DetectParams, Entry, Outcome, StageTimes};
use crate::ensemble::{Ensemble, Head};
use crate::model::weights::is_background;
use crate::model::Model;
use crate::run::lock::lock_output;
use crate::run::shard::ShardSpec;
use crate::run::visualize::{draw, save_jpeg, write_index, Mark};

/// Output formats `rcnn detect` writes.
pub const FORMATS: [&str; 4] = ["ilsvrc", "csv", "coco", "txt"];

/// Everything that decides a detect run.
#[derive(Debug, Clone)]
pub struct DetectJob {
    /// Folders (searched recursively), image files, or .txt lists of paths.
    pub images: Vec<PathBuf>,
    /// Model files; several make an ensemble.
    pub models: Vec<PathBuf>,
    pub out: PathBuf,
    pub head: Head,
    pub no_bbox_reg: bool,
    /// Some of [`FORMATS`].
    pub formats: Vec<String>,
    pub inference: Inference,
    pub warp: crate::detect::batch::WarpMode,
    pub max_proposals: usize,
    pub nms_iou: f32,
    pub score_threshold: f32,
    pub top_per_class: usize,
    pub top_per_image: usize,
    /// Precomputed proposals (`rcnn proposals --out`) instead of the search.
    pub proposals: Option<PathBuf>,
    pub source: ProposalSource,
    /// Drawings (and index.html) of each image's detections scoring at least
    /// `visualize_threshold`.
    pub visualize: Option<PathBuf>,
    pub visualize_threshold: f32,
    pub shard: Option<ShardSpec>,
    pub resume: bool,
    /// Stop at the first bad line of the proposals file.
    pub strict: bool,
}

impl DetectJob {
    /// R-CNN's settings for `images` through `models` into `out`: 2000 proposals, NMS 0.3,
    /// ILSVRC and CSV outputs.
    pub fn new(images: Vec<PathBuf>, models: Vec<PathBuf>, out: PathBuf) -> Self {
        DetectJob {
            images,
            models,
            out,
            head: Head::Softmax,
            no_bbox_reg: false,
            formats: vec!["ilsvrc".into(), "csv".into()],
            inference: Inference::default(),
            warp: Default::default(),
            max_proposals: 2000,
            nms_iou: 0.3,
            score_threshold: 0.01,
            top_per_class: 100,
            top_per_image: 1000,
            proposals: None,
            source: ProposalSource {
                mode: ProposalMode::Fast,
                scale: 2.0,
                multibox: None,
                multibox_top: 200,
            },
            visualize: None,
            visualize_threshold: 0.5,
            shard: None,
            resume: false,
            strict: false,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct DetectSummary {
    /// Images with detections in the outputs (this shard's), resumed ones included.
    pub images: usize,
    /// Of them, taken from the journal.
    pub resumed: usize,
    /// Images skipped (unreadable, too large), each named in a warning.
    pub skipped: usize,
    pub proposals: usize,
    pub detections: usize,
    /// Images processed now (not resumed), for the rate.
    pub processed: usize,
    pub times: StageTimes,
}

/// The settings that decide a run's outputs, as the journal records them for `--resume`, on
/// `device` with `batch` crops a pass, as shard `(K, N)`.
pub fn journal_settings(
    job: &DetectJob,
    device: tch::Device,
    batch: usize,
    shard: Option<(usize, usize)>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let file = crate::run::journal::file_identity;
    let mut formats = job.formats.clone();
    formats.sort();
    formats.dedup();
    // f32 settings as the user wrote them (0.3, not 0.30000001192092896).
    let f = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::NAN);
    let v = json!({
        "images": job.images,
        "models": job.models.iter().map(|m| file(m)).collect::<Vec<_>>(),
        "formats": formats,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "precision": format!("{:?}", job.inference.precision),
        "head": format!("{:?}", job.head),
        "no_bbox_reg": job.no_bbox_reg,
        "warp": format!("{:?}", job.warp),
        "batch": batch,
        "max_proposals": job.max_proposals,
        "nms_iou": f(job.nms_iou),
        "score_threshold": f(job.score_threshold),
        "top_per_class": job.top_per_class,
        "top_per_image": job.top_per_image,
        "proposals": job.proposals.as_deref().map(file),
        "proposal_mode": job.source.mode.name(),
        "scale": f(job.source.scale),
        "multibox": job.source.multibox.as_deref().map(file),
        "multibox_top": job.source.multibox_top,
        "visualize": job.visualize,
        "visualize_threshold": f(job.visualize_threshold),
        "shard": shard.map(|(k, n)| format!("{k}/{n}")),
    });
    v.as_object().expect("an object").clone()
}

/// Earlier outputs in `out` that this run will not rewrite: other formats, other images' txt
/// files. They are named, not deleted (they may be someone's only copy).
fn stale_outputs(out: &Path, formats: &[String], names: &[String]) -> Vec<String> {
    let mut stale = Vec::new();
    for (format, file) in [
        ("ilsvrc", "detections.txt"),
        ("csv", "detections.csv"),
        ("coco", "detections.json"),
    ] {
        if !formats.iter().any(|f| f == format) && out.join(file).exists() {
            stale.push(file.to_string());
        }
    }
    let txt = out.join("txt");
    if txt.is_dir() {
        let wanted: HashSet<PathBuf> = if formats.iter().any(|f| f == "txt") {
            names
                .iter()
                .filter_map(|n| eval::output::file_in(&txt, n, ".txt").ok())
                .collect()
        } else {
            Default::default()
        };
        let mut extra = 0;
        let mut stack = vec![txt.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if !wanted.contains(&p) {
                    extra += 1;
                }
            }
        }
        if extra > 0 {
            stale.push(format!("txt/ ({extra} files of other images)"));
        }
    }
    stale
}

/// No output may replace an input, whatever setting named it: the inputs are registered with
/// the writer, and the files this run will write are checked now, before any work.
fn check_outputs(job: &DetectJob, images: &[PathBuf], names: &[String]) -> Result<(), JobError> {
    eval::protect_inputs(
        images
            .iter()
            .chain(&job.models)
            .chain(job.proposals.as_ref()),
    );
    eval::check_output_dir(&job.out)?;
    let mut planned: Vec<PathBuf> = [
        "detections.txt",
        "detections.csv",
        "detections.json",
        "image_list.txt",
        "image_paths.csv",
        "classes.txt",
        "shard.json",
    ]
    .iter()
    .map(|f| job.out.join(f))
    .collect();
    // Files made from image names go through the one rule that keeps them under their folder.
    let txt = job.out.join("txt");
    for n in names {
        planned.push(eval::output::file_in(&txt, n, ".txt")?);
    }
    if let Some(dir) = &job.visualize {
        eval::check_output_dir(dir)?;
        planned.push(dir.join("index.html"));
        for n in names {
            planned.push(eval::output::file_in(dir, n, ".jpg")?);
        }
    }
    for p in &planned {
        eval::check_not_input(p)?;
    }
    Ok(())
}

/// Precomputed proposals by image path: the file names images as `rcnn proposals` does, with
/// the same unique names. Its bad lines and boxes are reported (and stop the run with --strict).
fn precomputed_proposals(
    job: &DetectJob,
    images: &[PathBuf],
    names: &[String],
) -> Result<Option<HashMap<PathBuf, Vec<eval::BBox>>>, JobError> {
    let Some(file) = &job.proposals else {
        return Ok(None);
    };
    let mut issues = eval::Issues::new(job.strict);
    let mut by_name = read_proposals(file, &mut issues)?;
    if issues.total() > 0 {
        tracing::warn!("{}: {issues}", file.display());
        for e in &issues.examples {
            tracing::warn!("  {e}");
        }
    }
    let for_run: HashMap<PathBuf, Vec<eval::BBox>> = images
        .iter()
        .zip(names)
        .filter_map(|(p, n)| by_name.remove(n).map(|b| (p.clone(), b)))
        .collect();
    // What is left names images that are not in this run (a typo, another folder's file).
    if !by_name.is_empty() {
        let mut others: Vec<&String> = by_name.keys().collect();
        others.sort();
        tracing::warn!(
            "{}: proposals for {} images that are not in this run are ignored (e.g. {})",
            file.display(),
            others.len(),
            others
                .iter()
                .take(3)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Some(for_run))
}

/// Why a journal entry for `image` cannot be trusted, if it cannot: the file changed since
/// (size or time), or a value no run writes (a class column the model lacks, a score or box
/// that is not finite), which a damaged journal holds.
fn distrust(e: &Entry, image: &Path, columns: &Columns) -> Option<String> {
    if e.file.is_some() && e.file != crate::detect::file_stamp(image) {
        return Some(format!(
            "{} changed since it was journaled",
            image.display()
        ));
    }
    e.detections
        .iter()
        .find_map(|&(class, score, x1, y1, x2, y2)| {
            if !columns.holds(class) {
                Some(format!(
                    "the journal holds class column {class}, which the model lacks"
                ))
            } else if !score.is_finite() || ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
                Some("the journal holds a score or box that is not a number".into())
            } else {
                None
            }
        })
}

/// Score columns to class indices: the background column, when the model has one, is not a
/// class of the outputs.
struct Columns {
    background: Option<usize>,
    names: Vec<String>,
}

impl Columns {
    fn new(classes: &[String]) -> Self {
        let background = classes
            .first()
            .filter(|c| is_background(c.as_str()))
            .map(|_| 0);
        let names = classes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != background)
            .map(|(_, c)| c.clone())
            .collect();
        Columns { background, names }
    }

    /// Whether `column` is one of the model's class columns (not background, not past the end).
    fn holds(&self, column: usize) -> bool {
        match self.background {
            Some(0) => (1..=self.names.len()).contains(&column),
            _ => column < self.names.len(),
        }
    }

    fn class(&self, column: usize) -> usize {
        if self.background == Some(0) {
            column - 1
        } else {
            column
        }
    }

    /// The marks drawn for an image's detections scoring at least `threshold`.
    fn marks(&self, detections: &[Detected], threshold: f32) -> Vec<Mark> {
        detections
            .iter()
            .filter(|d| d.score >= threshold)
            .map(|d| {
                let class = self.class(d.class);
                Mark {
                    label: format!("{} {:.2}", self.names[class], d.score),
                    class,
                    bbox: d.bbox,
                    colour: None,
                }
            })
            .collect()
    }
}

/// Decodes `image` again, draws `marks` and writes the JPEG to `out`.
fn draw_into(image: &Path, marks: &[Mark], out: &Path) -> Result<(), String> {
    let img = decode(image).map_err(|e| e.to_string())?;
    let drawn = draw(&img, marks).map_err(|e| e.to_string())?;
    save_jpeg(&drawn, out)
}

impl DetectJob {
    /// Runs the job: checks every setting and output before any work, then detects, journals
    /// each image as its outputs are written, and writes the run's files.
    pub fn run(&self, progress: &dyn Progress) -> Result<DetectSummary, JobError> {
        let job = self;
        for f in &job.formats {
            ensure(FORMATS.contains(&f.as_str()), || {
                format!("unknown --format `{f}` (ilsvrc, csv, coco, txt)")
            })?;
        }
        let shard = crate::run::shard::resolve(job.shard).map_err(JobError::Refused)?;
        let outputs: Vec<&Path> = std::iter::once(job.out.as_path())
            .chain(job.visualize.as_deref())
            .collect();
        let images = super::collect_images(&job.images, &outputs)?;
        // Every image has a name of its own in every output, the journal and the drawings.
        let names = image_names(&images);
        check_outputs(job, &images, &names)?;
        let device = crate::run::device::select(job.inference.device, job.inference.threads)?;
        let models = job
            .models
            .iter()
            .map(|m| Model::load(m, device))
            .collect::<Result<Vec<_>, _>>()?;
        let channels_last = job.inference.channels_last(device);
        let mut ensemble =
            Ensemble::with_layout(models, job.inference.precision.kind(), channels_last)?;
        let regress = ensemble.use_heads(job.head, !job.no_bbox_reg)?;
        tracing::info!(
            "head: {:?}; box regression: {}",
            job.head,
            if regress {
                "on"
            } else if job.no_bbox_reg {
                "off (--no-bbox-reg)"
            } else {
                "off (the model has no regressors)"
            }
        );
        let columns = Columns::new(ensemble.classes());
        let precomputed = precomputed_proposals(job, &images, &names)?;
        ensure(
            precomputed.is_none() || job.source.mode == ProposalMode::Fast,
            || {
                format!(
                    "--proposals FILE replaces the search: it takes no --mode {}",
                    job.source.mode.name()
                )
            },
        )?;
        let multibox = job.source.load_multibox::<JobError>(|| Ok(device))?;
        let batch = job.inference.batch(device);
        let mut params = DetectParams {
            search: job
                .source
                .search_params()
                .unwrap_or_else(|| proposals::SearchParams::new(proposals::Mode::Fast)),
            max_proposals: job.max_proposals,
            post: PostParams {
                score_threshold: job.score_threshold,
                nms_iou: job.nms_iou,
                top_per_class: job.top_per_class,
                top_per_image: job.top_per_image,
                background: columns.background,
            },
            batch,
            workers: job.inference.workers(),
            warp: job.warp,
            precomputed,
            learned: None,
            min_proposals: 0,
        };
        // One run per folder: another into it would replace these outputs and its journal.
        let _lock = lock_output(&job.out, "rcnn detect")?;
        let mut image_index = eval::Images::default();
        let mut name_of: HashMap<PathBuf, String> = Default::default();
        for (path, name) in images.iter().zip(&names) {
            image_index.intern(name);
            name_of.insert(path.clone(), name.clone());
        }
        let mapping = image_paths_csv(&images, &names);
        let mut dets = Vec::new();
        let (mut failed, mut n_proposals) = (0usize, 0usize);
        let mut drawn: Vec<(String, usize)> = Vec::new();
        if let Some(dir) = &job.visualize {
            std::fs::create_dir_all(dir)
                .map_err(|e| JobError::context(format!("creating {}", dir.display()), e))?;
        }
        // Image indices are those of the whole run; a shard processes its share.
        let mut formats = job.formats.clone();
        if shard.is_some() && !formats.iter().any(|f| f == "csv") {
            formats.push("csv".into()); // what rcnn merge reads
        }
        let images: Vec<PathBuf> = crate::run::shard::share(images, shard);
        let stale = stale_outputs(&job.out, &formats, &names);
        if !stale.is_empty() {
            tracing::warn!(
                "{} holds outputs of an earlier run that this run does not rewrite: {}",
                job.out.display(),
                stale.join(", ")
            );
        }
        let (mut journal, mut done) = open_journal(
            &job.out,
            job.resume,
            &journal_settings(job, device, batch, shard),
        )?;
        // An entry is trusted only for the same image file and values a run could write.
        let path_of: HashMap<&str, &PathBuf> =
            name_of.iter().map(|(p, n)| (n.as_str(), p)).collect();
        done.retain(|name, e| {
            let why = path_of
                .get(name.as_str())
                .and_then(|path| distrust(e, path, &columns));
            if let Some(why) = &why {
                warn(progress, format!("--resume: {name}: {why}; detected again"));
            }
            why.is_none()
        });
        let (mut resumed, mut skipped_before) = (0, 0);
        for e in done.values() {
            if let Some(reason) = &e.skipped {
                // Skipped before, and the file is the same: skipped again without reading it.
                failed += 1;
                skipped_before += 1;
                warn(
                    progress,
                    format!("skipped {} (journaled): {reason}", e.image),
                );
                continue;
            }
            if let Some(index) = image_index.get(&e.image) {
                resumed += 1;
                n_proposals += e.proposals;
                dets.extend(e.detected().iter().map(|d| eval::Detection {
                    image: index,
                    class: columns.class(d.class),
                    score: d.score as f64,
                    bbox: d.bbox,
                }));
                if job.visualize.is_some() {
                    let marks = e
                        .detected()
                        .iter()
                        .filter(|d| d.score >= job.visualize_threshold)
                        .count();
                    drawn.push((format!("{}.jpg", e.image), marks));
                }
            }
        }
        let images: Vec<PathBuf> = images
            .into_iter()
            .filter(|p| !done.contains_key(&name_of[p]))
            .collect();
        if resumed > 0 {
            tracing::info!(
                "resumed {resumed} images from the journal; {} to go",
                images.len()
            );
        }
        if let Some(mb) = &multibox {
            // MultiBox first, over the images still to do, batched on the device; selective
            // search (for the entry's mix) then runs in the pipeline's workers.
            progress.start("multibox", images.len() as u64);
            let (learned, seconds) = job
                .source
                .learned(Some(mb), &images, || progress.advance())
                .expect("a MultiBox network");
            progress.finish();
            tracing::info!(
                "MultiBox: {} images, {:.1} ms per image on the device",
                learned.boxes.len(),
                seconds * 1e3
            );
            params.learned = Some(learned);
        }
        let mut write_error: Option<JobError> = None;
        progress.start("detect", images.len() as u64);
        let times = detect(&images, &ensemble, &params, |outcome| {
            match outcome {
                Outcome::Done {
                    image,
                    detections,
                    proposals,
                } => {
                    n_proposals += proposals;
                    let name = &name_of[&image];
                    let index = image_index.get(name).expect("interned above");
                    // The image's own outputs first; the journal marks it done only once they
                    // are written, so that --resume never trusts a drawing that was lost.
                    let mut outputs_written = true;
                    if let Some(dir) = &job.visualize {
                        let file = format!("{name}.jpg");
                        let marks = columns.marks(&detections, job.visualize_threshold);
                        let drawing = eval::output::file_in(dir, name, ".jpg");
                        match drawing
                            .map_err(|e| e.to_string())
                            .and_then(|path| draw_into(&image, &marks, &path))
                        {
                            Ok(()) => drawn.push((file, marks.len())),
                            Err(e) => {
                                outputs_written = false;
                                warn(progress, format!("drawing {}: {e}", image.display()));
                                write_error.get_or_insert(JobError::Failed(
                                    format!("drawing: {e}").into(),
                                ));
                            }
                        }
                    }
                    if outputs_written && write_error.is_none() {
                        let entry =
                            Entry::new(name.clone(), proposals, &detections).of_file(&image);
                        if let Err(e) = journal.append(&entry) {
                            write_error.get_or_insert(e.into());
                        }
                    }
                    for d in detections {
                        dets.push(eval::Detection {
                            image: index,
                            class: columns.class(d.class),
                            score: d.score as f64,
                            bbox: d.bbox,
                        });
                    }
                }
                Outcome::Failed { image, reason } => {
                    failed += 1;
                    warn(progress, format!("skipped {}: {reason}", image.display()));
                    // Journaled, so that --resume does not read it again.
                    let entry = Entry::skipped(name_of[&image].clone(), reason).of_file(&image);
                    if write_error.is_none() {
                        if let Err(e) = journal.append(&entry) {
                            write_error = Some(e.into());
                        }
                    }
                }
            }
            progress.advance();
        });
        progress.finish();
        if let Some(e) = write_error {
            // The journal holds every image whose outputs were written: --resume goes on
            // from there.
            return Err(JobError::context(
                format!(
                    "outputs could not be written; the images finished so far are kept in the \
                     journal in {} (rerun with --resume once the problem is fixed)",
                    job.out.display()
                ),
                e,
            ));
        }
        if let Some(dir) = &job.visualize {
            drawn.sort();
            write_index(dir, &drawn).map_err(|e| JobError::Failed(e.into()))?;
        }
        // Image order, then score (stable): the same order however the run was split or
        // resumed.
        dets.sort_by(|a, b| a.image.cmp(&b.image).then(b.score.total_cmp(&a.score)));
        let detections = eval::Detections {
            dets,
            first_unknown_image: image_index.len(),
        };
        let class_list = eval::ClassList::from_names(columns.names);
        write_outputs(&job.out, &formats, &detections, &image_index, &class_list)?;
        // Which file each image name stands for.
        eval::write_atomically(&job.out.join("image_paths.csv"), mapping.as_bytes())?;
        write_shard_file(&job.out, shard)?;
        journal.finish()?;
        Ok(DetectSummary {
            images: resumed + images.len() - (failed - skipped_before),
            resumed,
            skipped: failed,
            proposals: n_proposals,
            detections: detections.dets.len(),
            processed: images.len(),
            times,
        })
    }
}
