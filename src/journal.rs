//! The run journal behind `rcnn detect --resume` and `rcnn classify --resume`: one JSON line
//! per finished image, appended and flushed as the image finishes, so a killed run loses at
//! most the image in flight. A line cut short by the kill is ignored on resume.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use eval::BBox;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::postprocess::Detected;

/// What the journal keeps of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub image: String,
    pub proposals: usize,
    /// `[class, score, x1, y1, x2, y2]`, class as the scores' column.
    pub detections: Vec<(usize, f32, f64, f64, f64, f64)>,
}

impl Entry {
    pub fn new(image: String, proposals: usize, detections: &[Detected]) -> Self {
        let detections = detections
            .iter()
            .map(|d| (d.class, d.score, d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2))
            .collect();
        Entry {
            image,
            proposals,
            detections,
        }
    }

    pub fn detected(&self) -> Vec<Detected> {
        self.detections
            .iter()
            .map(|&(class, score, x1, y1, x2, y2)| Detected {
                class,
                score,
                bbox: BBox::new(x1, y1, x2, y2),
            })
            .collect()
    }
}

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
    /// Opens the journal in `dir`: with `resume`, checks that it was written with the same
    /// `settings` (refusing, with the differences listed, before anything is changed) and
    /// returns the images it holds (complete lines only); without, starts it afresh.
    pub fn open(
        dir: &Path,
        resume: bool,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(Journal, HashMap<String, Entry>), JournalError> {
        let (journal, entries) =
            Self::open_file::<Entry>(&dir.join(".rcnn-detect.journal"), resume, settings)?;
        let done = entries.into_iter().map(|e| (e.image.clone(), e)).collect();
        Ok((journal, done))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let settings = serde_json::json!({"nms_iou": 0.3, "formats": ["csv"]})
            .as_object()
            .unwrap()
            .clone();
        let (mut j, done) = Journal::open(dir.path(), false, &settings).unwrap();
        assert!(done.is_empty());
        let d = [Detected {
            class: 2,
            score: 0.123_456_79,
            bbox: BBox::new(1.5, 2.0, 30.25, 40.0),
        }];
        j.append(&Entry::new("a".into(), 7, &d)).unwrap();
        j.append(&Entry::new("b".into(), 3, &[])).unwrap();
        drop(j);
        // A kill in the middle of the third line.
        let path = dir.path().join(".rcnn-detect.journal");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"image\":\"c\",\"propos").unwrap();
        drop(f);
        let (mut j, done) = Journal::open(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(
            done["a"].detected(),
            d.to_vec(),
            "scores and boxes come back exactly"
        );
        j.append(&Entry::new("c".into(), 1, &[])).unwrap();
        drop(j);
        let (_, done) = Journal::open(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 3, "the new line follows the last whole one");
        // Other settings: refused, every difference named, the journal left as it was.
        let mut other = settings.clone();
        other.insert("nms_iou".into(), serde_json::json!(0.5));
        other.insert("model".into(), serde_json::json!("b.safetensors"));
        let err = Journal::open(dir.path(), true, &other)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nms_iou: 0.3 -> 0.5"), "{err}");
        assert!(err.contains("model: (none) -> \"b.safetensors\""), "{err}");
        let (_, done) = Journal::open(dir.path(), true, &settings).unwrap();
        assert_eq!(done.len(), 3);
        let (_, done) = Journal::open(dir.path(), false, &other).unwrap();
        assert!(done.is_empty());
    }
}
