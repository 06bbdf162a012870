//! The training log (`log.csv`: step, epoch, learning rate, loss, accuracy, validation AP,
//! seconds) and its plots.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, TrainError};

/// One line of the log: means over the steps since the line before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub step: usize,
    pub epoch: f64,
    pub lr: f64,
    pub loss: f64,
    pub accuracy: f64,
    /// Validation AP at IoU 0.5 (ILSVRC rules, mean over classes), at checkpoints.
    pub val_ap: Option<f64>,
    /// Training seconds so far (a resumed run carries on from its checkpoint's).
    pub seconds: f64,
}

pub struct TrainLog {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
    pub rows: Vec<LogRow>,
}

impl TrainLog {
    /// A new log at `path`, or with `resume_from`, the old one cut back to that step (the
    /// lines written after the checkpoint are redone by the resumed run).
    pub fn open(path: &Path, resume_from: Option<usize>) -> Result<TrainLog, TrainError> {
        let mut rows = Vec::new();
        if let (Some(step), true) = (resume_from, path.is_file()) {
            let mut reader = csv::Reader::from_path(path)
                .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
            for (i, row) in reader.deserialize::<LogRow>().enumerate() {
                match row {
                    Ok(r) if r.step <= step => rows.push(r),
                    Ok(_) => {}
                    // A line cut by a kill: dropped, as every line after the checkpoint.
                    Err(e) => tracing::warn!("{}:{}: {e}; dropped", path.display(), i + 2),
                }
            }
        }
        let mut bytes = Vec::new();
        {
            let mut w = csv::Writer::from_writer(&mut bytes);
            if rows.is_empty() {
                w.write_record([
                    "step", "epoch", "lr", "loss", "accuracy", "val_ap", "seconds",
                ])
                .expect("in memory");
            }
            for r in &rows {
                w.serialize(r).expect("in memory");
            }
            w.flush().expect("in memory");
        }
        eval::write_atomically(path, &bytes)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        Ok(TrainLog {
            path: path.to_path_buf(),
            writer,
            rows,
        })
    }

    /// Appends a line and flushes it.
    pub fn append(&mut self, row: LogRow) -> Result<(), TrainError> {
        self.writer
            .serialize(&row)
            .map_err(|e| TrainError::Data(format!("{}: {e}", self.path.display())))?;
        self.writer.flush().map_err(io_err(&self.path))?;
        self.rows.push(row);
        Ok(())
    }

    /// Training seconds at the last line.
    pub fn seconds(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.seconds)
    }

    /// `loss.png` (loss against step) and `accuracy.png` (training accuracy and validation AP).
    pub fn plot(&self, dir: &Path) -> Result<(), TrainError> {
        let series = |f: &dyn Fn(&LogRow) -> Option<f64>| -> Vec<(f64, f64)> {
            self.rows
                .iter()
                .filter_map(|r| f(r).map(|y| (r.step as f64, y)))
                .collect()
        };
        let loss = series(&|r| Some(r.loss));
        let y_max = loss
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            * 1.05;
        eval::plots::curve_chart(
            &dir.join("loss.png"),
            "training loss (softmax cross-entropy, auxiliary heads x0.3)",
            "step",
            "loss",
            &[("loss".to_string(), loss)],
            y_max,
        )?;
        let mut curves = vec![(
            "training accuracy".to_string(),
            series(&|r| Some(r.accuracy)),
        )];
        let val = series(&|r| r.val_ap);
        if !val.is_empty() {
            curves.push(("validation AP50 (ILSVRC rules)".to_string(), val));
        }
        eval::plots::curve_chart(
            &dir.join("accuracy.png"),
            "training accuracy and validation AP",
            "step",
            "",
            &curves,
            1.0,
        )?;
        Ok(())
    }
}

impl Drop for TrainLog {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}
