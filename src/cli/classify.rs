//! `rcnn classify`: GoogLeNet's ILSVRC classification test on folders of images.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use eval::classification::{label_for, read_labels, score, ClassificationReport};
use eval::ClassList;
use inception_rcnn::classifier::Ensemble;
use inception_rcnn::classify::{classify, top_k, Classified, ClassifyParams, Crops};
use inception_rcnn::decode::{collect_images, image_names};
use inception_rcnn::device;
use inception_rcnn::journal::Journal;
use inception_rcnn::model::Model;
use inception_rcnn::shard::ShardSpec;
use serde::{Deserialize, Serialize};

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file(s) (`rcnn import-weights` makes them from torchvision's state dicts); several
    /// make an ensemble whose softmax is averaged (the paper's 7). Each keeps its own
    /// normalisation and transform_input; all must have the same classes and input size.
    #[arg(long = "model", required = true, value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Output folder: classifications.csv, classifications.json, image_paths.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Crops per image: 1 (centre crop at 256, as torchvision evaluates), 10 (corners, centre
    /// and mirrors at 256) or 144 (the paper: 4 scales x 3 squares x 6 crops x 2 mirrors).
    #[arg(long, value_enum, default_value_t = Crops::One)]
    crops: Crops,
    /// Classes kept per image in the outputs, best first.
    #[arg(long, default_value_t = 5, value_parser = super::range::count)]
    top: usize,
    /// Class names: one a line, or `index<TAB>WNID<TAB>name` (default: the model's own, else
    /// the ILSVRC2012 list for 1000 outputs, else class0, class1, ...).
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    /// Ground truth: a file of `image label` lines (the label a 0-based class index or a WNID;
    /// the image its name, file name or path), or an ImageNet-style folder tree `WNID/image`.
    /// Prints top-1 and top-5 error per class and overall, as the ILSVRC devkit scores them.
    #[arg(long, value_name = "FILE|DIR")]
    labels: Option<PathBuf>,
    /// Write the errors (per class and overall) as JSON.
    #[arg(long, value_name = "FILE", requires = "labels")]
    report: Option<PathBuf>,
    /// Stop at the first bad line of --labels instead of skipping it.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Take every N-th image from the K-th of the sorted list, for N machines sharing a set
    /// (`rcnn merge` joins their outputs); `auto`: K and N from the scheduler, as detect's.
    #[arg(long, value_name = "K/N|auto")]
    shard: Option<ShardSpec>,
    /// Continue a run that was stopped or killed: images already in its journal (in --out)
    /// are not classified again.
    #[arg(long)]
    resume: bool,
}

/// What the journal and the outputs keep of an image: its best classes and their
/// probabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    image: String,
    top: Vec<(usize, f32)>,
}

/// The class names for `n` outputs: --classes, else the model's, else ILSVRC2012's for 1000.
fn class_list(
    file: Option<&Path>,
    model_classes: &[String],
    n: usize,
) -> anyhow::Result<ClassList> {
    if let Some(f) = file {
        let list = ClassList::read(f)?;
        anyhow::ensure!(
            list.len() == n,
            "{}: {} classes, but the model has {n} outputs",
            f.display(),
            list.len()
        );
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
    args: &ClassifyArgs,
    device: tch::Device,
    batch: usize,
    keep: usize,
    shard: Option<(usize, usize)>,
) -> serde_json::Map<String, serde_json::Value> {
    let file = inception_rcnn::journal::file_identity;
    let v = serde_json::json!({
        "images": args.images,
        "models": args.models.iter().map(|m| file(m)).collect::<Vec<_>>(),
        "crops": args.crops.name(),
        "kept": keep,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "precision": args.inference.precision.name(),
        "batch": batch,
        "shard": shard.map(|(k, n)| format!("{k}/{n}")),
    });
    v.as_object().expect("an object").clone()
}

/// One image in the outputs: its best classes, named, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Output {
    pub image: String,
    pub path: Option<PathBuf>,
    pub top: Vec<Ranked>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ranked {
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
pub(crate) fn write_outputs(out: &Path, outputs: &[Output]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image", "rank", "class", "wnid", "name", "probability"])?;
    for o in outputs {
        for (rank, r) in o.top.iter().enumerate() {
            w.write_record([
                o.image.as_str(),
                &(rank + 1).to_string(),
                &r.class.to_string(),
                &r.wnid,
                &r.name,
                &format!("{:.7}", r.probability),
            ])?;
        }
    }
    eval::write_atomically(&out.join("classifications.csv"), &w.into_inner()?)?;
    let json = serde_json::to_string_pretty(outputs)? + "\n";
    eval::write_atomically(&out.join("classifications.json"), json.as_bytes())?;
    Ok(())
}

fn print_report(report: &ClassificationReport) {
    println!("top-1 and top-5 error (ILSVRC devkit: an image is an error at k when its label is not among its first k classes)");
    let width = report
        .per_class
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    println!(
        "{:<width$} {:>7} {:>7} {:>7}",
        "class", "images", "top-1", "top-5"
    );
    for r in report
        .per_class
        .iter()
        .chain(std::iter::once(&report.overall))
    {
        let name: String = r.name.chars().take(width).collect();
        println!(
            "{name:<width$} {:>7} {:>7.4} {:>7.4}",
            r.images, r.top1_error, r.top5_error
        );
    }
}

pub fn run(args: ClassifyArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let images = collect_images(&args.images).context("collecting images")?;
    anyhow::ensure!(
        !images.is_empty(),
        "no images (jpg, jpeg, png, bmp, webp) in {:?}",
        args.images
    );
    let names = image_names(&images);
    let shard = inception_rcnn::shard::resolve(args.shard).map_err(anyhow::Error::msg)?;
    // Image indices (and names) are those of the whole run; a shard classifies its share.
    let (all_images, all_names) = (images.clone(), names.clone());
    let (images, names): (Vec<PathBuf>, Vec<String>) =
        inception_rcnn::shard::share(images.into_iter().zip(names).collect(), shard)
            .into_iter()
            .unzip();
    eval::protect_inputs(
        images
            .iter()
            .chain(&args.models)
            .chain(args.classes.as_ref())
            .chain(args.labels.as_ref()),
    );
    eval::check_output_dir(&args.out)?;
    for f in [
        "classifications.csv",
        "classifications.json",
        "image_paths.csv",
        "shard.json",
    ] {
        eval::check_not_input(&args.out.join(f))?;
    }
    if let Some(r) = &args.report {
        eval::check_not_input(r)?;
    }
    let device = device::select(args.inference.device.device, threads)?;
    let models = args
        .models
        .iter()
        .map(|m| Model::load(m, device))
        .collect::<Result<Vec<_>, _>>()?;
    let channels_last = args.inference.channels_last(device);
    let ensemble =
        Ensemble::of_image_classifiers(models, args.inference.precision.kind(), channels_last)?;
    let n_classes = ensemble.models[0].config().num_classes as usize;
    let classes = class_list(args.classes.as_deref(), ensemble.classes(), n_classes)?;
    // Labels are read before any work, so that a bad file stops the run at once.
    let labels = match &args.labels {
        Some(path) => {
            let mut issues = eval::Issues::new(args.strict);
            let labels = read_labels(path, &classes, &mut issues)?;
            if issues.total() > 0 {
                tracing::warn!("{}: {issues}", path.display());
                for e in &issues.examples {
                    tracing::warn!("  {e}");
                }
            }
            anyhow::ensure!(!labels.is_empty(), "{}: no labels", path.display());
            Some(labels)
        }
        None => None,
    };
    let batch = args.inference.batch(device);
    // The journal keeps at least five classes, so that the top-5 error can be scored from it.
    let keep = args.top.max(5).min(n_classes);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let journal_path = args.out.join(".rcnn-classify.journal");
    let (mut journal, done) = Journal::open_file::<Row>(
        &journal_path,
        args.resume,
        &settings(&args, device, batch, keep, shard),
    )?;
    let path_of: std::collections::HashMap<String, PathBuf> =
        names.iter().cloned().zip(images.iter().cloned()).collect();
    let mut results: std::collections::HashMap<String, Row> = done
        .into_iter()
        .filter(|r| path_of.contains_key(&r.image))
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
    let name_of: std::collections::HashMap<&PathBuf, &String> = images.iter().zip(&names).collect();
    tracing::info!(
        "{} model(s), {} classes, {} crops per image, {} on {}",
        ensemble.models.len(),
        n_classes,
        args.crops.name(),
        args.inference.precision.name(),
        device::describe(device)
    );
    let bar = super::progress_bar(
        todo.len() as u64,
        "classify [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
    );
    let params = ClassifyParams {
        crops: args.crops,
        batch,
        workers: args.inference.workers(),
    };
    let mut failed = 0;
    let mut write_error: Option<anyhow::Error> = None;
    let times = classify(&todo, &ensemble, &params, |c| {
        match c {
            Classified::Done {
                image,
                probabilities,
            } => {
                let row = Row {
                    image: name_of[&image].clone(),
                    top: top_k(&probabilities, keep),
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
                bar.suspend(|| tracing::warn!("skipped {}: {reason}", image.display()));
            }
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.context(format!(
            "the journal could not be written; rerun with --resume in {} once the problem is fixed",
            args.out.display()
        )));
    }
    // Outputs in the order of the images, whatever was resumed.
    let rows: Vec<&Row> = names.iter().filter_map(|n| results.get(n)).collect();
    let outputs: Vec<Output> = rows
        .iter()
        .map(|r| Output::new(r, path_of.get(&r.image).cloned(), &classes, args.top))
        .collect();
    write_outputs(&args.out, &outputs)?;
    // Every image of the run, all shards included (what `rcnn merge` orders them by).
    eval::write_atomically(
        &args.out.join("image_paths.csv"),
        super::detect::image_paths_csv(&all_images, &all_names).as_bytes(),
    )?;
    super::detect::write_shard_file(&args.out, shard)?;
    journal.finish()?;
    let classified = rows.len();
    println!(
        "{classified} images{}, {} crops each, {:.2} images/s ({:.1} crops/s); outputs in {}",
        if failed > 0 {
            format!(" ({failed} skipped, each named above)")
        } else {
            String::new()
        },
        args.crops.name(),
        todo.len().saturating_sub(failed) as f64 / times.wall,
        (todo.len().saturating_sub(failed) * args.crops.count() * ensemble.models.len()) as f64
            / times.wall,
        args.out.display()
    );
    if let Some(labels) = labels {
        let mut unlabelled = 0;
        let (guesses, truth): (Vec<Vec<usize>>, Vec<Option<usize>>) = rows
            .iter()
            .map(|r| {
                let label = label_for(&labels, &r.image, &path_of[&r.image]);
                unlabelled += usize::from(label.is_none());
                (r.top.iter().map(|&(c, _)| c).collect(), label)
            })
            .unzip();
        if unlabelled > 0 {
            tracing::warn!("{unlabelled} of {classified} images have no label in the ground truth; they are left out of the error");
        }
        let report = score(&guesses, &truth, &classes);
        anyhow::ensure!(
            report.overall.images > 0,
            "no classified image has a label in the ground truth"
        );
        print_report(&report);
        if let Some(file) = &args.report {
            let json = serde_json::json!({
                "crops": args.crops.count(),
                "models": args.models,
                "images": classified,
                "unlabelled": unlabelled,
                "overall": report.overall,
                "per_class": report.per_class,
            });
            eval::write_atomically(
                file,
                (serde_json::to_string_pretty(&json)? + "\n").as_bytes(),
            )?;
        }
    }
    Ok(())
}
