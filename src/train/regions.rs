//! R-CNN's training regions: selective-search (or precomputed) proposals and the ground-truth
//! boxes of each image, labelled by overlap (IoU >= 0.5 with an object of class c: a positive
//! for c; anything else: background), kept on disk as an index of boxes, not pixels: 28 bytes a
//! region, memory-mapped, so that epochs redo no proposals and the index of ILSVRC DET's train
//! set at 2,000 proposals an image is tens of gigabytes, not tens of terabytes. The pixels of a
//! mini-batch are warped when it is drawn ([`super::batches`]).
//!
//! Each image's regions are stored together, its positives first: sampling maps a rank among
//! all positives (or all background regions) to its record through per-image counts alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use eval::{BBox, PixelConvention};
use memmap2::Mmap;
use proposals::rng::SplitMix64;
use proposals::{Mode, SearchParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{Object, TrainImage};
use super::{io_err, TrainError};
use crate::detect::decode::decode;
use crate::run::lock::FileLock;

/// One region and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Index of its image in the index's image list.
    pub image: u32,
    pub bbox: BBox,
    /// Classifier column: 0 for background.
    pub label: u32,
    /// Best IoU with an object of any class (1 for a ground-truth box itself).
    pub iou: f32,
}

/// Bytes of a region on disk: image, label (u32), IoU and the box (f32), little-endian.
pub const RECORD_BYTES: usize = 28;

impl Region {
    fn to_bytes(self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        b[0..4].copy_from_slice(&self.image.to_le_bytes());
        b[4..8].copy_from_slice(&self.label.to_le_bytes());
        b[8..12].copy_from_slice(&self.iou.to_le_bytes());
        let c = [self.bbox.x1, self.bbox.y1, self.bbox.x2, self.bbox.y2];
        for (k, v) in c.iter().enumerate() {
            b[12 + 4 * k..16 + 4 * k].copy_from_slice(&(*v as f32).to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8]) -> Region {
        let u = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let f = |at: usize| f32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        Region {
            image: u(0),
            label: u(4),
            iou: f(8),
            bbox: BBox::new(f(12) as f64, f(16) as f64, f(20) as f64, f(24) as f64),
        }
    }
}

/// Labels `proposals` against `objects`: ground-truth boxes first (positives of their class),
/// then every proposal by its best overlap. Returns `(bbox, label, iou)`.
pub fn label_regions(objects: &[Object], proposals: &[BBox], fg_iou: f64) -> Vec<(BBox, u32, f32)> {
    let mut out: Vec<(BBox, u32, f32)> = objects.iter().map(|o| (o.bbox, o.label, 1.0)).collect();
    for p in proposals {
        let best = objects
            .iter()
            .map(|o| (o.bbox.iou(p, PixelConvention::Inclusive), o.label))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let (iou, label) = match best {
            Some((iou, label)) if iou >= fg_iou => (iou, label),
            Some((iou, _)) => (iou, 0),
            None => (0.0, 0),
        };
        out.push((*p, label, iou as f32));
    }
    out
}

/// Which proposals file (or folder of shard files) made an index: its path, bytes and
/// modification time, so that an index of other proposals is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalsStamp {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: u64,
}

/// Precomputed proposals by image path, with the stamp of the files they came from. Those of a
/// large CSV are spilled to an unlinked scratch file as they are read (20 bytes a box) and read
/// back image by image, so that DET's hundreds of millions of boxes never sit in RAM.
#[derive(Debug, Default)]
pub struct Precomputed {
    pub stamp: Option<ProposalsStamp>,
    memory: std::collections::HashMap<PathBuf, Vec<BBox>>,
    spill: Option<Spill>,
}

/// Boxes on disk: `(rank u32, x1, y1, x2, y2 f32)` records; each image's spans of records.
#[derive(Debug)]
struct Spill {
    file: std::fs::File,
    spans: std::collections::HashMap<PathBuf, Vec<(u64, u32)>>,
}

/// Bytes of a spilled box.
const SPILLED_BOX: usize = 20;

impl Precomputed {
    /// Boxes held in memory (a JSON file, tests).
    pub fn in_memory(
        stamp: ProposalsStamp,
        boxes: std::collections::HashMap<PathBuf, Vec<BBox>>,
    ) -> Self {
        Precomputed {
            stamp: Some(stamp),
            memory: boxes,
            spill: None,
        }
    }

    /// Adds boxes held in memory.
    pub fn insert(&mut self, path: PathBuf, boxes: Vec<BBox>) {
        self.memory.insert(path, boxes);
    }

    /// A writer that spills boxes to a scratch file in `dir` (unlinked at once: nothing is
    /// left behind, even by a killed run).
    pub fn spill_writer(dir: &Path) -> Result<SpillWriter, TrainError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(format!("proposals-{}.spill", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let _ = std::fs::remove_file(&path);
        let writer =
            std::io::BufWriter::with_capacity(1 << 20, file.try_clone().map_err(io_err(&path))?);
        Ok(SpillWriter {
            file,
            writer,
            at: 0,
            spans: Default::default(),
            path,
        })
    }

    /// Takes the boxes a [`SpillWriter`] wrote.
    pub fn add_spill(&mut self, w: SpillWriter) -> Result<(), TrainError> {
        let path = w.path.clone();
        w.writer
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err(&path))?;
        self.spill = Some(Spill {
            file: w.file,
            spans: w.spans,
        });
        Ok(())
    }

    /// The boxes of `image`, ranked as written; `None` where the files have none.
    pub fn boxes_for(&self, image: &Path) -> Result<Option<Vec<BBox>>, String> {
        if let Some(b) = self.memory.get(image) {
            return Ok(Some(b.clone()));
        }
        let Some(spill) = &self.spill else {
            return Ok(None);
        };
        let Some(spans) = spill.spans.get(image) else {
            return Ok(None);
        };
        use std::os::unix::fs::FileExt;
        let mut ranked = Vec::new();
        for &(offset, count) in spans {
            let mut bytes = vec![0u8; count as usize * SPILLED_BOX];
            spill
                .file
                .read_exact_at(&mut bytes, offset)
                .map_err(|e| format!("reading back spilled proposals: {e}"))?;
            for r in bytes.chunks_exact(SPILLED_BOX) {
                let f = |k: usize| f32::from_le_bytes(r[k..k + 4].try_into().expect("4 bytes"));
                let rank = u32::from_le_bytes(r[0..4].try_into().expect("4 bytes"));
                ranked.push((
                    rank,
                    BBox::new(f(4) as f64, f(8) as f64, f(12) as f64, f(16) as f64),
                ));
            }
        }
        ranked.sort_by_key(|r| r.0);
        Ok(Some(ranked.into_iter().map(|r| r.1).collect()))
    }

    /// Images with boxes.
    pub fn images(&self) -> usize {
        self.memory.len() + self.spill.as_ref().map_or(0, |s| s.spans.len())
    }
}

/// Writes proposals to a [`Precomputed`]'s scratch file as they are read.
pub struct SpillWriter {
    file: std::fs::File,
    writer: std::io::BufWriter<std::fs::File>,
    at: u64,
    spans: std::collections::HashMap<PathBuf, Vec<(u64, u32)>>,
    path: PathBuf,
}

impl SpillWriter {
    /// Appends box `b` of rank `rank` to `image`'s boxes.
    pub fn push(&mut self, image: &Path, rank: u64, b: &BBox) -> Result<(), TrainError> {
        let mut r = [0u8; SPILLED_BOX];
        r[0..4].copy_from_slice(&(rank.min(u32::MAX as u64) as u32).to_le_bytes());
        for (k, v) in [b.x1, b.y1, b.x2, b.y2].iter().enumerate() {
            r[4 + 4 * k..8 + 4 * k].copy_from_slice(&(*v as f32).to_le_bytes());
        }
        self.writer.write_all(&r).map_err(io_err(&self.path))?;
        let spans = self.spans.entry(image.to_path_buf()).or_default();
        // Rows of one image come together in a file: one span, grown.
        match spans.last_mut() {
            Some((offset, count)) if *offset + *count as u64 * SPILLED_BOX as u64 == self.at => {
                *count += 1
            }
            _ => spans.push((self.at, 1)),
        }
        self.at += SPILLED_BOX as u64;
        Ok(())
    }
}

/// Everything that decides an index's contents; an index made with other settings is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    pub search_mode: String,
    pub search_scale: f32,
    /// Proposals per image, best first (R-CNN: about 2000).
    pub max_proposals: usize,
    /// Background regions kept per image, drawn at random from its proposals; every positive
    /// is kept. 0 keeps them all (R-CNN samples from all of them).
    pub max_background: usize,
    pub fg_iou: f64,
    pub seed: u64,
    pub images: Vec<TrainImage>,
    /// MultiBox's boxes, alone or added to selective search's (none: selective search only).
    #[serde(default)]
    pub learned: Option<crate::detect::propose::LearnedProposals>,
    /// The proposals file read instead of running selective search.
    #[serde(default)]
    pub proposals: Option<ProposalsStamp>,
}

impl RegionSpec {
    /// R-CNN's setting for `images`: fast selective search at GoogLeNet's doubled scale, the
    /// best 2000 proposals, IoU 0.5 for a positive, 256 background regions per image.
    pub fn new(images: Vec<TrainImage>, seed: u64) -> Self {
        RegionSpec {
            search_mode: "fast".into(),
            search_scale: 2.0,
            max_proposals: 2000,
            max_background: 256,
            fg_iou: 0.5,
            seed,
            images,
            learned: None,
            proposals: None,
        }
    }

    pub fn search_params(&self) -> SearchParams {
        let mode = if self.search_mode == "quality" {
            Mode::Quality
        } else {
            Mode::Fast
        };
        SearchParams {
            scale: self.search_scale,
            seed: self.seed,
            ..SearchParams::new(mode)
        }
    }
}

/// The index file beside the records: its spec, each image's counts and the images that
/// could not be read.
#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    spec: RegionSpec,
    /// `(positives, background)` of each image of `spec.images` (0, 0 where skipped).
    counts: Vec<(u32, u32)>,
    skipped: Vec<String>,
}

/// The labelled regions of a training set, memory-mapped.
pub struct RegionIndex {
    pub spec: RegionSpec,
    /// Images that could not be decoded while the index was built, with the reason.
    pub skipped: Vec<String>,
    /// Per image, positives (and background regions) before it: `images + 1` entries.
    positives_before: Vec<u64>,
    background_before: Vec<u64>,
    records: Mmap,
    /// Where the index lives (`dir/name`), for a pixel cache made from it.
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
}

impl std::fmt::Debug for RegionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionIndex")
            .field("regions", &self.len())
            .field("positives", &self.positives())
            .finish()
    }
}

/// `(positives, background)` of each image.
type Counts = Vec<(u32, u32)>;

/// One image's labelled regions (positives first), or why it was skipped.
type ImageRegions = Result<Vec<(BBox, u32, f32)>, String>;

fn image_regions(
    index: usize,
    image: &TrainImage,
    spec: &RegionSpec,
    precomputed: &Precomputed,
) -> ImageRegions {
    let mut boxes = if spec.proposals.is_some() {
        // An image the file lacks has its ground truth alone (warned about once, by the job).
        precomputed.boxes_for(&image.path)?.unwrap_or_default()
    } else {
        let img = decode(&image.path).map_err(|e| e.to_string())?;
        let search = || proposals::selective_search(&img, &spec.search_params());
        match &spec.learned {
            Some(l) => l.proposals_for(&image.path, search),
            None => search(),
        }
        .map_err(|e| e.to_string())?
    };
    boxes.truncate(spec.max_proposals);
    let labelled = label_regions(&image.objects, &boxes, spec.fg_iou);
    let (positives, mut background): (Vec<_>, Vec<_>) =
        labelled.into_iter().partition(|r| r.1 != 0);
    if spec.max_background > 0 {
        // A seeded partial shuffle picks the background kept.
        let mut rng = SplitMix64::new(spec.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
        let keep = background.len().min(spec.max_background);
        for i in 0..keep {
            let j = i + rng.below(background.len() - i);
            background.swap(i, j);
        }
        background.truncate(keep);
    }
    Ok(positives.into_iter().chain(background).collect())
}

impl RegionIndex {
    /// Opens the index `dir/name.*` if it was made with `spec`, else builds it: proposals
    /// (searched, or from `precomputed`) and labels of every image, images in parallel.
    /// `on_image` is called once per image.
    pub fn open_or_build(
        dir: &Path,
        name: &str,
        spec: &RegionSpec,
        precomputed: &Precomputed,
        on_image: &(dyn Fn() + Sync),
    ) -> Result<RegionIndex, TrainError> {
        let (index_path, records_path) = paths(dir, name);
        // Several processes may share one index (the members of an ensemble as array tasks of
        // a cluster job): the first to take the lock builds it, the others wait and reuse it.
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(format!("{name}.lock"));
        let _lock = FileLock::acquire(
            &lock_path,
            "another process is building or reading the region index",
        )?;
        if let Some(index) = Self::open(dir, name, Some(spec))? {
            tracing::info!(
                "region index {} reused: {} regions",
                records_path.display(),
                index.len()
            );
            return Ok(index);
        }
        let tmp = records_path.with_extension("regions.partial");
        // A failed build (a full disk) removes its partial file.
        let written = (|| -> Result<(Counts, Vec<String>), TrainError> {
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
            let mut counts = Vec::with_capacity(spec.images.len());
            let mut skipped = Vec::new();
            // Chunks of images in parallel, written in order, so memory stays bounded.
            let chunk = 4 * rayon::current_num_threads().max(1);
            for (c, images) in spec.images.chunks(chunk).enumerate() {
                let done: Vec<ImageRegions> = images
                    .par_iter()
                    .enumerate()
                    .map(|(i, image)| {
                        let r = image_regions(c * chunk + i, image, spec, precomputed);
                        on_image();
                        r
                    })
                    .collect();
                for (i, result) in done.into_iter().enumerate() {
                    let index = c * chunk + i;
                    match result {
                        Ok(labelled) => {
                            let positives = labelled.iter().filter(|r| r.1 != 0).count();
                            counts.push((positives as u32, (labelled.len() - positives) as u32));
                            for (bbox, label, iou) in labelled {
                                let r = Region {
                                    image: index as u32,
                                    bbox,
                                    label,
                                    iou,
                                };
                                file.write_all(&r.to_bytes()).map_err(io_err(&tmp))?;
                            }
                        }
                        Err(reason) => {
                            let path = spec.images[index].path.display();
                            tracing::warn!("{path}: {reason}; skipped");
                            skipped.push(format!("{path}: {reason}"));
                            counts.push((0, 0));
                        }
                    }
                }
            }
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))?;
            Ok((counts, skipped))
        })();
        let (counts, skipped) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &records_path).map_err(io_err(&records_path))?;
        let file = IndexFile {
            spec: spec.clone(),
            counts,
            skipped,
        };
        let json = serde_json::to_vec(&file).expect("the index serialises");
        eval::write_atomically(&index_path, &json)?;
        Self::open(dir, name, Some(spec))?.ok_or_else(|| {
            TrainError::Data(format!(
                "{}: the index just written does not read back",
                records_path.display()
            ))
        })
    }

    /// The index `dir/name.*` as it was built, whatever its settings (`rcnn train-heads` reads
    /// the index of a finished training run).
    pub fn open_existing(dir: &Path, name: &str) -> Result<RegionIndex, TrainError> {
        let (index_path, records_path) = paths(dir, name);
        if !index_path.is_file() {
            return Err(TrainError::Data(format!(
                "{}: no region index; run `rcnn train` first",
                index_path.display()
            )));
        }
        Self::open(dir, name, None)?.ok_or_else(|| {
            TrainError::Data(format!(
                "{}: unreadable, missing or truncated; run `rcnn train` again to rebuild the index",
                records_path.display()
            ))
        })
    }

    /// Whether `dir` holds an index called `name` made with other settings than `spec` (which
    /// [`RegionIndex::open_or_build`] would rebuild): `rcnn train --resume` refuses then.
    pub fn built_otherwise(dir: &Path, name: &str, spec: &RegionSpec) -> bool {
        let Ok(text) = std::fs::read(paths(dir, name).0) else {
            return false;
        };
        serde_json::from_slice::<IndexFile>(&text).map_or(true, |f| f.spec != *spec)
    }

    /// The index if it is whole and (with `spec`) made with `spec`; `None` to rebuild.
    fn open(
        dir: &Path,
        name: &str,
        spec: Option<&RegionSpec>,
    ) -> Result<Option<RegionIndex>, TrainError> {
        let (index_path, records_path) = paths(dir, name);
        let Ok(text) = std::fs::read(&index_path) else {
            return Ok(None);
        };
        let Ok(file) = serde_json::from_slice::<IndexFile>(&text) else {
            tracing::warn!("{}: unreadable region index", index_path.display());
            return Ok(None);
        };
        if spec.is_some_and(|s| *s != file.spec) {
            tracing::info!(
                "{}: made with other settings; rebuilding",
                index_path.display()
            );
            return Ok(None);
        }
        if file.counts.len() != file.spec.images.len() {
            tracing::warn!("{}: damaged region index", index_path.display());
            return Ok(None);
        }
        let Ok(records) = std::fs::File::open(&records_path) else {
            return Ok(None);
        };
        // Safety: the records file is ours, written once and renamed into place; nothing
        // modifies it while mapped (a rebuild writes a new file and renames it over).
        let records = unsafe { Mmap::map(&records) }.map_err(io_err(&records_path))?;
        // Mini-batches read 28 bytes here and there: without this, each read faults in the
        // kernel's read-around (64 KB or more), and a long run's resident memory grows toward
        // the whole index (tens of GB for DET) instead of the pages it needs.
        #[cfg(unix)]
        let _ = records.advise(memmap2::Advice::Random);
        let mut positives_before = Vec::with_capacity(file.counts.len() + 1);
        let mut background_before = Vec::with_capacity(file.counts.len() + 1);
        let (mut p, mut b) = (0u64, 0u64);
        for &(np, nb) in &file.counts {
            positives_before.push(p);
            background_before.push(b);
            p += np as u64;
            b += nb as u64;
        }
        positives_before.push(p);
        background_before.push(b);
        if records.len() as u64 != (p + b) * RECORD_BYTES as u64 {
            tracing::warn!("{}: truncated region index", records_path.display());
            return Ok(None);
        }
        Ok(Some(RegionIndex {
            spec: file.spec,
            skipped: file.skipped,
            positives_before,
            background_before,
            records,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }))
    }

    pub fn len(&self) -> usize {
        self.records.len() / RECORD_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn positives(&self) -> usize {
        *self.positives_before.last().expect("never empty") as usize
    }

    pub fn background(&self) -> usize {
        *self.background_before.last().expect("never empty") as usize
    }

    /// Bytes of the index on disk (records and the JSON beside them).
    pub fn disk_bytes(&self) -> u64 {
        let json = std::fs::metadata(paths(&self.dir, &self.name).0).map_or(0, |m| m.len());
        self.records.len() as u64 + json
    }

    /// Region `i`, in index order (image by image, each image's positives first).
    pub fn region(&self, i: usize) -> Region {
        Region::from_bytes(&self.records[i * RECORD_BYTES..(i + 1) * RECORD_BYTES])
    }

    /// Every region in index order.
    pub fn iter(&self) -> impl Iterator<Item = Region> + '_ {
        self.records
            .chunks_exact(RECORD_BYTES)
            .map(Region::from_bytes)
    }

    /// The records of image `image`: `first..first + positives + background`.
    pub fn image_range(&self, image: usize) -> std::ops::Range<usize> {
        let first = (self.positives_before[image] + self.background_before[image]) as usize;
        let end = (self.positives_before[image + 1] + self.background_before[image + 1]) as usize;
        first..end
    }

    /// The record of the `rank`-th positive over all images.
    fn positive(&self, rank: u64) -> usize {
        let image = self.positives_before.partition_point(|&p| p <= rank) - 1;
        (self.background_before[image] + rank) as usize
    }

    /// The record of the `rank`-th background region over all images.
    fn background_region(&self, rank: u64) -> usize {
        let image = self.background_before.partition_point(|&b| b <= rank) - 1;
        (self.positives_before[image + 1] + rank) as usize
    }

    /// The regions of step `step`: `n_pos` positives and `n_bg` background regions drawn
    /// uniformly across all images, each flipped left-right with probability one half when
    /// `flip`. A region of an image in `dropped` (found unreadable) is drawn again. A
    /// function of (seed, step, dropped) alone, so that a resumed run draws what the
    /// uninterrupted one would have. `None` when every region left is of a dropped image.
    pub fn sample(
        &self,
        seed: u64,
        step: u64,
        n_pos: usize,
        n_bg: usize,
        flip: bool,
        dropped: &std::collections::BTreeSet<u32>,
    ) -> Option<Vec<(usize, bool)>> {
        let mut rng = SplitMix64::new(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ step);
        let count = |before: &[u64]| -> u64 {
            dropped
                .iter()
                .fold(*before.last().expect("never empty"), |n, &i| {
                    n - (before[i as usize + 1] - before[i as usize])
                })
        };
        let (live_pos, live_bg) = (
            count(&self.positives_before),
            count(&self.background_before),
        );
        // Without positives (images without objects), the whole batch is background.
        let (n_pos, n_bg) = match (live_pos, live_bg) {
            (0, 0) => return None,
            (0, _) => (0, n_pos + n_bg),
            (_, 0) => (n_pos + n_bg, 0),
            _ => (n_pos, n_bg),
        };
        let mut picks = Vec::with_capacity(n_pos + n_bg);
        let (all_pos, all_bg) = (self.positives() as u64, self.background() as u64);
        let mut draw = |n: usize, all: u64, at: &dyn Fn(u64) -> usize| {
            for _ in 0..n {
                loop {
                    let i = at(rng.below(all as usize) as u64);
                    if !dropped.contains(&self.region(i).image) {
                        picks.push(i);
                        break;
                    }
                }
            }
        };
        draw(n_pos, all_pos, &|r| self.positive(r));
        draw(n_bg, all_bg, &|r| self.background_region(r));
        Some(
            picks
                .into_iter()
                .map(|i| (i, flip && rng.uniform() < 0.5))
                .collect(),
        )
    }
}

/// The two files of index `name` in `dir`: `name.index.json` and `name.regions`.
fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.index.json")),
        dir.join(format!("{name}.regions")),
    )
}

/// Where a run's region index (and pixel cache) lives: shared by every member of an ensemble.
pub fn cache_dir(out: &Path) -> PathBuf {
    out.join("cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_by_best_overlap() {
        let objects = [
            Object {
                label: 1,
                bbox: BBox::new(0.0, 0.0, 99.0, 99.0),
            },
            Object {
                label: 2,
                bbox: BBox::new(200.0, 200.0, 299.0, 299.0),
            },
        ];
        let proposals = [
            BBox::new(0.0, 0.0, 99.0, 49.0), // IoU 0.5 with the first: positive
            BBox::new(0.0, 0.0, 99.0, 48.0), // 0.49: background
            BBox::new(210.0, 200.0, 299.0, 299.0), // 0.9 with the second
            BBox::new(500.0, 500.0, 599.0, 599.0), // nothing
        ];
        let l = label_regions(&objects, &proposals, 0.5);
        let labels: Vec<u32> = l.iter().map(|r| r.1).collect();
        assert_eq!(labels, [1, 2, 1, 0, 2, 0]);
        assert_eq!(l[2].2, 0.5);
        assert!((l[3].2 - 0.49).abs() < 1e-6);
        assert!((l[4].2 - 0.9).abs() < 1e-6);
        assert_eq!(l[5].2, 0.0);
    }

    /// An index over three images with precomputed proposals: records by image, positives
    /// first; ranks map to the right records; dropped images are never drawn.
    #[test]
    fn index_layout_and_sampling() {
        let dir = tempfile::tempdir().unwrap();
        let obj = |x: f64| Object {
            label: 1,
            bbox: BBox::new(x, 0.0, x + 99.0, 99.0),
        };
        let images: Vec<TrainImage> = (0..3)
            .map(|i| TrainImage {
                path: dir.path().join(format!("{i}.jpg")),
                key: i.to_string(),
                objects: if i == 1 { vec![] } else { vec![obj(0.0)] },
            })
            .collect();
        let boxes: std::collections::HashMap<PathBuf, Vec<BBox>> = images
            .iter()
            .map(|im| {
                (
                    im.path.clone(),
                    vec![
                        BBox::new(300.0, 300.0, 399.0, 399.0),
                        BBox::new(0.0, 0.0, 99.0, 89.0), // IoU 0.9: positive where there is one
                    ],
                )
            })
            .collect();
        let spec = RegionSpec {
            proposals: Some(ProposalsStamp {
                path: "p.csv".into(),
                bytes: 1,
                modified: 1,
            }),
            ..RegionSpec::new(images, 7)
        };
        let pre = Precomputed::in_memory(spec.proposals.clone().unwrap(), boxes);
        let index = RegionIndex::open_or_build(dir.path(), "t", &spec, &pre, &|| {}).unwrap();
        // Image 0: gt + 1 positive + 1 background; image 1: 2 background; image 2 as image 0.
        assert_eq!(
            (index.len(), index.positives(), index.background()),
            (8, 4, 4)
        );
        assert_eq!(index.image_range(1), 3..5);
        assert!(index.disk_bytes() as usize > 8 * RECORD_BYTES);
        let labels: Vec<u32> = index.iter().map(|r| r.label).collect();
        assert_eq!(labels, [1, 1, 0, 0, 0, 1, 1, 0]);
        let images: Vec<u32> = index.iter().map(|r| r.image).collect();
        assert_eq!(images, [0, 0, 0, 1, 1, 2, 2, 2]);
        assert_eq!(index.region(4).bbox, BBox::new(0.0, 0.0, 99.0, 89.0));
        assert!((index.region(1).iou - 0.9).abs() < 1e-6);
        let positives: Vec<usize> = (0..4).map(|r| index.positive(r)).collect();
        assert_eq!(positives, [0, 1, 5, 6]);
        let background: Vec<usize> = (0..4).map(|r| index.background_region(r)).collect();
        assert_eq!(background, [2, 3, 4, 7]);
        let none = Default::default();
        let picks = index.sample(7, 3, 4, 12, true, &none).unwrap();
        assert_eq!(picks, index.sample(7, 3, 4, 12, true, &none).unwrap());
        assert!(picks[..4].iter().all(|p| index.region(p.0).label == 1));
        assert!(picks[4..].iter().all(|p| index.region(p.0).label == 0));
        let dropped: std::collections::BTreeSet<u32> = [0, 1].into();
        let picks = index.sample(7, 3, 4, 12, false, &dropped).unwrap();
        assert!(picks.iter().all(|p| index.region(p.0).image == 2));
        let all: std::collections::BTreeSet<u32> = [0, 1, 2].into();
        assert_eq!(index.sample(7, 3, 4, 12, false, &all), None);
        // Reopened as built, and refused as other settings.
        let again = RegionIndex::open_existing(dir.path(), "t").unwrap();
        assert_eq!(
            again.iter().collect::<Vec<_>>(),
            index.iter().collect::<Vec<_>>()
        );
        let other = RegionSpec {
            fg_iou: 0.6,
            ..spec.clone()
        };
        assert!(RegionIndex::built_otherwise(dir.path(), "t", &other));
        assert!(!RegionIndex::built_otherwise(dir.path(), "t", &spec));
    }
}
