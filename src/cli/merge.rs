//! `rcnn merge`: joins the outputs of `rcnn detect --shard K/N` (or `rcnn classify --shard`)
//! runs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use inception_rcnn::run::shard::owner;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' output folders: each with detections.csv, classes.txt and image_list.txt
    /// (detect), or classifications.json and image_paths.csv (classify).
    #[arg(required = true)]
    pub(super) shards: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output formats, as rcnn detect.
    #[arg(long, value_delimiter = ',', default_values_t = ["ilsvrc".to_string(), "csv".to_string()])]
    format: Vec<String>,
}

fn read(p: PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// `(K, N)` from a shard folder's shard.json.
fn shard_of(dir: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let path = dir.join("shard.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a shard: it has no readable shard.json (made without --shard?)",
            dir.display()
        )
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    match (
        v.get("shard").and_then(|x| x.as_u64()),
        v.get("of").and_then(|x| x.as_u64()),
    ) {
        (Some(k), Some(n)) if k >= 1 && k <= n => Ok((k as usize, n as usize)),
        _ => bail!(
            "{}: want {{\"shard\": K, \"of\": N}} with 1 <= K <= N",
            path.display()
        ),
    }
}

/// The shards must partition one run exactly: the same N, each K once.
fn check_partition(shards: &[PathBuf]) -> anyhow::Result<usize> {
    let specs = shards
        .iter()
        .map(|s| shard_of(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let n = specs[0].1;
    let mut problems = Vec::new();
    for (dir, (k, m)) in shards.iter().zip(&specs) {
        if *m != n {
            problems.push(format!(
                "{} is shard {k}/{m}, but {} is of {n}",
                dir.display(),
                shards[0].display()
            ));
        }
    }
    for k in 1..=n {
        let holders: Vec<String> = shards
            .iter()
            .zip(&specs)
            .filter(|(_, s)| s.0 == k && s.1 == n)
            .map(|(d, _)| d.display().to_string())
            .collect();
        match holders.len() {
            0 => problems.push(format!("shard {k}/{n} is missing")),
            1 => {}
            _ => problems.push(format!(
                "shard {k}/{n} is given {} times: {}",
                holders.len(),
                holders.join(", ")
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "the shards do not partition one run:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(n)
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let n_shards = check_partition(&args.shards)?;
    if args.shards[0].join("classifications.json").is_file() {
        return merge_classifications(&args, n_shards);
    }
    // The merged outputs never replace a shard's.
    eval::protect_inputs(args.shards.iter().flat_map(|s| {
        [
            "detections.csv",
            "image_list.txt",
            "classes.txt",
            "shard.json",
        ]
        .map(|f| s.join(f))
    }));
    eval::check_output_dir(&args.out)?;
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
        let (k, _) = shard_of(shard)?;
        let path = shard.join("detections.csv");
        for d in eval::formats::csv::read_dets(&path, &mut issues)? {
            let image = images.get(&d.image).with_context(|| {
                format!(
                    "{}: image {} is not in the image list",
                    path.display(),
                    d.image
                )
            })?;
            // Image i of the run belongs to shard (i mod N) + 1.
            if owner(image, n_shards) != k {
                bail!(
                    "{}: image {} belongs to shard {}/{n_shards}, not {k}",
                    path.display(),
                    d.image,
                    owner(image, n_shards)
                );
            }
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
    inception_rcnn::jobs::outputs::write_outputs(
        &args.out,
        &args.format,
        &detections,
        &images,
        &classes,
    )?;
    println!(
        "merged {} shards: {} images, {n} detections into {}",
        args.shards.len(),
        images.len(),
        args.out.display()
    );
    Ok(())
}

/// `rcnn classify` shards: every image's classes from its shard's classifications.json, in the
/// run's image order (image_paths.csv, the same in every shard), written as one run writes them.
fn merge_classifications(args: &MergeArgs, n_shards: usize) -> anyhow::Result<()> {
    use inception_rcnn::jobs::classify::{write_outputs, Output};
    eval::protect_inputs(args.shards.iter().flat_map(|s| {
        [
            "classifications.json",
            "classifications.csv",
            "image_paths.csv",
            "shard.json",
        ]
        .map(|f| s.join(f))
    }));
    eval::check_output_dir(&args.out)?;
    let first = &args.shards[0];
    let paths_text = read(first.join("image_paths.csv"))?;
    for shard in &args.shards[1..] {
        if read(shard.join("image_paths.csv"))? != paths_text {
            bail!(
                "{} was made from other images than {}",
                shard.display(),
                first.display()
            );
        }
    }
    // The run's images in order: image_paths.csv's first column.
    let mut reader = csv::Reader::from_reader(paths_text.as_bytes());
    let order: std::collections::HashMap<String, usize> = reader
        .records()
        .enumerate()
        .map(|(i, r)| Ok((r?.get(0).unwrap_or_default().to_string(), i)))
        .collect::<Result<_, csv::Error>>()
        .with_context(|| format!("reading {}", first.join("image_paths.csv").display()))?;
    let mut all: Vec<(usize, Output)> = Vec::new();
    for shard in &args.shards {
        let (k, _) = shard_of(shard)?;
        let path = shard.join("classifications.json");
        let outputs: Vec<Output> = serde_json::from_str(&read(path.clone())?)
            .with_context(|| format!("reading {}", path.display()))?;
        for o in outputs {
            let index = *order.get(&o.image).with_context(|| {
                format!(
                    "{}: image {} is not in image_paths.csv",
                    path.display(),
                    o.image
                )
            })?;
            if owner(index, n_shards) != k {
                bail!(
                    "{}: image {} belongs to shard {}/{n_shards}, not {k}",
                    path.display(),
                    o.image,
                    owner(index, n_shards)
                );
            }
            all.push((index, o));
        }
    }
    all.sort_by_key(|(i, _)| *i);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let outputs: Vec<Output> = all.into_iter().map(|(_, o)| o).collect();
    write_outputs(&args.out, &outputs)?;
    eval::write_atomically(&args.out.join("image_paths.csv"), paths_text.as_bytes())?;
    println!(
        "merged {} shards: {} of {} images classified, into {}",
        args.shards.len(),
        outputs.len(),
        order.len(),
        args.out.display()
    );
    Ok(())
}
