//! Whole jobs, as the commands run them: everything `rcnn detect`, `rcnn classify`, `rcnn
//! merge`, `rcnn train` and `rcnn visualize` do besides parsing flags and printing. A job is a
//! plain struct of settings; `run` checks them before any work, reports progress through
//! [`Progress`], writes its outputs and returns a summary. The CLI, the tests and other Rust
//! code all call the same `run`.

pub mod classify;
pub mod detect;
pub mod merge;
pub mod outputs;
pub mod train;
pub mod visualize;

use std::path::PathBuf;

use tch::Device;

use crate::model::precision::Precision;
use crate::run::device::DeviceChoice;
pub(crate) use crate::run::progress::warn;
pub use crate::run::progress::Progress;

/// Why a job stopped. Its `Display` with its sources (`{:#}` through anyhow) is what the user
/// reads.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The settings or inputs cannot make a run; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// A step failed; `context` says which (and what was kept).
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

macro_rules! failed_from {
    ($($t:ty),*) => {$(
        impl From<$t> for JobError {
            fn from(e: $t) -> Self {
                JobError::Failed(Box::new(e))
            }
        }
    )*};
}
failed_from!(
    crate::model::ModelError,
    crate::run::device::DeviceError,
    crate::run::journal::JournalError,
    crate::run::lock::LockError,
    crate::detect::propose::SourceError,
    crate::train::TrainError,
    eval::EvalError,
    std::io::Error
);

impl JobError {
    /// `error` with what was being done when it happened.
    pub fn context(
        context: impl Into<String>,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        JobError::Context {
            context: context.into(),
            source: error.into(),
        }
    }
}

/// Refuses with `message` unless `ok`.
pub(crate) fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), JobError> {
    if ok {
        Ok(())
    } else {
        Err(JobError::Refused(message()))
    }
}

/// How networks run over a stream of images: `detect`, `classify` and their benchmarks.
#[derive(Debug, Clone)]
pub struct Inference {
    pub device: DeviceChoice,
    /// CPU threads for libtorch (default: all cores).
    pub threads: Option<usize>,
    pub precision: Precision,
    /// Crops per forward pass (default: [`crate::detect::batch::default_batch`]).
    pub batch: Option<usize>,
    /// Images decoded ahead of the device (default: [`crate::detect::default_workers`]).
    pub workers: Option<usize>,
    /// Channels-last weights and inputs (default: on for fp16/bf16 on CUDA).
    pub channels_last: Option<bool>,
}

impl Default for Inference {
    fn default() -> Self {
        Inference {
            device: DeviceChoice::Auto,
            threads: None,
            precision: Precision::Fp32,
            batch: None,
            workers: None,
            channels_last: None,
        }
    }
}

impl Inference {
    pub fn channels_last(&self, device: Device) -> bool {
        self.channels_last
            .unwrap_or(device.is_cuda() && self.precision != Precision::Fp32)
    }

    pub fn batch(&self, device: Device) -> usize {
        self.batch
            .unwrap_or_else(|| crate::detect::batch::default_batch(device))
    }

    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(crate::detect::default_workers)
    }
}

/// The images of a job: folders (searched recursively, never into the job's own `outputs`),
/// files, or `.txt` lists, refused when there are none.
pub fn collect_images(
    inputs: &[PathBuf],
    outputs: &[&std::path::Path],
) -> Result<Vec<PathBuf>, JobError> {
    let images = crate::detect::decode::collect_images_outside(inputs, outputs)
        .map_err(|e| JobError::context("collecting images", e))?;
    ensure(!images.is_empty(), || {
        format!("no images (jpg, jpeg, png, bmp, webp) in {inputs:?}")
    })?;
    Ok(images)
}
