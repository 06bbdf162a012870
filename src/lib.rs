//! inception-rcnn: R-CNN detection with a GoogLeNet region classifier, after GoogLeNet's
//! ILSVRC2014 detection entry.
//!
//! Stages, one module each: [`decode`] (image files to RGB), [`model`] (the region classifier),
//! [`device`] (where it runs), [`train`] (the classifier's training on warped regions), [`bench`]
//! (speed against references); `opencv_search` is OpenCV's
//! selective search, the baseline our proposals are measured against. Proposals live in the `proposals` crate, boxes,
//! formats and metrics in the `eval` crate.

pub mod bench;
pub mod box_regression;
pub mod classifier;
pub mod classify;
pub mod decode;
pub mod detect;
pub mod device;
pub mod device_stage;
pub mod journal;
pub mod model;
pub mod multibox;
pub mod nms;
#[cfg(feature = "opencv-contrib")]
pub mod opencv_search;
pub mod postprocess;
pub mod propose;
pub mod shard;
pub mod svm;
pub mod train;
pub mod visualize;
pub mod warp;
