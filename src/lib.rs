//! inception-rcnn: R-CNN detection with a GoogLeNet region classifier, after GoogLeNet's
//! ILSVRC2014 detection entry.
//!
//! Stages, one module each: [`model`] (the region classifier), [`device`] (where it runs),
//! [`bench`] (speed against references). Proposals live in the `proposals` crate, boxes,
//! formats and metrics in the `eval` crate.

pub mod bench;
pub mod device;
pub mod model;
