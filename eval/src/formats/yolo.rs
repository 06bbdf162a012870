//! YOLO txt, as Ultralytics and Roboflow export it: a `labels` folder beside an `images` folder
//! (`labels/train/x.txt` for `images/train/x.jpg`), one `class cx cy w h` line per object, the
//! class a 0-based number and the box normalised to the image's width and height. Class names
//! come from `data.yaml` (`names:` as a list or a map) or `classes.txt` near the labels, else
//! from the class list given (`--classes`, line k for class k). Each image's size is read from
//! its header, so boxes come back in pixels. An image without a label file has no objects.

use std::path::{Path, PathBuf};

use super::{check_box, numbers, stem, ClassKey, RawGroundTruth, RawGt};
use crate::issues::{Issues, Kind};
use crate::EvalError;
use boxes::BBox;

/// Image files YOLO datasets hold.
const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// The images folder of `labels`: `images` in place of the last `labels` part of the path
/// (`ds/labels/train` -> `ds/images/train`), else an `images` folder beside it.
pub fn images_beside(labels: &Path) -> Option<PathBuf> {
    let parts: Vec<_> = labels.components().collect();
    if let Some(k) = parts.iter().rposition(|c| c.as_os_str() == "labels") {
        let mut p = PathBuf::new();
        for (i, c) in parts.iter().enumerate() {
            p.push(if i == k {
                std::ffi::OsStr::new("images")
            } else {
                c.as_os_str()
            });
        }
        if p.is_dir() {
            return Some(p);
        }
    }
    let beside = labels.parent()?.join("images");
    beside.is_dir().then_some(beside)
}

/// Whether `dir` looks like YOLO labels: the first few non-empty txt files hold only lines of
/// an integer class and four numbers in [0, 1].
pub fn looks_like(dir: &Path) -> bool {
    let Ok(files) = super::files_with_extension(dir, "txt") else {
        return false;
    };
    let mut seen = 0;
    for f in files.iter().filter(|f| stem(f) != "classes").take(20) {
        let Ok(text) = std::fs::read_to_string(f) else {
            return false;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ok = fields.len() == 5
                && fields[0].parse::<u32>().is_ok()
                && numbers::<4>(&fields[1..])
                    .is_ok_and(|v| v.iter().all(|x| (0.0..=1.0).contains(x)));
            if !ok {
                return false;
            }
            seen += 1;
        }
    }
    seen > 0
}

/// Class names of a YOLO dataset: `data.yaml` (or `dataset.yaml`) in the labels folder or up to
/// three folders above, else `classes.txt` in the labels folder or beside it.
pub fn find_class_names(labels: &Path) -> Result<Option<(PathBuf, Vec<String>)>, EvalError> {
    let mut dir = Some(labels);
    for _ in 0..4 {
        let Some(d) = dir else { break };
        for name in ["data.yaml", "dataset.yaml", "data.yml"] {
            let p = d.join(name);
            if p.is_file() {
                let text = crate::names::read_text(&p)?;
                return Ok(Some((p.clone(), yaml_names(&text, &p)?)));
            }
        }
        dir = d.parent();
    }
    for p in [
        labels.join("classes.txt"),
        labels
            .parent()
            .map_or_else(PathBuf::new, |d| d.join("classes.txt")),
    ] {
        if p.is_file() {
            // One name a line: the class-file reader every other list goes through.
            let names = crate::ClassList::read(&p)?.names;
            return Ok(Some((p, names)));
        }
    }
    Ok(None)
}

/// `names` of a data.yaml: a flow list (`names: ['a', 'b']`), a block list (`- a`) or a map
/// (`0: a`), as Ultralytics and Roboflow write them. Only this key is read.
pub fn yaml_names(text: &str, path: &Path) -> Result<Vec<String>, EvalError> {
    let unquote = |s: &str| {
        let s = s.trim();
        let s = s.split(" #").next().unwrap_or(s).trim();
        s.trim_matches(|c| c == '\'' || c == '"').to_string()
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().position(|l| l.starts_with("names:")) else {
        return Err(EvalError::parse(path, 0, "no `names:` key".into()));
    };
    let rest = lines[at]["names:".len()..].trim();
    let mut names = Vec::new();
    if rest.starts_with('[') {
        // The list may run over several lines, to its `]`.
        let mut flow = rest.to_string();
        let mut k = at + 1;
        while !flow.contains(']') && k < lines.len() {
            flow.push_str(lines[k]);
            k += 1;
        }
        let inner = flow.trim_start_matches('[');
        let inner = inner.split(']').next().unwrap_or("");
        names.extend(inner.split(',').map(unquote).filter(|s| !s.is_empty()));
    } else if rest.is_empty() {
        let mut map: Vec<(usize, String)> = Vec::new();
        for (k, line) in lines.iter().enumerate().skip(at + 1) {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            if !line.starts_with(' ') && !line.starts_with('\t') && !line.starts_with('-') {
                break;
            }
            let l = line.trim();
            if let Some(item) = l.strip_prefix('-') {
                names.push(unquote(item));
            } else if let Some((key, value)) = l.split_once(':') {
                let id = key.trim().parse::<usize>().map_err(|_| {
                    EvalError::parse(path, k + 1, format!("`{l}`: want `N: name` under names"))
                })?;
                map.push((id, unquote(value)));
            }
        }
        map.sort();
        for (i, (id, name)) in map.into_iter().enumerate() {
            if id != i {
                return Err(EvalError::parse(
                    path,
                    at + 1,
                    format!("names: class {i} is missing (the map jumps to {id})"),
                ));
            }
            names.push(name);
        }
    } else {
        return Err(EvalError::parse(
            path,
            at + 1,
            format!("names: `{rest}`: want a list or a map of class names"),
        ));
    }
    if names.is_empty() {
        return Err(EvalError::parse(
            path,
            at + 1,
            "names: no class names".into(),
        ));
    }
    Ok(names)
}

/// Reads the labels under `labels` for the images under `images` (default: the folder beside,
/// [`images_beside`]). With `have_class_list`, class k may be named by the caller's list (line
/// k + 1 of `--classes`) where the dataset names none.
pub fn read_gt(
    labels: &Path,
    images: Option<&Path>,
    have_class_list: bool,
    issues: &mut Issues,
) -> Result<RawGroundTruth, EvalError> {
    let images_dir = match images {
        Some(d) => d.to_path_buf(),
        None => images_beside(labels).ok_or_else(|| {
            EvalError::Usage(format!(
                "{}: YOLO labels need their images (for each image's size): no `images` folder \
                 beside them; pass the images folder",
                labels.display()
            ))
        })?,
    };
    let names = find_class_names(labels)?;
    if names.is_none() && !have_class_list {
        return Err(EvalError::Usage(format!(
            "{}: YOLO labels number their classes; no data.yaml or classes.txt names them: \
             pass --classes FILE (one name a line, class 0 first)",
            labels.display()
        )));
    }
    let files = super::files_under(&images_dir, &IMAGE_EXTENSIONS)?;
    let mut raw = RawGroundTruth {
        class_names: names.as_ref().map(|(_, n)| n.clone()),
        ..Default::default()
    };
    let mut labelled = std::collections::HashSet::new();
    for image in &files {
        let rel = image.strip_prefix(&images_dir).unwrap_or(image);
        let label = labels.join(rel).with_extension("txt");
        let name = stem(image);
        raw.images.push(name.clone());
        if !label.is_file() {
            continue;
        }
        labelled.insert(label.clone());
        let text = crate::names::read_lines_text(&label)?;
        if text.trim().is_empty() {
            continue;
        }
        let (w, h) = match image::ImageReader::open(image)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()))
        {
            Ok((w, h)) => (w as f64, h as f64),
            Err(e) => {
                issues.record(Kind::Malformed, || {
                    format!(
                        "{}: its size cannot be read ({e}); its labels are left out",
                        image.display()
                    )
                })?;
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() || fields[0].starts_with('#') {
                continue;
            }
            let at = || format!("{}:{}", label.display(), i + 1);
            let parsed = (fields.len() == 5)
                .then_some(())
                .ok_or_else(|| format!("{} fields", fields.len()))
                .and_then(|_| {
                    fields[0]
                        .parse::<usize>()
                        .map_err(|_| format!("class `{}` is not a number", fields[0]))
                })
                .and_then(|c| numbers::<4>(&fields[1..]).map(|v| (c, v)));
            let (class, [cx, cy, bw, bh]) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    issues.record(Kind::Malformed, || {
                        format!("{}: {e} (want `class cx cy w h`, normalised)", at())
                    })?;
                    continue;
                }
            };
            // To a millionth of a pixel: the products' rounding noise (259.99999999997 for a
            // box edge at 260) would otherwise flip overlaps that sit exactly on a threshold.
            let px = |v: f64| (v * 1e6).round() / 1e6;
            let bbox = BBox::new(
                px((cx - bw / 2.0) * w),
                px((cy - bh / 2.0) * h),
                px((cx + bw / 2.0) * w),
                px((cy + bh / 2.0) * h),
            );
            if !check_box(issues, &bbox, &at)? {
                continue;
            }
            let class = match &names {
                Some((path, n)) => match n.get(class) {
                    Some(name) => ClassKey::Name(name.clone()),
                    None => {
                        issues.record(Kind::UnknownClass, || {
                            format!(
                                "{}: class {class}, but {} names {} classes",
                                at(),
                                path.display(),
                                n.len()
                            )
                        })?;
                        continue;
                    }
                },
                // Resolved against the caller's list, 1-based as ILSVRC's IDs.
                None => ClassKey::Id(class + 1),
            };
            raw.boxes.push(RawGt {
                image: name.clone(),
                class,
                bbox,
                difficult: false,
                crowd: false,
                area: None,
            });
        }
    }
    // Label files of no image: a typo or a missing image, worth a word.
    for f in super::files_with_extension(labels, "txt")? {
        if !labelled.contains(&f) && stem(&f) != "classes" {
            issues.record(Kind::UnknownImage, || {
                format!(
                    "{}: no image of this name under {}; its labels are left out",
                    f.display(),
                    images_dir.display()
                )
            })?;
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_yaml_names_in_each_form() {
        let p = Path::new("data.yaml");
        assert_eq!(
            yaml_names("train: x\nnames: ['Platelets', \"RBC\", WBC]\nnc: 3\n", p).unwrap(),
            ["Platelets", "RBC", "WBC"]
        );
        assert_eq!(
            yaml_names(
                "names:\n  - Platelets\n  - RBC # red cells\n  - WBC\nnc: 3\n",
                p
            )
            .unwrap(),
            ["Platelets", "RBC", "WBC"]
        );
        assert_eq!(
            yaml_names("path: .\nnames:\n  1: RBC\n  0: Platelets\n  2: WBC\n", p).unwrap(),
            ["Platelets", "RBC", "WBC"]
        );
        assert_eq!(yaml_names("names: [a,\n  b]\n", p).unwrap(), ["a", "b"]);
        assert!(yaml_names("names:\n  0: a\n  2: c\n", p).is_err());
        assert!(yaml_names("nc: 2\n", p).is_err());
    }

    #[test]
    fn labels_beside_images_come_back_in_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = (
            dir.path().join("images/train"),
            dir.path().join("labels/train"),
        );
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&labels).unwrap();
        std::fs::write(dir.path().join("data.yaml"), "names: [cat, dog]\n").unwrap();
        // A 200x100 PNG: only its header is read.
        image::RgbImage::new(200, 100)
            .save(images.join("a.png"))
            .unwrap();
        image::RgbImage::new(20, 10)
            .save(images.join("empty.png"))
            .unwrap();
        std::fs::write(
            labels.join("a.txt"),
            "1 0.5 0.5 0.2 0.4\n0 0.25 0.75 0.5 0.5\n7 0.5 0.5 0.1 0.1\n",
        )
        .unwrap();
        std::fs::write(labels.join("stray.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
        assert!(looks_like(&labels));
        assert_eq!(images_beside(&labels).unwrap(), images);
        let mut issues = Issues::new(false);
        let raw = read_gt(&labels, None, false, &mut issues).unwrap();
        assert_eq!(raw.images, ["a", "empty"]);
        assert_eq!(raw.class_names.unwrap(), ["cat", "dog"]);
        assert_eq!(raw.boxes.len(), 2);
        assert_eq!(raw.boxes[0].class, ClassKey::Name("dog".into()));
        assert_eq!(raw.boxes[0].bbox, BBox::new(80.0, 30.0, 120.0, 70.0));
        assert_eq!(raw.boxes[1].bbox, BBox::new(0.0, 50.0, 100.0, 100.0));
        // Class 7 of a two-class list, and a label file of no image.
        assert_eq!(issues.total(), 2, "{issues}");
    }
}
