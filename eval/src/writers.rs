//! Writers of the detection formats the readers take, each written atomically.
//!
//! Classes are written by name (CSV, txt), by 1-based ID (ILSVRC: DET_ID is the position in
//! the class list), or by `category_id` = position + 1 (COCO, unless the ground truth's own ids
//! are given).

use std::fmt::Write as _;
use std::path::Path;

use crate::classes::ClassList;
use crate::dataset::{Detections, Images};
use crate::{write_atomically, EvalError};

/// The ILSVRC submission and its image list (`<image_id> <index>`, the images' order).
pub fn write_ilsvrc(
    path: &Path,
    image_list: &Path,
    dets: &Detections,
    images: &Images,
) -> Result<(), EvalError> {
    let mut list = String::new();
    for (i, name) in images.names().iter().enumerate() {
        writeln!(list, "{name} {}", i + 1).expect("write to a string");
    }
    let mut out = String::with_capacity(dets.dets.len() * 48);
    for d in &dets.dets {
        let b = d.bbox;
        writeln!(
            out,
            "{} {} {} {} {} {} {}",
            d.image + 1,
            d.class + 1,
            d.score,
            b.x1,
            b.y1,
            b.x2,
            b.y2
        )
        .expect("write to a string");
    }
    write_atomically(image_list, list.as_bytes())?;
    write_atomically(path, out.as_bytes())
}

/// CSV with a header: `image,class,score,xmin,ymin,xmax,ymax`.
pub fn write_csv(
    path: &Path,
    dets: &Detections,
    images: &Images,
    classes: &ClassList,
) -> Result<(), EvalError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| EvalError::parse(path, 0, e.to_string());
    w.write_record(["image", "class", "score", "xmin", "ymin", "xmax", "ymax"])
        .map_err(io)?;
    for d in &dets.dets {
        let b = d.bbox;
        w.write_record([
            images.name(d.image).to_string(),
            classes.names[d.class].clone(),
            d.score.to_string(),
            b.x1.to_string(),
            b.y1.to_string(),
            b.x2.to_string(),
            b.y2.to_string(),
        ])
        .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| EvalError::parse(path, 0, e.to_string()))?;
    write_atomically(path, &bytes)
}

/// A COCO results list. `image_id` is the image's name where it is a number (COCO's ids),
/// else its position + 1; `category_id` is the class's position + 1.
pub fn write_coco(path: &Path, dets: &Detections, images: &Images) -> Result<(), EvalError> {
    let items: Vec<serde_json::Value> = dets
        .dets
        .iter()
        .map(|d| {
            let name = images.name(d.image);
            let image_id = name
                .parse::<i64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| (d.image as i64 + 1).into());
            let b = d.bbox;
            serde_json::json!({
                "image_id": image_id,
                "category_id": d.class + 1,
                "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                "score": d.score,
            })
        })
        .collect();
    let bytes = serde_json::to_vec(&items).expect("JSON serialises");
    write_atomically(path, &bytes)
}

/// One `IMAGE.txt` per image in `dir`: `class score x1 y1 x2 y2` (every image gets a file,
/// empty when it has no detection).
pub fn write_txt_dir(
    dir: &Path,
    dets: &Detections,
    images: &Images,
    classes: &ClassList,
) -> Result<(), EvalError> {
    // Every name checked before the first file: a hostile one (a merged shard's) writes nothing.
    let files = (0..images.len())
        .map(|i| crate::output::file_in(dir, images.name(i), ".txt"))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let mut per_image = vec![String::new(); images.len()];
    for d in &dets.dets {
        let b = d.bbox;
        writeln!(
            per_image[d.image],
            "{} {} {} {} {} {}",
            classes.names[d.class], d.score, b.x1, b.y1, b.x2, b.y2
        )
        .expect("write to a string");
    }
    for (file, text) in files.iter().zip(&per_image) {
        write_atomically(file, text.as_bytes())?;
    }
    Ok(())
}
