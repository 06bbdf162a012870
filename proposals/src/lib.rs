//! Region proposals and their quality measures.
//!
//! No torch, no OpenCV. Quality is measured as in Uijlings et al. (IJCV 2013): recall at an
//! IoU threshold as a function of the number of boxes, and the average best overlap (ABO).

pub mod quality;

pub use quality::{best_overlaps, recall_at};
