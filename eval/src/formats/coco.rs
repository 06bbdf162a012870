//! COCO JSON: a dataset (`images`, `annotations` with `bbox` [x, y, w, h], `area`, `iscrowd`,
//! `categories`) for ground truth; a results list (`image_id`, `category_id`, `bbox`,
//! `score`) for detections. Images are named by their id; images come sorted by id, as
//! pycocotools orders them.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{check_box, check_score, ClassKey, RawDet, RawGroundTruth, RawGt};
use crate::issues::{Issues, Kind};
use crate::EvalError;
use boxes::BBox;

#[derive(Deserialize)]
struct Dataset {
    images: Vec<Value>,
    annotations: Vec<Value>,
    #[serde(default)]
    categories: Vec<Value>,
}

/// A JSON number that is a whole number, as an integer: `1.0` is the id `1`, as it is to
/// pycocotools (Python's `1.0 == 1` and their hashes agree).
fn int_of(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// An id as COCO writes it (a number, sometimes a string), as text; a whole number written
/// as a float (`1.0`) is the same id as the integer.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(int_of(v).map_or_else(|| n.to_string(), |i| i.to_string())),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A `category_id`: an integer (or a whole float); the record's problem, said plainly, if not.
fn category_of(v: Option<&Value>) -> Result<i64, String> {
    match v {
        None => Err("has no category_id".into()),
        Some(v) => int_of(v).ok_or_else(|| format!("has category_id {v}, not an integer")),
    }
}

fn bbox_of(v: &Value) -> Option<BBox> {
    let a = v.as_array()?;
    if a.len() != 4 {
        return None;
    }
    let n: Vec<f64> = a.iter().map(Value::as_f64).collect::<Option<_>>()?;
    Some(BBox::from_xywh(n[0], n[1], n[2], n[3]))
}

/// Sort key of an image id: numeric ids in numeric order, as pycocotools' sorted(ids).
fn id_order(id: &str) -> (u8, i128, String) {
    match id.parse::<i128>() {
        Ok(n) => (0, n, String::new()),
        Err(_) => (1, 0, id.to_string()),
    }
}

fn read_json(path: &Path) -> Result<Value, EvalError> {
    let text = crate::names::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| EvalError::parse(path, e.line(), format!("JSON: {e}")))
}

pub fn read_gt(path: &Path, issues: &mut Issues) -> Result<RawGroundTruth, EvalError> {
    let data: Dataset = serde_json::from_value(read_json(path)?).map_err(|e| {
        EvalError::parse(
            path,
            0,
            format!("not a COCO dataset (images, annotations, categories): {e}"),
        )
    })?;
    let mut categories: Vec<(i64, String)> = Vec::new();
    for c in &data.categories {
        match (
            c.get("id").and_then(int_of),
            c.get("name").and_then(Value::as_str),
        ) {
            (Some(id), Some(name)) => categories.push((id, name.to_string())),
            _ => issues.record(Kind::Malformed, || {
                format!("{}: category without id and name: {c}", path.display())
            })?,
        }
    }
    categories.sort();
    // Two ids under one name are two categories to pycocotools and one class here: said.
    let mut by_name: HashMap<&str, i64> = HashMap::new();
    for (id, name) in &categories {
        if let Some(first) = by_name.insert(name, *id) {
            issues.record(Kind::Malformed, || {
                format!(
                    "{}: categories {first} and {id} are both named `{name}`; their boxes are \
                     evaluated as one class",
                    path.display()
                )
            })?;
        }
    }
    let names: HashMap<i64, String> = categories.iter().cloned().collect();
    let mut images: Vec<String> = Vec::new();
    let mut file_names = HashMap::new();
    let mut known = std::collections::HashSet::new();
    for (i, im) in data.images.iter().enumerate() {
        let raw = im.get("id");
        match raw.and_then(id_of) {
            Some(id) => {
                if !raw.is_some_and(|v| int_of(v).is_some() || v.is_u64()) {
                    issues.record(Kind::ImageId, || {
                        format!(
                            "{}: image {i} has the non-integer id {}; kept as written",
                            path.display(),
                            raw.expect("present")
                        )
                    })?;
                }
                if known.insert(id.clone()) {
                    if let Some(f) = im.get("file_name").and_then(Value::as_str) {
                        file_names.insert(id.clone(), f.to_string());
                    }
                    images.push(id);
                } else {
                    issues.record(Kind::ImageId, || {
                        format!(
                            "{}: image {i} repeats id {id}; one image of that id is evaluated",
                            path.display()
                        )
                    })?;
                }
            }
            None => issues.record(Kind::Malformed, || {
                format!("{}: image without id: {im}", path.display())
            })?,
        }
    }
    images.sort_by_key(|id| id_order(id));
    let mut boxes = Vec::with_capacity(data.annotations.len());
    for (i, a) in data.annotations.iter().enumerate() {
        let at = || format!("{}: annotation {i}", path.display());
        let image = a.get("image_id").and_then(id_of);
        let cat = match category_of(a.get("category_id")) {
            Ok(c) => c,
            Err(why) => {
                issues.record(Kind::Malformed, || format!("{}: {why}", at()))?;
                continue;
            }
        };
        let bbox = a.get("bbox").and_then(bbox_of);
        let (Some(image), Some(bbox)) = (image, bbox) else {
            issues.record(Kind::Malformed, || {
                format!(
                    "{}: needs image_id, category_id and bbox [x, y, w, h]",
                    at()
                )
            })?;
            continue;
        };
        if !known.contains(&image) {
            // pycocotools evaluates the images listed in `images` only.
            issues.record(Kind::ImageId, || {
                format!(
                    "{}: image_id {image} is not in `images`; the annotation is not evaluated",
                    at()
                )
            })?;
            continue;
        }
        if !check_box(issues, &bbox, &at)? {
            continue;
        }
        let class = match names.get(&cat) {
            Some(n) => ClassKey::Name(n.clone()),
            None => ClassKey::Name(cat.to_string()),
        };
        let crowd = a.get("iscrowd").and_then(Value::as_i64).unwrap_or(0) != 0;
        let area = a.get("area").and_then(Value::as_f64);
        boxes.push(RawGt {
            image,
            class,
            bbox,
            difficult: false,
            crowd,
            area,
        });
    }
    let class_names =
        (!categories.is_empty()).then(|| categories.into_iter().map(|(_, n)| n).collect());
    Ok(RawGroundTruth {
        images,
        boxes,
        class_names,
        file_names,
    })
}

/// Reads a results list. `category_names` maps COCO category ids to names (from the ground
/// truth); without it, categories are named by their id.
pub fn read_dets(
    path: &Path,
    category_names: &HashMap<i64, String>,
    issues: &mut Issues,
) -> Result<Vec<RawDet>, EvalError> {
    let Value::Array(items) = read_json(path)? else {
        return Err(EvalError::parse(
            path,
            0,
            "COCO results must be a JSON list".into(),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, d) in items.iter().enumerate() {
        let at = || format!("{}: result {i}", path.display());
        let image = d.get("image_id").and_then(id_of);
        let cat = match category_of(d.get("category_id")) {
            Ok(c) => c,
            Err(why) => {
                issues.record(Kind::Malformed, || format!("{}: {why}", at()))?;
                continue;
            }
        };
        let bbox = d.get("bbox").and_then(bbox_of);
        let score = d.get("score").and_then(Value::as_f64);
        let (Some(image), Some(bbox), Some(score)) = (image, bbox, score) else {
            issues.record(Kind::Malformed, || {
                format!("{}: needs image_id, category_id, bbox and score", at())
            })?;
            continue;
        };
        if !check_box(issues, &bbox, &at)? || !check_score(issues, score, &at)? {
            continue;
        }
        let class = ClassKey::Name(
            category_names
                .get(&cat)
                .cloned()
                .unwrap_or_else(|| cat.to_string()),
        );
        out.push(RawDet {
            image,
            class,
            score,
            bbox,
        });
    }
    Ok(out)
}

/// Category id -> name of a COCO dataset file (empty when it has none).
pub fn category_names(path: &Path) -> Result<HashMap<i64, String>, EvalError> {
    let v = read_json(path)?;
    Ok(v.get("categories")
        .and_then(Value::as_array)
        .map(|cats| {
            cats.iter()
                .filter_map(|c| Some((int_of(c.get("id")?)?, c.get("name")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}
