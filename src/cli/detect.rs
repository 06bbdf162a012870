//! `rcnn detect`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inception_rcnn::classifier::{Ensemble, Head};
use inception_rcnn::decode::{collect_images, decode, image_names};
use inception_rcnn::detect::{detect, DetectParams, Outcome};
use inception_rcnn::device;
use inception_rcnn::device_stage::WarpMode;
use inception_rcnn::journal::{Entry, Journal};
use inception_rcnn::model::Model;
use inception_rcnn::postprocess::PostParams;
use inception_rcnn::propose::{read_proposals, ProposalMode};
use inception_rcnn::shard::ShardSpec;
use inception_rcnn::visualize::{draw, save_jpeg, write_index, Mark};

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file(s); several make an ensemble whose softmax scores are averaged.
    #[arg(long = "model", required = true, value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub(super) out: PathBuf,
    /// What scores a region: the network's softmax, or the class SVMs a model carries after
    /// `rcnn train-heads --svm` (sigmoid of the margin).
    #[arg(long, value_enum, default_value_t = Head::Softmax)]
    head: Head,
    /// Keep each proposal's box: no class-specific box regression even when the model carries
    /// regressors (`rcnn train-heads --bbox-reg`). With them, boxes are regressed before NMS.
    #[arg(long)]
    no_bbox_reg: bool,
    /// Output formats: ilsvrc (detections.txt + image_list.txt), csv, coco (detections.json),
    /// txt (one file per image in txt/).
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
    #[command(flatten)]
    inference: super::InferenceArgs,
    /// Where crops are warped: on the network's device from the image uploaded once (grid
    /// sampling), or by OpenCV on the CPU.
    #[arg(long, value_enum, default_value_t = WarpMode::Device)]
    warp: WarpMode,
    /// Proposals kept per image (R-CNN: 2000).
    #[arg(long, default_value_t = 2000, value_parser = super::range::count)]
    max_proposals: usize,
    /// Per-class NMS IoU (R-CNN's ILSVRC code: 0.3).
    #[arg(long, default_value_t = 0.3, value_parser = super::range::iou)]
    nms_iou: f32,
    /// Drop detections scoring below this.
    #[arg(long, default_value_t = 0.01, value_parser = super::range::score)]
    score_threshold: f32,
    #[arg(long, default_value_t = 100, value_parser = super::range::count)]
    top_per_class: usize,
    #[arg(long, default_value_t = 1000, value_parser = super::range::count)]
    top_per_image: usize,
    /// Precomputed proposals (the CSV or JSON `rcnn proposals --out` writes) instead of
    /// running selective search.
    #[arg(long, value_name = "FILE")]
    proposals: Option<PathBuf>,
    #[command(flatten)]
    source: super::proposals::ProposalOptions,
    /// Draw each image's detections (score at least --visualize-threshold) into DIR, with an
    /// index.html showing them as a grid.
    #[arg(long, value_name = "DIR")]
    visualize: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5, value_parser = super::range::score)]
    visualize_threshold: f32,
    /// Take a deterministic 1/N of the images (every N-th, starting at the K-th of the sorted
    /// list), for N machines sharing a set; `rcnn merge` joins their outputs. `auto`: K and N
    /// from the scheduler (a Slurm array task, srun's tasks, a Kubernetes Indexed Job with
    /// RCNN_SHARD_COUNT).
    #[arg(long, value_name = "K/N|auto")]
    pub(super) shard: Option<ShardSpec>,
    /// Continue a run that was stopped or killed: images already in its journal (in --out)
    /// are not done again, and the outputs equal an uninterrupted run's.
    #[arg(long)]
    pub(super) resume: bool,
    /// Print the time of each stage at the end.
    #[arg(long)]
    profile: bool,
    /// Stop at the first bad line or box of the --proposals file instead of skipping it.
    #[arg(long)]
    strict: bool,
}

/// Writes `formats` into `out`, plus `classes.txt` and `image_list.txt` (every image of the run,
/// all shards included, so that shards' outputs merge).
pub(crate) fn write_outputs(
    out: &std::path::Path,
    formats: &[String],
    detections: &eval::Detections,
    images: &eval::Images,
    classes: &eval::ClassList,
) -> anyhow::Result<()> {
    use eval::writers;
    let list: String = images
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} {}\n", i + 1))
        .collect();
    eval::write_atomically(&out.join("image_list.txt"), list.as_bytes())?;
    let names: String = classes.names.iter().map(|n| format!("{n}\n")).collect();
    eval::write_atomically(&out.join("classes.txt"), names.as_bytes())?;
    for f in formats {
        match f.as_str() {
            "ilsvrc" => writers::write_ilsvrc(
                &out.join("detections.txt"),
                &out.join("image_list.txt"),
                detections,
                images,
            )?,
            "csv" => writers::write_csv(&out.join("detections.csv"), detections, images, classes)?,
            "coco" => writers::write_coco(&out.join("detections.json"), detections, images)?,
            _ => writers::write_txt_dir(&out.join("txt"), detections, images, classes)?,
        }
    }
    Ok(())
}

/// The settings that decide a run's outputs, as the journal records them for `--resume`.
fn settings(
    args: &DetectArgs,
    device: tch::Device,
    batch: usize,
    shard: Option<(usize, usize)>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let file = inception_rcnn::journal::file_identity;
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    // f32 flags as the user wrote them (0.3, not 0.30000001192092896).
    let f = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::NAN);
    let v = json!({
        "images": args.images,
        "models": args.models.iter().map(|m| file(m)).collect::<Vec<_>>(),
        "formats": formats,
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "precision": format!("{:?}", args.inference.precision),
        "head": format!("{:?}", args.head),
        "no_bbox_reg": args.no_bbox_reg,
        "warp": format!("{:?}", args.warp),
        "batch": batch,
        "max_proposals": args.max_proposals,
        "nms_iou": f(args.nms_iou),
        "score_threshold": f(args.score_threshold),
        "top_per_class": args.top_per_class,
        "top_per_image": args.top_per_image,
        "proposals": args.proposals.as_deref().map(file),
        "proposal_mode": args.source.mode.name(),
        "scale": f(args.source.scale),
        "multibox": args.source.multibox.as_deref().map(file),
        "multibox_top": args.source.multibox_top,
        "visualize": args.visualize,
        "visualize_threshold": f(args.visualize_threshold),
        "shard": shard.map(|(k, n)| format!("{k}/{n}")),
    });
    v.as_object().expect("an object").clone()
}

/// Earlier outputs in `out` that this run will not rewrite: other formats, other images' txt
/// files. They are named, not deleted (they may be someone's only copy).
fn stale_outputs(out: &std::path::Path, formats: &[String], names: &[String]) -> Vec<String> {
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
        let wanted: std::collections::HashSet<PathBuf> = if formats.iter().any(|f| f == "txt") {
            names.iter().map(|n| txt.join(format!("{n}.txt"))).collect()
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

/// No output may replace an input, whatever flag named it: the inputs are registered with the
/// writer, and the files this run will write are checked now, before any work.
fn check_outputs(args: &DetectArgs, images: &[PathBuf], names: &[String]) -> anyhow::Result<()> {
    eval::protect_inputs(
        images
            .iter()
            .chain(&args.models)
            .chain(args.proposals.as_ref()),
    );
    eval::check_output_dir(&args.out)?;
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
    .map(|f| args.out.join(f))
    .collect();
    planned.extend(
        names
            .iter()
            .map(|n| args.out.join("txt").join(format!("{n}.txt"))),
    );
    if let Some(dir) = &args.visualize {
        eval::check_output_dir(dir)?;
        planned.push(dir.join("index.html"));
        planned.extend(names.iter().map(|n| dir.join(format!("{n}.jpg"))));
    }
    for p in &planned {
        eval::check_not_input(p)?;
    }
    Ok(())
}

/// `image_paths.csv`: which file each image name stands for.
pub(crate) fn image_paths_csv(images: &[PathBuf], names: &[String]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image", "path"]).expect("in memory");
    for (p, n) in images.iter().zip(names) {
        w.write_record([n.as_str(), &p.to_string_lossy()])
            .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
}

/// Precomputed proposals by image path: the file names images as `rcnn proposals` does, with
/// the same unique names. Its bad lines and boxes are reported (and stop the run with --strict).
fn precomputed_proposals(
    args: &DetectArgs,
    images: &[PathBuf],
    names: &[String],
) -> anyhow::Result<Option<std::collections::HashMap<PathBuf, Vec<eval::BBox>>>> {
    let Some(file) = &args.proposals else {
        return Ok(None);
    };
    let mut issues = eval::Issues::new(args.strict);
    let mut by_name = read_proposals(file, &mut issues)?;
    if issues.total() > 0 {
        tracing::warn!("{}: {issues}", file.display());
        for e in &issues.examples {
            tracing::warn!("  {e}");
        }
    }
    Ok(Some(
        images
            .iter()
            .zip(names)
            .filter_map(|(p, n)| by_name.remove(n).map(|b| (p.clone(), b)))
            .collect(),
    ))
}

/// The marks drawn for an image's detections scoring at least `threshold`.
fn marks(
    detections: &[inception_rcnn::postprocess::Detected],
    threshold: f32,
    class_names: &[String],
    to_class: impl Fn(usize) -> usize,
) -> Vec<Mark> {
    detections
        .iter()
        .filter(|d| d.score >= threshold)
        .map(|d| {
            let class = to_class(d.class);
            Mark {
                label: format!("{} {:.2}", class_names[class], d.score),
                class,
                bbox: d.bbox,
                colour: None,
            }
        })
        .collect()
}

/// Decodes `image` again, draws `marks` and writes the JPEG to `out`.
fn draw_into(image: &std::path::Path, marks: &[Mark], out: &std::path::Path) -> Result<(), String> {
    let img = decode(image).map_err(|e| e.to_string())?;
    let drawn = draw(&img, marks).map_err(|e| e.to_string())?;
    save_jpeg(&drawn, out)
}

/// `shard.json` (K/N) for `rcnn merge` to check that shards partition a run; an unsharded run
/// removes an earlier one.
pub(crate) fn write_shard_file(
    out: &std::path::Path,
    shard: Option<(usize, usize)>,
) -> anyhow::Result<()> {
    let file = out.join("shard.json");
    match shard {
        Some((k, n)) => eval::write_atomically(
            &file,
            serde_json::json!({"shard": k, "of": n})
                .to_string()
                .as_bytes(),
        )?,
        None if file.exists() => {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?
        }
        None => {}
    }
    Ok(())
}

fn print_profile(times: &inception_rcnn::detect::StageTimes) {
    println!(
        "stage seconds (decode and proposals summed over the workers, which overlap the device stage):"
    );
    for (name, s) in [
        ("decode", times.decode),
        ("proposals", times.proposals),
        ("upload", times.upload),
        ("warp", times.warp),
        ("classify", times.classify),
        ("readback", times.readback),
        ("postprocess", times.postprocess),
        ("starved", times.starved),
        ("wall", times.wall),
    ] {
        println!("  {name:<12} {s:>9.3}");
    }
}

pub fn run(args: DetectArgs, threads: Option<usize>) -> anyhow::Result<()> {
    for f in &args.format {
        anyhow::ensure!(
            ["ilsvrc", "csv", "coco", "txt"].contains(&f.as_str()),
            "unknown --format `{f}` (ilsvrc, csv, coco, txt)"
        );
    }
    let shard = inception_rcnn::shard::resolve(args.shard).map_err(anyhow::Error::msg)?;
    let images = collect_images(&args.images).context("collecting images")?;
    anyhow::ensure!(
        !images.is_empty(),
        "no images (jpg, jpeg, png, bmp, webp) in {:?}",
        args.images
    );
    // Every image has a name of its own in every output, the journal and the drawings.
    let names = image_names(&images);
    check_outputs(&args, &images, &names)?;
    let device = device::select(args.inference.device.device, threads)?;
    let models = args
        .models
        .iter()
        .map(|m| Model::load(m, device))
        .collect::<Result<Vec<_>, _>>()?;
    let channels_last = args.inference.channels_last(device);
    let mut ensemble =
        Ensemble::with_layout(models, args.inference.precision.kind(), channels_last)?;
    let regress = ensemble.use_heads(args.head, !args.no_bbox_reg)?;
    tracing::info!(
        "head: {:?}; box regression: {}",
        args.head,
        if regress {
            "on"
        } else if args.no_bbox_reg {
            "off (--no-bbox-reg)"
        } else {
            "off (the model has no regressors)"
        }
    );
    let classes = ensemble.classes().to_vec();
    let background = classes
        .first()
        .filter(|c| c.as_str() == "__background__" || c.as_str() == "background")
        .map(|_| 0);
    let class_names: Vec<String> = classes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != background)
        .map(|(_, c)| c.clone())
        .collect();
    let precomputed = precomputed_proposals(&args, &images, &names)?;
    anyhow::ensure!(
        precomputed.is_none() || args.source.mode == ProposalMode::Fast,
        "--proposals FILE replaces the search: it takes no --mode {}",
        args.source.mode.name()
    );
    let multibox = args.source.load_multibox(|| Ok(device))?;
    let batch = args.inference.batch(device);
    let mut params = DetectParams {
        search: args
            .source
            .search_params()
            .unwrap_or_else(|| proposals::SearchParams::new(proposals::Mode::Fast)),
        max_proposals: args.max_proposals,
        post: PostParams {
            score_threshold: args.score_threshold,
            nms_iou: args.nms_iou,
            top_per_class: args.top_per_class,
            top_per_image: args.top_per_image,
            background,
        },
        batch,
        workers: args.inference.workers(),
        warp: args.warp,
        precomputed,
        learned: None,
        min_proposals: 0,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let bar = super::progress_bar(
        images.len() as u64,
        "detect [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
    );
    let mut image_names = eval::Images::default();
    let mut name_of: std::collections::HashMap<PathBuf, String> = Default::default();
    for (path, name) in images.iter().zip(&names) {
        image_names.intern(name);
        name_of.insert(path.clone(), name.clone());
    }
    let mapping = image_paths_csv(&images, &names);
    let mut dets = Vec::new();
    let (mut failed, mut n_proposals) = (0usize, 0usize);
    let mut drawn: Vec<(String, usize)> = Vec::new();
    if let Some(dir) = &args.visualize {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Image indices are those of the whole run; a shard processes its share.
    let mut formats = args.format.clone();
    if shard.is_some() && !formats.iter().any(|f| f == "csv") {
        formats.push("csv".into()); // what rcnn merge reads
    }
    let images: Vec<PathBuf> = inception_rcnn::shard::share(images, shard);
    let stale = stale_outputs(&args.out, &formats, &names);
    if !stale.is_empty() {
        tracing::warn!(
            "{} holds outputs of an earlier run that this run does not rewrite: {}",
            args.out.display(),
            stale.join(", ")
        );
    }
    let (mut journal, done) = Journal::open(
        &args.out,
        args.resume,
        &settings(&args, device, batch, shard),
    )?;
    let to_class = |column: usize| {
        if background == Some(0) {
            column - 1
        } else {
            column
        }
    };
    let mut resumed = 0;
    for e in done.values() {
        if let Some(index) = image_names.get(&e.image) {
            resumed += 1;
            n_proposals += e.proposals;
            dets.extend(e.detected().iter().map(|d| eval::Detection {
                image: index,
                class: to_class(d.class),
                score: d.score as f64,
                bbox: d.bbox,
            }));
            if args.visualize.is_some() {
                let marks = e
                    .detected()
                    .iter()
                    .filter(|d| d.score >= args.visualize_threshold)
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
        // MultiBox first, over the images still to do, batched on the device; selective search
        // (for the entry's mix) then runs in the pipeline's workers.
        let bar = super::progress_bar(
            images.len() as u64,
            "multibox [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
        );
        let (learned, seconds) = args
            .source
            .learned(Some(mb), &images, || bar.inc(1))
            .expect("a MultiBox network");
        bar.finish_and_clear();
        tracing::info!(
            "MultiBox: {} images, {:.1} ms per image on the device",
            learned.boxes.len(),
            seconds * 1e3
        );
        params.learned = Some(learned);
    }
    let mut write_error: Option<anyhow::Error> = None;
    bar.set_length(images.len() as u64);
    let times = detect(&images, &ensemble, &params, |outcome| {
        match outcome {
            Outcome::Done {
                image,
                detections,
                proposals,
            } => {
                n_proposals += proposals;
                let name = &name_of[&image];
                let index = image_names.get(name).expect("interned above");
                // The image's own outputs first; the journal marks it done only once they are
                // written, so that --resume never trusts a drawing that was lost.
                let mut outputs_written = true;
                if let Some(dir) = &args.visualize {
                    let file = format!("{name}.jpg");
                    let marks = marks(
                        &detections,
                        args.visualize_threshold,
                        &class_names,
                        to_class,
                    );
                    match draw_into(&image, &marks, &dir.join(&file)) {
                        Ok(()) => drawn.push((file, marks.len())),
                        Err(e) => {
                            outputs_written = false;
                            bar.suspend(|| tracing::warn!("drawing {}: {e}", image.display()));
                            write_error.get_or_insert(anyhow::anyhow!("drawing: {e}"));
                        }
                    }
                }
                if outputs_written && write_error.is_none() {
                    if let Err(e) =
                        journal.append(&Entry::new(name.clone(), proposals, &detections))
                    {
                        write_error.get_or_insert(anyhow::Error::new(e));
                    }
                }
                for d in detections {
                    dets.push(eval::Detection {
                        image: index,
                        class: to_class(d.class),
                        score: d.score as f64,
                        bbox: d.bbox,
                    });
                }
            }
            Outcome::Failed { image, reason } => {
                failed += 1;
                bar.suspend(|| tracing::warn!("skipped {}: {reason}", image.display()));
            }
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        // The journal holds every image whose outputs were written: --resume goes on from there.
        return Err(e.context(format!(
            "outputs could not be written; the images finished so far are kept in the journal \
             in {} (rerun with --resume once the problem is fixed)",
            args.out.display()
        )));
    }
    if let Some(dir) = &args.visualize {
        drawn.sort();
        write_index(dir, &drawn).map_err(anyhow::Error::msg)?;
    }
    // Image order, then score (stable): the same order however the run was split or resumed.
    dets.sort_by(|a, b| a.image.cmp(&b.image).then(b.score.total_cmp(&a.score)));
    let detections = eval::Detections {
        dets,
        first_unknown_image: image_names.len(),
    };
    let class_list = eval::ClassList::from_names(class_names);
    write_outputs(&args.out, &formats, &detections, &image_names, &class_list)?;
    // Which file each image name stands for.
    eval::write_atomically(&args.out.join("image_paths.csv"), mapping.as_bytes())?;
    write_shard_file(&args.out, shard)?;
    journal.finish()?;
    println!(
        "{} images{}{}, {:.0} proposals and {:.1} detections per image, {:.2} images/s; outputs in {}",
        images.len() - failed + resumed,
        if resumed > 0 { format!(" ({resumed} from the journal)") } else { String::new() },
        if failed > 0 { format!(" ({failed} skipped, each named above)") } else { String::new() },
        n_proposals as f64 / (images.len() - failed + resumed).max(1) as f64,
        detections.dets.len() as f64 / (images.len() - failed + resumed).max(1) as f64,
        images.len() as f64 / times.wall,
        args.out.display()
    );
    if args.profile {
        print_profile(&times);
    }
    Ok(())
}
