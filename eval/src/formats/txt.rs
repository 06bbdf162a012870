//! One txt file per image: `class x1 y1 x2 y2` (ground truth, optionally followed by
//! `difficult`) or `class score x1 y1 x2 y2` (detections); `x y w h` with [`BoxFormat::Xywh`].
//! The image is the file's stem. Numbers are read from the right, so class names may hold
//! spaces ("water bottle").

use std::path::Path;

use super::{
    check_box, check_score, files_with_extension, numbers, stem, BoxFormat, ClassKey, RawDet,
    RawGroundTruth, RawGt,
};
use crate::issues::{Issues, Kind};
use crate::EvalError;

/// Calls `f(path, image, line number, fields)` for each non-empty, non-comment line.
fn each_line(
    dir: &Path,
    mut f: impl FnMut(&Path, String, usize, Vec<&str>) -> Result<(), EvalError>,
) -> Result<Vec<String>, EvalError> {
    let mut images = Vec::new();
    for path in files_with_extension(dir, "txt")? {
        let text = crate::names::read_lines_text(&path)?;
        let image = stem(&path);
        images.push(image.clone());
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields.is_empty() && !fields[0].starts_with('#') {
                f(&path, image.clone(), i + 1, fields)?;
            }
        }
    }
    Ok(images)
}

/// Splits `class words... n1 .. nN` into the class (at least one word) and N numbers.
fn class_and_numbers<const N: usize>(fields: &[&str]) -> Result<(String, [f64; N]), String> {
    if fields.len() < N + 1 {
        return Err(format!(
            "expected a class and {N} numbers, got {} fields",
            fields.len()
        ));
    }
    let split = fields.len() - N;
    Ok((fields[..split].join(" "), numbers::<N>(&fields[split..])?))
}

pub fn read_gt_dir(
    dir: &Path,
    boxes: BoxFormat,
    issues: &mut Issues,
) -> Result<RawGroundTruth, EvalError> {
    let mut out = Vec::new();
    let images = each_line(dir, |path, image, line, fields| {
        let at = || format!("{}:{line}", path.display());
        let difficult = fields.last() == Some(&"difficult");
        let fields = if difficult {
            &fields[..fields.len() - 1]
        } else {
            &fields[..]
        };
        match class_and_numbers::<4>(fields) {
            Ok((class, v)) => {
                let bbox = boxes.to_bbox(v);
                if !check_box(issues, &bbox, &at)? {
                    return Ok(());
                }
                out.push(RawGt {
                    image,
                    class: ClassKey::Name(class),
                    bbox,
                    difficult,
                    crowd: false,
                    area: None,
                });
                Ok(())
            }
            Err(e) => issues.record(Kind::Malformed, || {
                format!("{}: {e} (want `class x1 y1 x2 y2 [difficult]`)", at())
            }),
        }
    })?;
    Ok(RawGroundTruth {
        images,
        boxes: out,
        ..Default::default()
    })
}

pub fn read_dets_dir(
    dir: &Path,
    boxes: BoxFormat,
    issues: &mut Issues,
) -> Result<Vec<RawDet>, EvalError> {
    let mut out = Vec::new();
    each_line(dir, |path, image, line, fields| {
        let at = || format!("{}:{line}", path.display());
        match class_and_numbers::<5>(&fields) {
            Ok((class, [score, a, b, c, d])) => {
                let bbox = boxes.to_bbox([a, b, c, d]);
                if check_box(issues, &bbox, &at)? && check_score(issues, score, &at)? {
                    out.push(RawDet {
                        image,
                        class: ClassKey::Name(class),
                        score,
                        bbox,
                    });
                }
                Ok(())
            }
            Err(e) => issues.record(Kind::Malformed, || {
                format!("{}: {e} (want `class score x1 y1 x2 y2`)", at())
            }),
        }
    })?;
    Ok(out)
}
