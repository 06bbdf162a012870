//! The training images: image files matched to their annotations by name, restricted to a split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eval::formats::Format;
use eval::{BBox, ClassList};
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::detect::decode::collect_images;
use crate::detect::propose::image_key;

/// One annotated object: `label` is the column of the classifier (0 is background, so the
/// first class is 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub label: u32,
    pub bbox: BBox,
}

/// A training (or validation) image and its objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainImage {
    pub path: PathBuf,
    /// File name without extension, as in split files and annotations.
    pub key: String,
    pub objects: Vec<Object>,
}

/// One image of a split file, by key: `key` is the name before a trailing integer field (VOC's
/// `000005 -1`), `whole` the whole line where it had such a field, in case the image's own name
/// ends in a number (`IMG 2`): an image of that whole name is preferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitEntry {
    pub key: String,
    pub whole: Option<String>,
}

/// Reads a split file: one image a line, by name with or without its image extension (VOC's
/// ImageSets, the raccoon set's train.txt, Roboflow's dotted names), read and matched as
/// [`eval::names`] says; empty lines and `#` comments are skipped.
pub fn read_split(path: &Path) -> Result<Vec<SplitEntry>, TrainError> {
    Ok(eval::names::read_nonempty(path, "split")?
        .iter()
        .map(|l| SplitEntry {
            key: l.key(),
            whole: l.whole_key(),
        })
        .collect())
}

/// What [`load_images`] found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub images: Vec<TrainImage>,
    /// The object classes, in the classifier's order after the background.
    pub classes: ClassList,
    /// Problems that did not stop the run (missing files, unreadable annotations), one a line.
    pub warnings: Vec<String>,
}

/// Ground truth as people have it: a path and, where it cannot be guessed from it, a format.
#[derive(Debug, Clone, PartialEq)]
pub struct GtSource {
    /// A folder of VOC/ILSVRC XML (also DET's class folders), a COCO JSON, a CSV, a folder of
    /// txt, or a folder of YOLO labels.
    pub path: PathBuf,
    /// Guessed as `map-eval` guesses it when absent.
    pub format: Option<Format>,
    /// A class list naming YOLO's class numbers (line k for class k), where the dataset has no
    /// data.yaml or classes.txt.
    pub classes: Option<PathBuf>,
}

impl GtSource {
    /// VOC XML annotations in `dir`, or whatever the folder holds.
    pub fn guess(path: &Path) -> Self {
        GtSource {
            path: path.to_path_buf(),
            format: None,
            classes: None,
        }
    }
}

/// Matches the images under `images` with their ground truth (any format `eval` reads; an
/// image is found by its name, or by the stem of the file name COCO gives it). With `split`,
/// exactly those images in that order; otherwise every annotated image, by name. With
/// `classes`, objects of other classes are left out (and counted in the warnings); otherwise
/// the classes are the dataset's list (COCO, YOLO) or the names found, sorted.
pub fn load_images(
    images: &Path,
    annotations: &Path,
    split: Option<&[SplitEntry]>,
    classes: Option<&ClassList>,
) -> Result<Loaded, TrainError> {
    load_images_from(images, &GtSource::guess(annotations), split, classes)
}

/// [`load_images`] for ground truth in any format.
pub fn load_images_from(
    images: &Path,
    source: &GtSource,
    split: Option<&[SplitEntry]>,
    classes: Option<&ClassList>,
) -> Result<Loaded, TrainError> {
    let annotations = source.path.as_path();
    // The error names the folder already.
    let files =
        collect_images(&[images.to_path_buf()]).map_err(|e| TrainError::Data(e.to_string()))?;
    let mut by_key: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for p in files {
        by_key.entry(image_key(&p)).or_default().push(p);
    }
    let (gt, found_classes, issues) = eval::load::load_gt(
        annotations,
        source.format,
        source.classes.as_deref(),
        Some(images),
        false,
    )?;
    let mut warnings: Vec<String> = Vec::new();
    if issues.total() > 0 {
        warnings.push(format!("{}: {issues}", annotations.display()));
        warnings.extend(issues.examples.iter().cloned());
    }
    let classes = classes.cloned().unwrap_or(found_classes.clone());
    // Objects by image key, labels in `classes` (1-based: 0 is background).
    let mut objects: HashMap<&str, Vec<Object>> = HashMap::new();
    let mut unknown: HashMap<&str, usize> = HashMap::new();
    for b in &gt.boxes {
        let name = &found_classes.names[b.class];
        match classes.index(name) {
            Some(c) if b.bbox.is_valid() => objects
                .entry(gt.images.file_key(b.image))
                .or_default()
                .push(Object {
                    label: c as u32 + 1,
                    bbox: b.bbox,
                }),
            Some(_) => warnings.push(format!(
                "{}: an object of {name} has an empty or inverted box; left out",
                gt.images.file_key(b.image)
            )),
            None => *unknown.entry(name.as_str()).or_default() += 1,
        }
    }
    for (name, n) in &unknown {
        warnings.push(format!(
            "{n} object(s) of class `{name}`, which is not in the class list, left out"
        ));
    }
    let keys: Vec<String> = match split {
        Some(entries) => entries
            .iter()
            .map(|e| match &e.whole {
                Some(w) if by_key.contains_key(w) => w.clone(),
                _ => e.key.clone(),
            })
            .collect(),
        None => (0..gt.images.len())
            .map(|i| gt.images.file_key(i).to_string())
            .collect(),
    };
    let mut negatives = 0usize;
    let mut loaded = Vec::with_capacity(keys.len());
    for key in keys {
        let path = match by_key.get(&key).map(Vec::as_slice) {
            Some([path]) => path,
            Some(several) => {
                // Annotations name images by file name: which of these is meant is unknowable.
                let shown: Vec<String> = several.iter().map(|p| p.display().to_string()).collect();
                warnings.push(format!(
                    "{key}: {} image files have this name ({}); skipped",
                    several.len(),
                    shown.join(", ")
                ));
                continue;
            }
            None => {
                warnings.push(format!(
                    "{key}: no image file of that name under {}; skipped",
                    images.display()
                ));
                continue;
            }
        };
        if gt.images.get(&key).is_none() {
            // ILSVRC DET lists negative images (no annotation file): counted, not one line each.
            negatives += 1;
        }
        loaded.push(TrainImage {
            path: path.clone(),
            objects: objects.get(key.as_str()).cloned().unwrap_or_default(),
            key,
        });
    }
    if negatives > 0 {
        warnings.push(format!(
            "{negatives} listed image(s) have no annotation: trained on as images without objects"
        ));
    }
    if loaded.is_empty() {
        return Err(TrainError::Data(format!(
            "no training images: none of the listed images were found under {}",
            images.display()
        )));
    }
    Ok(Loaded {
        images: loaded,
        classes,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_with_dots_spaces_and_numbers_find_their_images() {
        let dir = tempfile::tempdir().unwrap();
        let (images, annotations) = (dir.path().join("images"), dir.path().join("ann"));
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&annotations).unwrap();
        // A Roboflow export's name, a name with a space ending in a number, and a plain one.
        let names = ["IMG_2274_jpeg_jpg.rf.2f319e94", "IMG 2", "IMG", "plain"];
        for n in names {
            image::RgbImage::new(40, 30)
                .save(images.join(format!("{n}.jpg")))
                .unwrap();
            std::fs::write(
                annotations.join(format!("{n}.xml")),
                "<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>\
                 <xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>",
            )
            .unwrap();
        }
        let split = dir.path().join("train.txt");
        std::fs::write(
            &split,
            "IMG_2274_jpeg_jpg.rf.2f319e94\nIMG 2\nplain.jpg 1\n# a comment\n",
        )
        .unwrap();
        let entries = read_split(&split).unwrap();
        let loaded = load_images(&images, &annotations, Some(&entries), None).unwrap();
        let keys: Vec<&str> = loaded.images.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["IMG_2274_jpeg_jpg.rf.2f319e94", "IMG 2", "plain"]);
        assert!(loaded.images.iter().all(|i| i.objects.len() == 1));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }
}
