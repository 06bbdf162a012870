//! `rcnn visualize`: draw any detections file; with ground truth, hits, false positives and
//! misses in distinct colours.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use eval::formats::{BoxFormat, ClassKey, Format};
use eval::{BBox, PixelConvention};
use inception_rcnn::detect::decode::{collect_images, decode, image_names};
use inception_rcnn::run::visualize::{
    draw, save_jpeg, write_index, Mark, FALSE_POSITIVE, MISS, TRUE_POSITIVE,
};

#[derive(Args, Debug)]
pub struct VisualizeArgs {
    /// Images: folders (searched recursively), image files, or .txt lists of paths.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Detections: CSV, COCO results JSON, txt folder, or an ILSVRC submission (with
    /// --image-list).
    #[arg(long, value_name = "PATH")]
    dets: PathBuf,
    /// Ground truth (VOC/ILSVRC XML folder, COCO JSON, CSV): colours hits green, false
    /// positives red and misses yellow.
    #[arg(long, value_name = "PATH")]
    gt: Option<PathBuf>,
    /// Class list (one name per line, or the ILSVRC tsv); default: the ground truth's, or the
    /// names found in the detections.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    image_list: Option<PathBuf>,
    /// Draw detections scoring at least this.
    #[arg(long, default_value_t = 0.5, value_parser = super::range::score64)]
    threshold: f64,
    /// IoU for a hit (inclusive pixels, as VOC).
    #[arg(long, default_value_t = 0.5, value_parser = super::range::iou64)]
    iou: f64,
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: VisualizeArgs) -> anyhow::Result<()> {
    let images = collect_images(&args.images).context("collecting images")?;
    let names = image_names(&images);
    // Drawings never replace an input (the images, the detections, the ground truth).
    eval::protect_inputs(
        images
            .iter()
            .chain(std::iter::once(&args.dets))
            .chain(&args.gt)
            .chain(&args.classes)
            .chain(&args.image_list),
    );
    eval::check_output_dir(&args.out)?;
    for p in names
        .iter()
        .map(|n| args.out.join(format!("{n}.jpg")))
        .chain(std::iter::once(args.out.join("index.html")))
    {
        eval::check_not_input(&p)?;
    }
    let image_list = args
        .image_list
        .as_deref()
        .map(eval::formats::ilsvrc::read_image_list)
        .transpose()?;
    let mut issues = eval::Issues::new(false);
    let format = Format::guess(&args.dets)?;
    let raw = eval::load::read_raw_dets(
        &args.dets,
        format,
        image_list.as_deref(),
        BoxFormat::Xyxy,
        &HashMap::new(),
        &mut issues,
    )?;
    let (gt, classes) = match &args.gt {
        Some(p) => {
            let (gt, classes, _) = eval::load::load_gt(p, None, args.classes.as_deref(), false)?;
            (Some(gt), classes)
        }
        None => match &args.classes {
            Some(p) => (None, eval::ClassList::read(p)?),
            None => {
                let names: BTreeSet<String> = raw.iter().map(|d| d.class.to_string()).collect();
                (
                    None,
                    eval::ClassList::from_names(names.into_iter().collect()),
                )
            }
        },
    };
    let class_of = |k: &ClassKey| match k {
        ClassKey::Name(n) => classes.index(n),
        ClassKey::Id(i) => classes.index_of_id(*i),
    };
    let mut by_image: HashMap<String, Vec<(usize, f64, BBox)>> = HashMap::new();
    for d in raw.iter().filter(|d| d.score >= args.threshold) {
        if let Some(c) = class_of(&d.class) {
            by_image
                .entry(d.image.clone())
                .or_default()
                .push((c, d.score, d.bbox));
        }
    }
    let mut objects: HashMap<String, Vec<(usize, BBox)>> = HashMap::new();
    if let Some(gt) = &gt {
        for g in &gt.boxes {
            objects
                .entry(gt.images.name(g.image).to_string())
                .or_default()
                .push((g.class, g.bbox));
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut drawn = Vec::new();
    let (mut tp, mut fp, mut missed) = (0, 0, 0);
    for (path, key) in images.iter().zip(&names) {
        let mut dets = by_image.remove(key).unwrap_or_default();
        dets.sort_by(|a, b| b.1.total_cmp(&a.1));
        let objs = objects.remove(key).unwrap_or_default();
        let mut matched = vec![false; objs.len()];
        let mut marks = Vec::new();
        for (c, score, b) in &dets {
            let label = format!("{} {score:.2}", classes.names[*c]);
            let colour = if gt.is_none() {
                None
            } else {
                // Greedy, best score first: the unmatched object of the class with the best IoU.
                let best = objs
                    .iter()
                    .enumerate()
                    .filter(|(j, (oc, _))| oc == c && !matched[*j])
                    .map(|(j, (_, o))| (j, o.iou(b, PixelConvention::Inclusive)))
                    .filter(|(_, iou)| *iou >= args.iou)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((j, _)) => {
                        matched[j] = true;
                        tp += 1;
                        Some(TRUE_POSITIVE)
                    }
                    None => {
                        fp += 1;
                        Some(FALSE_POSITIVE)
                    }
                }
            };
            marks.push(Mark {
                label,
                class: *c,
                bbox: *b,
                colour,
            });
        }
        for ((c, o), _) in objs.iter().zip(&matched).filter(|(_, m)| !**m) {
            missed += 1;
            marks.push(Mark {
                label: format!("missed {}", classes.names[*c]),
                class: *c,
                bbox: *o,
                colour: Some(MISS),
            });
        }
        let file = format!("{key}.jpg");
        match decode(path)
            .map_err(|e| e.to_string())
            .and_then(|img| draw(&img, &marks).map_err(|e| e.to_string()))
        {
            Ok(img) => {
                save_jpeg(&img, &args.out.join(&file)).map_err(anyhow::Error::msg)?;
                drawn.push((file, dets.len()));
            }
            Err(e) => tracing::warn!("skipped {}: {e}", path.display()),
        }
    }
    write_index(&args.out, &drawn).map_err(anyhow::Error::msg)?;
    print!("drew {} images into {}", drawn.len(), args.out.display());
    if gt.is_some() {
        print!(
            " (score >= {}, IoU >= {}: {tp} hits, {fp} false positives, {missed} misses)",
            args.threshold, args.iou
        );
    }
    println!();
    Ok(())
}
