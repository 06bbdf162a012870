//! `rcnn merge`: joins the outputs of `rcnn detect --shard K/N` runs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' output folders (each with detections.csv, classes.txt, image_list.txt).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output formats, as rcnn detect.
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let first = &args.shards[0];
    let list_text = read(first.join("image_list.txt"))?;
    let classes_text = read(first.join("classes.txt"))?;
    for shard in &args.shards[1..] {
        if read(shard.join("image_list.txt"))? != list_text
            || read(shard.join("classes.txt"))? != classes_text
        {
            bail!(
                "{} was made from other images or another model than {}",
                shard.display(),
                first.display()
            );
        }
    }
    let mut images = eval::Images::default();
    for name in eval::formats::ilsvrc::read_image_list(&first.join("image_list.txt"))? {
        images.intern(&name);
    }
    let classes = eval::ClassList::read(&first.join("classes.txt"))?;
    let mut issues = eval::Issues::new(true);
    let mut dets = Vec::new();
    for shard in &args.shards {
        let path = shard.join("detections.csv");
        for d in eval::formats::csv::read_dets(&path, &mut issues)? {
            let image = images.get(&d.image).with_context(|| {
                format!(
                    "{}: image {} is not in the image list",
                    path.display(),
                    d.image
                )
            })?;
            let eval::formats::ClassKey::Name(name) = &d.class else {
                unreachable!("CSV names classes")
            };
            let class = classes
                .index(name)
                .with_context(|| format!("{}: unknown class {name}", path.display()))?;
            dets.push(eval::Detection {
                image,
                class,
                score: d.score,
                bbox: d.bbox,
            });
        }
    }
    // Image order, then score: the order one unsharded run writes.
    dets.sort_by(|a, b| a.image.cmp(&b.image).then(b.score.total_cmp(&a.score)));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let n = dets.len();
    let detections = eval::Detections {
        dets,
        first_unknown_image: images.len(),
    };
    super::detect::write_outputs(&args.out, &args.format, &detections, &images, &classes)?;
    println!(
        "merged {} shards: {} images, {n} detections into {}",
        args.shards.len(),
        images.len(),
        args.out.display()
    );
    Ok(())
}
