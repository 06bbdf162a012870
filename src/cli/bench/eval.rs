//! `rcnn bench eval`: flags, then the table of our evaluator against pycocotools.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub(super) struct EvalBenchArgs {
    #[arg(long, default_value_t = 20_121, value_parser = crate::cli::range::synthetic)]
    images: usize,
    #[arg(long, default_value_t = 200, value_parser = crate::cli::range::synthetic)]
    classes: usize,
    #[arg(long, default_value_t = 55_502, value_parser = crate::cli::range::synthetic)]
    objects: usize,
    #[arg(long, default_value_t = 500_000, value_parser = crate::cli::range::synthetic)]
    detections: usize,
    /// Python with pycocotools for the reference column (default: $RCNN_REFERENCE_PYTHON or
    /// .venv-ref/bin/python); `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
    /// Keep the generated gt.json and dets.json in this folder.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

pub(super) fn run(args: EvalBenchArgs) -> anyhow::Result<()> {
    use inception_rcnn::bench::eval::Synthetic;

    let spec = Synthetic {
        images: args.images,
        classes: args.classes,
        objects: args.objects,
        detections: args.detections,
        ..Default::default()
    };
    let dir = match &args.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("rcnn-bench-eval-{}", std::process::id())),
    };
    println!(
        "evaluator on generated data: {} images, {} classes, {} objects, {} detections, {} threads",
        spec.images,
        spec.classes,
        spec.objects,
        spec.detections,
        rayon::current_num_threads()
    );
    let python = super::reference_python(args.reference.as_deref());
    let measured =
        inception_rcnn::bench::eval::run(spec, &dir, args.keep.is_some(), python.as_deref())?;
    let (reference, coco_stats, times) = (&measured.reference, measured.coco, &measured.metrics);
    let ours_load = measured.load;
    println!(
        "{:<44} {:>10} {:>16} {:>8}",
        "step", "ours (s)", "pycocotools (s)", "ratio"
    );
    let theirs = |key: &str| reference.as_ref().and_then(|r| r[key].as_f64());
    let row = |name: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!("{name:<44} {ours:>10.3} {t:>16.3} {:>7.1}x", t / ours),
        None => println!("{name:<44} {ours:>10.3}"),
    };
    row("read gt.json + dets.json", ours_load, theirs("load_s"));
    for (metric, secs, _) in times {
        let name = match metric {
            eval::Metric::Ilsvrc => "ilsvrc (eval_detection.m rules)",
            eval::Metric::Voc => "voc (VOCevaldet.m rules, all-point)",
            _ => "coco (evaluate + accumulate + summarize)",
        };
        row(
            name,
            *secs,
            if *metric == eval::Metric::Coco {
                theirs("eval_s")
            } else {
                None
            },
        );
    }
    match (reference, coco_stats) {
        (Some(r), Some(ours)) => {
            let diff = r["stats"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .zip(ours.as_array())
                        .map(|(t, o)| (t.as_f64().unwrap_or(f64::NAN) - o).abs())
                        .fold(0.0, f64::max)
                })
                .unwrap_or(f64::NAN);
            println!("coco: AP {:.6}, AR100 {:.6}; largest difference from pycocotools over the 12 numbers: {diff:.1e}", ours.ap, ours.ar100);
        }
        _ => println!("(no reference: run scripts/setup-reference.sh or pass --reference PYTHON)"),
    }
    Ok(())
}
