//! Image classification scored as the ILSVRC devkit scores it: an image is an error at k
//! guesses when its label is not among its first k; the error is the mean over images, overall
//! and per class (over the images of that class).
//!
//! Labels come from a file (`image label` a line, the label as a 0-based class index or a
//! WNID) or from an ImageNet-style folder tree (`WNID/image.JPEG`: the folder names the label).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::issues::Kind;
use crate::{ClassList, EvalError, Issues};

/// Errors at 1 and 5 guesses of one class, or of all images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopKError {
    /// Class index; `None` for the overall row.
    pub class: Option<usize>,
    pub name: String,
    pub images: usize,
    pub top1_error: f64,
    pub top5_error: f64,
}

/// The scores of a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub overall: TopKError,
    /// Classes with at least one labelled image, in class order.
    pub per_class: Vec<TopKError>,
}

/// Scores `guesses` (each image's classes, best first; at least 5 where there are 5 classes)
/// against `labels` (each image's class, `None` for an image without a label, left out).
pub fn score(
    guesses: &[Vec<usize>],
    labels: &[Option<usize>],
    classes: &ClassList,
) -> ClassificationReport {
    assert_eq!(guesses.len(), labels.len(), "one label slot per image");
    // Per class: images, errors at 1 guess, errors at 5.
    let mut counts: Vec<(usize, usize, usize)> = vec![(0, 0, 0); classes.len()];
    for (g, l) in guesses.iter().zip(labels) {
        let Some(l) = *l else { continue };
        let c = &mut counts[l];
        c.0 += 1;
        c.1 += usize::from(g.first() != Some(&l));
        c.2 += usize::from(!g.iter().take(5).any(|&x| x == l));
    }
    let row = |class: Option<usize>, name: String, (n, e1, e5): (usize, usize, usize)| TopKError {
        class,
        name,
        images: n,
        top1_error: if n > 0 {
            e1 as f64 / n as f64
        } else {
            f64::NAN
        },
        top5_error: if n > 0 {
            e5 as f64 / n as f64
        } else {
            f64::NAN
        },
    };
    let total = counts
        .iter()
        .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    ClassificationReport {
        overall: row(None, "all".into(), total),
        per_class: counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0)
            .map(|(i, &c)| row(Some(i), classes.names[i].clone(), c))
            .collect(),
    }
}

/// A class given as a 0-based index or as a WNID (or name) of `classes`.
fn class_of(label: &str, classes: &ClassList) -> Option<usize> {
    match label.parse::<usize>() {
        Ok(i) => (i < classes.len()).then_some(i),
        Err(_) => classes.index(label),
    }
}

/// Labels by image key: from a file (keys as written: an image name, file name or path) or a
/// folder tree (keys: each image's canonical path). Malformed lines and unknown classes are
/// counted in `issues` and skipped.
pub fn read_labels(
    path: &Path,
    classes: &ClassList,
    issues: &mut Issues,
) -> Result<HashMap<String, usize>, EvalError> {
    if path.is_dir() {
        return labels_from_folders(path, classes, issues);
    }
    let text = crate::names::read_lines_text(path)?;
    let mut labels = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let where_ = || format!("{}:{}", path.display(), i + 1);
        // The label is the last field, so that image paths may hold spaces.
        let Some((image, label)) = line.rsplit_once(char::is_whitespace) else {
            issues.record(Kind::Malformed, || {
                format!("{}: expected `image label`, got `{line}`", where_())
            })?;
            continue;
        };
        match class_of(label.trim(), classes) {
            Some(c) => {
                labels.insert(image.trim().to_string(), c);
            }
            None => issues.record(Kind::UnknownClass, || {
                format!(
                    "{}: `{label}` is neither a class index below {} nor a class's WNID",
                    where_(),
                    classes.len()
                )
            })?,
        }
    }
    Ok(labels)
}

/// `root/WNID/.../image`: every image under a folder named by a class, keyed by its canonical
/// path.
fn labels_from_folders(
    root: &Path,
    classes: &ClassList,
    issues: &mut Issues,
) -> Result<HashMap<String, usize>, EvalError> {
    let mut labels = HashMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| EvalError::io(root, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in entries {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(class) = class_of(&name, classes) else {
            issues.record(Kind::UnknownClass, || {
                format!("{}: the folder names no class of the model", dir.display())
            })?;
            continue;
        };
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)
                .map_err(|e| EvalError::io(&d, e))?
                .flatten()
            {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if crate::names::is_image_file(&p) {
                    let key = p.canonicalize().unwrap_or(p);
                    labels.insert(key.to_string_lossy().into_owned(), class);
                }
            }
        }
    }
    Ok(labels)
}

/// The label of an image found under any of its keys (its name in the outputs, its file name,
/// its stem, the path as given, its canonical path).
pub fn label_for(labels: &HashMap<String, usize>, name: &str, path: &Path) -> Option<usize> {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
    let stem = path.file_stem().map(|f| f.to_string_lossy().into_owned());
    let canonical = path
        .canonicalize()
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    [
        Some(name.to_string()),
        file,
        stem,
        Some(path.to_string_lossy().into_owned()),
        canonical,
    ]
    .into_iter()
    .flatten()
    .find_map(|k| labels.get(&k).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ClassList {
        ClassList::from_names(vec!["a".into(), "b".into(), "c".into()])
    }

    #[test]
    fn errors_at_one_and_five_guesses_as_the_devkit_counts_them() {
        let classes = ClassList::from_names((0..7).map(|i| format!("k{i}")).collect());
        let guesses = vec![
            vec![0, 1, 2, 3, 4, 5], // label 0: right at 1
            vec![1, 0, 2, 3, 4, 5], // label 0: wrong at 1, right at 5
            vec![1, 2, 3, 4, 5, 0], // label 0: sixth guess: wrong at 5 too
            vec![6, 5, 4, 3, 2, 1], // label 6: right
            vec![0, 1, 2, 3, 4, 5], // no label: left out
        ];
        let labels = [Some(0), Some(0), Some(0), Some(6), None];
        let r = score(&guesses, &labels, &classes);
        assert_eq!(r.overall.images, 4);
        assert_eq!(r.overall.top1_error, 0.5);
        assert_eq!(r.overall.top5_error, 0.25);
        assert_eq!(r.per_class.len(), 2);
        assert_eq!(r.per_class[0].class, Some(0));
        assert!((r.per_class[0].top1_error - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.per_class[0].top5_error - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (r.per_class[1].name.as_str(), r.per_class[1].top1_error),
            ("k6", 0.0)
        );
    }

    #[test]
    fn label_files_by_index_or_wnid_with_bad_lines_counted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("labels.txt");
        std::fs::write(
            &f,
            "# image label\nx.jpg 2\nsub dir/y.png n02\nbad\nz.jpg 9\nw.jpg n99\n",
        )
        .unwrap();
        let tsv = "0\tn00\ta\n1\tn01\tb\n2\tn02\tc\n";
        let t = dir.path().join("c.tsv");
        std::fs::write(&t, tsv).unwrap();
        let classes = ClassList::read(&t).unwrap();
        let mut issues = Issues::new(false);
        let l = read_labels(&f, &classes, &mut issues).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["x.jpg"], 2);
        assert_eq!(l["sub dir/y.png"], 2);
        assert_eq!((issues.malformed, issues.unknown_classes), (1, 2));
        assert!(
            issues.examples[0].contains("labels.txt:4"),
            "{:?}",
            issues.examples
        );
        assert_eq!(label_for(&l, "x", Path::new("/data/x.jpg")), Some(2));
        assert_eq!(label_for(&l, "q", Path::new("/data/q.jpg")), None);
        // --strict: the first bad line is the error.
        let err = read_labels(&f, &classes, &mut Issues::new(true)).unwrap_err();
        assert!(err.to_string().contains("labels.txt:4"), "{err}");
    }

    #[test]
    fn folder_trees_label_by_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        for (d, f) in [
            ("b", "1.jpg"),
            ("b/deeper", "2.JPEG"),
            ("c", "3.png"),
            ("zz", "4.jpg"),
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join(f), b"x").unwrap();
        }
        std::fs::write(dir.path().join("c/notes.txt"), b"x").unwrap();
        let mut issues = Issues::new(false);
        let l = read_labels(dir.path(), &three(), &mut issues).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(issues.unknown_classes, 1, "zz/");
        let p = dir.path().join("b/deeper/2.JPEG");
        assert_eq!(label_for(&l, "2", &p), Some(1));
        assert_eq!(label_for(&l, "3", &dir.path().join("c/3.png")), Some(2));
    }
}
