//! The run journal behind `rcnn detect --resume`: one JSON line per finished image, appended
//! and flushed as the image finishes, so a killed run loses at most the image in flight. A
//! line cut short by the kill is ignored on resume.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use eval::BBox;
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

impl Journal {
    /// Opens the journal in `dir`: with `resume`, keeps and returns what it holds (complete lines
    /// only); without, starts it empty.
    pub fn open(dir: &Path, resume: bool) -> std::io::Result<(Journal, HashMap<String, Entry>)> {
        let path = dir.join(".rcnn-detect.journal");
        let mut done = HashMap::new();
        if resume {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let mut valid = 0;
                for line in text.split_inclusive('\n') {
                    // Only whole lines that parse: the last may have been cut by the kill.
                    match (
                        line.ends_with('\n'),
                        serde_json::from_str::<Entry>(line.trim_end()),
                    ) {
                        (true, Ok(e)) => {
                            valid += line.len();
                            done.insert(e.image.clone(), e);
                        }
                        _ => break,
                    }
                }
                // Drop the cut tail so new lines start clean.
                let f = std::fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid as u64)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&path)?;
        if !resume {
            file.set_len(0)?;
        }
        Ok((Journal { path, file }, done))
    }

    /// Appends one finished image and flushes it to the kernel.
    pub fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(e).expect("entries serialise");
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()
    }

    /// Removes the journal once the outputs are written.
    pub fn finish(self) -> std::io::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, done) = Journal::open(dir.path(), false).unwrap();
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
        let (mut j, done) = Journal::open(dir.path(), true).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(
            done["a"].detected(),
            d.to_vec(),
            "scores and boxes come back exactly"
        );
        j.append(&Entry::new("c".into(), 1, &[])).unwrap();
        drop(j);
        let (_, done) = Journal::open(dir.path(), true).unwrap();
        assert_eq!(done.len(), 3, "the new line follows the last whole one");
        let (_, done) = Journal::open(dir.path(), false).unwrap();
        assert!(done.is_empty());
    }
}
