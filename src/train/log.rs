//! The training log (`log.csv`: step, epoch, learning rate, loss, accuracy, validation AP,
//! images dropped as unreadable, seconds) and its plots.

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
    /// Images found unreadable during training and dropped from sampling, so far.
    #[serde(default)]
    pub dropped_images: usize,
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
                    "step",
                    "epoch",
                    "lr",
                    "loss",
                    "accuracy",
                    "val_ap",
                    "dropped_images",
                    "seconds",
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
        self.plot_with(dir, &CLASSIFIER_PLOTS)
    }

    /// The two curves with `labels`' titles.
    pub fn plot_with(&self, dir: &Path, labels: &PlotLabels) -> Result<(), TrainError> {
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
            labels.loss_title,
            "step",
            "loss",
            &[("loss".to_string(), loss)],
            y_max,
        )?;
        let mut curves = vec![(
            labels.accuracy.to_string(),
            series(&|r| Some(r.accuracy).filter(|v| v.is_finite())),
        )];
        let val = series(&|r| r.val_ap);
        if !val.is_empty() {
            curves.push((labels.validation.to_string(), val));
        }
        eval::plots::curve_chart(
            &dir.join("accuracy.png"),
            labels.accuracy_title,
            "step",
            "",
            &curves,
            1.0,
        )?;
        Ok(())
    }
}

/// Titles of the training curves (the log's columns serve the classifier and MultiBox).
pub struct PlotLabels {
    pub loss_title: &'static str,
    pub accuracy_title: &'static str,
    pub accuracy: &'static str,
    pub validation: &'static str,
}

pub const CLASSIFIER_PLOTS: PlotLabels = PlotLabels {
    loss_title: "training loss (softmax cross-entropy, auxiliary heads x0.3)",
    accuracy_title: "training accuracy and validation AP",
    accuracy: "training accuracy",
    validation: "validation AP50 (ILSVRC rules)",
};

/// MultiBox's log: `accuracy` is the mean IoU of matched predictions, `val_ap` the validation
/// recall@0.5 of the top boxes.
pub const MULTIBOX_PLOTS: PlotLabels = PlotLabels {
    loss_title: "MultiBox training loss (logistic confidence + 0.3 x location)",
    accuracy_title: "matched IoU (training) and validation recall",
    accuracy: "mean IoU of matched predictions",
    validation: "validation recall@0.5 (top boxes)",
};

impl Drop for TrainLog {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}
