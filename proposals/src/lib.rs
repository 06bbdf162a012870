//! Region proposals by selective search (Uijlings et al., IJCV 2013) and their quality.
//!
//! Pure Rust on an RGB u8 image: Felzenszwalb-Huttenlocher segmentation ([`segment`]),
//! hierarchical grouping by colour, texture, size and fill ([`grouping`]), diversified over
//! colour spaces, similarity sets and scales ([`search`]), ranked and deduplicated. Quality:
//! recall at an IoU and average best overlap ([`quality`]). No torch, no OpenCV.

pub mod colour;
pub mod grouping;
pub mod image;
pub mod quality;
pub mod rng;
pub mod search;
pub mod segment;

pub use image::RgbImage;
pub use quality::{best_overlaps, quality_curve, recall_at, ImageProposals, QualityPoint};
pub use search::{selective_search, Mode, SearchParams};
