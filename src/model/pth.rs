//! `torch.save` files without Python: the zip archive of PyTorch 1.6 and later
//! (`<name>/data.pkl` plus one raw entry per storage) and the legacy stream of earlier
//! versions (magic number, protocol, system info, the object, storage keys, raw storages).
//!
//! The object is read by our own pickle machine ([`super::pickle`]); tensors are rebuilt from
//! `torch._utils._rebuild_tensor_v2` calls over typed storages, with every offset, size and
//! stride checked against the storage before any memory is touched. Both a plain dict and the
//! `OrderedDict` that `model.state_dict()` returns (torchvision's published files) are read, and
//! so is a checkpoint that nests its state dict under `state_dict` or `model`.

use std::collections::HashMap;
use std::io::Read;

use tch::{Kind, Tensor};

use super::pickle::{self, Value};

/// The first pickle of a legacy file.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Why a torch.save file could not be read (the caller adds the path).
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error(transparent)]
    Pickle(#[from] pickle::PickleError),
    #[error("zip archive: {0}")]
    Zip(String),
    #[error("{0}")]
    Format(String),
}

fn bad<T>(message: impl Into<String>) -> Result<T, PthError> {
    Err(PthError::Format(message.into()))
}

/// A storage as a persistent id names it.
struct StorageRef {
    kind: Kind,
    key: String,
    numel: usize,
}

/// Reads the tensors of a state dict saved by `torch.save`, zip or legacy format.
pub fn read(bytes: &[u8]) -> Result<HashMap<String, Tensor>, PthError> {
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes)
    } else {
        read_legacy(bytes)
    }
}

/// The most bytes of tensors one file may give, whatever its size (a GoogLeNet is 28 MB in
/// f32; the largest networks this reader is for, a few hundred MB).
pub const MAX_TENSOR_BYTES: usize = 4 << 30;

/// Views may share a storage, but a file whose tensors copy out (or whose storages inflate) to
/// far more than the file holds (thousands of views of one large storage, a zip entry that
/// inflates a thousandfold) is refused rather than allowed to exhaust memory; `added` is the
/// next tensor's or storage's size.
fn check_budget(total: &mut usize, added: usize, file: usize) -> Result<(), PthError> {
    *total = total.saturating_add(added);
    if *total > file.saturating_mul(2).saturating_add(1 << 20) {
        return bad(format!(
            "its tensors would take {} bytes, far more than the {file}-byte file holds \
             (many views of one storage, or a storage that inflates far past its size?)",
            *total
        ));
    }
    if *total > MAX_TENSOR_BYTES {
        return bad(format!(
            "its tensors would take {} bytes, more than the {MAX_TENSOR_BYTES} this reader \
             allows",
            *total
        ));
    }
    Ok(())
}

fn read_zip(bytes: &[u8]) -> Result<HashMap<String, Tensor>, PthError> {
    let zip_err = |e: zip::result::ZipError| PthError::Zip(e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    let pkl_name = archive
        .file_names()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(String::from)
        .ok_or_else(|| PthError::Zip("no data.pkl entry: not a torch.save archive".into()))?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    // An entry is inflated only as far as `take`: what its reader needs, never what its header
    // claims (a crafted entry can claim little and inflate to gigabytes).
    let mut read_entry = |name: &str, limit: u64, take: u64| -> Result<Vec<u8>, PthError> {
        let file = archive.by_name(name).map_err(zip_err)?;
        if file.size() > limit {
            return bad(format!(
                "entry {name} holds {} bytes, more than the {limit} expected",
                file.size()
            ));
        }
        let mut out = Vec::with_capacity(file.size().min(take) as usize);
        file.take(take)
            .read_to_end(&mut out)
            .map_err(|e| PthError::Zip(format!("{name}: {e}")))?;
        Ok(out)
    };
    if let Ok(order) = read_entry(&format!("{prefix}byteorder"), 16, 16) {
        if order != b"little" {
            return bad("big-endian storages are not supported");
        }
    }
    let file_len = bytes.len() as u64;
    let pkl = read_entry(&pkl_name, file_len, file_len)?;
    let (value, _) = pickle::load(&pkl)?;
    let state = state_dict(&value)?;
    let mut calls = Vec::with_capacity(state.len());
    for (name, v) in state {
        let (storage, rebuild) = tensor_call(&name, v)?;
        calls.push((name, storage, rebuild));
    }
    // Each storage is read as far as its furthest-reaching tensor, and all of them, with the
    // tensors copied out of them, within the budget, before anything is inflated.
    let mut reach: HashMap<&str, (usize, &StorageRef)> = HashMap::new();
    for (name, storage, rebuild) in &calls {
        let end = rebuild.end(name, storage)?;
        let entry = reach.entry(storage.key.as_str()).or_insert((0, storage));
        entry.0 = entry.0.max(end);
    }
    let mut total = 0usize;
    for (end, storage) in reach.values() {
        check_budget(
            &mut total,
            end * storage.kind.elt_size_in_bytes(),
            bytes.len(),
        )?;
    }
    for (_, storage, rebuild) in &calls {
        check_budget(&mut total, rebuild.bytes(storage.kind), bytes.len())?;
    }
    let mut storages: HashMap<&str, Vec<u8>> = HashMap::new();
    for (key, (end, storage)) in &reach {
        let elt = storage.kind.elt_size_in_bytes();
        let declared = storage
            .numel
            .checked_mul(elt)
            .ok_or_else(|| PthError::Format(format!("storage {key}: too large")))?;
        let want = end * elt;
        let data = read_entry(&format!("{prefix}data/{key}"), declared as u64, want as u64)?;
        if data.len() != want {
            return bad(format!(
                "storage {key} holds {} bytes, its tensors need {want}",
                data.len()
            ));
        }
        storages.insert(key, data);
    }
    let mut out = HashMap::new();
    for (name, storage, rebuild) in &calls {
        let t = rebuild.build(name, storage, &storages[storage.key.as_str()])?;
        out.insert(name.clone(), t);
    }
    Ok(out)
}

fn read_legacy(bytes: &[u8]) -> Result<HashMap<String, Tensor>, PthError> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Value, PthError> {
        let (v, used) = pickle::load(&bytes[pos..]).map_err(|e| {
            PthError::Format(format!(
                "not a torch.save file (neither a zip archive nor a legacy stream): {what}: {e}"
            ))
        })?;
        pos += used;
        Ok(v)
    };
    let magic = next("magic number")?;
    if magic != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return bad("not a torch.save file: neither a zip archive nor the legacy magic number");
    }
    match next("protocol version")? {
        Value::Int(1001) => {}
        v => return bad(format!("legacy protocol {v:?} is not supported")),
    }
    let info = next("system info")?;
    if let Value::Dict(items) = &info {
        for (k, v) in items {
            if *k == Value::Str("little_endian".into()) && *v == Value::Bool(false) {
                return bad("big-endian storages are not supported");
            }
        }
    }
    let value = next("object")?;
    let keys = match next("storage keys")? {
        Value::List(keys) => keys,
        _ => return bad("storage keys are not a list"),
    };
    let state = state_dict(&value)?;
    let mut wanted: HashMap<String, Kind> = HashMap::new();
    let mut calls = Vec::new();
    for (name, v) in state {
        let (storage, rebuild) = tensor_call(&name, v)?;
        wanted.insert(storage.key.clone(), storage.kind);
        calls.push((name, storage, rebuild));
    }
    // After the keys, each storage in their order: its element count (i64), then its bytes.
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            return bad("a storage key is not a string");
        };
        let Some(header) = bytes.get(pos..pos + 8) else {
            return bad(format!("storage {key}: the file ends before its size"));
        };
        let numel = i64::from_le_bytes(header.try_into().unwrap());
        pos += 8;
        let Some(&kind) = wanted.get(&key) else {
            return bad(format!(
                "storage {key} is not used by any tensor; its type is unknown"
            ));
        };
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(kind.elt_size_in_bytes()))
            .filter(|&n| n <= bytes.len() - pos)
            .ok_or_else(|| {
                PthError::Format(format!(
                    "storage {key} declares {numel} elements, more than the file holds"
                ))
            })?;
        storages.insert(key, bytes[pos..pos + len].to_vec());
        pos += len;
    }
    let mut out = HashMap::new();
    let mut total = 0usize;
    for (name, storage, rebuild) in calls {
        let Some(data) = storages.get(&storage.key) else {
            return bad(format!("tensor {name}: storage {} is missing", storage.key));
        };
        if data.len() < storage.numel * storage.kind.elt_size_in_bytes() {
            return bad(format!("tensor {name}: storage {} is short", storage.key));
        }
        check_budget(&mut total, rebuild.bytes(storage.kind), bytes.len())?;
        let t = rebuild.build(&name, &storage, data)?;
        out.insert(name, t);
    }
    Ok(out)
}

/// The name -> tensor-call pairs of a state dict, or of a checkpoint dict that holds one.
fn state_dict(value: &Value) -> Result<Vec<(String, &Value)>, PthError> {
    let Value::Dict(items) = value else {
        return bad("the saved object is not a dict of tensors (a state dict)");
    };
    let has_tensors = items.iter().any(|(_, v)| matches!(v, Value::Call { .. }));
    if !has_tensors {
        for key in ["state_dict", "model", "model_state_dict"] {
            if let Some((_, inner)) = items
                .iter()
                .find(|(k, v)| *k == Value::Str(key.into()) && matches!(v, Value::Dict(_)))
            {
                return state_dict(inner);
            }
        }
    }
    items
        .iter()
        .map(|(k, v)| match k {
            Value::Str(name) => Ok((name.clone(), v)),
            _ => bad(format!("a state dict key is not a string: {k:?}")),
        })
        .collect()
}

/// How a tensor is laid out over its storage.
struct Rebuild {
    offset: usize,
    size: Vec<i64>,
    stride: Vec<i64>,
}

impl Rebuild {
    /// Bytes of the tensor once copied out (saturating: sizes are checked in `build`).
    fn bytes(&self, kind: Kind) -> usize {
        self.size.iter().fold(kind.elt_size_in_bytes(), |n, &d| {
            n.saturating_mul(d.max(0) as usize)
        })
    }

    /// How many elements of its storage the tensor reaches (0 when it is empty), checked to lie
    /// inside the storage's declared size.
    fn end(&self, name: &str, storage: &StorageRef) -> Result<usize, PthError> {
        let mut last = self.offset as i128;
        let mut empty = false;
        for (&n, &s) in self.size.iter().zip(&self.stride) {
            if n < 0 || s < 0 {
                return bad(format!("tensor {name}: negative size or stride"));
            }
            if n == 0 {
                empty = true;
            }
            last += (n as i128 - 1).max(0) * s as i128;
        }
        if empty {
            return Ok(0);
        }
        if last >= storage.numel as i128 {
            return bad(format!(
                "tensor {name}: its size {:?} and stride {:?} from offset {} reach past its \
                 storage of {} elements",
                self.size, self.stride, self.offset, storage.numel
            ));
        }
        Ok(last as usize + 1)
    }

    /// The tensor, copied out of `data`: its storage's first elements, at least as many as
    /// [`Rebuild::end`] says it reaches.
    fn build(&self, name: &str, storage: &StorageRef, data: &[u8]) -> Result<Tensor, PthError> {
        let end = self.end(name, storage)?;
        let elt = storage.kind.elt_size_in_bytes();
        if data.len() < end * elt {
            return bad(format!("tensor {name}: storage {} is short", storage.key));
        }
        let used = data.len() / elt;
        let bytes = &data[..used * elt];
        let flat = Tensor::from_data_size(bytes, &[used as i64], storage.kind);
        Ok(flat
            .as_strided(&self.size, &self.stride, Some(self.offset as i64))
            .contiguous())
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(int).collect(),
        _ => None,
    }
}

/// Interprets `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` (or a
/// parameter wrapping one).
fn tensor_call(name: &str, v: &Value) -> Result<(StorageRef, Rebuild), PthError> {
    let Value::Call { func, args, .. } = v else {
        return bad(format!("entry {name} is not a tensor"));
    };
    if func.is_global("torch._utils", "_rebuild_parameter")
        || func.is_global("torch._utils", "_rebuild_parameter_with_state")
    {
        return match args.first() {
            Some(inner) => tensor_call(name, inner),
            None => bad(format!("entry {name}: parameter without a tensor")),
        };
    }
    if !func.is_global("torch._utils", "_rebuild_tensor_v2")
        && !func.is_global("torch._utils", "_rebuild_tensor")
    {
        return bad(format!(
            "entry {name} is rebuilt by {func:?}, which this reader does not know \
             (quantized, sparse or subclassed tensors are not supported)"
        ));
    }
    let (Some(pid), Some(offset), Some(size), Some(stride)) = (
        args.first(),
        args.get(1).and_then(int),
        args.get(2).and_then(ints),
        args.get(3).and_then(ints),
    ) else {
        return bad(format!("entry {name}: malformed tensor arguments"));
    };
    if size.len() != stride.len() {
        return bad(format!("entry {name}: size and stride differ in length"));
    }
    let Value::Persistent(pid) = pid else {
        return bad(format!("entry {name}: the tensor has no storage"));
    };
    let Value::Tuple(fields) = pid.as_ref() else {
        return bad(format!("entry {name}: malformed storage id"));
    };
    // ('storage', type, key, location, numel[, view metadata])
    let (
        Some(Value::Global {
            name: type_name, ..
        }),
        Some(key),
        Some(numel),
    ) = (fields.get(1), fields.get(2), fields.get(4).and_then(int))
    else {
        return bad(format!("entry {name}: malformed storage id"));
    };
    let key = match key {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return bad(format!("entry {name}: malformed storage key")),
    };
    let kind = storage_kind(type_name)
        .ok_or_else(|| PthError::Format(format!("entry {name}: unsupported {type_name}")))?;
    let (Ok(numel), Ok(offset)) = (usize::try_from(numel), usize::try_from(offset)) else {
        return bad(format!("entry {name}: negative storage size or offset"));
    };
    if matches!(fields.get(5), Some(Value::Tuple(_))) {
        return bad(format!(
            "entry {name}: storage views (files from PyTorch before 0.4) are not supported"
        ));
    }
    Ok((
        StorageRef { kind, key, numel },
        Rebuild {
            offset,
            size,
            stride,
        },
    ))
}

fn storage_kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "FloatStorage" => Kind::Float,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "DoubleStorage" => Kind::Double,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}
