//! Boxes, IoU, detection formats and mAP metrics for object detection.
//!
//! No torch, no OpenCV: this crate builds and tests in seconds. It owns the box type so that
//! every stage of the detector speaks the same types.
//!
//! The flow: [`formats`] read ground truth and detections (reporting bad input through
//! [`Issues`]), [`load`] resolves classes and images, [`metrics::evaluate`] scores them.

pub use boxes;
pub mod classes;
pub mod classification;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dataset;
pub mod formats;
pub mod issues;
pub mod load;
pub mod metrics;
pub mod names;
pub mod output;
#[cfg(feature = "cli")]
pub mod plots;
pub mod report;
pub mod writers;

use std::path::{Path, PathBuf};

pub use boxes::{BBox, PixelConvention};
pub use classes::ClassList;
pub use dataset::{Detection, Detections, GroundTruth, GtBox, Images};
pub use issues::Issues;
pub use metrics::{evaluate, EvalParams, Evaluation, Metric};
pub use output::{check_not_input, check_output_dir, protect_inputs, write_atomically};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    // Not `source`: the message carries the OS reason once, beside the path it concerns.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A malformed line or file; line 0 when the problem is the file as a whole.
    #[error("{}{}: {message}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Bad input that `--strict` refuses.
    #[error("{0} (--strict)")]
    Strict(String),
    #[error("{0}")]
    Usage(String),
}

impl EvalError {
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub fn parse(path: &Path, line: usize, message: String) -> Self {
        EvalError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        }
    }
}
