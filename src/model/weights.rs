//! Model files: safetensors with PyTorch state-dict names and metadata that describe the model.
//!
//! A model file carries its layout, width, input size, classes and normalisation, so
//! `rcnn detect --model m.safetensors` needs no other flag. Foreign state dicts (a torchvision
//! `torch.save` .pth, or a plain safetensors export) are read by [`read_state_dict`] and
//! checked tensor by tensor against the network by [`load_state_dict`].

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{nn, Device, Kind, Tensor};

use super::config::{GoogLeNetConfig, Layout};
use super::googlenet::GoogLeNet;
use super::ModelError;
use crate::heads::Heads;

/// Value of the `format` metadata key of our model files.
pub const FORMAT: &str = "inception-rcnn/googlenet";

/// Whether an output's name marks it as the background column (R-CNN's `__background__`, or
/// `background`), which is never a class of the outputs and may only come first.
pub fn is_background(name: &str) -> bool {
    name == "__background__" || name == "background"
}

/// What a model file's network is for, from its `task` metadata key (absent: a classifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Region or image classification: `--model`.
    Classifier,
    /// MultiBox's learned proposals (`rcnn train-multibox`): `--multibox`.
    Multibox,
}

impl Task {
    const KEY: &'static str = "task";

    pub fn of(metadata: &HashMap<String, String>) -> Task {
        match metadata.get(Self::KEY).map(String::as_str) {
            Some("multibox") => Task::Multibox,
            _ => Task::Classifier,
        }
    }

    /// Marks `metadata` as this task's (a classifier's file carries no key).
    pub fn write_into(self, metadata: &mut HashMap<String, String>) {
        if self == Task::Multibox {
            metadata.insert(Self::KEY.into(), "multibox".into());
        }
    }
}

/// A network with its weights on a device, and what its outputs mean.
#[derive(Debug)]
pub struct Model {
    pub vs: nn::VarStore,
    pub net: GoogLeNet,
    /// Name of each output, in order (`__background__` first for detection heads).
    pub classes: Vec<String>,
    /// R-CNN's heads over the pooled features, when trained (`rcnn train-heads`).
    pub heads: Heads,
}

impl Model {
    /// A freshly initialised network (seed it with `tch::manual_seed` for reproducible weights).
    pub fn new(
        config: &GoogLeNetConfig,
        classes: Vec<String>,
        device: Device,
    ) -> Result<Self, ModelError> {
        let vs = nn::VarStore::new(device);
        let net = GoogLeNet::new(&vs.root(), config)?;
        let classes = if classes.is_empty() {
            (0..config.num_classes)
                .map(|i| format!("class{i}"))
                .collect()
        } else {
            classes
        };
        if classes.len() as i64 != config.num_classes {
            return Err(ModelError::Config(format!(
                "{} class names for {} outputs",
                classes.len(),
                config.num_classes
            )));
        }
        Ok(Model {
            vs,
            net,
            classes,
            heads: Heads::default(),
        })
    }

    pub fn config(&self) -> &GoogLeNetConfig {
        self.net.config()
    }

    /// Reads one of our model files onto `device`; refuses one that cannot give meaningful
    /// scores (see [`Model::validate`]).
    pub fn load(path: &Path, device: Device) -> Result<Self, ModelError> {
        let (tensors, metadata) = read_tensors(path)?;
        if Task::of(&metadata) == Task::Multibox {
            return Err(ModelError::Format {
                path: path.to_path_buf(),
                message: "a MultiBox model (learned proposals), not a region classifier: pass it \
                          to --multibox"
                    .into(),
            });
        }
        let (config, classes) = config_from_metadata(path, &metadata)?;
        let mut model = Model::new(&config, classes, device)?;
        load_state_dict(&mut model.vs, &tensors, path)?;
        model.heads = Heads::from_file(
            path,
            &tensors,
            &metadata,
            model.net.feature_dim(),
            config.num_classes,
            device,
        )?;
        model.validate(path)?;
        Ok(model)
    }

    /// Refuses a model whose scores would mean nothing: a NaN or infinite weight, a zero or
    /// non-finite normalisation `std`, or `__background__` anywhere but first.
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Format {
            path: path.to_path_buf(),
            message,
        };
        let c = self.config();
        // Pixels are 0-1 or 0-255: a std of 1e-30 or 1e30 makes every input the same (or
        // infinite) and every score the same, so a model that says so is lying.
        if c.std.iter().any(|s| !(1e-4..=1e4).contains(s))
            || c.mean.iter().any(|m| !(-1e4..=1e4).contains(m))
        {
            return Err(bad(format!(
                "normalisation mean {:?} / std {:?}: std must be positive, both finite and of a \
                 pixel's scale (std in 1e-4..=1e4, mean in -1e4..=1e4; pixels are 0-1 or 0-255)",
                c.mean, c.std
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, name) in self.classes.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(bad(format!("class {i} has no name")));
            }
            if !seen.insert(name.as_str()) {
                return Err(bad(format!(
                    "class {i} is named `{name}`, as an earlier class is: outputs would be \
                     merged under one name"
                )));
            }
        }
        if let Some(i) = self.classes.iter().skip(1).position(|n| is_background(n)) {
            return Err(bad(format!(
                "class {} is named `{}`: the background class can only be the first output",
                i + 1,
                self.classes[i + 1]
            )));
        }
        let mut names: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in names {
            if t.isfinite().all().int64_value(&[]) == 0 {
                return Err(bad(format!(
                    "tensor {name} holds NaN or infinite values (a diverged training run?)"
                )));
            }
        }
        if let Some(name) = self.heads.non_finite() {
            return Err(bad(format!("tensor {name} holds NaN or infinite values")));
        }
        Ok(())
    }

    /// Writes the weights and metadata to `path` atomically (temporary file, then rename);
    /// refuses a model that [`Model::validate`] refuses, so a diverged run saves nothing.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.validate(path)?;
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        let mut metadata = metadata_of(self.config(), &self.classes);
        self.heads.write_into(&mut named, &mut metadata);
        write_tensors(path, named, metadata)
    }

    /// The file's network description and class names, without reading the weights.
    pub fn read_config(path: &Path) -> Result<(GoogLeNetConfig, Vec<String>), ModelError> {
        config_from_metadata(path, &read_file_metadata(path)?)
    }
}

/// Writes named tensors and string metadata as one safetensors file, atomically (temporary
/// file, then rename). Model files and training checkpoints both go through here.
pub fn write_tensors(
    path: &Path,
    mut named: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<(), ModelError> {
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let host: Vec<(String, Tensor, Dtype, Vec<u8>)> = named
        .into_iter()
        .map(|(name, t)| {
            let t = t.detach().to_device(Device::Cpu).contiguous();
            let dtype = dtype_of(t.kind()).ok_or_else(|| {
                ModelError::Config(format!("cannot store tensor {name} of kind {:?}", t.kind()))
            })?;
            let numel = t.numel();
            let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
            t.copy_data_u8(&mut data, numel);
            Ok((name, t, dtype, data))
        })
        .collect::<Result<_, ModelError>>()?;
    let views = host
        .iter()
        .map(|(name, t, dtype, data)| {
            let shape = t.size().iter().map(|&d| d as usize).collect();
            let view = TensorView::new(*dtype, shape, data)
                .map_err(|e| ModelError::Config(format!("tensor {name}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let mut bytes =
        safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| ModelError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    sort_header(&mut bytes);
    eval::write_atomically(path, &bytes).map_err(ModelError::Write)
}

/// Rewrites a serialised safetensors header with its keys sorted, in place: the metadata is a
/// HashMap, whose order changes from run to run, so the same model gave different files. The
/// same keys and values sorted take the same bytes, padded to the same length.
fn sort_header(bytes: &mut [u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = &bytes[8..8 + n];
    // serde_json's maps are ordered by key: parsing and writing again sorts them.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return;
    };
    let sorted = serde_json::to_vec(&value).expect("a parsed value serialises");
    if sorted.len() <= n {
        bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
        bytes[8 + sorted.len()..8 + n].fill(b' ');
    }
}

/// Tensors by name.
pub type TensorMap = HashMap<String, Tensor>;

/// The string metadata of a safetensors file, from its header alone.
pub fn read_file_metadata(path: &Path) -> Result<HashMap<String, String>, ModelError> {
    let header = read_header(path)?;
    let bad = |message: String| ModelError::Format {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {message}"),
    };
    match header.get("__metadata__") {
        None => Ok(HashMap::new()),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(bad(format!("metadata {k} is not a string"))),
            })
            .collect(),
        Some(_) => Err(bad("__metadata__ is not an object".into())),
    }
}

/// Reads a safetensors file: its tensors (on the CPU) and its string metadata. The header is
/// read and checked against the file's length first, so that a file that is not a model is
/// refused before it is read.
pub fn read_tensors(path: &Path) -> Result<(TensorMap, HashMap<String, String>), ModelError> {
    let metadata = read_file_metadata(path)?;
    let bytes = read_bytes(path)?;
    Ok((safetensors_tensors(path, &bytes)?, metadata))
}

/// The largest model file read (the tensors it may give are bounded again by their readers).
pub const MAX_MODEL_FILE: u64 = 8 << 30;
/// The largest safetensors header (the format's own bound).
const MAX_HEADER: u64 = 100_000_000;

/// A model file opened for reading, and its length: a regular file no larger than
/// [`MAX_MODEL_FILE`] (a device such as /dev/zero never ends; a pipe cannot be read twice).
fn open_model(path: &Path) -> Result<(std::fs::File, u64), ModelError> {
    let io = |error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let refuse = |message: String| ModelError::Format {
        path: path.to_path_buf(),
        message,
    };
    if !meta.is_file() {
        return Err(refuse(
            "not a regular file (a device, pipe or folder holds no model)".into(),
        ));
    }
    if meta.len() > MAX_MODEL_FILE {
        return Err(refuse(format!(
            "{} bytes, more than the {MAX_MODEL_FILE} a model file may be",
            meta.len()
        )));
    }
    Ok((file, meta.len()))
}

/// The whole of a model file, and no more than its length said when it was opened.
fn read_bytes(path: &Path) -> Result<Vec<u8>, ModelError> {
    read_start(path, u64::MAX)
}

/// The first `n` bytes of a model file (fewer if it is shorter; never past the length it had
/// when opened).
fn read_start(path: &Path, n: u64) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let (file, len) = open_model(path)?;
    let n = n.min(len);
    let mut out = Vec::with_capacity(n as usize);
    file.take(n)
        .read_to_end(&mut out)
        .map_err(|error| ModelError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(out)
}

/// A safetensors file's JSON header, read alone, with every tensor's data checked to lie inside
/// the file: a file that is not one is refused after reading a few bytes, not gigabytes.
fn read_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, ModelError> {
    use std::io::Read;
    let bad = |message: String| ModelError::Format {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {message}"),
    };
    let (mut file, len) = open_model(path)?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| bad("shorter than the 8 bytes of its header's length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len - 8 {
        return Err(bad(format!(
            "its header claims {n} bytes; the file has {} after the length",
            len - 8
        )));
    }
    let mut header = vec![0; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    let serde_json::Value::Object(map) = json else {
        return Err(bad("its header is not a JSON object".into()));
    };
    let data = len - 8 - n;
    for (name, entry) in map.iter().filter(|(k, _)| *k != "__metadata__") {
        let end = entry["data_offsets"][1].as_u64();
        if end.is_none_or(|e| e > data) {
            return Err(bad(format!(
                "tensor {name}'s data ends past the file's {data} bytes of data"
            )));
        }
    }
    Ok(map)
}

/// A torch.save file starts as a zip archive or as the legacy stream's pickled magic number:
/// checked on its first bytes before the file is read.
fn check_pth_start(path: &Path) -> Result<(), ModelError> {
    let start = read_start(path, 16)?;
    let legacy = [0x80, 0x02, 0x8a, 0x0a];
    if start.starts_with(b"PK\x03\x04") || start.starts_with(&legacy) {
        return Ok(());
    }
    Err(ModelError::Format {
        path: path.to_path_buf(),
        message: "not a torch.save file (neither a zip archive nor a legacy stream)".into(),
    })
}

/// The metadata that describes a network in our model files.
pub fn metadata_of(config: &GoogLeNetConfig, classes: &[String]) -> HashMap<String, String> {
    let triple = |v: [f32; 3]| v.map(|x| x.to_string()).join(",");
    HashMap::from([
        ("format".into(), FORMAT.into()),
        ("layout".into(), config.layout.to_string()),
        ("num_classes".into(), config.num_classes.to_string()),
        ("width".into(), config.width.to_string()),
        ("input_size".into(), config.input_size.to_string()),
        ("aux_logits".into(), config.aux_logits.to_string()),
        ("transform_input".into(), config.transform_input.to_string()),
        ("mean".into(), triple(config.mean)),
        ("std".into(), triple(config.std)),
        (
            "classes".into(),
            serde_json::to_string(classes).expect("strings serialise"),
        ),
    ])
}

/// A network description and class names from our model files' metadata.
pub fn config_from_metadata(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<(GoogLeNetConfig, Vec<String>), ModelError> {
    let bad = |message: String| ModelError::Format {
        path: path.to_path_buf(),
        message,
    };
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        _ => {
            return Err(bad(format!(
                "no `format: {FORMAT}` metadata; a state dict from elsewhere goes through \
                 `rcnn import-weights` first"
            )))
        }
    }
    let get = |key: &str| {
        meta.get(key)
            .ok_or_else(|| bad(format!("metadata lacks `{key}`")))
    };
    fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
        v.trim()
            .parse()
            .map_err(|_| format!("metadata `{key}` = `{v}` does not parse"))
    }
    let triple = |key: &str| -> Result<[f32; 3], ModelError> {
        let v = get(key)?;
        let parts: Vec<f32> = v
            .split(',')
            .map(|x| parse(key, x))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        parts
            .try_into()
            .map_err(|_| bad(format!("metadata `{key}` needs three values, got `{v}`")))
    };
    let config = GoogLeNetConfig {
        layout: get("layout")?.parse()?,
        num_classes: parse("num_classes", get("num_classes")?).map_err(bad)?,
        width: parse("width", get("width")?).map_err(bad)?,
        input_size: parse("input_size", get("input_size")?).map_err(bad)?,
        aux_logits: parse("aux_logits", get("aux_logits")?).map_err(bad)?,
        transform_input: parse("transform_input", get("transform_input")?).map_err(bad)?,
        mean: triple("mean")?,
        std: triple("std")?,
    };
    // Sizes a file can lie about, checked before anything is allocated.
    let buildable = (1..=100_000).contains(&config.num_classes)
        && (32..=1024).contains(&config.input_size)
        && config.width > 0.0
        && config.width <= 4.0;
    if !buildable {
        return Err(bad(format!(
            "metadata num_classes {} (want 1..=100000), input_size {} (want 32..=1024), width {} \
             (want (0, 4]): not a model this tool can build",
            config.num_classes, config.input_size, config.width
        )));
    }
    let classes: Vec<String> = serde_json::from_str(get("classes")?).map_err(|e| {
        bad(format!(
            "metadata `classes` is not a JSON list of strings: {e}"
        ))
    })?;
    Ok((config, classes))
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        _ => return None,
    })
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Double => Dtype::F64,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        _ => return None,
    })
}

fn safetensors_tensors(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>, ModelError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Format {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {e}"),
    })?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let kind = kind_of(view.dtype()).ok_or_else(|| ModelError::Format {
                path: path.to_path_buf(),
                message: format!("tensor {name} has unsupported dtype {:?}", view.dtype()),
            })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            Ok((name, Tensor::from_data_size(view.data(), &shape, kind)))
        })
        .collect()
}

/// Reads a state dict: safetensors (ours or a plain export) or a `torch.save` zip (.pth/.pt/.bin).
pub fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => {
            read_header(path)?;
            safetensors_tensors(path, &read_bytes(path)?)
        }
        "pth" | "pt" | "bin" => {
            check_pth_start(path)?;
            super::pth::read(&read_bytes(path)?).map_err(|e| ModelError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        _ => Err(ModelError::Format {
            path: path.to_path_buf(),
            message: "unknown extension: expected .safetensors, .pth, .pt or .bin".into(),
        }),
    }
}

/// Copies `tensors` into the variables of `vs`, converting dtype. Every variable must be present
/// with the right shape; the error names the tensor and both shapes. Tensors the network does
/// not have (`num_batches_tracked`, auxiliary heads of a training checkpoint) are ignored.
pub fn load_state_dict(
    vs: &mut nn::VarStore,
    tensors: &HashMap<String, Tensor>,
    source: &Path,
) -> Result<(), ModelError> {
    let variables = vs.variables();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    let mut missing = Vec::new();
    for name in &names {
        let var = &variables[*name];
        match tensors.get(*name) {
            None => missing.push((*name).clone()),
            Some(src) if src.size() != var.size() => {
                return Err(ModelError::ShapeMismatch {
                    path: source.to_path_buf(),
                    name: (*name).clone(),
                    file: src.size(),
                    model: var.size(),
                })
            }
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).map(String::as_str).collect();
        return Err(ModelError::MissingTensors {
            path: source.to_path_buf(),
            count: missing.len(),
            names: shown.join(", "),
        });
    }
    tch::no_grad(|| {
        for name in names {
            let mut var = variables[name].shallow_clone();
            let src = tensors[name].to_device(var.device()).to_kind(var.kind());
            var.f_copy_(&src)
                .map_err(|e| ModelError::Torch(e.path_context(name)))?;
        }
        Ok(())
    })
}

/// Copies every tensor of `tensors` whose name and shape match a variable of `vs` (fine-tuning
/// from another task's network); returns the names of the variables left as they were, such as
/// a classifier for a different number of classes.
pub fn load_matching(vs: &mut nn::VarStore, tensors: &HashMap<String, Tensor>) -> Vec<String> {
    let variables = vs.variables();
    let mut kept: Vec<String> = Vec::new();
    tch::no_grad(|| {
        for (name, var) in &variables {
            match tensors.get(name) {
                Some(src) if src.size() == var.size() => {
                    let mut var = var.shallow_clone();
                    var.copy_(&src.to_device(var.device()).to_kind(var.kind()));
                }
                _ => kept.push(name.clone()),
            }
        }
    });
    kept.sort();
    kept
}

/// What a torchvision-style GoogLeNet state dict must be, read off its tensors: layout (batch
/// norm or not), width (conv1's filters / 64), classes (fc's rows), auxiliary heads.
pub fn infer_config(
    tensors: &HashMap<String, Tensor>,
    source: &Path,
) -> Result<GoogLeNetConfig, ModelError> {
    let shape = |name: &str| {
        tensors
            .get(name)
            .map(Tensor::size)
            .ok_or_else(|| ModelError::Format {
                path: source.to_path_buf(),
                message: format!("no tensor `{name}`: not a GoogLeNet state dict"),
            })
    };
    let layout = if tensors.contains_key("conv1.bn.weight") {
        Layout::Torchvision
    } else {
        Layout::Paper
    };
    let conv1 = shape("conv1.conv.weight")?;
    let fc = shape("fc.weight")?;
    let mut config = GoogLeNetConfig::new(layout);
    config.width = conv1[0] as f64 / 64.0;
    config.num_classes = fc[0];
    config.aux_logits = tensors.contains_key("aux1.fc2.weight");
    Ok(config)
}
