//! `rcnn detect`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inception_rcnn::bench::classifier::Precision;
use inception_rcnn::classifier::Ensemble;
use inception_rcnn::decode::{collect_images, decode};
use inception_rcnn::detect::{default_workers, detect, DetectParams, Outcome};
use inception_rcnn::device;
use inception_rcnn::device_stage::{default_batch, WarpMode};
use inception_rcnn::journal::{Entry, Journal};
use inception_rcnn::model::Model;
use inception_rcnn::postprocess::PostParams;
use inception_rcnn::propose::{image_key, read_proposals};
use inception_rcnn::visualize::{draw, save_jpeg, write_index, Mark};

use super::DeviceArgs;

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
    out: PathBuf,
    /// Output formats: ilsvrc (detections.txt + image_list.txt), csv, coco (detections.json),
    /// txt (one file per image in txt/).
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Precision of weights and activations: fp32, or bf16/fp16 (batch norm is folded into the
    /// convolutions in f32 first; LRN and the softmax run in f32).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Crops per forward pass (default: 256 on CUDA, in fixed-size padded batches; 32 on the CPU).
    #[arg(long)]
    batch: Option<usize>,
    /// Images decoded and proposed in parallel, each on its own thread (default: one per core
    /// but one). Outputs are the same for any number.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Where crops are warped: on the network's device from the image uploaded once (grid
    /// sampling), or by OpenCV on the CPU.
    #[arg(long, value_enum, default_value_t = WarpMode::Device)]
    warp: WarpMode,
    /// Weights and activations in channels-last memory order (default: on for fp16/bf16 on
    /// CUDA, where cuDNN's tensor-core kernels want it; off on the CPU).
    #[arg(long, value_name = "BOOL")]
    channels_last: Option<bool>,
    /// Proposals kept per image (R-CNN: 2000).
    #[arg(long, default_value_t = 2000)]
    max_proposals: usize,
    /// Per-class NMS IoU (R-CNN's ILSVRC code: 0.3).
    #[arg(long, default_value_t = 0.3)]
    nms_iou: f32,
    /// Drop detections scoring below this.
    #[arg(long, default_value_t = 0.01)]
    score_threshold: f32,
    #[arg(long, default_value_t = 100)]
    top_per_class: usize,
    #[arg(long, default_value_t = 1000)]
    top_per_image: usize,
    /// Precomputed proposals (the CSV or JSON `rcnn proposals --out` writes) instead of
    /// running selective search.
    #[arg(long, value_name = "FILE")]
    proposals: Option<PathBuf>,
    /// Draw each image's detections (score at least --visualize-threshold) into DIR, with an
    /// index.html showing them as a grid.
    #[arg(long, value_name = "DIR")]
    visualize: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5)]
    visualize_threshold: f32,
    /// Take a deterministic 1/N of the images (every N-th, starting at the K-th of the sorted
    /// list), for N machines sharing a set; `rcnn merge` joins their outputs.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Continue a run that was stopped or killed: images already in its journal (in --out)
    /// are not done again, and the outputs equal an uninterrupted run's.
    #[arg(long)]
    resume: bool,
    /// Print the time of each stage at the end.
    #[arg(long)]
    profile: bool,
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

/// `K/N` with 1 <= K <= N.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: want K/N, e.g. 3/8"))?;
    let (k, n): (usize, usize) = (
        k.trim()
            .parse()
            .map_err(|_| format!("`{k}` is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a number"))?,
    );
    if k == 0 || k > n {
        return Err(format!("shard {k}/{n}: want 1 <= K <= N"));
    }
    Ok((k, n))
}

pub fn run(args: DetectArgs, threads: Option<usize>) -> anyhow::Result<()> {
    for f in &args.format {
        anyhow::ensure!(
            ["ilsvrc", "csv", "coco", "txt"].contains(&f.as_str()),
            "unknown --format `{f}` (ilsvrc, csv, coco, txt)"
        );
    }
    let images = collect_images(&args.images).context("collecting images")?;
    anyhow::ensure!(
        !images.is_empty(),
        "no images (jpg, jpeg, png, bmp, webp) in {:?}",
        args.images
    );
    let device = device::select(args.device.device, threads)?;
    let models = args
        .models
        .iter()
        .map(|m| Model::load(m, device))
        .collect::<Result<Vec<_>, _>>()?;
    let channels_last = args
        .channels_last
        .unwrap_or(device.is_cuda() && args.precision != Precision::Fp32);
    let ensemble = Ensemble::with_layout(models, args.precision.kind(), channels_last)?;
    let classes = ensemble.classes().to_vec();
    let background = classes
        .first()
        .filter(|c| c.as_str() == "__background__" || c.as_str() == "background")
        .map(|_| 0);
    let names: Vec<String> = classes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != background)
        .map(|(_, c)| c.clone())
        .collect();
    let params = DetectParams {
        search: proposals::SearchParams::new(proposals::Mode::Fast),
        max_proposals: args.max_proposals,
        post: PostParams {
            score_threshold: args.score_threshold,
            nms_iou: args.nms_iou,
            top_per_class: args.top_per_class,
            top_per_image: args.top_per_image,
            background,
        },
        batch: args.batch.unwrap_or_else(|| default_batch(device)),
        workers: args.workers.unwrap_or_else(default_workers),
        warp: args.warp,
        precomputed: args.proposals.as_deref().map(read_proposals).transpose()?,
        min_proposals: 0,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let bar = super::progress_bar(
        images.len() as u64,
        "detect [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
    );
    let mut image_names = eval::Images::default();
    for path in &images {
        image_names.intern(&image_key(path));
    }
    let mut dets = Vec::new();
    let (mut failed, mut n_proposals) = (0usize, 0usize);
    let mut drawn: Vec<(String, usize)> = Vec::new();
    if let Some(dir) = &args.visualize {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Image indices are those of the whole run; a shard processes its share.
    let mut formats = args.format.clone();
    let images: Vec<PathBuf> = match args.shard {
        Some((k, n)) => {
            if !formats.iter().any(|f| f == "csv") {
                formats.push("csv".into()); // what rcnn merge reads
            }
            images
                .iter()
                .enumerate()
                .filter(|(i, _)| i % n == k - 1)
                .map(|(_, p)| p.clone())
                .collect()
        }
        None => images,
    };
    let (mut journal, done) = Journal::open(&args.out, args.resume)
        .with_context(|| format!("opening the journal in {}", args.out.display()))?;
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
        }
    }
    let images: Vec<PathBuf> = images
        .into_iter()
        .filter(|p| !done.contains_key(&image_key(p)))
        .collect();
    if resumed > 0 {
        tracing::info!(
            "resumed {resumed} images from the journal; {} to go",
            images.len()
        );
    }
    let mut journal_error = None;
    bar.set_length(images.len() as u64);
    let times = detect(&images, &ensemble, &params, |outcome| {
        match outcome {
            Outcome::Done {
                image,
                detections,
                proposals,
            } => {
                n_proposals += proposals;
                let key = image_key(&image);
                let index = image_names.get(&key).expect("interned above");
                if let Err(e) = journal.append(&Entry::new(key, proposals, &detections)) {
                    journal_error.get_or_insert(e);
                }
                if let Some(dir) = &args.visualize {
                    let marks: Vec<Mark> = detections
                        .iter()
                        .filter(|d| d.score >= args.visualize_threshold)
                        .map(|d| {
                            let class = to_class(d.class);
                            Mark {
                                label: format!("{} {:.2}", names[class], d.score),
                                class,
                                bbox: d.bbox,
                                colour: None,
                            }
                        })
                        .collect();
                    let file = format!("{}.jpg", image_key(&image));
                    let result = decode(&image)
                        .map_err(|e| e.to_string())
                        .and_then(|img| draw(&img, &marks).map_err(|e| e.to_string()))
                        .and_then(|img| save_jpeg(&img, &dir.join(&file)));
                    match result {
                        Ok(()) => drawn.push((file, marks.len())),
                        Err(e) => {
                            bar.suspend(|| tracing::warn!("drawing {}: {e}", image.display()))
                        }
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
    if let Some(dir) = &args.visualize {
        write_index(dir, &drawn).map_err(anyhow::Error::msg)?;
    }
    if let Some(e) = journal_error {
        return Err(anyhow::Error::new(e).context("writing the journal"));
    }
    // Image order, then score (stable): the same order however the run was split or resumed.
    dets.sort_by(|a, b| a.image.cmp(&b.image).then(b.score.total_cmp(&a.score)));
    let detections = eval::Detections {
        dets,
        first_unknown_image: image_names.len(),
    };
    let class_list = eval::ClassList::from_names(names);
    write_outputs(&args.out, &formats, &detections, &image_names, &class_list)?;
    journal.finish().context("removing the journal")?;
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
        println!("stage seconds (decode and proposals summed over the workers, which overlap the device stage):");
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
    Ok(())
}
