//! `rcnn visualize` as a job: any detections file drawn on its images; with ground truth,
//! hits, false positives and misses in distinct colours (greedy, best score first, as VOC).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use eval::formats::{BoxFormat, ClassKey, Format};
use eval::{BBox, PixelConvention};

use super::{warn, JobError, Progress};
use crate::detect::decode::{collect_images, decode, image_names};
use crate::run::visualize::{
    draw, save_jpeg, write_index, Mark, FALSE_POSITIVE, MISS, TRUE_POSITIVE,
};

/// What to draw, from what, and where.
#[derive(Debug, Clone)]
pub struct VisualizeJob {
    /// Folders (searched recursively), image files, or .txt lists of paths.
    pub images: Vec<PathBuf>,
    /// CSV, COCO results JSON, txt folder, or an ILSVRC submission (with `image_list`).
    pub dets: PathBuf,
    /// Ground truth: colours hits, false positives and misses.
    pub gt: Option<PathBuf>,
    /// Its format (default: guessed).
    pub gt_format: Option<eval::formats::Format>,
    /// Class list; default: the ground truth's, or the names found in the detections.
    pub classes: Option<PathBuf>,
    pub image_list: Option<PathBuf>,
    /// Draw detections scoring at least this.
    pub threshold: f64,
    /// IoU for a hit (inclusive pixels, as VOC).
    pub iou: f64,
    pub out: PathBuf,
}

/// What was drawn; the counts are of drawn detections and objects (with ground truth only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisualizeSummary {
    pub drawn: usize,
    /// Hits, false positives and missed objects, where ground truth was given.
    pub scored: Option<(usize, usize, usize)>,
}

impl VisualizeJob {
    pub fn run(&self, progress: &dyn Progress) -> Result<VisualizeSummary, JobError> {
        let images =
            collect_images(&self.images).map_err(|e| JobError::context("collecting images", e))?;
        let names = image_names(&images);
        // Drawings never replace an input (the images, the detections, the ground truth).
        eval::protect_inputs(
            images
                .iter()
                .chain(std::iter::once(&self.dets))
                .chain(&self.gt)
                .chain(&self.classes)
                .chain(&self.image_list),
        );
        eval::check_output_dir(&self.out)?;
        // Each drawing's file through the one rule that keeps it under --out; all checked first.
        let drawings = names
            .iter()
            .map(|n| eval::output::file_in(&self.out, n, ".jpg"))
            .collect::<Result<Vec<_>, _>>()?;
        for p in drawings.iter().chain([&self.out.join("index.html")]) {
            eval::check_not_input(p)?;
        }
        let image_list = self
            .image_list
            .as_deref()
            .map(eval::formats::ilsvrc::read_image_list)
            .transpose()?;
        let mut issues = eval::Issues::new(false);
        let format = Format::guess(&self.dets)?;
        let raw = eval::load::read_raw_dets(
            &self.dets,
            format,
            image_list.as_deref(),
            BoxFormat::Xyxy,
            &HashMap::new(),
            &mut issues,
        )?;
        let (gt, classes) = match &self.gt {
            Some(p) => {
                let (gt, classes, _) =
                    eval::load::load_gt(p, self.gt_format, self.classes.as_deref(), None, false)?;
                (Some(gt), classes)
            }
            None => match &self.classes {
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
        for d in raw.iter().filter(|d| d.score >= self.threshold) {
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
                    .entry(gt.images.file_key(g.image).to_string())
                    .or_default()
                    .push((g.class, g.bbox));
            }
        }
        std::fs::create_dir_all(&self.out)
            .map_err(|e| JobError::context(format!("creating {}", self.out.display()), e))?;
        let mut drawn = Vec::new();
        let (mut tp, mut fp, mut missed) = (0, 0, 0);
        for ((path, key), drawing) in images.iter().zip(&names).zip(&drawings) {
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
                        .filter(|(_, iou)| *iou >= self.iou)
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
                    save_jpeg(&img, drawing).map_err(|e| JobError::Failed(e.into()))?;
                    drawn.push((file, dets.len()));
                }
                Err(e) => warn(progress, format!("skipped {}: {e}", path.display())),
            }
        }
        write_index(&self.out, &drawn).map_err(|e| JobError::Failed(e.into()))?;
        Ok(VisualizeSummary {
            drawn: drawn.len(),
            scored: gt.is_some().then_some((tp, fp, missed)),
        })
    }
}
