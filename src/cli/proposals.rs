//! `rcnn proposals`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inception_rcnn::detect::decode::collect_images;
use inception_rcnn::detect::propose::{
    objects_per_run, quality, search_params, write_proposals, Backend, ProposalMode,
    ProposalSource, TOPS,
};
use proposals::{Mode, QualityPoint};

#[derive(Args, Debug)]
pub struct ProposalsArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Ground truth (VOC/ILSVRC XML folder, COCO JSON, CSV, txt or YOLO labels, read as
    /// map-eval reads them; images matched by name): prints recall at IoU 0.5 and 0.7 and MABO.
    #[arg(long, value_name = "PATH")]
    gt: Option<PathBuf>,
    /// Format of --gt: voc, coco, csv, txt or yolo (default: guessed from the path).
    #[arg(long, value_parser = super::parse_gt_format)]
    gt_format: Option<eval::formats::Format>,
    #[command(flatten)]
    source: ProposalOptions,
    /// ours (pure Rust) or opencv (ximgproc, for comparison).
    #[arg(long, value_enum, default_value_t = Backend::Ours)]
    backend: Backend,
    /// Keep at most this many proposals per image.
    #[arg(long, value_name = "N", value_parser = super::range::count)]
    top: Option<usize>,
    /// Write the proposals here: .csv (`image,rank,xmin,ymin,xmax,ymax`) or .json.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --gt: draw recall against the number of boxes into this PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Width images are resized to before the search (R-CNN: 500; 0 keeps the size).
    #[arg(long, default_value_t = 500, value_parser = super::range::proposal_width)]
    width: usize,
    /// Seed of the ranking's random numbers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take a deterministic 1/N of the images (every N-th of the sorted list, from the K-th),
    /// for N machines sharing a set: each writes its own --out (e.g. props/K.csv), and `rcnn
    /// train --proposals props/` reads the folder whole. Names are those of the whole set, so
    /// the shards' files join without clashes. `auto`: K and N from the scheduler.
    #[arg(long, value_name = "K/N|auto")]
    shard: Option<inception_rcnn::run::shard::ShardSpec>,
}

/// Where proposals come from: the same flags in `rcnn proposals`, `rcnn detect` and `rcnn
/// train`.
#[derive(Args, Debug, Clone)]
pub struct ProposalOptions {
    /// fast / quality: selective search with 8 / 80 strategies; multibox: the best
    /// --multibox-top boxes of the --multibox network; entry: fast selective search plus those
    /// boxes, duplicates (IoU >= 0.9) removed, as GoogLeNet's detection entry.
    #[arg(long, value_enum, default_value_t = ProposalMode::Fast)]
    pub mode: ProposalMode,
    /// Multiplies selective search's segmentation scale k and minimum size (GoogLeNet's entry:
    /// 2, half the boxes of 1).
    #[arg(long, default_value_t = 2.0, value_parser = super::range::scale)]
    pub scale: f32,
    /// A MultiBox model file (`rcnn train-multibox`), for --mode multibox and entry.
    #[arg(long, value_name = "FILE")]
    pub multibox: Option<PathBuf>,
    /// MultiBox boxes kept per image (the entry: 200).
    #[arg(long, default_value_t = 200, value_parser = super::range::count)]
    pub multibox_top: usize,
}

impl ProposalOptions {
    pub fn source(&self) -> ProposalSource {
        ProposalSource {
            mode: self.mode,
            scale: self.scale,
            multibox: self.multibox.clone(),
            multibox_top: self.multibox_top,
        }
    }
}

pub fn print_quality_row(label: &str, q: &QualityPoint) {
    println!(
        "{label:<24} {:>10.1} {:>11.4} {:>11.4} {:>8.4}",
        q.mean_boxes, q.recall_50, q.recall_70, q.mabo
    );
}

pub fn run(args: ProposalsArgs, threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
    }
    anyhow::ensure!(
        args.backend != Backend::Opencv || cfg!(feature = "opencv-contrib"),
        "--backend opencv needs a binary built with the opencv-contrib feature (the default)"
    );
    let images = collect_images(&args.images).context("collecting images")?;
    anyhow::ensure!(
        !images.is_empty(),
        "no images (jpg, jpeg, png, bmp, webp) in {:?}",
        args.images
    );
    // Names from the whole set, before sharding: a shard's names are the ones a whole run
    // would write.
    let names: std::collections::HashMap<PathBuf, String> = images
        .iter()
        .cloned()
        .zip(inception_rcnn::detect::decode::image_names(&images))
        .collect();
    let shard = inception_rcnn::run::shard::resolve(args.shard).map_err(anyhow::Error::msg)?;
    let images = inception_rcnn::run::shard::share(images, shard);
    if let Some((k, n)) = shard {
        eprintln!("shard {k}/{n}: {} images", images.len());
    }
    // Output files are checked before the search, which can take hours.
    eval::protect_inputs(images.iter().chain(&args.gt));
    for file in args.out.iter().chain(&args.plot) {
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
        eval::check_output_dir(parent.unwrap_or(std::path::Path::new(".")))?;
        eval::check_not_input(file)?;
    }
    let src = &args.source.source();
    let search = src.mode.search();
    let params = search_params(
        search.unwrap_or(Mode::Fast),
        args.width,
        src.scale,
        args.seed,
    );
    let multibox = src.load_multibox::<anyhow::Error>(|| {
        Ok(inception_rcnn::run::device::select(
            inception_rcnn::run::device::DeviceChoice::Auto,
            threads,
        )?)
    })?;
    let learned = multibox.as_ref().map(|m| (m, src.multibox_top));
    let (mut runs, skipped) = inception_rcnn::detect::propose::run_with(
        &images,
        args.backend,
        search,
        &params,
        learned,
        args.top,
        &super::Bars::default(),
    );
    for r in &mut runs {
        r.name = names[&r.image].clone();
    }
    println!("{:<32} {:>8} {:>10}", "image", "boxes", "seconds");
    for r in &runs {
        println!("{:<32} {:>8} {:>10.3}", r.name, r.boxes.len(), r.seconds);
    }
    let mut secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{} images ({} skipped), {} ({}): {:.1} boxes per image, median {:.3} s per image",
        runs.len(),
        skipped,
        src.describe(),
        args.backend.name(),
        runs.iter().map(|r| r.boxes.len()).sum::<usize>() as f64 / runs.len().max(1) as f64,
        median
    );
    if let Some(gt_path) = &args.gt {
        let (gt, classes, issues) =
            eval::load::load_gt(gt_path, args.gt_format, None, None, false)?;
        if issues.total() > 0 {
            tracing::warn!("ground truth: {issues}");
        }
        let objects = objects_per_run(&runs, &gt);
        let curve = quality(&runs, &objects, classes.len(), &TOPS);
        println!(
            "\n{:<24} {:>10} {:>11} {:>11} {:>8}",
            "boxes per image (max)", "mean boxes", "recall@0.5", "recall@0.7", "MABO"
        );
        for q in &curve {
            let label = if q.top == usize::MAX {
                "all".to_string()
            } else {
                q.top.to_string()
            };
            print_quality_row(&label, q);
        }
        if let Some(plot) = &args.plot {
            let points = |f: fn(&QualityPoint) -> f64| {
                curve
                    .iter()
                    .map(|q| (q.mean_boxes.max(1.0), f(q)))
                    .collect::<Vec<_>>()
            };
            let series = vec![
                ("recall@0.5".to_string(), points(|q| q.recall_50)),
                ("recall@0.7".to_string(), points(|q| q.recall_70)),
                ("MABO".to_string(), points(|q| q.mabo)),
            ];
            let title = format!("{} ({})", src.describe(), args.backend.name());
            eval::plots::line_chart(
                plot,
                &title,
                "proposals per image",
                "recall / MABO",
                &series,
            )?;
            eprintln!("wrote {}", plot.display());
        }
    }
    if let Some(out) = &args.out {
        write_proposals(out, &runs)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
