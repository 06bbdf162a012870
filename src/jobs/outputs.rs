//! The files a detect or classify run writes besides its results' own, shared with `rcnn merge`
//! so that a merged run's files are one run's, byte for byte.

use std::path::{Path, PathBuf};

use super::JobError;

/// Writes `formats` into `out`, plus `classes.txt` and `image_list.txt` (every image of the run,
/// all shards included, so that shards' outputs merge).
pub fn write_outputs(
    out: &Path,
    formats: &[String],
    detections: &eval::Detections,
    images: &eval::Images,
    classes: &eval::ClassList,
) -> Result<(), JobError> {
    use eval::writers;
    // A name that could reach outside `out` (a merged shard's list is anyone's file) stops the
    // run before its first file.
    for name in images.names() {
        eval::output::file_in(out, name, "")?;
    }
    let list: String = images
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} {}\n", i + 1))
        .collect();
    eval::write_atomically(&out.join("image_list.txt"), list.as_bytes())?;
    let names: String = classes.names.iter().map(|n| format!("{n}\n")).collect();
    eval::write_atomically(&out.join("classes.txt"), names.as_bytes())?;
    for f in formats {
        match f.as_str() {
            "ilsvrc" => writers::write_ilsvrc(
                &out.join("detections.txt"),
                &out.join("image_list.txt"),
                detections,
                images,
            )?,
            "csv" => writers::write_csv(&out.join("detections.csv"), detections, images, classes)?,
            "coco" => writers::write_coco(&out.join("detections.json"), detections, images)?,
            _ => writers::write_txt_dir(&out.join("txt"), detections, images, classes)?,
        }
    }
    Ok(())
}

/// `image_paths.csv`: which file each image name stands for.
pub fn image_paths_csv(images: &[PathBuf], names: &[String]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image", "path"]).expect("in memory");
    for (p, n) in images.iter().zip(names) {
        w.write_record([n.as_str(), &p.to_string_lossy()])
            .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
}

/// `shard.json` (K/N) for `rcnn merge` to check that shards partition a run; an unsharded run
/// removes an earlier one.
pub fn write_shard_file(out: &Path, shard: Option<(usize, usize)>) -> Result<(), JobError> {
    let file = out.join("shard.json");
    match shard {
        Some((k, n)) => eval::write_atomically(
            &file,
            serde_json::json!({"shard": k, "of": n})
                .to_string()
                .as_bytes(),
        )?,
        None if file.exists() => std::fs::remove_file(&file)
            .map_err(|e| JobError::context(format!("removing {}", file.display()), e))?,
        None => {}
    }
    Ok(())
}
