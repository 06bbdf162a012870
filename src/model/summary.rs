//! Layer-by-layer summary: output shape, parameters and multiply-adds of each stage.
//!
//! Shapes come from running the network once on a zero input; multiply-adds from the real
//! weight shapes (a convolution costs its weight count per output position, a linear layer its
//! weight count). Pooling, LRN, batch norm and ReLU are not counted, as in the paper's Table 1.

use tch::{Kind, Tensor};

use super::weights::Model;

/// One stage of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct StageRow {
    pub name: String,
    /// Output shape without the batch dimension: `[C, H, W]` or `[C]`.
    pub shape: Vec<i64>,
    pub params: i64,
    pub macs: i64,
    /// Part of an auxiliary classifier (training only).
    pub auxiliary: bool,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub rows: Vec<StageRow>,
}

impl Summary {
    /// Parameters of the inference network (auxiliary heads excluded).
    pub fn params(&self) -> i64 {
        self.rows
            .iter()
            .filter(|r| !r.auxiliary)
            .map(|r| r.params)
            .sum()
    }

    /// Parameters including the auxiliary heads.
    pub fn params_with_aux(&self) -> i64 {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Multiply-adds of one inference pass on one crop.
    pub fn macs(&self) -> i64 {
        self.rows
            .iter()
            .filter(|r| !r.auxiliary)
            .map(|r| r.macs)
            .sum()
    }

    pub fn row(&self, name: &str) -> Option<&StageRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

/// Runs the network once on zeros and tabulates each stage.
pub fn summarize(model: &Model) -> Summary {
    let size = model.config().input_size;
    let device = model.vs.device();
    let weights: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let input = Tensor::zeros([1, 3, size, size], (Kind::Float, device)).to_kind(model.vs.kind());
    let mut rows = Vec::new();
    tch::no_grad(|| {
        model.net.visit_stages(&input, &mut |name, out| {
            let shape = out.size()[1..].to_vec();
            let positions: i64 = shape.iter().skip(1).product();
            let prefix = format!("{name}.");
            let mut params = 0;
            let mut macs = 0;
            for (w_name, w) in weights.iter().filter(|(n, _)| n.starts_with(&prefix)) {
                let numel = w.numel() as i64;
                params += numel;
                match (w_name.ends_with(".weight"), w.dim()) {
                    (true, 4) => macs += numel * positions,
                    (true, 2) => macs += numel,
                    _ => {}
                }
            }
            rows.push(StageRow {
                name: name.to_string(),
                shape,
                params,
                macs,
                auxiliary: name.starts_with("aux"),
            });
        });
    });
    Summary { rows }
}
