//! One txt file per image: `class x1 y1 x2 y2` (ground truth, optionally followed by
//! `difficult`) or `class score x1 y1 x2 y2` (detections); `x y w h` with [`BoxFormat::Xywh`].
//! The image is the file's stem.

use std::path::Path;

use super::{
    check_box, check_score, files_with_extension, numbers, stem, BoxFormat, ClassKey, RawDet,
    RawGroundTruth, RawGt,
};
use crate::issues::{Issues, Kind};
use crate::EvalError;

fn each_line(
    dir: &Path,
    mut f: impl FnMut(&Path, String, usize, Vec<&str>) -> Result<(), EvalError>,
) -> Result<Vec<String>, EvalError> {
    let mut images = Vec::new();
    for path in files_with_extension(dir, "txt")? {
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, e))?;
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

pub fn read_gt_dir(
    dir: &Path,
    boxes: BoxFormat,
    issues: &mut Issues,
) -> Result<RawGroundTruth, EvalError> {
    let mut out = Vec::new();
    let images = each_line(dir, |path, image, line, fields| {
        let at = || format!("{}:{line}", path.display());
        let difficult = fields.len() == 6 && fields[5] == "difficult";
        let coords = if difficult {
            &fields[1..5]
        } else {
            &fields[1..]
        };
        match numbers::<4>(coords) {
            Ok(v) => {
                let bbox = boxes.to_bbox(v);
                check_box(issues, &bbox, &at)?;
                out.push(RawGt {
                    image,
                    class: ClassKey::Name(fields[0].to_string()),
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
        class_names: None,
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
        match numbers::<5>(&fields[1..]) {
            Ok([score, a, b, c, d]) => {
                let bbox = boxes.to_bbox([a, b, c, d]);
                check_box(issues, &bbox, &at)?;
                if check_score(issues, score, &at)? {
                    out.push(RawDet {
                        image,
                        class: ClassKey::Name(fields[0].to_string()),
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
