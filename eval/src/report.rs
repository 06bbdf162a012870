//! What `map-eval --report` writes: the run's sizes, each class's AP and counts, the means,
//! COCO's 12 numbers, and the input problems met.

use serde::Serialize;

use crate::load::Loaded;
use crate::metrics::{BestF1, CocoStats, Evaluation, Metric};
use crate::Issues;

/// Everything `--report` writes.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub metric: Metric,
    pub iou: f64,
    pub images: usize,
    pub objects: usize,
    pub detections: usize,
    pub classes: Vec<ClassReport<'a>>,
    pub mean_ap: Option<f64>,
    pub median_ap: Option<f64>,
    pub coco: Option<CocoStats>,
    pub issues: &'a Issues,
}

#[derive(Debug, Serialize)]
pub struct ClassReport<'a> {
    pub name: &'a str,
    pub wnid: &'a str,
    pub ap: f64,
    pub n_gt: usize,
    pub n_dets: usize,
    pub best_f1: Option<BestF1>,
    pub final_recall: f64,
}

pub fn report<'a>(loaded: &'a Loaded, e: &Evaluation) -> Report<'a> {
    Report {
        metric: e.metric,
        iou: e.iou,
        images: loaded.gt.images.len(),
        objects: loaded.gt.boxes.len(),
        detections: loaded.dets.dets.len(),
        classes: e
            .per_class
            .iter()
            .map(|c| ClassReport {
                name: &loaded.classes.names[c.class],
                wnid: &loaded.classes.wnids[c.class],
                ap: c.ap,
                n_gt: c.n_gt,
                n_dets: c.n_dets,
                best_f1: c.best_f1,
                final_recall: c.final_recall,
            })
            .collect(),
        mean_ap: e.mean_ap,
        median_ap: e.median_ap,
        coco: e.coco,
        issues: &loaded.issues,
    }
}

/// The report as `--report` writes it: pretty JSON.
pub fn to_json(loaded: &Loaded, e: &Evaluation) -> Vec<u8> {
    serde_json::to_vec_pretty(&report(loaded, e)).expect("report serialises")
}
