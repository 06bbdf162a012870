//! `rcnn model-info`.

use std::path::PathBuf;

use clap::Args;
use inception_rcnn::model::summary::summarize;
use inception_rcnn::model::Model;
use inception_rcnn::run::device;

use super::{thousands, DeviceArgs, NetworkArgs};

#[derive(Args, Debug)]
pub struct ModelInfoArgs {
    /// Describe this model file instead of a network built from the flags below.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: ModelInfoArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let device = device::select(args.device.device, threads)?;
    let mut multibox = None;
    let model = match &args.model {
        Some(path) if inception_rcnn::multibox::is_multibox_file(path) => {
            let mb = inception_rcnn::multibox::MultiBox::load(path, device)?;
            let i = mb.info.clone();
            multibox = Some((i, mb.model.net.grid_dim()));
            mb.model
        }
        Some(path) => Model::load(path, device)?,
        None => Model::new(&args.network.config(), Vec::new(), device)?,
    };
    let c = model.config();
    let summary = summarize(&model);
    if let Some((i, grid)) = &multibox {
        println!(
            "MultiBox (learned proposals): {} priors, head {grid} -> {} (4 offsets and an \
             objectness logit per prior; {} parameters, not in the table below) over inception \
             5b on a 3x3 grid; the backbone's fc below is not used",
            i.priors,
            5 * i.priors,
            thousands((grid + 1) * 5 * i.priors as i64)
        );
        println!(
            "trained: {} steps on {} images ({} objects); alpha {}; matching: {}; priors: {}",
            i.steps, i.training_images, i.training_objects, i.alpha, i.matching, i.prior_source
        );
    }
    println!(
        "GoogLeNet, {} layout, {} classes, width {}, input {}x{}x3{}{}",
        c.layout,
        c.num_classes,
        c.width,
        c.input_size,
        c.input_size,
        if c.aux_logits {
            ", auxiliary classifiers"
        } else {
            ""
        },
        if c.transform_input {
            ", transform_input"
        } else {
            ""
        },
    );
    println!(
        "{:<14} {:>14} {:>12} {:>16}",
        "stage", "output", "params", "mult-adds"
    );
    for row in &summary.rows {
        let shape = match row.shape.as_slice() {
            [ch, h, w] => format!("{h}x{w}x{ch}"),
            other => other
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        };
        let params = if row.params > 0 {
            thousands(row.params)
        } else {
            String::new()
        };
        let macs = if row.macs > 0 {
            thousands(row.macs)
        } else {
            String::new()
        };
        println!("{:<14} {:>14} {:>12} {:>16}", row.name, shape, params, macs);
    }
    println!(
        "{:<14} {:>14} {:>12} {:>16}",
        "total",
        "",
        thousands(summary.params()),
        thousands(summary.macs())
    );
    if c.aux_logits {
        println!(
            "(the total excludes the auxiliary classifiers, used in training only; with them: {} parameters)",
            thousands(summary.params_with_aux())
        );
    }
    let info = &model.heads.info;
    if let Some(r) = &info.box_regression {
        println!(
            "heads: box regression on {:?} features (ridge lambda {}, pairs of IoU >= {}{}, \
             per class {:?})",
            r.features,
            r.lambda,
            r.min_iou,
            if r.flip { " and their mirrors" } else { "" },
            &r.regions[1.min(r.regions.len())..]
        );
    }
    if let Some(s) = &info.svm {
        let positives: Vec<usize> = s.classes.iter().skip(1).map(|c| c.positives).collect();
        println!(
            "heads: class SVMs (C {}, hard-negative mining; positives per class {positives:?})",
            s.params.c
        );
    }
    Ok(())
}
