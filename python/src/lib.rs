//! `rcnn_eval._core`: the Rust side of the Python package. Reads COCO files and Python
//! records into columns, runs the `eval` crate's COCOeval (evaluate, accumulate) and its
//! ILSVRC/VOC rules, and hands arrays back as bytes for numpy. The pycocotools-shaped classes
//! live in the package's Python files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use eval::formats::{BoxFormat, ClassKey, Format, RawDet, RawGroundTruth, RawGt};
use eval::metrics::coco::{self, AccumulateSpec, CocoAnn, CocoAnns, CocoEvalImgs, CocoParams};
use eval::{BBox, ClassList, Metric};
use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::Deserialize;

create_exception!(
    _core,
    EvalError,
    PyValueError,
    "Bad input to the evaluator; the message names the file and line, or the record."
);

/// The CLI's error, as the Python exception a user expects: a missing file is
/// FileNotFoundError, other I/O OSError, bad content EvalError (a ValueError).
fn py_err(e: eval::EvalError) -> PyErr {
    match &e {
        eval::EvalError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        eval::EvalError::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => EvalError::new_err(e.to_string()),
    }
}

fn bad(message: String) -> PyErr {
    EvalError::new_err(message)
}

/// Annotations (a dataset) or results, held in columns, with the dataset's image and
/// category ids in file order.
#[pyclass(module = "rcnn_eval._core", frozen)]
struct Anns {
    anns: CocoAnns,
    /// `images` ids, file order, first of repeats.
    img_ids: Vec<i64>,
    /// `categories` ids, file order, repeats kept (as getCatIds()).
    cat_ids: Vec<i64>,
}

#[pymethods]
impl Anns {
    fn __len__(&self) -> usize {
        self.anns.len()
    }

    fn img_ids(&self) -> Vec<i64> {
        self.img_ids.clone()
    }

    fn cat_ids(&self) -> Vec<i64> {
        self.cat_ids.clone()
    }
}

fn first_of_repeats(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// An id in a JSON file: an integer, or a float that is a whole number (`1.0`), as
/// pycocotools' dicts take it.
fn int_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("id {n} is not an integer")))
}

#[derive(Deserialize)]
struct IdJson {
    #[serde(deserialize_with = "int_id")]
    id: i64,
}

/// `iscrowd` as written: 0/1 or a boolean.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Number(f64),
}

impl Flag {
    fn truthy(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Number(n) => *n != 0.0,
        }
    }
}

#[derive(Deserialize)]
struct AnnJson {
    #[serde(deserialize_with = "int_id")]
    image_id: i64,
    #[serde(deserialize_with = "int_id")]
    category_id: i64,
    bbox: [f64; 4],
    area: Option<f64>,
    iscrowd: Option<Flag>,
    id: Option<i64>,
    score: Option<f64>,
}

#[derive(Deserialize)]
struct DatasetJson {
    #[serde(default)]
    images: Vec<IdJson>,
    #[serde(default)]
    annotations: Vec<AnnJson>,
    #[serde(default)]
    categories: Vec<IdJson>,
}

#[derive(Deserialize)]
struct ResultJson {
    #[serde(deserialize_with = "int_id")]
    image_id: i64,
    #[serde(deserialize_with = "int_id")]
    category_id: i64,
    bbox: [f64; 4],
    score: f64,
}

fn read_text(path: &Path) -> Result<String, eval::EvalError> {
    std::fs::read_to_string(path).map_err(|e| eval::EvalError::io(path, e))
}

fn json_err(path: &Path, e: serde_json::Error, what: &str) -> eval::EvalError {
    eval::EvalError::parse(path, e.line(), format!("{what}: {e}"))
}

/// A dataset's annotations: `area` defaults to w * h, `iscrowd` to 0, `id` to the position + 1.
fn dataset_anns(d: DatasetJson) -> Anns {
    let mut anns = CocoAnns::default();
    for (i, a) in d.annotations.into_iter().enumerate() {
        let area = a.area.unwrap_or(a.bbox[2] * a.bbox[3]);
        anns.push(CocoAnn {
            image_id: a.image_id,
            category_id: a.category_id,
            bbox: a.bbox,
            area,
            iscrowd: a.iscrowd.is_some_and(|f| f.truthy()),
            id: a.id.unwrap_or(i as i64 + 1),
            score: a.score.unwrap_or(0.0),
        });
    }
    Anns {
        anns,
        img_ids: first_of_repeats(d.images.iter().map(|i| i.id)),
        cat_ids: d.categories.iter().map(|c| c.id).collect(),
    }
}

/// `COCO(annotation_file)`: a dataset read in Rust.
#[pyfunction]
fn read_dataset(py: Python<'_>, path: PathBuf) -> PyResult<Anns> {
    py.detach(|| {
        let text = read_text(&path)?;
        let d: DatasetJson =
            serde_json::from_str(&text).map_err(|e| json_err(&path, e, "not a COCO dataset"))?;
        Ok(dataset_anns(d))
    })
    .map_err(py_err)
}

/// `obj[key]` of a dict or of anything with `__getitem__`; None when it has no such key.
fn optional<'py>(obj: &Bound<'py, PyAny>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    match obj.cast::<PyDict>() {
        Ok(d) => d.get_item(key),
        Err(_) => Ok(obj.get_item(key).ok()),
    }
}

/// `obj[key]` as a T; the error names the record and the key.
fn field<'py, T: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    key: &str,
    at: &dyn Fn() -> String,
) -> PyResult<T> {
    match optional(obj, key)? {
        Some(v) => extract(&v, key, at),
        None => Err(bad(format!("{}: no `{key}`", at()))),
    }
}

fn extract<'py, T: FromPyObjectOwned<'py>>(
    v: &Bound<'py, PyAny>,
    key: &str,
    at: &dyn Fn() -> String,
) -> PyResult<T> {
    v.extract::<T>().map_err(|_| {
        bad(format!(
            "{}: `{key}` is {}, of the wrong type",
            at(),
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// `obj[key]` as an id: an int, or a float that is a whole number (`1.0` is the id 1, as it is
/// to pycocotools, whose dicts find 1 under 1.0).
fn id_field(obj: &Bound<'_, PyAny>, key: &str, at: &dyn Fn() -> String) -> PyResult<i64> {
    let Some(v) = optional(obj, key)? else {
        return Err(bad(format!("{}: no `{key}`", at())));
    };
    if let Ok(i) = v.extract::<i64>() {
        return Ok(i);
    }
    match v.extract::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(bad(format!(
            "{}: `{key}` is {}, not an integer id",
            at(),
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}

/// `obj["bbox"]`: four numbers.
fn bbox_of(obj: &Bound<'_, PyAny>, at: &dyn Fn() -> String) -> PyResult<[f64; 4]> {
    let b: Vec<f64> = field(obj, "bbox", at)?;
    b.try_into().map_err(|b: Vec<f64>| {
        bad(format!(
            "{}: `bbox` has {} numbers, not 4 [x, y, w, h]",
            at(),
            b.len()
        ))
    })
}

/// `COCO()` with `dataset` set to a dict, then `createIndex()`: the same defaults as a file.
#[pyfunction]
fn dataset_from_dict(dataset: &Bound<'_, PyAny>) -> PyResult<Anns> {
    let list = |key: &str| -> PyResult<Vec<Bound<'_, PyAny>>> {
        match dataset.cast::<PyDict>()?.get_item(key)? {
            // A string or a dict iterates too (its characters, its keys): not a list of records.
            Some(v)
                if v.is_instance_of::<pyo3::types::PyString>() || v.is_instance_of::<PyDict>() =>
            {
                Err(bad(format!(
                    "dataset['{key}'] is {}, not a list of records",
                    v.repr().map(|r| r.to_string()).unwrap_or_default()
                )))
            }
            Some(v) => v.try_iter()?.collect(),
            None => Ok(Vec::new()),
        }
    };
    let ids = |key: &str| -> PyResult<Vec<IdJson>> {
        list(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let at = || format!("dataset['{key}'][{i}]");
                Ok(IdJson {
                    id: id_field(v, "id", &at)?,
                })
            })
            .collect()
    };
    let mut annotations = Vec::new();
    for (i, a) in list("annotations")?.iter().enumerate() {
        let at = || format!("dataset['annotations'][{i}]");
        let some = |key: &str| -> PyResult<Option<f64>> {
            optional(a, key)?.map(|v| extract(&v, key, &at)).transpose()
        };
        annotations.push(AnnJson {
            image_id: id_field(a, "image_id", &at)?,
            category_id: id_field(a, "category_id", &at)?,
            bbox: bbox_of(a, &at)?,
            area: some("area")?,
            iscrowd: optional(a, "iscrowd")?
                .map(|v| v.is_truthy().map(Flag::Bool))
                .transpose()?,
            id: optional(a, "id")?
                .map(|v| extract(&v, "id", &at))
                .transpose()?,
            score: some("score")?,
        });
    }
    Ok(dataset_anns(DatasetJson {
        images: ids("images")?,
        annotations,
        categories: ids("categories")?,
    }))
}

/// loadRes's rules: `area` = w * h, `id` = position + 1, not crowds; every image must be one
/// of the ground truth's.
fn results(gt: &Anns, rows: Vec<(i64, i64, [f64; 4], f64)>, source: &str) -> PyResult<Anns> {
    let known: HashSet<i64> = gt.img_ids.iter().copied().collect();
    let mut anns = CocoAnns::default();
    for (i, (image_id, category_id, bbox, score)) in rows.into_iter().enumerate() {
        if !known.contains(&image_id) {
            return Err(bad(format!(
                "{source}: Results do not correspond to current coco set: result {i} is on image_id {image_id}, which is not among the ground truth's images"
            )));
        }
        anns.push(CocoAnn {
            image_id,
            category_id,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd: false,
            id: i as i64 + 1,
            score,
        });
    }
    Ok(Anns {
        anns,
        img_ids: gt.img_ids.clone(),
        cat_ids: gt.cat_ids.clone(),
    })
}

/// `loadRes(file)`.
#[pyfunction]
fn read_results(py: Python<'_>, gt: &Anns, path: PathBuf) -> PyResult<Anns> {
    let rows = py
        .detach(|| {
            let text = read_text(&path)?;
            let rows: Vec<ResultJson> = serde_json::from_str(&text).map_err(|e| {
                json_err(
                    &path,
                    e,
                    "not a COCO results list (image_id, category_id, bbox, score)",
                )
            })?;
            Ok(rows
                .into_iter()
                .map(|r| (r.image_id, r.category_id, r.bbox, r.score))
                .collect())
        })
        .map_err(py_err)?;
    results(gt, rows, &path.display().to_string())
}

/// `loadRes(list of dicts)`.
#[pyfunction]
fn results_from_list(gt: &Anns, anns: &Bound<'_, PyAny>) -> PyResult<Anns> {
    let mut rows = Vec::new();
    for (i, a) in anns.try_iter()?.enumerate() {
        let a = a?;
        let at = || format!("results[{i}]");
        if optional(&a, "bbox")?.is_none() {
            return Err(bad(format!(
                "{}: no `bbox`: rcnn_eval evaluates boxes; segmentation and keypoint results are out of scope (use pycocotools for them)",
                at()
            )));
        }
        rows.push((
            id_field(&a, "image_id", &at)?,
            id_field(&a, "category_id", &at)?,
            bbox_of(&a, &at)?,
            field(&a, "score", &at)?,
        ));
    }
    results(gt, rows, "results")
}

/// `loadRes(numpy array)`: rows [image_id, x, y, w, h, score, category_id] as float64 bytes.
#[pyfunction]
fn results_from_array(gt: &Anns, data: &[u8], rows: usize) -> PyResult<Anns> {
    if data.len() != rows * 7 * 8 {
        return Err(bad(format!(
            "results array: {} bytes for {rows} rows of 7 numbers",
            data.len()
        )));
    }
    let v: Vec<f64> = data
        .chunks_exact(8)
        .map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    // An id that is not a whole number (NaN became image 0) is refused, naming its row.
    let id = |v: f64, i: usize, what: &str| -> PyResult<i64> {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(v as i64)
        } else {
            Err(bad(format!(
                "results array row {i}: {what} {v} is not an integer id"
            )))
        }
    };
    let rows = v
        .chunks_exact(7)
        .enumerate()
        .map(|(i, r)| {
            Ok((
                id(r[0], i, "image_id")?,
                id(r[6], i, "category_id")?,
                [r[1], r[2], r[3], r[4]],
                r[5],
            ))
        })
        .collect::<PyResult<_>>()?;
    results(gt, rows, "results array")
}

/// `evaluate()`'s result: `_paramsEval` and the per-image evaluations.
#[pyclass(module = "rcnn_eval._core", frozen)]
struct EvalImgs {
    evals: CocoEvalImgs,
}

#[pymethods]
impl EvalImgs {
    /// Number of (category, area range, image) evaluations that are not None.
    fn __len__(&self) -> usize {
        self.evals.len()
    }
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    gt: &Anns,
    dt: &Anns,
    img_ids: Vec<i64>,
    cat_ids: Vec<i64>,
    iou_thrs: Vec<f64>,
    rec_thrs: Vec<f64>,
    max_dets: Vec<usize>,
    area_rng: Vec<[f64; 2]>,
    use_cats: bool,
) -> EvalImgs {
    let p = CocoParams {
        img_ids,
        cat_ids,
        iou_thrs,
        rec_thrs,
        max_dets,
        area_rng,
        use_cats,
    };
    let evals = py.detach(|| coco::evaluate_images(&gt.anns, &dt.anns, &p));
    EvalImgs { evals }
}

type IouRow<'py> = (usize, usize, usize, usize, Bound<'py, PyBytes>);
type DetailRow<'py> = (
    usize,
    usize,
    usize,
    Vec<i64>,
    Vec<i64>,
    Vec<f64>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Vec<bool>,
    Bound<'py, PyBytes>,
);

/// pycocotools' `ious` and `evalImgs`, made again in full for the pairs that have an object or
/// a detection: IoU rows (k, image, D, G, float64 bytes) and evaluation rows (k, a, image,
/// dtIds, gtIds, dtScores, dtMatches, gtMatches as float64 bytes, gtIgnore, dtIgnore as bool
/// bytes); k and image are positions in the evaluation's catIds and imgIds.
#[pyfunction]
fn evaluate_in_full<'py>(
    py: Python<'py>,
    gt: &Anns,
    dt: &Anns,
    evals: &EvalImgs,
) -> (Vec<IouRow<'py>>, Vec<DetailRow<'py>>) {
    let full = py.detach(|| coco::evaluate_images_in_full(&gt.anns, &dt.anns, &evals.evals.params));
    let ids = |v: &[i64]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
    let mut iou_rows = Vec::with_capacity(full.len());
    let mut rows = Vec::new();
    for (ious, details) in full {
        let (n_d, n_g) = (ious.len(), ious.first().map_or(0, Vec::len));
        if let Some(first) = details.first() {
            let flat: Vec<f64> = ious.into_iter().flatten().collect();
            iou_rows.push((first.k, first.image, n_d, n_g, to_bytes(py, &flat)));
        }
        for (a, e) in details.into_iter().enumerate() {
            let ignore: Vec<u8> = e.dt_ignore.iter().map(|&b| u8::from(b)).collect();
            rows.push((
                e.k,
                a,
                e.image,
                e.dt.iter().map(|&n| dt.anns.id[n]).collect(),
                e.gt.iter().map(|&n| gt.anns.id[n]).collect(),
                e.dt.iter().map(|&n| dt.anns.score[n]).collect(),
                to_bytes(py, &ids(&e.dt_matches)),
                to_bytes(py, &ids(&e.gt_matches)),
                e.gt_ignore,
                PyBytes::new(py, &ignore),
            ));
        }
    }
    (iou_rows, rows)
}

fn to_bytes<'py>(py: Python<'py>, v: &[f64]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    PyBytes::new(py, &bytes)
}

/// `accumulate(p)`: returns (precision, recall, scores) as float64 bytes in C order.
#[pyfunction]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn accumulate<'py>(
    py: Python<'py>,
    evals: &EvalImgs,
    k_list: Vec<usize>,
    a_list: Vec<usize>,
    m_list: Vec<usize>,
    i_list: Vec<usize>,
    rec_thrs: Vec<f64>,
    counts: [usize; 5],
) -> PyResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
)> {
    let spec = AccumulateSpec {
        k_list,
        a_list,
        m_list,
        i_list,
        rec_thrs,
        counts,
    };
    let acc = py
        .detach(|| coco::accumulate(&evals.evals, &spec))
        .map_err(|e| bad(e.to_string()))?;
    Ok((
        to_bytes(py, &acc.precision),
        to_bytes(py, &acc.recall),
        to_bytes(py, &acc.scores),
    ))
}

fn parse<T: std::str::FromStr<Err = eval::EvalError>>(s: Option<&str>) -> PyResult<Option<T>> {
    s.map(str::parse).transpose().map_err(py_err)
}

fn box_format(s: &str) -> PyResult<BoxFormat> {
    match s {
        "xyxy" => Ok(BoxFormat::Xyxy),
        "xywh" => Ok(BoxFormat::Xywh),
        other => Err(bad(format!(
            "unknown box format `{other}` (expected xyxy or xywh)"
        ))),
    }
}

fn check_iou(iou: f64) -> PyResult<()> {
    if iou > 0.0 && iou <= 1.0 {
        Ok(())
    } else {
        Err(bad(format!("iou must be in (0, 1], got {iou}")))
    }
}

/// Evaluates what was loaded and writes the report where asked: the report's JSON.
fn run(
    loaded: &eval::load::Loaded,
    metric: Metric,
    iou: f64,
    report: Option<PathBuf>,
) -> PyResult<String> {
    let json = eval::report::to_json(loaded, &loaded.evaluate(metric, iou));
    if let Some(path) = report {
        eval::write_atomically(&path, &json).map_err(py_err)?;
    }
    Ok(String::from_utf8(json).expect("JSON is UTF-8"))
}

/// `map-eval` on files: the same readers, rules and report.
#[pyfunction]
#[pyo3(signature = (gt, dets, metric, iou, classes=None, image_list=None, blacklist=None, subset=None, gt_format=None, dets_format=None, box_format="xyxy", strict=false, report=None))]
#[allow(clippy::too_many_arguments)]
fn map_eval_files(
    py: Python<'_>,
    gt: PathBuf,
    dets: PathBuf,
    metric: &str,
    iou: f64,
    classes: Option<PathBuf>,
    image_list: Option<PathBuf>,
    blacklist: Option<PathBuf>,
    subset: Option<PathBuf>,
    gt_format: Option<&str>,
    dets_format: Option<&str>,
    box_format: &str,
    strict: bool,
    report: Option<PathBuf>,
) -> PyResult<String> {
    let metric: Metric = metric.parse().map_err(py_err)?;
    check_iou(iou)?;
    let inputs = eval::load::Inputs {
        gt,
        dets,
        gt_format: parse::<Format>(gt_format)?,
        dets_format: parse::<Format>(dets_format)?,
        classes,
        image_list,
        blacklist,
        subset,
        box_format: self::box_format(box_format)?,
        // YOLO labels find their images in the `images` folder beside them.
        gt_images: None,
        strict,
    };
    inputs.protect();
    let loaded = py.detach(|| eval::load::load(&inputs)).map_err(py_err)?;
    py.detach(|| run(&loaded, metric, iou, report))
}

fn class_key(v: &Bound<'_, PyAny>, at: &dyn Fn() -> String) -> PyResult<ClassKey> {
    if let Ok(s) = v.extract::<String>() {
        return Ok(ClassKey::Name(s));
    }
    match v.extract::<i64>() {
        Ok(id) if id >= 1 => Ok(ClassKey::Id(id as usize)),
        _ => Err(bad(format!(
            "{}: a class is a name, a WNID or a 1-based id",
            at()
        ))),
    }
}

fn image_name(v: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match v.extract::<String>() {
        Ok(s) => s,
        Err(_) => v.str()?.to_string(),
    })
}

/// A record of [`map_eval_records`], a tuple or a dict: `head` names the fields before the box
/// (the image and the class first), `tail` those after it; the box is four numbers x1 y1 x2 y2
/// in a tuple, `bbox` in a dict. Returns the image, the class, the box and the other fields.
#[allow(clippy::type_complexity)]
fn record<'py>(
    r: &Bound<'py, PyAny>,
    head: &[&str],
    tail: &[&str],
    at: &dyn Fn() -> String,
) -> PyResult<(String, ClassKey, BBox, Vec<Option<Bound<'py, PyAny>>>)> {
    let dict = r.cast::<PyDict>().ok();
    let corners: &[&str] = if dict.is_some() {
        &["bbox"]
    } else {
        &["x1", "y1", "x2", "y2"]
    };
    let names: Vec<&str> = [head, corners, tail].concat();
    let mut f: Vec<Option<Bound<'py, PyAny>>> = match &dict {
        Some(d) => names
            .iter()
            .map(|n| d.get_item(*n))
            .collect::<PyResult<_>>()?,
        None => {
            let v: Vec<Bound<'py, PyAny>> = r
                .try_iter()
                .map_err(|_| bad(format!("{}: a record is a tuple or a dict", at())))?
                .collect::<PyResult<_>>()?;
            (0..names.len()).map(|i| v.get(i).cloned()).collect()
        }
    };
    let (Some(image), Some(class)) = (&f[0], &f[1]) else {
        return Err(bad(format!("{}: needs an image and a class", at())));
    };
    let (image, class) = (image_name(image)?, class_key(class, at)?);
    let bbox = if dict.is_some() {
        bbox_of(r, at)?
    } else {
        let mut b = [0.0; 4];
        for (i, v) in b.iter_mut().enumerate() {
            let key = corners[i];
            *v = match &f[head.len() + i] {
                Some(x) => extract(x, key, at)?,
                None => return Err(bad(format!("{}: no `{key}`", at()))),
            };
        }
        b
    };
    f.drain(head.len()..head.len() + corners.len());
    f.drain(..2);
    Ok((
        image,
        class,
        BBox::new(bbox[0], bbox[1], bbox[2], bbox[3]),
        f,
    ))
}

/// ILSVRC/VOC on Python records: ground truth (image, class, x1, y1, x2, y2[, difficult])
/// and detections (image, class, score, x1, y1, x2, y2), tuples or dicts with a `bbox`.
#[pyfunction]
#[pyo3(signature = (gt, dets, metric, iou, images=None, classes=None, classes_file=None, strict=false, report=None))]
#[allow(clippy::too_many_arguments)]
fn map_eval_records(
    py: Python<'_>,
    gt: &Bound<'_, PyAny>,
    dets: &Bound<'_, PyAny>,
    metric: &str,
    iou: f64,
    images: Option<Vec<Bound<'_, PyAny>>>,
    classes: Option<Vec<String>>,
    classes_file: Option<PathBuf>,
    strict: bool,
    report: Option<PathBuf>,
) -> PyResult<String> {
    let metric: Metric = metric.parse().map_err(py_err)?;
    check_iou(iou)?;
    let classes = match (classes, classes_file) {
        (Some(names), _) => Some(ClassList::from_names(names)),
        (None, Some(path)) => Some(ClassList::read(&path).map_err(py_err)?),
        (None, None) => None,
    };
    let mut raw = RawGroundTruth::default();
    let mut seen = HashSet::new();
    for v in images.unwrap_or_default() {
        let name = image_name(&v)?;
        if seen.insert(name.clone()) {
            raw.images.push(name);
        }
    }
    for (i, r) in gt.try_iter()?.enumerate() {
        let at = || format!("gt[{i}]");
        let (image, class, bbox, rest) = record(&r?, &["image", "class"], &["difficult"], &at)?;
        let difficult = match &rest[0] {
            Some(d) => d.is_truthy()?,
            None => false,
        };
        if seen.insert(image.clone()) {
            raw.images.push(image.clone());
        }
        raw.boxes.push(RawGt {
            image,
            class,
            bbox,
            difficult,
            crowd: false,
            area: None,
        });
    }
    let mut raw_dets = Vec::new();
    for (i, r) in dets.try_iter()?.enumerate() {
        let at = || format!("dets[{i}]");
        let (image, class, bbox, rest) = record(&r?, &["image", "class", "score"], &[], &at)?;
        let score = match &rest[0] {
            Some(v) => extract(v, "score", &at)?,
            None => return Err(bad(format!("{}: no `score`", at()))),
        };
        raw_dets.push(RawDet {
            image,
            class,
            score,
            bbox,
        });
    }
    if raw.images.is_empty() {
        return Err(bad(
            "gt: no ground-truth image (pass images= for images without objects)".into(),
        ));
    }
    let loaded = eval::load::load_records(raw, raw_dets, classes, strict).map_err(py_err)?;
    py.detach(|| run(&loaded, metric, iou, report))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("EvalError", m.py().get_type::<EvalError>())?;
    m.add_class::<Anns>()?;
    m.add_class::<EvalImgs>()?;
    m.add_function(wrap_pyfunction!(read_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_from_dict, m)?)?;
    m.add_function(wrap_pyfunction!(read_results, m)?)?;
    m.add_function(wrap_pyfunction!(results_from_list, m)?)?;
    m.add_function(wrap_pyfunction!(results_from_array, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(accumulate, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_in_full, m)?)?;
    m.add_function(wrap_pyfunction!(map_eval_files, m)?)?;
    m.add_function(wrap_pyfunction!(map_eval_records, m)?)?;
    Ok(())
}
