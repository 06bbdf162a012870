//! `rcnn merge` as a job: joins the output folders of `detect --shard K/N` (or `classify
//! --shard`) runs into the outputs one unsharded run writes, byte for byte, after checking that
//! the shards partition one run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::classify::{write_outputs as write_classifications, Output};
use super::outputs::write_outputs;
use super::{ensure, JobError};
use crate::run::lock::lock_output;
use crate::run::shard::owner;

/// What to merge, and where.
#[derive(Debug, Clone)]
pub struct MergeJob {
    /// The shards' output folders: each with detections.csv, classes.txt and image_list.txt
    /// (detect), or classifications.json and image_paths.csv (classify).
    pub shards: Vec<PathBuf>,
    pub out: PathBuf,
    /// Output formats, as `rcnn detect` takes them (detect shards only).
    pub formats: Vec<String>,
}

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeSummary {
    Detections {
        shards: usize,
        images: usize,
        detections: usize,
    },
    Classifications {
        shards: usize,
        classified: usize,
        images: usize,
    },
}

fn read(p: &Path) -> Result<String, JobError> {
    std::fs::read_to_string(p).map_err(|e| JobError::context(format!("reading {}", p.display()), e))
}

/// `(K, N)` from a shard folder's shard.json.
fn shard_of(dir: &Path) -> Result<(usize, usize), JobError> {
    let path = dir.join("shard.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        JobError::context(
            format!(
                "{} is not a shard: it has no readable shard.json (made without --shard?)",
                dir.display()
            ),
            e,
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| JobError::context(format!("reading {}", path.display()), e))?;
    match (
        v.get("shard").and_then(|x| x.as_u64()),
        v.get("of").and_then(|x| x.as_u64()),
    ) {
        (Some(k), Some(n)) => crate::run::shard::check(
            usize::try_from(k).unwrap_or(usize::MAX),
            usize::try_from(n).unwrap_or(usize::MAX),
            &path.display().to_string(),
        )
        .map_err(JobError::Refused),
        _ => Err(JobError::Refused(format!(
            "{}: want {{\"shard\": K, \"of\": N}} with 1 <= K <= N",
            path.display()
        ))),
    }
}

/// The shards must partition one run exactly: the same N, each K once. Returns N.
fn check_partition(shards: &[PathBuf]) -> Result<usize, JobError> {
    ensure(!shards.is_empty(), || "no shards to merge".into())?;
    let specs = shards
        .iter()
        .map(|s| shard_of(s))
        .collect::<Result<Vec<_>, _>>()?;
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
    // N is at most MAX_SHARDS; the message names the first twenty problems.
    let more = problems.len().saturating_sub(20);
    problems.truncate(20);
    if more > 0 {
        problems.push(format!("and {more} more"));
    }
    ensure(problems.is_empty(), || {
        format!(
            "the shards do not partition one run:\n  {}",
            problems.join("\n  ")
        )
    })?;
    Ok(n)
}

/// Refuses an image found in shard `k`'s `path` that another shard owns.
fn check_owner(path: &Path, image: &str, index: usize, k: usize, n: usize) -> Result<(), JobError> {
    let owner = owner(index, n);
    ensure(owner == k, || {
        format!(
            "{}: image {image} belongs to shard {owner}/{n}, not {k}",
            path.display()
        )
    })
}

/// Every shard holds `file` with the same text as the first (the same run's images, model).
fn same_in_every_shard(shards: &[PathBuf], files: &[&str], what: &str) -> Result<(), JobError> {
    let first = &shards[0];
    for file in files {
        let text = read(&first.join(file))?;
        for shard in &shards[1..] {
            ensure(read(&shard.join(file))? == text, || {
                format!(
                    "{} was made from {what} than {}",
                    shard.display(),
                    first.display()
                )
            })?;
        }
    }
    Ok(())
}

impl MergeJob {
    pub fn run(&self) -> Result<MergeSummary, JobError> {
        let n_shards = check_partition(&self.shards)?;
        if self.shards[0].join("classifications.json").is_file() {
            self.merge_classifications(n_shards)
        } else {
            self.merge_detections(n_shards)
        }
    }

    /// `rcnn detect` shards: every shard's detections.csv, in the order one run writes them.
    fn merge_detections(&self, n_shards: usize) -> Result<MergeSummary, JobError> {
        // The merged outputs never replace a shard's.
        eval::protect_inputs(self.shards.iter().flat_map(|s| {
            [
                "detections.csv",
                "image_list.txt",
                "classes.txt",
                "shard.json",
            ]
            .map(|f| s.join(f))
        }));
        eval::check_output_dir(&self.out)?;
        same_in_every_shard(
            &self.shards,
            &["image_list.txt", "classes.txt"],
            "other images or another model",
        )?;
        let first = &self.shards[0];
        let mut images = eval::Images::default();
        for name in eval::formats::ilsvrc::read_image_list(&first.join("image_list.txt"))? {
            images.intern(&name);
        }
        let classes = eval::ClassList::read(&first.join("classes.txt"))?;
        let mut issues = eval::Issues::new(true);
        let mut dets = Vec::new();
        for shard in &self.shards {
            let (k, _) = shard_of(shard)?;
            let path = shard.join("detections.csv");
            for d in eval::formats::csv::read_dets(&path, &mut issues)? {
                let image = images.get(&d.image).ok_or_else(|| {
                    JobError::Refused(format!(
                        "{}: image {} is not in the image list",
                        path.display(),
                        d.image
                    ))
                })?;
                check_owner(&path, &d.image, image, k, n_shards)?;
                let eval::formats::ClassKey::Name(name) = &d.class else {
                    unreachable!("CSV names classes")
                };
                let class = classes.index(name).ok_or_else(|| {
                    JobError::Refused(format!("{}: unknown class {name}", path.display()))
                })?;
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
        let _lock = lock_output(&self.out, "rcnn merge")?;
        let n = dets.len();
        let detections = eval::Detections {
            dets,
            first_unknown_image: images.len(),
        };
        write_outputs(&self.out, &self.formats, &detections, &images, &classes)?;
        Ok(MergeSummary::Detections {
            shards: self.shards.len(),
            images: images.len(),
            detections: n,
        })
    }

    /// `rcnn classify` shards: every image's classes from its shard's classifications.json, in
    /// the run's image order (image_paths.csv, the same in every shard), written as one run
    /// writes them.
    fn merge_classifications(&self, n_shards: usize) -> Result<MergeSummary, JobError> {
        eval::protect_inputs(self.shards.iter().flat_map(|s| {
            [
                "classifications.json",
                "classifications.csv",
                "image_paths.csv",
                "shard.json",
            ]
            .map(|f| s.join(f))
        }));
        eval::check_output_dir(&self.out)?;
        same_in_every_shard(&self.shards, &["image_paths.csv"], "other images")?;
        let paths_file = self.shards[0].join("image_paths.csv");
        let paths_text = read(&paths_file)?;
        // The run's images in order: image_paths.csv's first column.
        let mut reader = csv::Reader::from_reader(paths_text.as_bytes());
        let order: HashMap<String, usize> = reader
            .records()
            .enumerate()
            .map(|(i, r)| Ok((r?.get(0).unwrap_or_default().to_string(), i)))
            .collect::<Result<_, csv::Error>>()
            .map_err(|e| JobError::context(format!("reading {}", paths_file.display()), e))?;
        let mut all: Vec<(usize, Output)> = Vec::new();
        for shard in &self.shards {
            let (k, _) = shard_of(shard)?;
            let path = shard.join("classifications.json");
            let outputs: Vec<Output> = serde_json::from_str(&read(&path)?)
                .map_err(|e| JobError::context(format!("reading {}", path.display()), e))?;
            for o in outputs {
                let index = *order.get(&o.image).ok_or_else(|| {
                    JobError::Refused(format!(
                        "{}: image {} is not in image_paths.csv",
                        path.display(),
                        o.image
                    ))
                })?;
                check_owner(&path, &o.image, index, k, n_shards)?;
                all.push((index, o));
            }
        }
        all.sort_by_key(|(i, _)| *i);
        let _lock = lock_output(&self.out, "rcnn merge")?;
        let outputs: Vec<Output> = all.into_iter().map(|(_, o)| o).collect();
        write_classifications(&self.out, &outputs)?;
        eval::write_atomically(&self.out.join("image_paths.csv"), paths_text.as_bytes())?;
        Ok(MergeSummary::Classifications {
            shards: self.shards.len(),
            classified: outputs.len(),
            images: order.len(),
        })
    }
}
