//! Reading ground truth and detections in any format and resolving them to indices.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::classes::ClassList;
use crate::dataset::{Detection, Detections, GroundTruth, GtBox, Images};
use crate::formats::{self, BoxFormat, ClassKey, Format, RawDet, RawGroundTruth};
use crate::issues::{Issues, Kind};
use crate::EvalError;

/// Where the inputs are and how to read them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub gt: PathBuf,
    pub dets: PathBuf,
    /// Guessed from the paths when absent.
    pub gt_format: Option<Format>,
    pub dets_format: Option<Format>,
    pub classes: Option<PathBuf>,
    /// ILSVRC image list (`<image_id> <index>`): names the images of a submission and of a
    /// blacklist, and orders the images.
    pub image_list: Option<PathBuf>,
    /// `(image, class)` pairs to ignore, one per line: `<image index or name> <class>`.
    pub blacklist: Option<PathBuf>,
    /// Evaluate only these images (one name a line, with or without extension, as VOC's
    /// ImageSets): objects and detections of other images are left out.
    pub subset: Option<PathBuf>,
    /// Box layout of txt folders.
    pub box_format: BoxFormat,
    /// The images of YOLO labels (default: the `images` folder beside them).
    pub gt_images: Option<PathBuf>,
    pub strict: bool,
}

impl Inputs {
    /// Every file this evaluation reads: no report or plot may be written over one of them
    /// ([`crate::protect_inputs`]).
    pub fn protect(&self) {
        crate::protect_inputs(
            [&self.gt, &self.dets]
                .into_iter()
                .chain(&self.classes)
                .chain(&self.image_list)
                .chain(&self.blacklist)
                .chain(&self.subset),
        );
    }
}

/// Everything an evaluation needs.
#[derive(Debug)]
pub struct Loaded {
    pub gt: GroundTruth,
    pub dets: Detections,
    pub classes: ClassList,
    pub blacklist: HashSet<(usize, usize)>,
    pub issues: Issues,
}

impl Loaded {
    /// Evaluates under `metric` at `iou`, with the blacklist that was read.
    pub fn evaluate(&self, metric: crate::Metric, iou: f64) -> crate::Evaluation {
        let mut params = crate::EvalParams::new(metric);
        params.iou = iou;
        params.blacklist = self.blacklist.clone();
        crate::evaluate(&self.gt, &self.dets, self.classes.len(), &params)
    }
}

fn resolve_class(classes: &ClassList, key: &ClassKey) -> Option<usize> {
    match key {
        ClassKey::Name(n) => classes.index(n),
        ClassKey::Id(id) => classes.index_of_id(*id),
    }
}

/// The class list: `--classes`, else the file's own list (COCO), else the ILSVRC 200 when
/// every ground-truth class is one of them, else the names found, sorted.
fn choose_classes(path: Option<&Path>, raw: &RawGroundTruth) -> Result<ClassList, EvalError> {
    if let Some(p) = path {
        return ClassList::read(p);
    }
    if let Some(names) = &raw.class_names {
        return Ok(ClassList::from_names(names.clone()));
    }
    let names: BTreeSet<String> = raw
        .boxes
        .iter()
        .map(|b| match &b.class {
            ClassKey::Name(n) => n.clone(),
            ClassKey::Id(i) => i.to_string(),
        })
        .collect();
    if ClassList::all_ilsvrc(names.iter().map(String::as_str)) {
        return Ok(ClassList::ilsvrc200());
    }
    Ok(ClassList::from_names(names.into_iter().collect()))
}

/// Ground truth as the file writes it. `images` is where YOLO labels' images are (default:
/// beside them); `have_class_list` says a class list will name YOLO's class numbers.
pub fn read_raw_gt(
    path: &Path,
    format: Format,
    box_format: BoxFormat,
    images: Option<&Path>,
    have_class_list: bool,
    issues: &mut Issues,
) -> Result<RawGroundTruth, EvalError> {
    match format {
        Format::Yolo => formats::yolo::read_gt(path, images, have_class_list, issues),
        Format::VocXml => formats::voc_xml::read_dir(path, issues),
        Format::Coco => formats::coco::read_gt(path, issues),
        Format::Csv => formats::csv::read_gt(path, issues),
        Format::Txt => formats::txt::read_gt_dir(path, box_format, issues),
        Format::Ilsvrc => Err(EvalError::Usage(
            "ILSVRC ground truth comes as XML annotations (--gt FOLDER); the txt format is for submissions".into(),
        )),
    }
}

/// Detections as the file writes them (images and classes by name), for tools that need no
/// ground truth. `coco_names` maps COCO category ids to names (empty: ids as names).
pub fn read_raw_dets(
    path: &Path,
    format: Format,
    image_list: Option<&[String]>,
    box_format: BoxFormat,
    coco_names: &HashMap<i64, String>,
    issues: &mut Issues,
) -> Result<Vec<RawDet>, EvalError> {
    match format {
        Format::Ilsvrc => formats::ilsvrc::read_dets(path, image_list, issues),
        Format::Coco => formats::coco::read_dets(path, coco_names, issues),
        Format::Csv => formats::csv::read_dets(path, issues),
        Format::Txt => formats::txt::read_dets_dir(path, box_format, issues),
        Format::VocXml | Format::Yolo => Err(EvalError::Usage(format!(
            "{format:?} holds ground truth, not detections"
        ))),
    }
}

/// Interns the images (`first` in order, then those of the ground truth) and resolves each
/// object's class; objects of unknown classes are counted and dropped.
fn resolve_gt(
    raw: &RawGroundTruth,
    first: &[String],
    classes: &ClassList,
    issues: &mut Issues,
) -> Result<GroundTruth, EvalError> {
    let mut images = Images::default();
    for name in first.iter().chain(&raw.images) {
        images.intern(name);
    }
    for (name, file) in &raw.file_names {
        if let Some(i) = images.get(name) {
            images.set_file(i, file);
        }
    }
    let mut boxes = Vec::with_capacity(raw.boxes.len());
    for b in &raw.boxes {
        let image = images.intern(&b.image);
        match resolve_class(classes, &b.class) {
            Some(class) => boxes.push(GtBox {
                image,
                class,
                bbox: b.bbox,
                difficult: b.difficult,
                crowd: b.crowd,
                area: b.area,
            }),
            None => issues.record(Kind::UnknownClass, || {
                format!(
                    "ground truth of image {}: unknown class `{}`",
                    b.image, b.class
                )
            })?,
        }
    }
    Ok(GroundTruth { images, boxes })
}

/// Ground truth alone (for proposal recall): images in file order, the class list chosen as
/// for an evaluation, and the input issues.
/// `images` is where YOLO labels' images are (default: beside them).
pub fn load_gt(
    path: &Path,
    format: Option<Format>,
    classes: Option<&Path>,
    images: Option<&Path>,
    strict: bool,
) -> Result<(GroundTruth, ClassList, Issues), EvalError> {
    let mut issues = Issues::new(strict);
    let format = match format {
        Some(f) => f,
        None => Format::guess(path)?,
    };
    let raw = read_raw_gt(
        path,
        format,
        BoxFormat::default(),
        images,
        classes.is_some(),
        &mut issues,
    )?;
    let classes = choose_classes(classes, &raw)?;
    let gt = resolve_gt(&raw, &[], &classes, &mut issues)?;
    Ok((gt, classes, issues))
}

/// Image names listed one a line, as VOC's ImageSets and the raccoon set's train.txt, read by
/// [`crate::names`] (names may hold spaces and dots; a trailing integer field is dropped).
/// `what` names the list in the error when it names no images.
pub fn read_image_names(path: &Path, what: &str) -> Result<Vec<String>, EvalError> {
    Ok(crate::names::read_nonempty(path, what)?
        .into_iter()
        .map(|l| l.name)
        .collect())
}

/// A subset file's names, as keys (see [`crate::names::name_key`]); a line that ends in an
/// integer also counts as a whole name (an image called `IMG 2`).
fn read_subset(path: &Path) -> Result<(HashSet<String>, Vec<crate::names::Listed>), EvalError> {
    let listed = crate::names::read_nonempty(path, "subset")?;
    let mut keys = HashSet::new();
    for l in &listed {
        keys.extend(l.whole_key());
        keys.insert(l.key());
    }
    Ok((keys, listed))
}

/// Counts each line of the subset file at `path` that names none of `images` (a typo, a name
/// from another set): it was dropped without a word, and a run then scored 0.
fn count_unmatched(
    path: &Path,
    listed: &[crate::names::Listed],
    images: &[String],
    issues: &mut Issues,
) -> Result<(), EvalError> {
    let keys: HashSet<String> = images.iter().map(|n| crate::names::name_key(n)).collect();
    for l in listed {
        if !keys.contains(&l.key()) && !l.whole_key().is_some_and(|k| keys.contains(&k)) {
            issues.record(Kind::UnmatchedName, || {
                format!(
                    "{}:{}: {} names no image of the ground truth",
                    path.display(),
                    l.line,
                    l.name
                )
            })?;
        }
    }
    Ok(())
}

fn in_subset(subset: &HashSet<String>, image: &str) -> bool {
    subset.contains(&crate::names::name_key(image))
}

/// Resolves each detection's class and image; detections of unknown classes are counted and
/// dropped, those of images without ground truth counted and kept (false positives).
fn resolve_dets(
    raw_dets: Vec<RawDet>,
    subset: Option<&HashSet<String>>,
    classes: &ClassList,
    images: &mut Images,
    issues: &mut Issues,
) -> Result<Vec<Detection>, EvalError> {
    let mut dets = Vec::with_capacity(raw_dets.len());
    for d in raw_dets {
        if subset.is_some_and(|s| !in_subset(s, &d.image)) {
            continue;
        }
        let Some(class) = resolve_class(classes, &d.class) else {
            issues.record(Kind::UnknownClass, || {
                format!(
                    "detection on image {}: unknown class `{}`; dropped",
                    d.image, d.class
                )
            })?;
            continue;
        };
        let image = match images.get(&d.image) {
            Some(i) => i,
            None => {
                issues.record(Kind::UnknownImage, || {
                    format!("detection on image {}, which has no ground truth", d.image)
                })?;
                images.intern(&d.image)
            }
        };
        dets.push(Detection {
            image,
            class,
            score: d.score,
            bbox: d.bbox,
        });
    }
    Ok(dets)
}

/// Records made by a program rather than read from files (the Python package's lists): the
/// same class choice and resolution as [`load`], without image lists, subsets or blacklists.
pub fn load_records(
    raw_gt: RawGroundTruth,
    raw_dets: Vec<RawDet>,
    classes: Option<ClassList>,
    strict: bool,
) -> Result<Loaded, EvalError> {
    let mut issues = Issues::new(strict);
    let mut raw_gt = raw_gt;
    let mut kept = Vec::with_capacity(raw_gt.boxes.len());
    for (i, b) in raw_gt.boxes.drain(..).enumerate() {
        if formats::check_box(&mut issues, &b.bbox, &|| format!("ground-truth record {i}"))? {
            kept.push(b);
        }
    }
    raw_gt.boxes = kept;
    let mut dets = Vec::with_capacity(raw_dets.len());
    for (i, d) in raw_dets.into_iter().enumerate() {
        let at = || format!("detection record {i}");
        if formats::check_box(&mut issues, &d.bbox, &at)?
            && formats::check_score(&mut issues, d.score, &at)?
        {
            dets.push(d);
        }
    }
    let raw_dets = dets;
    let classes = match classes {
        Some(c) => c,
        None => choose_classes(None, &raw_gt)?,
    };
    let GroundTruth { mut images, boxes } = resolve_gt(&raw_gt, &[], &classes, &mut issues)?;
    let first_unknown_image = images.len();
    let dets = resolve_dets(raw_dets, None, &classes, &mut images, &mut issues)?;
    Ok(Loaded {
        gt: GroundTruth { images, boxes },
        dets: Detections {
            dets,
            first_unknown_image,
        },
        classes,
        blacklist: HashSet::new(),
        issues,
    })
}

/// Reads both inputs, picks the class list and resolves every record.
pub fn load(inputs: &Inputs) -> Result<Loaded, EvalError> {
    let mut issues = Issues::new(inputs.strict);
    let gt_format = match inputs.gt_format {
        Some(f) => f,
        None => Format::guess(&inputs.gt)?,
    };
    let mut raw_gt = read_raw_gt(
        &inputs.gt,
        gt_format,
        inputs.box_format,
        inputs.gt_images.as_deref(),
        inputs.classes.is_some(),
        &mut issues,
    )?;
    if raw_gt.images.is_empty() && raw_gt.boxes.is_empty() {
        // Nothing to evaluate against is an error, not a table of zeros with exit code 0.
        let why = issues.examples.first().cloned().unwrap_or_default();
        return Err(EvalError::Usage(format!(
            "{}: no ground-truth image could be read as {gt_format:?} ({issues}){}",
            inputs.gt.display(),
            if why.is_empty() {
                String::new()
            } else {
                format!("; first: {why}")
            }
        )));
    }
    let subset = match inputs.subset.as_deref() {
        Some(path) => {
            let (keys, listed) = read_subset(path)?;
            count_unmatched(path, &listed, &raw_gt.images, &mut issues)?;
            Some(keys)
        }
        None => None,
    };
    if let Some(subset) = &subset {
        raw_gt.images.retain(|n| in_subset(subset, n));
        raw_gt.boxes.retain(|b| in_subset(subset, &b.image));
    }
    let classes = choose_classes(inputs.classes.as_deref(), &raw_gt)?;
    let image_list = inputs
        .image_list
        .as_deref()
        .map(formats::ilsvrc::read_image_list)
        .transpose()?;

    // Images: the image list's order first (eval_detection.m walks val.txt), then the rest.
    let GroundTruth { mut images, boxes } = resolve_gt(
        &raw_gt,
        image_list.as_deref().unwrap_or(&[]),
        &classes,
        &mut issues,
    )?;
    let first_unknown_image = images.len();

    let dets_format = match inputs.dets_format {
        Some(f) => f,
        None => Format::guess(&inputs.dets)?,
    };
    if dets_format == Format::Ilsvrc
        && image_list.is_none()
        && !raw_gt.images.iter().all(|n| n.parse::<usize>().is_ok())
    {
        return Err(EvalError::Usage(
            "an ILSVRC submission numbers images by their line in the image list: pass --image-list".into(),
        ));
    }
    let coco_names = if dets_format == Format::Coco && gt_format == Format::Coco {
        formats::coco::category_names(&inputs.gt)?
    } else {
        HashMap::new()
    };
    let raw_dets = read_raw_dets(
        &inputs.dets,
        dets_format,
        image_list.as_deref(),
        inputs.box_format,
        &coco_names,
        &mut issues,
    )?;
    let dets = resolve_dets(
        raw_dets,
        subset.as_ref(),
        &classes,
        &mut images,
        &mut issues,
    )?;

    let mut blacklist = HashSet::new();
    if let Some(path) = &inputs.blacklist {
        let text = crate::names::read_lines_text(path)?;
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [image, class] = fields.as_slice() else {
                if !fields.is_empty() {
                    issues.record(Kind::Malformed, || {
                        format!("{}:{}: want `<image> <class>`", path.display(), i + 1)
                    })?;
                }
                continue;
            };
            let name = match (image.parse::<usize>(), &image_list) {
                (Ok(k), Some(list)) if k >= 1 && k <= list.len() => list[k - 1].as_str(),
                _ => image,
            };
            let class_index = classes
                .index(class)
                .or_else(|| class.parse().ok().and_then(|id| classes.index_of_id(id)));
            match (images.get(name), class_index) {
                (Some(im), Some(c)) => {
                    blacklist.insert((im, c));
                }
                _ => issues.record(Kind::Malformed, || {
                    format!("{}:{}: unknown image or class", path.display(), i + 1)
                })?,
            }
        }
    }
    Ok(Loaded {
        gt: GroundTruth { images, boxes },
        dets: Detections {
            dets,
            first_unknown_image,
        },
        classes,
        blacklist,
        issues,
    })
}
