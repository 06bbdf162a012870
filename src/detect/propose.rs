//! The proposal stage: selective search on decoded images with either backend, and its quality
//! against ground truth.

#[cfg(feature = "opencv-contrib")]
pub mod opencv;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::detect::decode::decode;
use crate::multibox::MultiBox;
use crate::run::progress::{warn, Progress};
use eval::{BBox, GroundTruth};
use proposals::{quality_curve, ImageProposals, Mode, QualityPoint, RgbImage, SearchParams};

/// Which selective search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Backend {
    /// Ours, in pure Rust (the `proposals` crate).
    Ours,
    /// OpenCV's ximgproc (needs the default `opencv-contrib` feature).
    Opencv,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Ours => "ours",
            Backend::Opencv => "opencv",
        }
    }
}

/// Where proposals come from: `rcnn proposals --mode`, and the same flag of `rcnn detect` and
/// `rcnn train`, so that a detector is trained on the proposals it will see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ProposalMode {
    /// Selective search, 8 strategies.
    Fast,
    /// Selective search, 80 strategies (Uijlings et al.).
    Quality,
    /// The best --multibox-top boxes of a MultiBox network (--multibox) alone.
    Multibox,
    /// GoogLeNet's detection entry: fast selective search plus the best --multibox-top boxes
    /// of a MultiBox network, duplicates removed.
    Entry,
}

impl ProposalMode {
    /// The selective search this mode runs, if any.
    pub fn search(self) -> Option<Mode> {
        match self {
            ProposalMode::Fast | ProposalMode::Entry => Some(Mode::Fast),
            ProposalMode::Quality => Some(Mode::Quality),
            ProposalMode::Multibox => None,
        }
    }

    /// Whether it needs a MultiBox network.
    pub fn learned(self) -> bool {
        matches!(self, ProposalMode::Multibox | ProposalMode::Entry)
    }

    pub fn name(self) -> &'static str {
        match self {
            ProposalMode::Fast => "fast",
            ProposalMode::Quality => "quality",
            ProposalMode::Multibox => "multibox",
            ProposalMode::Entry => "entry",
        }
    }
}

/// Two proposals this close (IoU, inclusive pixels) are one in the entry's mix.
pub const DUPLICATE_IOU: f64 = 0.9;

/// The entry's mix: the learned boxes first (best first), then selective search's, each box
/// dropped where it duplicates one already kept (IoU >= [`DUPLICATE_IOU`]).
pub fn mix(learned: &[BBox], search: &[BBox]) -> Vec<BBox> {
    let mut kept: Vec<BBox> = Vec::with_capacity(learned.len() + search.len());
    for b in learned.iter().chain(search) {
        let duplicate = kept
            .iter()
            .any(|k| k.iou(b, eval::PixelConvention::Inclusive) >= DUPLICATE_IOU);
        if !duplicate {
            kept.push(*b);
        }
    }
    kept
}

/// MultiBox's boxes for a set of images, as training uses them: alone (`--mode multibox`) or
/// mixed with selective search's (`--mode entry`). `source` names what made them (the model
/// file, its size, the boxes kept); two sets are equal when their sources are, so that a region
/// cache built from other boxes is rebuilt.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LearnedProposals {
    pub source: String,
    pub alone: bool,
    #[serde(skip)]
    pub boxes: std::sync::Arc<HashMap<PathBuf, Vec<BBox>>>,
}

impl PartialEq for LearnedProposals {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.alone == other.alone
    }
}

impl LearnedProposals {
    /// What the boxes of `path` are once `search` (selective search's, run only when needed)
    /// is added.
    pub fn proposals_for<E>(
        &self,
        path: &Path,
        search: impl FnOnce() -> Result<Vec<BBox>, E>,
    ) -> Result<Vec<BBox>, E> {
        let learned = self.boxes.get(path).map_or(&[][..], Vec::as_slice);
        Ok(if self.alone {
            learned.to_vec()
        } else {
            mix(learned, &search()?)
        })
    }
}

/// The best `top` MultiBox boxes of each of `images`, decoded here (in parallel) and run on
/// the device `batch` images at a time; `on_image` is called after each image (one that cannot
/// be read is left out: the stage that decodes it next reports it). Returns boxes by image
/// path and the seconds spent per image (decode excluded).
pub fn multibox_proposals(
    mb: &crate::multibox::MultiBox,
    images: &[PathBuf],
    top: usize,
    batch: usize,
    mut on_image: impl FnMut(),
) -> (HashMap<PathBuf, Vec<BBox>>, f64) {
    use rayon::prelude::*;
    let mut out = HashMap::new();
    let mut seconds = 0.0;
    for chunk in images.chunks(batch.max(1)) {
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|p| crate::detect::decode::decode(p).map_err(|e| e.to_string()))
            .collect();
        let ok: Vec<(&PathBuf, &RgbImage)> = chunk
            .iter()
            .zip(&decoded)
            .filter_map(|(p, d)| d.as_ref().ok().map(|img| (p, img)))
            .collect();
        let start = Instant::now();
        let found = mb.propose(&ok.iter().map(|x| x.1).collect::<Vec<_>>(), top);
        seconds += start.elapsed().as_secs_f64();
        for ((p, _), boxes) in ok.iter().zip(found) {
            out.insert((*p).clone(), boxes.into_iter().map(|(b, _)| b).collect());
        }
        chunk.iter().for_each(|_| on_image());
    }
    let n = out.len().max(1) as f64;
    (out, seconds / n)
}

/// Proposals of one image.
#[derive(Debug, Clone)]
pub struct ImageRun {
    pub image: PathBuf,
    /// The image's name in the run (unique; see [`crate::detect::decode::image_names`]).
    pub name: String,
    pub boxes: Vec<BBox>,
    pub seconds: f64,
}

/// Ranked proposals for `img`, timed.
pub fn propose(
    img: &RgbImage,
    backend: Backend,
    mode: Mode,
    params: &SearchParams,
) -> Result<(Vec<BBox>, f64), String> {
    let start = Instant::now();
    let boxes = match backend {
        Backend::Ours => proposals::selective_search(img, params).map_err(|e| e.to_string())?,
        #[cfg(feature = "opencv-contrib")]
        Backend::Opencv => crate::detect::propose::opencv::selective_search(
            img,
            mode,
            params.resize_width,
            params.min_box as i32,
        )?,
        #[cfg(not(feature = "opencv-contrib"))]
        Backend::Opencv => {
            let _ = mode;
            return Err("this binary was built without the opencv-contrib feature".into());
        }
    };
    Ok((boxes, start.elapsed().as_secs_f64()))
}

pub use crate::detect::decode::image_key;

/// Objects `(class, box)` of each run's image (none where the ground truth lacks the image).
pub fn objects_per_run(runs: &[ImageRun], gt: &GroundTruth) -> Vec<Vec<(usize, BBox)>> {
    let mut by_image: HashMap<usize, Vec<(usize, BBox)>> = HashMap::new();
    for g in &gt.boxes {
        by_image.entry(g.image).or_default().push((g.class, g.bbox));
    }
    runs.iter()
        .map(|r| {
            gt.images
                .get(&r.name)
                .and_then(|i| by_image.get(&i))
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// Quality curve of the runs at each `top`.
pub fn quality(
    runs: &[ImageRun],
    objects: &[Vec<(usize, BBox)>],
    n_classes: usize,
    tops: &[usize],
) -> Vec<QualityPoint> {
    let images: Vec<ImageProposals> = runs
        .iter()
        .zip(objects)
        .map(|(r, o)| ImageProposals {
            gt: o,
            proposals: &r.boxes,
        })
        .collect();
    quality_curve(&images, n_classes, tops)
}

/// The numbers of boxes at which recall is reported (and plotted).
pub const TOPS: [usize; 13] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    usize::MAX,
];

/// Writes proposals as CSV (`image,rank,xmin,ymin,xmax,ymax`) or, for `.json`, as
/// `{"image": [[xmin, ymin, xmax, ymax], ...]}`, atomically.
pub fn write_proposals(path: &Path, runs: &[ImageRun]) -> Result<(), eval::EvalError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let bytes = if is_json {
        let map: serde_json::Map<String, serde_json::Value> = runs
            .iter()
            .map(|r| {
                let boxes: Vec<[f64; 4]> =
                    r.boxes.iter().map(|b| [b.x1, b.y1, b.x2, b.y2]).collect();
                (r.name.clone(), serde_json::json!(boxes))
            })
            .collect();
        serde_json::to_vec(&map).expect("JSON serialises")
    } else {
        // The csv crate quotes names that hold commas or quotes; the reader's crate reads them.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["image", "rank", "xmin", "ymin", "xmax", "ymax"])
            .expect("in memory");
        for r in runs {
            for (i, b) in r.boxes.iter().enumerate() {
                w.write_record([
                    r.name.clone(),
                    (i + 1).to_string(),
                    b.x1.to_string(),
                    b.y1.to_string(),
                    b.x2.to_string(),
                    b.y2.to_string(),
                ])
                .expect("in memory");
            }
        }
        w.into_inner().expect("in memory")
    };
    eval::write_atomically(path, &bytes)
}

/// Checks one proposal read at `at`: a box with a NaN, infinite or absurd coordinate, or an
/// inverted one, is counted in `issues` and dropped (`Ok(None)`).
fn checked_box(
    issues: &mut eval::Issues,
    v: [f64; 4],
    at: &dyn Fn() -> String,
) -> Result<Option<BBox>, eval::EvalError> {
    let b = BBox::new(v[0], v[1], v[2], v[3]);
    if !eval::formats::check_box(issues, &b, at)? {
        return Ok(None);
    }
    if b.x2 < b.x1 || b.y2 < b.y1 {
        // check_box counted it; a proposal cannot be warped inside out.
        return Ok(None);
    }
    Ok(Some(b))
}

/// Reads proposals written by [`write_proposals`] (CSV or, for `.json`, JSON), ranked as written.
/// Bad lines and boxes (NaN, infinite, absurd or inverted coordinates) are counted in `issues`
/// with their file and line (or image) and skipped; with a strict `issues`, the first stops.
pub fn read_proposals(
    path: &Path,
    issues: &mut eval::Issues,
) -> Result<HashMap<String, Vec<BBox>>, eval::EvalError> {
    use eval::issues::Kind;
    let bad = |line: usize, m: String| eval::EvalError::parse(path, line, m);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        let text = eval::names::read_text(path)?;
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| {
                bad(
                    e.line(),
                    format!("want {{\"image\": [[xmin, ymin, xmax, ymax], ...]}}: {e}"),
                )
            })?;
        let mut out = HashMap::new();
        for (image, boxes) in map {
            let mut kept = Vec::new();
            let items = boxes.as_array().cloned().unwrap_or_default();
            if !boxes.is_array() {
                issues.record(Kind::Malformed, || {
                    format!("{}: image {image}: not a list of boxes", path.display())
                })?;
            }
            for (i, b) in items.iter().enumerate() {
                let at = || format!("{}: image {image}, box {i}", path.display());
                let v: Option<Vec<f64>> = b
                    .as_array()
                    .filter(|a| a.len() == 4)
                    .and_then(|a| a.iter().map(serde_json::Value::as_f64).collect());
                match v {
                    Some(v) => {
                        if let Some(b) = checked_box(issues, [v[0], v[1], v[2], v[3]], &at)? {
                            kept.push(b);
                        }
                    }
                    None => issues.record(Kind::Malformed, || {
                        format!("{}: want [xmin, ymin, xmax, ymax], got {b}", at())
                    })?,
                }
            }
            out.insert(image, kept);
        }
        return Ok(out);
    }
    let mut ranked: HashMap<String, Vec<(u64, BBox)>> = HashMap::new();
    for_each_csv_proposal(path, issues, |image, rank, b| {
        ranked.entry(image.to_string()).or_default().push((rank, b));
    })?;
    Ok(ranked
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|(r, _)| *r);
            (k, v.into_iter().map(|(_, b)| b).collect())
        })
        .collect())
}

/// Calls `f(image, rank, box)` for each good row of a proposals CSV, in file order, without
/// holding the file in memory (a DET-sized file is gigabytes). Bad rows are counted in `issues`
/// with their line and skipped.
pub fn for_each_csv_proposal(
    path: &Path,
    issues: &mut eval::Issues,
    mut f: impl FnMut(&str, u64, BBox),
) -> Result<(), eval::EvalError> {
    use eval::issues::Kind;
    let bad = |line: usize, m: String| eval::EvalError::parse(path, line, m);
    let file = std::fs::File::open(path).map_err(|e| eval::EvalError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(eval::names::LineBounded::new(std::io::BufReader::new(file)));
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(bad(line, e.to_string()));
                }
                issues.record(Kind::Malformed, || {
                    format!("{}:{line}: {e}", path.display())
                })?;
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let at = || format!("{}:{line}", path.display());
        let parsed = (|| {
            if record.len() != 6 {
                return Err(format!(
                    "expected 6 columns (image,rank,xmin,ymin,xmax,ymax), got {}",
                    record.len()
                ));
            }
            let rank = record[1]
                .parse::<u64>()
                .map_err(|_| format!("rank `{}` is not a whole number", &record[1]))?;
            let mut v = [0.0; 4];
            for (o, f) in v.iter_mut().zip(record.iter().skip(2)) {
                *o = f.parse().map_err(|_| format!("`{f}` is not a number"))?;
            }
            Ok((rank, v))
        })();
        match parsed {
            Ok((rank, v)) => {
                if let Some(b) = checked_box(issues, v, &at)? {
                    f(&record[0], rank, b);
                }
            }
            Err(m) => issues.record(Kind::Malformed, || format!("{}: {m}", at()))?,
        }
    }
    Ok(())
}

/// Decodes and searches every image, reporting to `progress`; unreadable images are named in a
/// warning and skipped. Returns the runs and the number skipped.
pub fn run_all(
    images: &[PathBuf],
    backend: Backend,
    mode: Mode,
    params: &SearchParams,
    top: Option<usize>,
    progress: &dyn Progress,
) -> (Vec<ImageRun>, usize) {
    run_with(images, backend, Some(mode), params, None, top, progress)
}

/// [`run_all`] for any source: selective search (`mode`), MultiBox's best `learned.1` boxes
/// (batched on the device, 16 images at a time), or both mixed.
pub fn run_with(
    images: &[PathBuf],
    backend: Backend,
    mode: Option<Mode>,
    params: &SearchParams,
    learned: Option<(&MultiBox, usize)>,
    top: Option<usize>,
    progress: &dyn Progress,
) -> (Vec<ImageRun>, usize) {
    let name = match (mode, learned) {
        (Some(m), None) => format!("{} {m}", backend.name()),
        (Some(m), Some(_)) => format!("{} {m} + multibox", backend.name()),
        (None, _) => "multibox".to_string(),
    };
    progress.start(&name, images.len() as u64);
    let mut runs = Vec::with_capacity(images.len());
    let mut skipped = 0;
    let names = crate::detect::decode::image_names(images);
    let names: Vec<(&PathBuf, String)> = images.iter().zip(names).collect();
    for chunk in names.chunks(16) {
        let decoded: Vec<Result<RgbImage, String>> = chunk
            .iter()
            .map(|(p, _)| decode(p).map_err(|e| e.to_string()))
            .collect();
        // MultiBox sees the chunk's images as one batch; its time is shared among them.
        let mut learned_boxes = std::collections::HashMap::new();
        let mut learned_seconds = 0.0;
        if let Some((mb, n)) = learned {
            let ok: Vec<(usize, &RgbImage)> = decoded
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.as_ref().ok().map(|img| (i, img)))
                .collect();
            let start = std::time::Instant::now();
            let found = mb.propose(&ok.iter().map(|x| x.1).collect::<Vec<_>>(), n);
            learned_seconds = start.elapsed().as_secs_f64() / ok.len().max(1) as f64;
            for ((i, _), boxes) in ok.iter().zip(found) {
                learned_boxes.insert(*i, boxes.into_iter().map(|(b, _)| b).collect::<Vec<_>>());
            }
        }
        for (i, ((path, name), img)) in chunk.iter().zip(decoded).enumerate() {
            let result = img.and_then(|img| {
                let learned = learned_boxes.remove(&i);
                match (mode, learned) {
                    (Some(m), None) => propose(&img, backend, m, params),
                    (Some(m), Some(l)) => propose(&img, backend, m, params)
                        .map(|(ss, s)| (mix(&l, &ss), s + learned_seconds)),
                    (None, Some(l)) => Ok((l, learned_seconds)),
                    (None, None) => Ok((Vec::new(), 0.0)),
                }
            });
            let (path, name) = ((*path).clone(), name.clone());
            match result {
                Ok((mut boxes, seconds)) => {
                    if let Some(n) = top {
                        boxes.truncate(n);
                    }
                    runs.push(ImageRun {
                        image: path,
                        name,
                        boxes,
                        seconds,
                    });
                }
                Err(e) => {
                    warn(progress, format!("skipped: {e}"));
                    skipped += 1;
                }
            }
            progress.advance();
        }
    }
    progress.finish();
    (runs, skipped)
}

/// Where proposals come from, as `rcnn proposals`, `rcnn detect` and `rcnn train` take it.
#[derive(Debug, Clone)]
pub struct ProposalSource {
    pub mode: ProposalMode,
    /// Multiplies selective search's segmentation scale k and minimum size (the entry: 2).
    pub scale: f32,
    /// A MultiBox model file (`rcnn train-multibox`), for the learned modes.
    pub multibox: Option<PathBuf>,
    /// MultiBox boxes kept per image (the entry: 200).
    pub multibox_top: usize,
}

/// Why a [`ProposalSource`] cannot give proposals.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
}

impl ProposalSource {
    /// The MultiBox network the mode needs, loaded onto `device`; a mode that needs none with
    /// --multibox, or one that needs it without, is refused.
    pub fn load_multibox<E: From<SourceError>>(
        &self,
        device: impl FnOnce() -> Result<tch::Device, E>,
    ) -> Result<Option<MultiBox>, E> {
        let refuse = |m: String| E::from(SourceError::Refused(m));
        match (&self.multibox, self.mode.learned()) {
            (Some(path), true) => Ok(Some(
                MultiBox::load(path, device()?).map_err(|e| E::from(e.into()))?,
            )),
            (None, true) => Err(refuse(format!(
                "--mode {} needs --multibox FILE (a network from `rcnn train-multibox`)",
                self.mode.name()
            ))),
            (Some(_), false) => Err(refuse(format!(
                "--multibox is used by --mode multibox or entry, not --mode {}",
                self.mode.name()
            ))),
            (None, false) => Ok(None),
        }
    }

    /// MultiBox's best boxes for `images` (batched on the device; `on_image` after each), as the
    /// mode uses them, and the seconds per image; `None` for selective search alone.
    pub fn learned(
        &self,
        multibox: Option<&MultiBox>,
        images: &[PathBuf],
        on_image: impl FnMut(),
    ) -> Option<(LearnedProposals, f64)> {
        let mb = multibox?;
        let (boxes, seconds) = multibox_proposals(mb, images, self.multibox_top, 16, on_image);
        let file = self.multibox.as_deref().expect("loaded from a file");
        let learned = LearnedProposals {
            source: format!(
                "{} ({} bytes), top {}",
                file.display(),
                std::fs::metadata(file).map_or(0, |m| m.len()),
                self.multibox_top
            ),
            alone: self.mode == ProposalMode::Multibox,
            boxes: std::sync::Arc::new(boxes),
        };
        Some((learned, seconds))
    }

    /// Selective search's settings (R-CNN's 500 px width, seed 0), for the modes that run it.
    pub fn search_params(&self) -> Option<SearchParams> {
        self.mode
            .search()
            .map(|m| search_params(m, 500, self.scale, 0))
    }

    /// A short description for logs and tables.
    pub fn describe(&self) -> String {
        let ss = |m: &str| format!("selective search {m} x{}", self.scale);
        match self.mode {
            ProposalMode::Fast => ss("fast"),
            ProposalMode::Quality => ss("quality"),
            ProposalMode::Multibox => format!("MultiBox top {}", self.multibox_top),
            ProposalMode::Entry => format!("{} + MultiBox top {}", ss("fast"), self.multibox_top),
        }
    }
}

/// Selective search's settings: images resized to `width` (0 keeps the size), the segmentation
/// scale multiplied by `scale`, the ranking seeded by `seed`.
pub fn search_params(mode: Mode, width: usize, scale: f32, seed: u64) -> SearchParams {
    SearchParams {
        resize_width: (width > 0).then_some(width),
        scale,
        seed,
        ..SearchParams::new(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_proposal_lines_and_boxes_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("p.csv");
        std::fs::write(
            &csv,
            "image,rank,xmin,ymin,xmax,ymax\n\
             a,2,5,5,20,20\n\
             a,1,0,0,10,10\n\
             a,3,NaN,0,10,10\n\
             a,4,0,0,1e308,10\n\
             a,5,0,0,inf,10\n\
             a,6,10,10,0,0\n\
             a,x,0,0,1,1\n\
             a,7,0,0\n\
             \"b, the second\",1,1,2,3,4\n",
        )
        .unwrap();
        let mut issues = eval::Issues::new(false);
        let p = read_proposals(&csv, &mut issues).unwrap();
        assert_eq!(
            p["a"],
            vec![
                BBox::new(0.0, 0.0, 10.0, 10.0),
                BBox::new(5.0, 5.0, 20.0, 20.0)
            ]
        );
        assert_eq!(p["b, the second"], vec![BBox::new(1.0, 2.0, 3.0, 4.0)]);
        assert_eq!(
            (
                issues.non_finite_boxes,
                issues.inverted_boxes,
                issues.malformed
            ),
            (3, 1, 2)
        );
        assert!(issues.examples.iter().any(|e| e.ends_with("p.csv:5: box [0.0, 0.0, 1e308, 10.0] has a NaN, infinite or absurd coordinate; dropped")), "{:?}", issues.examples);
        // --strict: the first bad line stops.
        let err = read_proposals(&csv, &mut eval::Issues::new(true)).unwrap_err();
        assert!(err.to_string().contains("p.csv:4"), "{err}");
        // JSON has no NaN, but 1e308 and short boxes.
        let json = dir.path().join("p.json");
        std::fs::write(
            &json,
            r#"{"a": [[0, 0, 10, 10], [0, 0, 1e308, 1], [1, 2]]}"#,
        )
        .unwrap();
        let mut issues = eval::Issues::new(false);
        let p = read_proposals(&json, &mut issues).unwrap();
        assert_eq!(p["a"], vec![BBox::new(0.0, 0.0, 10.0, 10.0)]);
        assert_eq!((issues.non_finite_boxes, issues.malformed), (1, 1));
    }

    #[test]
    fn written_proposals_read_back_with_awkward_names() {
        let dir = tempfile::tempdir().unwrap();
        let runs = vec![ImageRun {
            image: PathBuf::from("x/a, \"b\".jpg"),
            name: "a, \"b\"".into(),
            boxes: vec![BBox::new(1.5, 2.0, 3.0, 4.0), BBox::new(0.0, 0.0, 9.0, 9.0)],
            seconds: 0.0,
        }];
        for file in ["p.csv", "p.json"] {
            let path = dir.path().join(file);
            write_proposals(&path, &runs).unwrap();
            let mut issues = eval::Issues::new(true);
            let back = read_proposals(&path, &mut issues).unwrap();
            assert_eq!(back["a, \"b\""], runs[0].boxes, "{file}");
        }
    }
}
