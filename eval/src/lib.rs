//! Boxes, IoU, detection formats and mAP metrics for object detection.
//!
//! No torch, no OpenCV: this crate builds and tests in seconds. It owns the box type so that
//! every stage of the detector speaks the same types.

pub mod boxes;

pub use boxes::{BBox, PixelConvention};
