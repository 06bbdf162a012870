//! CSV: ground truth `image,class,xmin,ymin,xmax,ymax` (an optional seventh column `difficult`
//! 0/1), detections `image,class,score,xmin,ymin,xmax,ymax`. A header line is optional.

use std::path::Path;

use super::{check_box, check_score, numbers, ClassKey, RawDet, RawGroundTruth, RawGt};
use crate::issues::{Issues, Kind};
use crate::EvalError;

fn records(path: &Path) -> Result<Vec<(usize, Vec<String>)>, EvalError> {
    // Opened here, so that a missing file is an I/O error like every other reader's.
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(crate::names::LineBounded::new(std::io::BufReader::new(
            file,
        )));
    let mut out = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let r = r.map_err(|e| EvalError::parse(path, i + 1, e.to_string()))?;
        let line = r.position().map(|p| p.line() as usize).unwrap_or(i + 1);
        let fields: Vec<String> = r.iter().map(String::from).collect();
        // A header: the first line with a non-numeric coordinate column.
        if i == 0 && fields.get(2).is_some_and(|f| f.parse::<f64>().is_err()) {
            continue;
        }
        if !fields.iter().all(String::is_empty) {
            out.push((line, fields));
        }
    }
    Ok(out)
}

pub fn read_gt(path: &Path, issues: &mut Issues) -> Result<RawGroundTruth, EvalError> {
    let mut gt = RawGroundTruth::default();
    for (line, f) in records(path)? {
        let at = || format!("{}:{line}", path.display());
        let nums: Vec<&str> = f.iter().skip(2).take(4).map(String::as_str).collect();
        let parsed = if f.len() == 6 || f.len() == 7 {
            numbers::<4>(&nums)
        } else {
            Err(format!("expected 6 or 7 columns, got {}", f.len()))
        };
        match parsed {
            Ok([x1, y1, x2, y2]) => {
                let bbox = crate::BBox::new(x1, y1, x2, y2);
                // The image exists even where its box is dropped.
                gt.images.push(f[0].clone());
                if !check_box(issues, &bbox, &at)? {
                    continue;
                }
                let difficult = f.get(6).is_some_and(|d| d == "1");
                gt.boxes.push(RawGt {
                    image: f[0].clone(),
                    class: ClassKey::Name(f[1].clone()),
                    bbox,
                    difficult,
                    crowd: false,
                    area: None,
                });
            }
            Err(e) => issues.record(Kind::Malformed, || {
                format!("{}: {e} (want image,class,xmin,ymin,xmax,ymax)", at())
            })?,
        }
    }
    gt.images.dedup();
    Ok(gt)
}

pub fn read_dets(path: &Path, issues: &mut Issues) -> Result<Vec<RawDet>, EvalError> {
    let mut out = Vec::new();
    for (line, f) in records(path)? {
        let at = || format!("{}:{line}", path.display());
        let nums: Vec<&str> = f.iter().skip(2).map(String::as_str).collect();
        match numbers::<5>(&nums) {
            Ok([score, x1, y1, x2, y2]) => {
                let bbox = crate::BBox::new(x1, y1, x2, y2);
                if check_box(issues, &bbox, &at)? && check_score(issues, score, &at)? {
                    out.push(RawDet {
                        image: f[0].clone(),
                        class: ClassKey::Name(f[1].clone()),
                        score,
                        bbox,
                    });
                }
            }
            Err(e) => issues.record(Kind::Malformed, || {
                format!("{}: {e} (want image,class,score,xmin,ymin,xmax,ymax)", at())
            })?,
        }
    }
    Ok(out)
}
