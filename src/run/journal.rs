//! The run journal behind `rcnn detect --resume` and `rcnn classify --resume`: one JSON line
//! per finished image (each task its own row type), appended and flushed as the image finishes, so a killed run loses at
//! most the image in flight. A line cut short by the kill is ignored on resume.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}: --resume with other settings than the run it continues would mix two \
         configurations in one output; differences (journal -> now):\n{}\nRerun with the \
         journal's settings, or without --resume to start afresh",
        path.display(),
        differences.join("\n")
    )]
    Settings {
        path: PathBuf,
        differences: Vec<String>,
    },
}

/// What a journal records of an input file (a model, a proposals file): its canonical path,
/// size and modification time, so that `--resume` notices a file replaced under the same name.
pub fn file_identity(p: &Path) -> serde_json::Value {
    let meta = std::fs::metadata(p).ok();
    serde_json::json!({
        "path": p.canonicalize().unwrap_or_else(|_| p.to_path_buf()),
        "bytes": meta.as_ref().map(|m| m.len()),
        "modified": meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    })
}

/// The first line of a journal: the settings that decide the outputs.
#[derive(Serialize, Deserialize)]
struct Header {
    settings: serde_json::Map<String, serde_json::Value>,
}

/// Every key whose value differs between two settings objects (either side may lack it), in
/// key order: what `--resume` lists, here and for training checkpoints.
pub fn setting_differences<'a>(
    old: &'a serde_json::Map<String, serde_json::Value>,
    new: &'a serde_json::Map<String, serde_json::Value>,
) -> Vec<(
    &'a str,
    Option<&'a serde_json::Value>,
    Option<&'a serde_json::Value>,
)> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| (k.as_str(), old.get(k), new.get(k)))
        .collect()
}

/// `key: old -> new` for every setting that differs.
fn differences(
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let show = |v: Option<&serde_json::Value>| v.map_or("(none)".to_string(), |v| v.to_string());
    setting_differences(old, new)
        .into_iter()
        .map(|(k, o, n)| format!("  {k}: {} -> {}", show(o), show(n)))
        .collect()
}

impl Journal {
    /// The journal at `path` holding entries of any serialisable kind (one a line, in the
    /// order they were appended), with the rules of [`Journal::open`].
    pub fn open_file<E: DeserializeOwned>(
        path: &Path,
        resume: bool,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(Journal, Vec<E>), JournalError> {
        let path = path.to_path_buf();
        let io = |error| JournalError::Io {
            path: path.clone(),
            error,
        };
        let mut done = Vec::new();
        let mut fresh = !resume;
        if resume {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let mut lines = text.split_inclusive('\n');
                let first = lines.next().unwrap_or("");
                let header = serde_json::from_str::<Header>(first.trim_end()).ok();
                let Some(header) = header else {
                    return Err(JournalError::Settings {
                        path: path.clone(),
                        differences: vec!["  the journal records no settings".into()],
                    });
                };
                let diff = differences(&header.settings, settings);
                if !diff.is_empty() {
                    return Err(JournalError::Settings {
                        path: path.clone(),
                        differences: diff,
                    });
                }
                let mut valid = first.len();
                for line in lines {
                    // Only whole lines that parse: the last may have been cut by the kill.
                    match (
                        line.ends_with('\n'),
                        serde_json::from_str::<E>(line.trim_end()),
                    ) {
                        (true, Ok(e)) => {
                            valid += line.len();
                            done.push(e);
                        }
                        _ => break,
                    }
                }
                // Drop the cut tail so new lines start clean.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io)?;
                f.set_len(valid as u64).map_err(io)?;
            } else {
                fresh = true;
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if fresh {
            file.set_len(0).map_err(io)?;
            let mut line = serde_json::to_vec(&Header {
                settings: settings.clone(),
            })
            .expect("settings serialise");
            line.push(b'\n');
            file.write_all(&line).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        Ok((Journal { path, file }, done))
    }

    /// Appends one finished image (call it once all of the image's own outputs are written)
    /// and syncs it, so that a resumed run never trusts an image whose outputs were lost.
    pub fn append<E: Serialize>(&mut self, e: &E) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(e).expect("entries serialise");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| JournalError::Io {
                path: self.path.clone(),
                error,
            })
    }

    /// Removes the journal once the outputs are written.
    pub fn finish(self) -> Result<(), JournalError> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|error| JournalError::Io {
            path: self.path,
            error,
        })
    }
}
