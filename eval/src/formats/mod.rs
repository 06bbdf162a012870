//! Readers and writers of annotation and detection files.
//!
//! Readers give raw records (image and class as written in the file); [`crate::load`] resolves
//! them against a class list and the ground truth's images.

pub mod coco;
pub mod csv;
pub mod ilsvrc;
pub mod txt;
pub mod voc_xml;
pub mod yolo;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::issues::{Issues, Kind};
use crate::EvalError;
use boxes::BBox;

/// A class as a file names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClassKey {
    /// A name or WNID.
    Name(String),
    /// A 1-based class ID (ILSVRC's DET_ID).
    Id(usize),
}

impl fmt::Display for ClassKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassKey::Name(n) => f.write_str(n),
            ClassKey::Id(i) => write!(f, "#{i}"),
        }
    }
}

/// An annotated object as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RawGt {
    pub image: String,
    pub class: ClassKey,
    pub bbox: BBox,
    pub difficult: bool,
    pub crowd: bool,
    pub area: Option<f64>,
}

/// Ground truth as read: every annotated image (also those without objects) and the objects.
#[derive(Debug, Clone, Default)]
pub struct RawGroundTruth {
    pub images: Vec<String>,
    pub boxes: Vec<RawGt>,
    /// Class names in the file's own order, where the format has a list (COCO categories).
    pub class_names: Option<Vec<String>>,
    /// Image name -> file name, where the format names images otherwise (COCO: by id).
    pub file_names: std::collections::HashMap<String, String>,
}

/// A detection as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDet {
    pub image: String,
    pub class: ClassKey,
    pub score: f64,
    pub bbox: BBox,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A folder of PASCAL VOC / ILSVRC XML files (ground truth).
    VocXml,
    /// COCO JSON: a dataset (ground truth) or a results list (detections).
    Coco,
    /// ILSVRC submission txt (detections; images by their line in the image list).
    Ilsvrc,
    /// CSV: `image,class,xmin,ymin,xmax,ymax` or `image,class,score,xmin,ymin,xmax,ymax`.
    Csv,
    /// A folder of one txt per image: `class [score] x1 y1 x2 y2` (or `x y w h`).
    Txt,
    /// YOLO labels: a folder of one txt per image, `class cx cy w h` normalised (ground truth).
    Yolo,
}

impl FromStr for Format {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "voc" | "xml" | "voc-xml" => Format::VocXml,
            "coco" | "json" => Format::Coco,
            "ilsvrc" => Format::Ilsvrc,
            "csv" => Format::Csv,
            "txt" => Format::Txt,
            "yolo" => Format::Yolo,
            other => {
                return Err(EvalError::Usage(format!(
                    "unknown format `{other}` (expected voc, coco, ilsvrc, csv, txt or yolo)"
                )))
            }
        })
    }
}

impl Format {
    /// Guesses from the path: a folder by the files in it, a file by its extension.
    pub fn guess(path: &Path) -> Result<Format, EvalError> {
        if path.is_dir() {
            let mut xml = 0;
            let mut txt = 0;
            for entry in std::fs::read_dir(path).map_err(|e| EvalError::io(path, e))? {
                let p = entry.map_err(|e| EvalError::io(path, e))?.path();
                match p
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("xml") => xml += 1,
                    Some("txt") => txt += 1,
                    _ => {}
                }
            }
            if (xml, txt) == (0, 0) && !files_under(path, &["xml"])?.is_empty() {
                // XML in class folders, as ILSVRC DET's train annotations.
                return Ok(Format::VocXml);
            }
            return match (xml, txt) {
                (0, 0) => Err(EvalError::parse(
                    path,
                    0,
                    "folder holds no .xml or .txt files".into(),
                )),
                (x, t) if x >= t => Ok(Format::VocXml),
                _ if yolo::looks_like(path) => Ok(Format::Yolo),
                _ => Ok(Format::Txt),
            };
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Ok(Format::Coco),
            Some("csv") => Ok(Format::Csv),
            Some("txt") => Ok(Format::Ilsvrc),
            Some("xml") => Ok(Format::VocXml),
            _ if !path.exists() => Err(EvalError::io(path, std::io::ErrorKind::NotFound.into())),
            _ => Err(EvalError::Usage(format!(
                "cannot tell the format of {}: pass --format",
                path.display()
            ))),
        }
    }
}

/// How a txt file writes its boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoxFormat {
    /// Corners: x1 y1 x2 y2.
    #[default]
    Xyxy,
    /// Corner and size: x y w h.
    Xywh,
}

impl BoxFormat {
    pub fn to_bbox(self, v: [f64; 4]) -> BBox {
        match self {
            BoxFormat::Xyxy => BBox::new(v[0], v[1], v[2], v[3]),
            BoxFormat::Xywh => BBox::from_xywh(v[0], v[1], v[2], v[3]),
        }
    }
}

/// Coordinates beyond this are no image's: 1e308 and its like, dropped with NaN and infinity.
pub const MAX_COORDINATE: f64 = 1e9;

/// Records the issues of a box read at `at`; `Ok(false)` when it must be dropped (a NaN,
/// infinite or absurd coordinate, which no metric can use).
pub fn check_box(
    issues: &mut Issues,
    b: &BBox,
    at: &dyn Fn() -> String,
) -> Result<bool, EvalError> {
    if [b.x1, b.y1, b.x2, b.y2]
        .iter()
        .any(|v| !v.is_finite() || v.abs() > MAX_COORDINATE)
    {
        issues.record(Kind::NonFiniteBox, || {
            format!(
                "{}: box {:?} has a NaN, infinite or absurd coordinate; dropped",
                at(),
                [b.x1, b.y1, b.x2, b.y2]
            )
        })?;
        return Ok(false);
    }
    if b.x2 < b.x1 || b.y2 < b.y1 {
        issues.record(Kind::InvertedBox, || {
            format!("{}: box has x2 < x1 or y2 < y1: {b:?}", at())
        })?;
    }
    if b.x1 < 0.0 || b.y1 < 0.0 || b.x2 < 0.0 || b.y2 < 0.0 {
        issues.record(Kind::NegativeCoordinate, || {
            format!("{}: negative coordinate: {b:?}", at())
        })?;
    }
    Ok(true)
}

/// Checks a score read at `at`; `Ok(false)` when the detection must be dropped.
pub fn check_score(
    issues: &mut Issues,
    score: f64,
    at: &dyn Fn() -> String,
) -> Result<bool, EvalError> {
    if !score.is_finite() {
        issues.record(Kind::NonFiniteScore, || {
            format!("{}: score {score} cannot be ranked; dropped", at())
        })?;
        return Ok(false);
    }
    if score < 0.0 {
        issues.record(Kind::NegativeScore, || {
            format!("{}: negative score {score}", at())
        })?;
    }
    Ok(true)
}

/// Parses whitespace-separated numbers; a message naming the bad field otherwise.
pub(crate) fn numbers<const N: usize>(fields: &[&str]) -> Result<[f64; N], String> {
    if fields.len() != N {
        return Err(format!("expected {N} numbers, got {} fields", fields.len()));
    }
    let mut out = [0.0; N];
    for (o, f) in out.iter_mut().zip(fields) {
        // Rust parses "nan" and "inf", which the checks above then report.
        *o = f.parse().map_err(|_| format!("`{f}` is not a number"))?;
    }
    Ok(out)
}

/// The files directly in `dir` with extension `ext`, sorted by name.
pub(crate) fn files_with_extension(
    dir: &Path,
    ext: &str,
) -> Result<Vec<std::path::PathBuf>, EvalError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))? {
        let p = entry.map_err(|e| EvalError::io(dir, e))?.path();
        if p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case(ext))
        {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The files under `dir` with one of `exts` (lower case; matched in any case), recursively:
/// each folder's own files sorted by name, then its subfolders', in name order.
pub(crate) fn files_under(dir: &Path, exts: &[&str]) -> Result<Vec<std::path::PathBuf>, EvalError> {
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| EvalError::io(dir, e))? {
        let p = entry.map_err(|e| EvalError::io(dir, e))?.path();
        if p.is_dir() {
            subdirs.push(p);
        } else if p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
        {
            files.push(p);
        }
    }
    files.sort();
    subdirs.sort();
    for d in subdirs {
        files.extend(files_under(&d, exts)?);
    }
    Ok(files)
}

/// The file name without its extension: an image's name in folder formats.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
