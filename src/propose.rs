//! The proposal stage: selective search on decoded images with either backend, and its quality
//! against ground truth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use eval::{BBox, GroundTruth};
use proposals::{quality_curve, ImageProposals, Mode, QualityPoint, RgbImage, SearchParams};

/// Which selective search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// Proposals of one image.
#[derive(Debug, Clone)]
pub struct ImageRun {
    pub image: PathBuf,
    /// The image's name in the run (unique; see [`crate::decode::image_names`]).
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
        Backend::Ours => proposals::selective_search(img, params),
        #[cfg(feature = "opencv-contrib")]
        Backend::Opencv => crate::opencv_search::selective_search(
            img,
            mode,
            params.resize_width,
            params.min_box as i32,
        )
        .map_err(|e| format!("OpenCV: {e}"))?,
        #[cfg(not(feature = "opencv-contrib"))]
        Backend::Opencv => {
            let _ = mode;
            return Err("this binary was built without the opencv-contrib feature".into());
        }
    };
    Ok((boxes, start.elapsed().as_secs_f64()))
}

/// The file name without extension: how images meet their annotations.
pub fn image_key(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `name` as one CSV field (quoted where it holds a comma, quote or line break).
fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

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
        let mut s = String::from("image,rank,xmin,ymin,xmax,ymax\n");
        for r in runs {
            let key = csv_field(&r.name);
            for (i, b) in r.boxes.iter().enumerate() {
                s.push_str(&format!(
                    "{key},{},{},{},{},{}\n",
                    i + 1,
                    b.x1,
                    b.y1,
                    b.x2,
                    b.y2
                ));
            }
        }
        s.into_bytes()
    };
    eval::write_atomically(path, &bytes)
}

/// Reads proposals written by [`write_proposals`] (CSV or, for `.json`, JSON), ranked as written.
pub fn read_proposals(path: &Path) -> Result<HashMap<String, Vec<BBox>>, eval::EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| eval::EvalError::io(path, e))?;
    let bad = |line: usize, m: String| eval::EvalError::parse(path, line, m);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        let map: HashMap<String, Vec<[f64; 4]>> = serde_json::from_str(&text).map_err(|e| {
            bad(
                e.line(),
                format!("want {{\"image\": [[xmin, ymin, xmax, ymax], ...]}}: {e}"),
            )
        })?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.into_iter()
                        .map(|b| BBox::new(b[0], b[1], b[2], b[3]))
                        .collect(),
                )
            })
            .collect());
    }
    let mut ranked: HashMap<String, Vec<(u64, BBox)>> = HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parse = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| bad(i + 1, format!("`{s}` is not a number")))
        };
        let [image, rank, x1, y1, x2, y2] = f.as_slice() else {
            return Err(bad(i + 1, "want image,rank,xmin,ymin,xmax,ymax".into()));
        };
        let rank = rank
            .parse::<u64>()
            .map_err(|_| bad(i + 1, format!("rank `{rank}` is not a whole number")))?;
        ranked.entry(image.to_string()).or_default().push((
            rank,
            BBox::new(parse(x1)?, parse(y1)?, parse(x2)?, parse(y2)?),
        ));
    }
    Ok(ranked
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|(r, _)| *r);
            (k, v.into_iter().map(|(_, b)| b).collect())
        })
        .collect())
}
