//! The ILSVRC submission: `<image_index> <DET_ID> <confidence> <xmin> <ymin> <xmax> <ymax>`,
//! image_index the 1-based line of the image list (`<image_id> <index>` per line, as the
//! devkit's val.txt), DET_ID 1..200.

use std::path::Path;

use super::{check_box, check_score, numbers, ClassKey, RawDet};
use crate::issues::{Issues, Kind};
use crate::EvalError;
use boxes::BBox;

/// Reads an image list: `<image_id> [<index>]` per line (names may hold spaces, see
/// [`crate::names`]); returns names, position i = index i+1.
pub fn read_image_list(path: &Path) -> Result<Vec<String>, EvalError> {
    let mut names = Vec::new();
    for l in crate::names::read_listed(path)? {
        if let Some(index) = l.field {
            if index != names.len() as i64 + 1 {
                return Err(EvalError::parse(
                    path,
                    l.line,
                    format!("expected index {}, got `{index}`", names.len() + 1),
                ));
            }
        }
        names.push(l.name);
    }
    Ok(names)
}

/// Reads a submission. With an image list, images are named by it; without, by their index.
pub fn read_dets(
    path: &Path,
    image_list: Option<&[String]>,
    issues: &mut Issues,
) -> Result<Vec<RawDet>, EvalError> {
    let text = crate::names::read_lines_text(path)?;
    let mut out = Vec::with_capacity(text.len() / 48);
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v = match numbers::<7>(&fields) {
            Ok(v) => v,
            Err(e) => {
                issues.record(Kind::Malformed, || {
                    format!(
                        "{}: {e} (want `image_index DET_ID confidence xmin ymin xmax ymax`)",
                        at()
                    )
                })?;
                continue;
            }
        };
        let (index, id) = (v[0], v[1]);
        if index < 1.0 || index.fract() != 0.0 || id < 1.0 || id.fract() != 0.0 {
            issues.record(Kind::Malformed, || {
                format!("{}: image index and DET_ID must be positive integers", at())
            })?;
            continue;
        }
        let image = match image_list {
            Some(list) => match list.get(index as usize - 1) {
                Some(name) => name.clone(),
                // Counted once, by the loader, as a detection on an image without ground truth.
                None => format!("#{index} (beyond the image list of {})", list.len()),
            },
            None => (index as usize).to_string(),
        };
        let bbox = BBox::new(v[3], v[4], v[5], v[6]);
        if check_box(issues, &bbox, &at)? && check_score(issues, v[2], &at)? {
            out.push(RawDet {
                image,
                class: ClassKey::Id(id as usize),
                score: v[2],
                bbox,
            });
        }
    }
    Ok(out)
}
