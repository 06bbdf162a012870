//! The region classifier: GoogLeNet in the paper's and torchvision's layouts, its model
//! files, and its summary (`rcnn model-info`).

pub mod config;
pub mod googlenet;
pub mod normalise;
pub mod pickle;
pub mod precision;
pub mod pth;
pub mod summary;
pub mod weights;

use std::path::PathBuf;

pub use config::{GoogLeNetConfig, Layout};
pub use googlenet::{GoogLeNet, Logits};
pub use weights::Model;

/// A model file's heads are part of the model file: their errors read as its other errors.
impl From<crate::heads::HeadsError> for ModelError {
    fn from(e: crate::heads::HeadsError) -> Self {
        ModelError::Format {
            path: e.path,
            message: e.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model configuration: {0}")]
    Config(String),
    // Not `source`: the message carries the reason once (a source would repeat it in chains).
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "{path}: tensor {name} has shape {file:?} in the file but the model expects {model:?}"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        file: Vec<i64>,
        model: Vec<i64>,
    },
    #[error("{path}: {count} tensor(s) of the model are missing from the file: {names}")]
    MissingTensors {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error("writing the model file")]
    Write(#[source] eval::EvalError),
    #[error("libtorch")]
    Torch(#[from] tch::TchError),
}
