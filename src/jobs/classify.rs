//! The `rcnn classify` job: GoogLeNet's ILSVRC classification test over folders of images,
//! with `--resume`, `--shard K/N` and, given labels, the devkit's top-1 and top-5 error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eval::classification::{label_for, read_labels, score, ClassificationReport};
use eval::ClassList;
use serde::{Deserialize, Serialize};

use super::outputs::{image_paths_csv, write_shard_file};
use super::{ensure, warn, Inference, JobError, Progress};
use crate::classify::{classify, top_k, Classified, ClassifyParams, Crops};
use crate::detect::decode::image_names;
use crate::ensemble::Ensemble;
use crate::model::Model;
use crate::run::journal::Journal;
use crate::run::shard::ShardSpec;

/// Everything that decides a classify run.
#[derive(Debug, Clone)]
pub struct ClassifyJob {
    /// Folders (searched recursively), image files, or .txt lists of paths.
    pub images: Vec<PathBuf>,
    /// Model files; several make an ensemble, each with its own normalisation.
    pub models: Vec<PathBuf>,
    pub out: PathBuf,
    pub crops: Crops,
    /// Classes kept per image in the outputs.
    pub top: usize,
    /// Class names (default: the model's, else ILSVRC2012's for 1000 outputs).
    pub classes: Option<PathBuf>,
    /// Ground truth: `image label` lines or a `WNID/image` tree.
    pub labels: Option<PathBuf>,
    /// The errors as JSON (with `labels`).
    pub report: Option<PathBuf>,
    /// Stop at the first bad line of `labels`.
    pub strict: bool,
    pub inference: Inference,
    pub shard: Option<ShardSpec>,
    pub resume: bool,
}

impl ClassifyJob {
    /// One centre crop, the top 5 classes, no labels.
    pub fn new(images: Vec<PathBuf>, models: Vec<PathBuf>, out: PathBuf) -> Self {
        ClassifyJob {
            images,
            models,
            out,
            crops: Crops::One,
            top: 5,
            classes: None,
            labels: None,
            report: None,
            strict: false,
            inference: Inference::default(),
            shard: None,
            resume: false,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct ClassifySummary {
    /// Images in the outputs (this shard's), resumed ones included.
    pub classified: usize,
    /// Images skipped, each named in a warning.
    pub skipped: usize,
    /// Images classified now (not resumed), and the seconds it took.
    pub processed: usize,
    pub wall: f64,
    pub networks: usize,
    /// With labels: the errors, and how many classified images had no label.
    pub errors: Option<(ClassificationReport, usize)>,
}

/// What the journal and the outputs keep of an image: its best classes and their
/// probabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    image: String,
    top: Vec<(usize, f32)>,
    /// The image file's size and modification time when classified (see
    /// [`crate::detect::file_stamp`]; absent in journals of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<(u64, u64)>,
}

/// The class names for `n` outputs: --classes, else the model's, else ILSVRC2012's for 1000.
fn class_list(
    file: Option<&Path>,
    model_classes: &[String],
    n: usize,
) -> Result<ClassList, JobError> {
    if let Some(f) = file {
        let list = ClassList::read(f)?;
        ensure(list.len() == n, || {
            format!(
                "{}: {} classes, but the model has {n} outputs",
                f.display(),
                list.len()
            )
        })?;
        return Ok(list);
    }
    Ok(if model_classes.len() == n {
        ClassList::from_names(model_classes.to_vec())
    } else if n == 1000 {
        ClassList::ilsvrc1000()
    } else {
        ClassList::from_names((0..n).map(|i| format!("class{i}")).collect())
    })
}

fn settings(
    job: &ClassifyJob,
    device: tch::Device,
    batch: usize,
    keep: usize,
    shard: Option<(usize, usize)>,
) -> serde_json::Map<String, serde_json::Value> {
    let file = crate::run::journal::file_identity;
    let v = serde_json::json!({
        "images": job.images,
        "models": job.models.iter().map(|m| file(m)).collect::<Vec<_>>(),
        "crops": job.crops.name(),
        "kept": keep,
        "classes": job.classes.as_deref().map(file),
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "precision": job.inference.precision.name(),
        "batch": batch,
        "shard": shard.map(|(k, n)| format!("{k}/{n}")),
    });
    v.as_object().expect("an object").clone()
}

/// One image in the outputs: its best classes, named, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub image: String,
    pub path: Option<PathBuf>,
    pub top: Vec<Ranked>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub class: usize,
    pub wnid: String,
    pub name: String,
    pub probability: f32,
}

impl Output {
    fn new(row: &Row, path: Option<PathBuf>, classes: &ClassList, top: usize) -> Self {
        Output {
            image: row.image.clone(),
            path,
            top: row
                .top
                .iter()
                .take(top)
                .map(|&(class, probability)| Ranked {
                    class,
                    wnid: classes.wnids[class].clone(),
                    name: classes.names[class].clone(),
                    probability,
                })
                .collect(),
        }
    }
}

/// classifications.csv (one row per image and rank) and classifications.json (one object per
/// image), written atomically; `rcnn merge` writes a sharded run's with the same function.
pub fn write_outputs(out: &Path, outputs: &[Output]) -> Result<(), JobError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image", "rank", "class", "wnid", "name", "probability"])
        .expect("in memory");
    for o in outputs {
        for (rank, r) in o.top.iter().enumerate() {
            w.write_record([
                o.image.as_str(),
                &(rank + 1).to_string(),
                &r.class.to_string(),
                &r.wnid,
                &r.name,
                &format!("{:.7}", r.probability),
            ])
            .expect("in memory");
        }
    }
    eval::write_atomically(
        &out.join("classifications.csv"),
        &w.into_inner().expect("in memory"),
    )?;
    let json = serde_json::to_string_pretty(outputs).expect("serialisable") + "\n";
    eval::write_atomically(&out.join("classifications.json"), json.as_bytes())?;
    Ok(())
}

/// The labels, read before any work so that a bad file stops the run at once.
fn read_labels_file(
    path: &Path,
    classes: &ClassList,
    strict: bool,
) -> Result<HashMap<String, usize>, JobError> {
    let mut issues = eval::Issues::new(strict);
    let labels = read_labels(path, classes, &mut issues)?;
    if issues.total() > 0 {
        tracing::warn!("{}: {issues}", path.display());
        for e in &issues.examples {
            tracing::warn!("  {e}");
        }
    }
    ensure(!labels.is_empty(), || {
        format!("{}: no labels", path.display())
    })?;
    Ok(labels)
}

impl ClassifyJob {
    /// Runs the job: checks inputs and outputs before any work, classifies the images not
    /// already in the journal, writes the outputs and, with labels, scores them.
    pub fn run(&self, progress: &dyn Progress) -> Result<ClassifySummary, JobError> {
        let job = self;
        let images = super::collect_images(&job.images, &[&job.out])?;
        let names = image_names(&images);
        let shard = crate::run::shard::resolve(job.shard).map_err(JobError::Refused)?;
        // Image indices (and names) are those of the whole run; a shard classifies its share.
        let (all_images, all_names) = (images.clone(), names.clone());
        let (images, names): (Vec<PathBuf>, Vec<String>) =
            crate::run::shard::share(images.into_iter().zip(names).collect(), shard)
                .into_iter()
                .unzip();
        eval::protect_inputs(
            images
                .iter()
                .chain(&job.models)
                .chain(job.classes.as_ref())
                .chain(job.labels.as_ref()),
        );
        eval::check_output_dir(&job.out)?;
        for f in [
            "classifications.csv",
            "classifications.json",
            "image_paths.csv",
            "shard.json",
        ] {
            eval::check_not_input(&job.out.join(f))?;
        }
        if let Some(r) = &job.report {
            eval::check_not_input(r)?;
        }
        let device = crate::run::device::select(job.inference.device, job.inference.threads)?;
        let models = job
            .models
            .iter()
            .map(|m| Model::load(m, device))
            .collect::<Result<Vec<_>, _>>()?;
        let channels_last = job.inference.channels_last(device);
        let ensemble =
            Ensemble::of_image_classifiers(models, job.inference.precision.kind(), channels_last)?;
        let n_classes = ensemble.models[0].config().num_classes as usize;
        let classes = class_list(job.classes.as_deref(), ensemble.classes(), n_classes)?;
        let labels = match &job.labels {
            Some(path) => Some(read_labels_file(path, &classes, job.strict)?),
            None => None,
        };
        let batch = job.inference.batch(device);
        // The journal keeps at least five classes, so that the top-5 error can be scored from it.
        let keep = job.top.max(5).min(n_classes);
        // One run per folder: another into it would replace these outputs and its journal.
        let _lock = crate::run::lock::lock_output(&job.out, "rcnn classify")?;
        let journal_path = job.out.join(".rcnn-classify.journal");
        let (mut journal, done) = Journal::open_file::<Row>(
            &journal_path,
            job.resume,
            &settings(job, device, batch, keep, shard),
        )?;
        let path_of: HashMap<String, PathBuf> =
            names.iter().cloned().zip(images.iter().cloned()).collect();
        // A row is trusted only for the same image file and classes the model has.
        let mut results: HashMap<String, Row> = done
            .into_iter()
            .filter(|r| {
                let Some(path) = path_of.get(&r.image) else {
                    return false;
                };
                let why = if r.file.is_some() && r.file != crate::detect::file_stamp(path) {
                    Some(format!("{} changed since it was journaled", path.display()))
                } else if r.top.iter().any(|&(c, p)| c >= n_classes || !p.is_finite()) {
                    Some("the journal holds a class the model lacks or a bad probability".into())
                } else {
                    None
                };
                if let Some(why) = &why {
                    warn(
                        progress,
                        format!("--resume: {}: {why}; classified again", r.image),
                    );
                }
                why.is_none()
            })
            .map(|r| (r.image.clone(), r))
            .collect();
        let todo: Vec<PathBuf> = images
            .iter()
            .zip(&names)
            .filter(|(_, n)| !results.contains_key(*n))
            .map(|(p, _)| p.clone())
            .collect();
        if !results.is_empty() {
            tracing::info!(
                "resumed {} images from the journal; {} to go",
                results.len(),
                todo.len()
            );
        }
        let name_of: HashMap<&PathBuf, &String> = images.iter().zip(&names).collect();
        tracing::info!(
            "{} model(s), {} classes, {} crops per image, {} on {}",
            ensemble.models.len(),
            n_classes,
            job.crops.name(),
            job.inference.precision.name(),
            crate::run::device::describe(device)
        );
        progress.start("classify", todo.len() as u64);
        let params = ClassifyParams {
            crops: job.crops,
            batch,
            workers: job.inference.workers(),
        };
        let mut failed = 0;
        let mut write_error: Option<JobError> = None;
        let times = classify(&todo, &ensemble, &params, |c| {
            match c {
                Classified::Done {
                    image,
                    probabilities,
                } => {
                    let row = Row {
                        image: name_of[&image].clone(),
                        top: top_k(&probabilities, keep),
                        file: crate::detect::file_stamp(&image),
                    };
                    if write_error.is_none() {
                        if let Err(e) = journal.append(&row) {
                            write_error = Some(e.into());
                        }
                    }
                    results.insert(row.image.clone(), row);
                }
                Classified::Failed { image, reason } => {
                    failed += 1;
                    warn(progress, format!("skipped {}: {reason}", image.display()));
                }
            }
            progress.advance();
        });
        progress.finish();
        if let Some(e) = write_error {
            return Err(JobError::context(
                format!(
                    "the journal could not be written; rerun with --resume in {} once the \
                     problem is fixed",
                    job.out.display()
                ),
                e,
            ));
        }
        // Outputs in the order of the images, whatever was resumed.
        let rows: Vec<&Row> = names.iter().filter_map(|n| results.get(n)).collect();
        let outputs: Vec<Output> = rows
            .iter()
            .map(|r| Output::new(r, path_of.get(&r.image).cloned(), &classes, job.top))
            .collect();
        write_outputs(&job.out, &outputs)?;
        // Every image of the run, all shards included (what `rcnn merge` orders them by).
        eval::write_atomically(
            &job.out.join("image_paths.csv"),
            image_paths_csv(&all_images, &all_names).as_bytes(),
        )?;
        write_shard_file(&job.out, shard)?;
        journal.finish()?;
        let classified = rows.len();
        let errors = match labels {
            Some(labels) => Some(self.score(&rows, &labels, &path_of, &classes)?),
            None => None,
        };
        Ok(ClassifySummary {
            classified,
            skipped: failed,
            processed: todo.len().saturating_sub(failed),
            wall: times.wall,
            networks: ensemble.models.len(),
            errors,
        })
    }

    /// Top-1 and top-5 error of `rows` against `labels` (written to `report` when asked).
    fn score(
        &self,
        rows: &[&Row],
        labels: &HashMap<String, usize>,
        path_of: &HashMap<String, PathBuf>,
        classes: &ClassList,
    ) -> Result<(ClassificationReport, usize), JobError> {
        let mut unlabelled = 0;
        let (guesses, truth): (Vec<Vec<usize>>, Vec<Option<usize>>) = rows
            .iter()
            .map(|r| {
                let label = label_for(labels, &r.image, &path_of[&r.image]);
                unlabelled += usize::from(label.is_none());
                (r.top.iter().map(|&(c, _)| c).collect(), label)
            })
            .unzip();
        if unlabelled > 0 {
            tracing::warn!("{unlabelled} of {} images have no label in the ground truth; they are left out of the error", rows.len());
        }
        let report = score(&guesses, &truth, classes);
        ensure(report.overall.images > 0, || {
            "no classified image has a label in the ground truth".into()
        })?;
        if let Some(file) = &self.report {
            let json = serde_json::json!({
                "crops": self.crops.count(),
                "models": self.models,
                "images": rows.len(),
                "unlabelled": unlabelled,
                "overall": report.overall,
                "per_class": report.per_class,
            });
            eval::write_atomically(
                file,
                (serde_json::to_string_pretty(&json).expect("serialisable") + "\n").as_bytes(),
            )?;
        }
        Ok((report, unlabelled))
    }
}
