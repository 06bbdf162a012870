//! `rcnn bench nms`: flags, then the table of our per-class NMS against torchvision's.

use clap::Args;
use inception_rcnn::run::device;

#[derive(Args, Debug)]
pub(super) struct NmsBenchArgs {
    /// IoU threshold.
    #[arg(long, default_value_t = 0.3, value_parser = crate::cli::range::iou)]
    iou: f32,
    /// Python with torchvision for the reference column; `none` skips it.
    #[arg(long, value_name = "PYTHON")]
    reference: Option<String>,
}

pub(super) fn run(args: NmsBenchArgs, threads: Option<usize>) -> anyhow::Result<()> {
    let threads = threads.unwrap_or_else(device::default_threads);
    let python = super::reference_python(args.reference.as_deref());
    println!(
        "per-class NMS at IoU {}, {threads} threads; boxes clustered around objects, tied scores",
        args.iou
    );
    println!(
        "{:>8} {:>8} {:>10} {:>12} {:>16} {:>8}",
        "boxes", "classes", "kept", "ours (ms)", "torchvision (ms)", "ratio"
    );
    inception_rcnn::bench::nms::run(args.iou, threads, python.as_deref(), |r| {
        match r.torchvision {
            Some(t) => println!(
                "{:>8} {:>8} {:>10} {:>12.2} {:>16.2} {:>7.1}x",
                r.boxes,
                r.classes,
                r.kept,
                r.ours * 1e3,
                t * 1e3,
                t / r.ours
            ),
            None => println!(
                "{:>8} {:>8} {:>10} {:>12.2}",
                r.boxes,
                r.classes,
                r.kept,
                r.ours * 1e3
            ),
        }
    })
    .map_err(anyhow::Error::msg)?;
    if python.is_some() {
        println!("(torchvision kept the same boxes in every case)");
    }
    Ok(())
}
