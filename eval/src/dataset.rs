//! Ground truth and detections, resolved to image and class indices.

use std::collections::HashMap;

use boxes::BBox;

/// Image names and their indices, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Images {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// Other names of an image: a COCO image (named by its id) by its `file_name` and that
    /// name's stem, so that detections and image folders that name files find it.
    aliases: HashMap<String, usize>,
    /// The file name a format gives an image (COCO's `file_name`).
    files: HashMap<usize, String>,
}

impl Images {
    /// The index of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }

    /// The index of `name`, or of the image with that file name or file stem.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.index
            .get(name)
            .or_else(|| self.aliases.get(name))
            .copied()
    }

    /// Records that image `i` is the file `file` (found also as `file` and its stem, unless
    /// another image already has that name).
    pub fn set_file(&mut self, i: usize, file: &str) {
        self.files.insert(i, file.to_string());
        let (base, stem) = base_and_stem(file);
        for alias in [file, base, stem] {
            if !self.index.contains_key(alias) {
                self.aliases.entry(alias.to_string()).or_insert(i);
            }
        }
    }

    /// The name image folders know image `i` by: its file's stem where the format gives a file
    /// name (COCO), else its name.
    pub fn file_key(&self, i: usize) -> &str {
        match self.files.get(&i) {
            Some(f) => base_and_stem(f).1,
            None => &self.names[i],
        }
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A file name as a format writes it (`dir/x.jpg`): its last part (`x.jpg`) and that part
/// without its extension (`x`; a leading dot is no extension).
fn base_and_stem(file: &str) -> (&str, &str) {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = match base.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => base,
    };
    (base, stem)
}

/// One annotated object.
#[derive(Debug, Clone, PartialEq)]
pub struct GtBox {
    pub image: usize,
    pub class: usize,
    pub bbox: BBox,
    /// VOC's `difficult`: neither a hit nor a miss under the `voc` rules.
    pub difficult: bool,
    /// COCO's `iscrowd`: matches many detections, never counted as a miss.
    pub crowd: bool,
    /// COCO's `area` field (segment area), which decides the area range; box area when absent.
    pub area: Option<f64>,
}

/// The annotated images (some may have no boxes) and their objects.
#[derive(Debug, Clone, Default)]
pub struct GroundTruth {
    pub images: Images,
    pub boxes: Vec<GtBox>,
}

/// One detection. `order` is its position in the input, which breaks ties in score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub image: usize,
    pub class: usize,
    pub score: f64,
    pub bbox: BBox,
}

/// Detections resolved against a ground truth's images. Images that the ground truth does not
/// have are added after its own (`first_unknown_image..`): all their detections are false
/// positives.
#[derive(Debug, Clone, Default)]
pub struct Detections {
    pub dets: Vec<Detection>,
    pub first_unknown_image: usize,
}
