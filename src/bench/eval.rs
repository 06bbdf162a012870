//! `rcnn bench eval`: the evaluator on generated data of ILSVRC DET val's size (20,121 images,
//! 200 classes, 55,502 objects, 500,000 detections), against pycocotools on the same data.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use eval::dataset::{Detection, Detections, GroundTruth, GtBox, Images};
use eval::BBox;
use proposals::rng::SplitMix64;

use super::reference;
use crate::jobs::JobError;

/// Sizes of the generated set.
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    pub images: usize,
    pub classes: usize,
    pub objects: usize,
    pub detections: usize,
    pub seed: u64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            images: 20_121,
            classes: 200,
            objects: 55_502,
            detections: 500_000,
            seed: 2014,
        }
    }
}

/// Objects of every size on 500x375 images (about 5% under 25x25 px, as ILSVRC val), and
/// detections: two thirds near an object (some of the wrong class), the rest anywhere, scores
/// with two decimals so that ties are common.
pub fn generate(spec: Synthetic) -> (GroundTruth, Detections) {
    let mut rng = SplitMix64::new(spec.seed);
    let mut images = Images::default();
    for i in 0..spec.images {
        images.intern(&format!("ILSVRC2013_val_{:08}", i + 1));
    }
    let (w_img, h_img) = (500.0, 375.0);
    let random_box = |rng: &mut SplitMix64| {
        let side = match rng.below(20) {
            0 => 4.0 + rng.uniform() * 20.0,
            1..=7 => 25.0 + rng.uniform() * 75.0,
            _ => 100.0 + rng.uniform() * 250.0,
        };
        let w = (side * (0.5 + rng.uniform())).min(w_img - 1.0).round();
        let h = (side * (0.5 + rng.uniform())).min(h_img - 1.0).round();
        let x = (rng.uniform() * (w_img - w)).round();
        let y = (rng.uniform() * (h_img - h)).round();
        BBox::new(x, y, x + w - 1.0, y + h - 1.0)
    };
    let mut boxes = Vec::with_capacity(spec.objects);
    for _ in 0..spec.objects {
        let bbox = random_box(&mut rng);
        let area = bbox.area(eval::PixelConvention::Continuous);
        boxes.push(GtBox {
            image: rng.below(spec.images),
            class: rng.below(spec.classes),
            bbox,
            difficult: false,
            crowd: rng.below(100) == 0,
            area: Some(area),
        });
    }
    let mut dets = Vec::with_capacity(spec.detections);
    for _ in 0..spec.detections {
        let (image, class, bbox) = if rng.below(3) < 2 {
            let g = &boxes[rng.below(boxes.len())];
            let j = |rng: &mut SplitMix64, v: f64, s: f64| (v + (rng.uniform() - 0.5) * s).round();
            let s =
                (g.bbox.x2 - g.bbox.x1).max(g.bbox.y2 - g.bbox.y1) * [0.05, 0.2, 0.5][rng.below(3)];
            let b = BBox::new(
                j(&mut rng, g.bbox.x1, s),
                j(&mut rng, g.bbox.y1, s),
                j(&mut rng, g.bbox.x2, s),
                j(&mut rng, g.bbox.y2, s),
            );
            let b = if b.x2 > b.x1 && b.y2 > b.y1 {
                b
            } else {
                g.bbox
            };
            let class = if rng.below(10) == 0 {
                rng.below(spec.classes)
            } else {
                g.class
            };
            (g.image, class, b)
        } else {
            (
                rng.below(spec.images),
                rng.below(spec.classes),
                random_box(&mut rng),
            )
        };
        let score = (rng.uniform() * 100.0).round() / 100.0;
        dets.push(Detection {
            image,
            class,
            score,
            bbox,
        });
    }
    (
        GroundTruth { images, boxes },
        Detections {
            dets,
            first_unknown_image: spec.images,
        },
    )
}

/// Writes the set as COCO JSON (`gt.json`, `dets.json`; image id = index + 1, category id =
/// class + 1), for pycocotools and for our own reader.
pub fn write_coco(
    gt: &GroundTruth,
    dets: &Detections,
    classes: usize,
    dir: &Path,
) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("gt.json"))?);
    write!(f, "{{\"images\":[")?;
    for i in 0..gt.images.len() {
        write!(
            f,
            "{}{{\"id\":{},\"width\":500,\"height\":375}}",
            if i > 0 { "," } else { "" },
            i + 1
        )?;
    }
    write!(f, "],\"categories\":[")?;
    for c in 0..classes {
        write!(
            f,
            "{}{{\"id\":{},\"name\":\"c{}\"}}",
            if c > 0 { "," } else { "" },
            c + 1,
            c + 1
        )?;
    }
    write!(f, "],\"annotations\":[")?;
    for (k, g) in gt.boxes.iter().enumerate() {
        let b = g.bbox;
        write!(
            f,
            "{}{{\"id\":{},\"image_id\":{},\"category_id\":{},\"bbox\":[{},{},{},{}],\"area\":{},\"iscrowd\":{}}}",
            if k > 0 { "," } else { "" },
            k + 1,
            g.image + 1,
            g.class + 1,
            b.x1,
            b.y1,
            b.x2 - b.x1,
            b.y2 - b.y1,
            g.area.unwrap_or(0.0),
            u8::from(g.crowd)
        )?;
    }
    write!(f, "]}}")?;
    f.flush()?;
    // The detections through the evaluator's own COCO writer (image_id = position + 1 for these
    // names, category_id = class + 1, as the ground truth above).
    eval::writers::write_coco(&dir.join("dets.json"), dets, &gt.images)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// What one run measured: our times, and pycocotools' when the reference ran.
#[derive(Debug, Clone)]
pub struct EvalTimes {
    /// Reading gt.json and dets.json.
    pub load: f64,
    /// Each rule's seconds and mean AP.
    pub metrics: Vec<(eval::Metric, f64, Option<f64>)>,
    /// COCO's twelve numbers.
    pub coco: Option<eval::metrics::coco::CocoStats>,
    /// The reference script's JSON line (`load_s`, `eval_s`, `stats`).
    pub reference: Option<serde_json::Value>,
}

/// Generates `spec`'s data as COCO JSON in `dir` (removed after unless `keep`), times our
/// reader and every rule on it, and runs pycocotools with `python` on the same files.
pub fn run(
    spec: Synthetic,
    dir: &Path,
    keep: bool,
    python: Option<&Path>,
) -> Result<EvalTimes, JobError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| JobError::context(format!("creating {}", dir.display()), e))?;
    let (gt, dets) = generate(spec);
    write_coco(&gt, &dets, spec.classes, dir)
        .map_err(|e| JobError::context(format!("writing into {}", dir.display()), e))?;
    let inputs = eval::load::Inputs {
        gt: dir.join("gt.json"),
        dets: dir.join("dets.json"),
        ..Default::default()
    };
    let t = Instant::now();
    let loaded = eval::load::load(&inputs)?;
    let load = t.elapsed().as_secs_f64();
    let n = loaded.classes.len();
    let mut metrics = Vec::new();
    let mut coco = None;
    for metric in [eval::Metric::Ilsvrc, eval::Metric::Voc, eval::Metric::Coco] {
        let t = Instant::now();
        let e = eval::evaluate(&loaded.gt, &loaded.dets, n, &eval::EvalParams::new(metric));
        metrics.push((metric, t.elapsed().as_secs_f64(), e.mean_ap));
        if let Some(c) = e.coco {
            coco = Some(c);
        }
    }
    let reference = match python {
        Some(py) => {
            let script = reference::script("bench_eval_reference.py");
            let lines = reference::run_json_lines(py, &script, &[dir.display().to_string()])
                .map_err(|e| JobError::Failed(e.into()))?;
            lines.into_iter().next()
        }
        None => None,
    };
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(EvalTimes {
        load,
        metrics,
        coco,
        reference,
    })
}
