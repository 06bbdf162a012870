//! Boxes, IoU, detection formats and mAP metrics for object detection.
//!
//! No torch, no OpenCV: this crate builds and tests in seconds. It owns the box type so that
//! every stage of the detector speaks the same types.
//!
//! The flow: [`formats`] read ground truth and detections (reporting bad input through
//! [`Issues`]), [`load`] resolves classes and images, [`metrics::evaluate`] scores them.

pub mod boxes;
pub mod classes;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dataset;
pub mod formats;
pub mod issues;
pub mod load;
pub mod metrics;
#[cfg(feature = "cli")]
pub mod plots;
pub mod writers;

use std::path::{Path, PathBuf};

pub use boxes::{BBox, PixelConvention};
pub use classes::ClassList;
pub use dataset::{Detection, Detections, GroundTruth, GtBox, Images};
pub use issues::Issues;
pub use metrics::{evaluate, EvalParams, Evaluation, Metric};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
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
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
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

/// Writes `bytes` beside `path` under a temporary name, then renames it into place, so a killed
/// run never leaves half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| EvalError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EvalError::io(path, e)
    })
}
