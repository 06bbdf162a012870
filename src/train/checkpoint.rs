//! Training checkpoints: the live weights, the averaged weights, the momentum buffers and the
//! step, in one safetensors file written atomically, with the recipe they were made with.

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;

use super::sgd::Sgd;
use super::TrainError;
use crate::model::weights::{load_state_dict, metadata_of, read_tensors, write_tensors};
use crate::model::Model;

const NET: &str = "net/";
const AVG: &str = "avg/";
const MOMENTUM: &str = "momentum/";

/// Writes the checkpoint of `step`; `recipe` is the JSON of the settings that decide the run.
pub fn save(
    path: &Path,
    step: usize,
    net: &Model,
    avg: &Model,
    sgd: &Sgd,
    recipe: &str,
) -> Result<(), TrainError> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (prefix, vs) in [(NET, &net.vs), (AVG, &avg.vs)] {
        named.extend(
            vs.variables()
                .into_iter()
                .map(|(n, t)| (format!("{prefix}{n}"), t)),
        );
    }
    named.extend(
        sgd.buffers()
            .into_iter()
            .map(|(n, t)| (format!("{MOMENTUM}{n}"), t)),
    );
    let mut metadata = metadata_of(net.config(), &net.classes);
    metadata.insert("step".into(), step.to_string());
    metadata.insert("recipe".into(), recipe.to_string());
    write_tensors(path, named, metadata)?;
    Ok(())
}

fn take(prefix: &str, all: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    all.iter()
        .filter_map(|(n, t)| {
            n.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), t.shallow_clone()))
        })
        .collect()
}

/// Restores a checkpoint into the run's networks and optimiser and returns its step. The
/// checkpoint must come from the same recipe; the error says what differs.
pub fn load(
    path: &Path,
    net: &mut Model,
    avg: &mut Model,
    sgd: &mut Sgd,
    recipe: &str,
) -> Result<usize, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let (tensors, metadata) = read_tensors(path)?;
    let saved = metadata
        .get("recipe")
        .ok_or_else(|| bad("not a training checkpoint (no recipe)".into()))?;
    if saved != recipe {
        let old: serde_json::Value = serde_json::from_str(saved).unwrap_or_default();
        let new: serde_json::Value = serde_json::from_str(recipe).unwrap_or_default();
        let differs: Vec<String> = match (old.as_object(), new.as_object()) {
            (Some(o), Some(n)) => crate::run::journal::setting_differences(o, n)
                .into_iter()
                .map(|(k, then, now)| {
                    let null = serde_json::Value::Null;
                    format!(
                        "{k}: {} then, {} now",
                        then.unwrap_or(&null),
                        now.unwrap_or(&null)
                    )
                })
                .collect(),
            _ => vec!["unreadable recipe".into()],
        };
        return Err(bad(format!(
            "made with other settings ({}); start afresh without --resume or use the same flags",
            differs.join("; ")
        )));
    }
    let step: usize = metadata
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no step in the metadata".into()))?;
    load_state_dict(&mut net.vs, &take(NET, &tensors), path)?;
    load_state_dict(&mut avg.vs, &take(AVG, &tensors), path)?;
    sgd.load_buffers(&take(MOMENTUM, &tensors)).map_err(bad)?;
    Ok(step)
}
