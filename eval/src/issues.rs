//! Bad input, counted and reported: never a crash, never silently dropped.

use std::fmt;

use serde::Serialize;

use crate::EvalError;

/// Counts of each kind of bad input, with the first few occurrences spelled out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Issues {
    /// Lines or files that do not parse (skipped).
    pub malformed: usize,
    /// Boxes with x2 < x1 or y2 < y1 (kept: a detection becomes a false positive).
    pub inverted_boxes: usize,
    /// Boxes with a NaN, infinite or absurd (beyond 1e9 pixels) coordinate (dropped).
    pub non_finite_boxes: usize,
    /// COCO image-id problems, handled as pycocotools does: a duplicate id is one image, an
    /// annotation on an id missing from `images` is not evaluated (dropped), a non-integer id
    /// is kept as written.
    pub image_id_issues: usize,
    /// Boxes with a negative coordinate (kept as they are).
    pub negative_coordinates: usize,
    /// Detections whose score is NaN or infinite (dropped: they cannot be ranked).
    pub non_finite_scores: usize,
    /// Negative scores (kept; ranking is unaffected).
    pub negative_scores: usize,
    /// Records naming a class outside the class list (dropped).
    pub unknown_classes: usize,
    /// Detections on images the ground truth does not have (kept as false positives).
    pub detections_on_unknown_images: usize,
    /// Names in a list (`--subset`) that match no image (a typo, another set's file).
    #[serde(skip_serializing_if = "is_zero")]
    pub unmatched_names: usize,
    /// The first occurrences, `file:line: what`.
    pub examples: Vec<String>,
    #[serde(skip)]
    strict: bool,
}

const MAX_EXAMPLES: usize = 20;

/// The kinds of issue, for [`Issues::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Malformed,
    InvertedBox,
    NonFiniteBox,
    ImageId,
    NegativeCoordinate,
    NonFiniteScore,
    NegativeScore,
    UnknownClass,
    UnknownImage,
    UnmatchedName,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Issues {
    /// `strict`: the first issue is an error instead of a count.
    pub fn new(strict: bool) -> Self {
        Issues {
            strict,
            ..Default::default()
        }
    }

    /// Counts one issue; in strict mode, returns it as an error.
    pub fn record(&mut self, kind: Kind, what: impl FnOnce() -> String) -> Result<(), EvalError> {
        let counter = match kind {
            Kind::Malformed => &mut self.malformed,
            Kind::InvertedBox => &mut self.inverted_boxes,
            Kind::NonFiniteBox => &mut self.non_finite_boxes,
            Kind::ImageId => &mut self.image_id_issues,
            Kind::NegativeCoordinate => &mut self.negative_coordinates,
            Kind::NonFiniteScore => &mut self.non_finite_scores,
            Kind::NegativeScore => &mut self.negative_scores,
            Kind::UnknownClass => &mut self.unknown_classes,
            Kind::UnknownImage => &mut self.detections_on_unknown_images,
            Kind::UnmatchedName => &mut self.unmatched_names,
        };
        *counter += 1;
        if self.strict {
            return Err(EvalError::Strict(what()));
        }
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(what());
        }
        Ok(())
    }

    pub fn total(&self) -> usize {
        self.malformed
            + self.inverted_boxes
            + self.non_finite_boxes
            + self.image_id_issues
            + self.negative_coordinates
            + self.non_finite_scores
            + self.negative_scores
            + self.unknown_classes
            + self.detections_on_unknown_images
            + self.unmatched_names
    }
}

impl fmt::Display for Issues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.malformed, "malformed lines or files skipped"),
            (self.inverted_boxes, "boxes with x2 < x1 or y2 < y1 (kept)"),
            (
                self.non_finite_boxes,
                "boxes with NaN, infinite or absurd coordinates dropped",
            ),
            (
                self.image_id_issues,
                "COCO image-id problems (duplicates, unknown or non-integer ids; see examples)",
            ),
            (
                self.negative_coordinates,
                "boxes with negative coordinates (kept)",
            ),
            (
                self.non_finite_scores,
                "detections with NaN/infinite scores dropped",
            ),
            (self.negative_scores, "negative scores (kept)"),
            (self.unknown_classes, "records of unknown classes dropped"),
            (
                self.detections_on_unknown_images,
                "detections on images without ground truth (false positives)",
            ),
            (
                self.unmatched_names,
                "listed names that match no image (ignored)",
            ),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if shown.is_empty() {
            f.write_str("no input issues")
        } else {
            f.write_str(&shown.join("; "))
        }
    }
}
