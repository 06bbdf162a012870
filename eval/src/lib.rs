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

/// The files this run reads, canonical: no writer may replace one ([`protect_inputs`]).
fn inputs() -> &'static std::sync::Mutex<std::collections::HashSet<PathBuf>> {
    static INPUTS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
        std::sync::OnceLock::new();
    INPUTS.get_or_init(Default::default)
}

/// Where `path` is, or would be once written: symbolic links and `..` resolved.
fn canonical_target(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

/// Registers the input files of this run: every later [`write_atomically`] refuses to write
/// over one of them, whatever flag named the output.
pub fn protect_inputs<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) {
    let mut set = inputs().lock().unwrap_or_else(|e| e.into_inner());
    set.extend(
        paths
            .into_iter()
            .filter_map(|p| p.as_ref().canonicalize().ok()),
    );
}

/// An error if writing `path` would replace one of the run's inputs.
pub fn check_not_input(path: &Path) -> Result<(), EvalError> {
    let set = inputs().lock().unwrap_or_else(|e| e.into_inner());
    if set.is_empty() {
        return Ok(());
    }
    match canonical_target(path) {
        Some(target) if set.contains(&target) => Err(EvalError::Usage(format!(
            "{}: is an input of this run; refusing to write over it (choose another output \
             location)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks, before long work starts, that files can be created in the folder `dir` (created if
/// missing): no ancestor is a file, and the nearest existing folder is writable.
pub fn check_output_dir(dir: &Path) -> Result<(), EvalError> {
    let mut existing = dir;
    loop {
        if existing.as_os_str().is_empty() {
            existing = Path::new(".");
        }
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(EvalError::Usage(format!(
                    "{}: cannot be an output folder: {} is a file",
                    dir.display(),
                    existing.display()
                )))
            }
            Err(_) => match existing.parent() {
                Some(p) => existing = p,
                None => break,
            },
        }
    }
    // A probe file says more than permission bits (read-only mounts, ACLs, root).
    let probe = existing.join(format!(".rcnn-probe{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| EvalError::io(existing, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` beside `path` under a temporary name, syncs it, then renames it into place, so
/// a killed run or a full disk never leaves half a file, and a file once renamed is durable.
/// Missing parent folders are created. The error names `path` and the OS reason, and the
/// temporary file is removed. Refuses to write over an input of the run.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    use std::io::Write;
    check_not_input(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            std::fs::create_dir_all(parent).map_err(|e| EvalError::io(parent, e))?;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(EvalError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EvalError::io(path, e)
    })?;
    // The rename itself is durable once the folder is synced.
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
