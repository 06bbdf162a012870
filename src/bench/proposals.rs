//! `rcnn bench proposals`: our selective search against OpenCV's on annotated images: boxes,
//! recall at IoU 0.5 and 0.7, MABO and the median time per image, with our lists also cut to
//! OpenCV's count per image; optionally MultiBox and the entry's mix.

use std::path::PathBuf;

use proposals::{Mode, QualityPoint};

use crate::detect::propose::{
    objects_per_run, quality, run_all, run_with, search_params, Backend, ImageRun,
};
use crate::jobs::JobError;
use crate::run::device::DeviceChoice;
use crate::run::progress::Progress;

#[derive(Debug, Clone)]
pub struct ProposalsBench {
    pub images: PathBuf,
    pub gt: PathBuf,
    /// Only the first N images (sorted by name).
    pub limit: Option<usize>,
    pub modes: Vec<Mode>,
    /// Our superpixel-scale factors (1: the paper's k; 2: GoogLeNet's entry).
    pub scales: Vec<f32>,
    /// A MultiBox network to time alone and in the entry's mix.
    pub multibox: Option<PathBuf>,
    pub multibox_top: usize,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
}

/// What the benchmark reports, in order.
#[derive(Debug, Clone)]
pub enum ProposalsLine {
    /// Before any row: how many images.
    Images(usize),
    /// One backend and setting: its quality over all boxes, median seconds per image, and its
    /// speed against OpenCV's (or what the row is).
    Row {
        name: String,
        mode: Mode,
        quality: QualityPoint,
        median: f64,
        speed: String,
    },
    /// Recall and MABO of the best `top` boxes, ours at `scale` beside OpenCV's.
    Top {
        scale: f32,
        top: usize,
        ours: QualityPoint,
        opencv: QualityPoint,
    },
}

fn median(runs: &[ImageRun]) -> f64 {
    let mut s: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the comparison, handing each line to `report` as it is measured.
pub fn run(
    b: &ProposalsBench,
    progress: &dyn Progress,
    mut report: impl FnMut(ProposalsLine),
) -> Result<(), JobError> {
    let mut images = crate::detect::decode::collect_images(std::slice::from_ref(&b.images))?;
    if let Some(n) = b.limit {
        images.truncate(n);
    }
    let (gt, classes, _) = eval::load::load_gt(&b.gt, None, None, None, false)?;
    report(ProposalsLine::Images(images.len()));
    let all = [usize::MAX];
    for &mode in &b.modes {
        let cv_params = search_params(mode, 500, 1.0, 0);
        let (theirs, _) = run_all(&images, Backend::Opencv, mode, &cv_params, None, progress);
        let theirs_objects = objects_per_run(&theirs, &gt);
        let q_theirs = quality(&theirs, &theirs_objects, classes.len(), &all)[0].clone();
        let m_theirs = median(&theirs);
        let row =
            |name: String, quality: QualityPoint, median: f64, speed: String| ProposalsLine::Row {
                name,
                mode,
                quality,
                median,
                speed,
            };
        report(row("opencv".into(), q_theirs, m_theirs, "1.0x".into()));
        for &scale in &b.scales {
            let params = search_params(mode, 500, scale, 0);
            let (ours, _) = run_all(&images, Backend::Ours, mode, &params, None, progress);
            let objects = objects_per_run(&ours, &gt);
            let q_ours = quality(&ours, &objects, classes.len(), &all)[0].clone();
            let m_ours = median(&ours);
            report(row(
                format!("ours x{scale}"),
                q_ours,
                m_ours,
                format!("{:.1}x", m_theirs / m_ours),
            ));
            // The same number of boxes: each image's list cut to OpenCV's count for that image.
            let cut: Vec<ImageRun> = ours
                .iter()
                .map(|r| {
                    let n = theirs
                        .iter()
                        .find(|t| t.image == r.image)
                        .map_or(r.boxes.len(), |t| t.boxes.len());
                    ImageRun {
                        boxes: r.boxes[..n.min(r.boxes.len())].to_vec(),
                        ..r.clone()
                    }
                })
                .collect();
            let q_cut = quality(&cut, &objects, classes.len(), &all)[0].clone();
            report(row(
                format!("  cut x{scale}"),
                q_cut,
                m_ours,
                "(OpenCV's count per image)".into(),
            ));
            for top in [100usize, 500] {
                report(ProposalsLine::Top {
                    scale,
                    top,
                    ours: quality(&ours, &objects, classes.len(), &[top])[0].clone(),
                    opencv: quality(&theirs, &theirs_objects, classes.len(), &[top])[0].clone(),
                });
            }
        }
        if let (Some(path), Mode::Fast) = (&b.multibox, mode) {
            // MultiBox on the device, 16 images a batch, its time shared among them; the mix
            // adds our fast search x2 on the CPU.
            let device = crate::run::device::select(b.device, b.threads)?;
            let mb = crate::multibox::MultiBox::load(path, device)?;
            let x2 = search_params(Mode::Fast, 500, 2.0, 0);
            for (name, search) in [("multibox", None), ("entry x2", Some(Mode::Fast))] {
                let (runs, _) = run_with(
                    &images,
                    Backend::Ours,
                    search,
                    &x2,
                    Some((&mb, b.multibox_top)),
                    None,
                    &(),
                );
                let objects = objects_per_run(&runs, &gt);
                let q = quality(&runs, &objects, classes.len(), &all)[0].clone();
                let m = median(&runs);
                report(row(name.into(), q, m, format!("{:.1}x", m_theirs / m)));
            }
        }
    }
    Ok(())
}
