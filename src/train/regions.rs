//! R-CNN's training regions: selective-search proposals and the ground-truth boxes of each
//! image, labelled by overlap (IoU >= 0.5 with an object of class c: a positive for c; anything
//! else: background), warped once with the inference warp and kept on disk as bytes, memory
//! mapped, so that epochs redo neither proposals nor warps.

use std::io::Write;
use std::path::{Path, PathBuf};

use eval::{BBox, PixelConvention};
use memmap2::Mmap;
use proposals::rng::SplitMix64;
use proposals::{Mode, SearchParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::data::{Object, TrainImage};
use super::{io_err, TrainError};
use crate::detect::decode::decode;
use crate::detect::warp::{WarpParams, WarpSource};
use crate::model::normalise::Normaliser;
use crate::run::lock::FileLock;
use crate::run::tensor::pinned;

/// One warped region and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Index of its image in the cache's image list.
    pub image: u32,
    pub bbox: BBox,
    /// Classifier column: 0 for background.
    pub label: u32,
    /// Best IoU with an object of any class (1 for a ground-truth box itself).
    pub iou: f32,
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

/// Everything that decides a cache's contents; a cache made with other settings is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheSpec {
    pub input_size: i32,
    pub padding: i32,
    pub mean: [f32; 3],
    pub search_mode: String,
    pub search_scale: f32,
    /// Proposals per image, best first (R-CNN: about 2000).
    pub max_proposals: usize,
    /// Background regions kept per image, drawn at random from its proposals; every positive
    /// is kept. R-CNN samples from all of them; the cap bounds the cache's size.
    pub max_background: usize,
    pub fg_iou: f64,
    pub seed: u64,
    pub images: Vec<TrainImage>,
    /// MultiBox's boxes, alone or added to selective search's (none: selective search only).
    #[serde(default)]
    pub learned: Option<crate::detect::propose::LearnedProposals>,
}

impl CacheSpec {
    /// R-CNN's setting for `images` at `input_size`: 16 px of context, fast selective search
    /// at GoogLeNet's doubled scale, the best 2000 proposals, IoU 0.5 for a positive, 256
    /// background regions per image.
    pub fn new(images: Vec<TrainImage>, input_size: i32, mean: [f32; 3], seed: u64) -> Self {
        CacheSpec {
            input_size,
            padding: 16,
            mean,
            search_mode: "fast".into(),
            search_scale: 2.0,
            max_proposals: 2000,
            max_background: 256,
            fg_iou: 0.5,
            seed,
            images,
            learned: None,
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

    fn warp(&self) -> WarpParams {
        WarpParams {
            padding: self.padding,
            ..WarpParams::new(self.input_size, self.mean, [1.0; 3])
        }
    }
}

/// The cache's index file: its spec, its regions, and the images that could not be read.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    spec: CacheSpec,
    regions: Vec<Region>,
    skipped: Vec<String>,
}

/// Warped regions, memory-mapped, with their labels.
pub struct RegionCache {
    pub spec: CacheSpec,
    pub regions: Vec<Region>,
    /// Images that could not be decoded, with the reason.
    pub skipped: Vec<String>,
    positives: Vec<usize>,
    background: Vec<usize>,
    data: Mmap,
}

impl std::fmt::Debug for RegionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCache")
            .field("regions", &self.regions.len())
            .field("positives", &self.positives.len())
            .finish()
    }
}

/// One image's labelled, warped regions, or why it was skipped.
type ImageRegions = Result<(Vec<(BBox, u32, f32)>, Vec<u8>), String>;

fn image_regions(index: usize, image: &TrainImage, spec: &CacheSpec) -> ImageRegions {
    let img = decode(&image.path).map_err(|e| e.to_string())?;
    let search = || proposals::selective_search(&img, &spec.search_params());
    let mut boxes = match &spec.learned {
        Some(l) => l.proposals_for(&image.path, search),
        None => search(),
    }
    .map_err(|e| e.to_string())?;
    boxes.truncate(spec.max_proposals);
    let labelled = label_regions(&image.objects, &boxes, spec.fg_iou);
    let (positives, background): (Vec<_>, Vec<_>) = labelled.into_iter().partition(|r| r.1 != 0);
    let mut background = background;
    // A seeded partial shuffle picks the background kept.
    let mut rng = SplitMix64::new(spec.seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
    let keep = background.len().min(spec.max_background);
    for i in 0..keep {
        let j = i + rng.below(background.len() - i);
        background.swap(i, j);
    }
    background.truncate(keep);
    let regions: Vec<_> = positives.into_iter().chain(background).collect();
    let src = WarpSource::new(&img).map_err(|e| format!("OpenCV: {e}"))?;
    let warp = spec.warp();
    let len = crop_len(spec.input_size);
    let mut bytes = vec![0u8; regions.len() * len];
    for (r, out) in regions.iter().zip(bytes.chunks_exact_mut(len)) {
        src.warp_u8_into(&r.0, &warp, out)
            .map_err(|e| format!("OpenCV: {e}"))?;
    }
    Ok((regions, bytes))
}

fn crop_len(size: i32) -> usize {
    3 * size as usize * size as usize
}

impl RegionCache {
    /// Opens the cache `dir/name.*` if it was made with `spec`, else builds it: proposals,
    /// labels and warps of every image, images in parallel. `on_image` is called once per image.
    pub fn open_or_build(
        dir: &Path,
        name: &str,
        spec: &CacheSpec,
        on_image: &(dyn Fn() + Sync),
    ) -> Result<RegionCache, TrainError> {
        let index_path = dir.join(format!("{name}.json"));
        let data_path = dir.join(format!("{name}.u8"));
        // Several processes may share one cache (the members of an ensemble as array tasks of
        // a cluster job): the first to take the lock builds it, the others wait and reuse it.
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(format!("{name}.lock"));
        let _lock = FileLock::acquire(
            &lock_path,
            "another process is building or reading the region cache",
        )?;
        if let Some(cache) = Self::open(&index_path, &data_path, spec)? {
            tracing::info!(
                "region cache {} reused: {} regions",
                data_path.display(),
                cache.regions.len()
            );
            return Ok(cache);
        }
        let tmp = data_path.with_extension("u8.partial");
        // A failed build (a full disk) removes its partial file: it may be gigabytes.
        let written = (|| -> Result<(Vec<Region>, Vec<String>), TrainError> {
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
            let mut regions = Vec::new();
            let mut skipped = Vec::new();
            // Chunks of images in parallel, written in order, so memory stays bounded.
            let chunk = 4 * rayon::current_num_threads().max(1);
            for (c, images) in spec.images.chunks(chunk).enumerate() {
                let done: Vec<ImageRegions> = images
                    .par_iter()
                    .enumerate()
                    .map(|(i, image)| {
                        let r = image_regions(c * chunk + i, image, spec);
                        on_image();
                        r
                    })
                    .collect();
                for (i, result) in done.into_iter().enumerate() {
                    let index = c * chunk + i;
                    match result {
                        Ok((labelled, bytes)) => {
                            file.write_all(&bytes).map_err(io_err(&tmp))?;
                            regions.extend(labelled.into_iter().map(|(bbox, label, iou)| Region {
                                image: index as u32,
                                bbox,
                                label,
                                iou,
                            }));
                        }
                        Err(reason) => {
                            tracing::warn!(
                                "{}: {reason}; skipped",
                                spec.images[index].path.display()
                            );
                            skipped
                                .push(format!("{}: {reason}", spec.images[index].path.display()));
                        }
                    }
                }
            }
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))?;
            Ok((regions, skipped))
        })();
        let (regions, skipped) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &data_path).map_err(io_err(&data_path))?;
        let index = Index {
            spec: spec.clone(),
            regions,
            skipped,
        };
        let json = serde_json::to_vec(&index).expect("the index serialises");
        eval::write_atomically(&index_path, &json)?;
        Self::open(&index_path, &data_path, spec)?.ok_or_else(|| {
            TrainError::Data(format!(
                "{}: the cache just written does not read back",
                data_path.display()
            ))
        })
    }

    /// The cache `dir/name.*` as it was built, whatever its settings (`rcnn train-heads` reads
    /// the cache of a finished training run).
    pub fn open_existing(dir: &Path, name: &str) -> Result<RegionCache, TrainError> {
        let index_path = dir.join(format!("{name}.json"));
        let data_path = dir.join(format!("{name}.u8"));
        let text = std::fs::read(&index_path).map_err(io_err(&index_path))?;
        let index: Index = serde_json::from_slice(&text).map_err(|e| {
            TrainError::Data(format!(
                "{}: not a region cache index: {e}",
                index_path.display()
            ))
        })?;
        Self::open(&index_path, &data_path, &index.spec)?.ok_or_else(|| {
            TrainError::Data(format!(
                "{}: missing or truncated; run `rcnn train` again to rebuild the cache",
                data_path.display()
            ))
        })
    }

    /// Whether `dir` holds a cache called `name` made with other settings than `spec` (which
    /// [`RegionCache::open_or_build`] would rebuild): `rcnn train --resume` refuses then.
    pub fn built_otherwise(dir: &Path, name: &str, spec: &CacheSpec) -> bool {
        let Ok(text) = std::fs::read(dir.join(format!("{name}.json"))) else {
            return false;
        };
        serde_json::from_slice::<Index>(&text).map_or(true, |index| index.spec != *spec)
    }

    fn open(
        index_path: &Path,
        data_path: &Path,
        spec: &CacheSpec,
    ) -> Result<Option<RegionCache>, TrainError> {
        let Ok(text) = std::fs::read(index_path) else {
            return Ok(None);
        };
        let Ok(index) = serde_json::from_slice::<Index>(&text) else {
            tracing::warn!(
                "{}: unreadable cache index; rebuilding",
                index_path.display()
            );
            return Ok(None);
        };
        if index.spec != *spec {
            tracing::info!(
                "{}: made with other settings; rebuilding",
                index_path.display()
            );
            return Ok(None);
        }
        let Ok(file) = std::fs::File::open(data_path) else {
            return Ok(None);
        };
        // Safety: the cache file is ours, written once and renamed into place; nothing
        // modifies it while mapped (a rebuild writes a new file and renames it over).
        let data = unsafe { Mmap::map(&file) }.map_err(io_err(data_path))?;
        if data.len() != index.regions.len() * crop_len(spec.input_size) {
            tracing::warn!("{}: truncated cache; rebuilding", data_path.display());
            return Ok(None);
        }
        let positives = (0..index.regions.len())
            .filter(|&i| index.regions[i].label != 0)
            .collect();
        let background = (0..index.regions.len())
            .filter(|&i| index.regions[i].label == 0)
            .collect();
        Ok(Some(RegionCache {
            spec: index.spec,
            regions: index.regions,
            skipped: index.skipped,
            positives,
            background,
            data,
        }))
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.positives.len()
    }

    /// The bytes of region `i`: CHW, `input_size` square.
    pub fn crop(&self, i: usize) -> &[u8] {
        let len = crop_len(self.spec.input_size);
        &self.data[i * len..(i + 1) * len]
    }

    /// The regions of step `step`: `n_pos` positives and `n_bg` background regions drawn
    /// uniformly across all images, each flipped left-right with probability one half when
    /// `flip`. A function of (seed, step) alone, so a resumed run draws what the uninterrupted
    /// one would have.
    pub fn sample(
        &self,
        seed: u64,
        step: u64,
        n_pos: usize,
        n_bg: usize,
        flip: bool,
    ) -> Vec<(usize, bool)> {
        let mut rng = SplitMix64::new(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ step);
        let mut picks = Vec::with_capacity(n_pos + n_bg);
        // Without positives (images without objects), the whole batch is background.
        let (n_pos, n_bg) = if self.positives.is_empty() {
            (0, n_pos + n_bg)
        } else if self.background.is_empty() {
            (n_pos + n_bg, 0)
        } else {
            (n_pos, n_bg)
        };
        for _ in 0..n_pos {
            picks.push(self.positives[rng.below(self.positives.len())]);
        }
        for _ in 0..n_bg {
            picks.push(self.background[rng.below(self.background.len())]);
        }
        picks
            .into_iter()
            .map(|i| (i, flip && rng.uniform() < 0.5))
            .collect()
    }

    /// The crops (flipped where picked so) and labels of a batch, on the host: `[n, 3, s, s]`
    /// bytes and `[n]` i64, in pinned memory when `device` is a GPU so that their upload does
    /// not wait. Made on the prefetch thread while the device runs the step before.
    pub fn host_batch(&self, picks: &[(usize, bool)], device: Device) -> HostBatch {
        let s = self.spec.input_size as usize;
        let mut bytes = Vec::with_capacity(picks.len() * crop_len(self.spec.input_size));
        for &(i, flip) in picks {
            let crop = self.crop(i);
            if flip {
                for row in crop.chunks_exact(s) {
                    bytes.extend(row.iter().rev());
                }
            } else {
                bytes.extend_from_slice(crop);
            }
        }
        let n = picks.len() as i64;
        let s = s as i64;
        let labels: Vec<i64> = picks
            .iter()
            .map(|&(i, _)| self.regions[i].label as i64)
            .collect();
        HostBatch {
            crops: pinned(Tensor::from_slice(&bytes).view([n, 3, s, s]), device),
            labels: pinned(Tensor::from_slice(&labels), device),
        }
    }

    /// A batch as the network takes it: normalised `[n, 3, s, s]` f32 and `[n]` i64 labels.
    pub fn batch(
        &self,
        picks: &[(usize, bool)],
        mean: [f32; 3],
        std: [f32; 3],
        device: Device,
    ) -> (Tensor, Tensor) {
        self.host_batch(picks, device)
            .upload(&Normaliser::new(mean, std, device), device)
    }
}

/// A mini-batch on the host (see [`RegionCache::host_batch`]).
pub struct HostBatch {
    pub crops: Tensor,
    pub labels: Tensor,
}

impl HostBatch {
    /// To `device` (asynchronously from pinned memory), normalised there.
    pub fn upload(&self, norm: &Normaliser, device: Device) -> (Tensor, Tensor) {
        let crops = self.crops.to_device_(device, Kind::Uint8, true, false);
        let labels = self.labels.to_device_(device, Kind::Int64, true, false);
        (norm.apply(&crops), labels)
    }
}

/// Where a member's cache lives: shared by every member of an ensemble run.
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
}
