//! Ground truth and detections, resolved to image and class indices.

use std::collections::HashMap;

use boxes::BBox;

/// Image names and their indices, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Images {
    names: Vec<String>,
    index: HashMap<String, usize>,
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

    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
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
