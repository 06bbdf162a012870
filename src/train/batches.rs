//! The pixels of the training regions, made when a mini-batch is drawn: streamed (the default)
//! or read from a pixel cache.
//!
//! Streamed, each batch decodes the images it needs on the rayon pool, keeps decoded images in
//! a RAM cache bounded in bytes (a small set is decoded once), uploads each image once as bytes
//! and warps its regions on the device with `rcnn detect`'s warp
//! ([`crate::detect::warp::warp_boxes`]). The pixel cache instead warps every region once with
//! OpenCV and keeps the bytes memory-mapped: `3 * size^2` bytes a region (27 KB at 96 px, 150 KB
//! at 224), worth it only for a few hundred images whose decode dominates a CPU step.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use proposals::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::regions::{RegionIndex, RegionSpec};
use super::{io_err, TrainError};
use crate::detect::decode::decode;
use crate::detect::warp::{warp_boxes, WarpParams, WarpSource};
use crate::model::normalise::Normaliser;
use crate::run::tensor::{pinned, upload};

/// How a run gets its regions' pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PixelSource {
    /// Decode and warp at each step (images cached in RAM up to a bound).
    Stream,
    /// Warp every region once into a memory-mapped cache of bytes.
    Cache,
}

/// Decoded images by index, least recently used dropped beyond `budget` bytes.
pub struct ImageCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    images: HashMap<u32, (Arc<RgbImage>, u64)>,
    bytes: usize,
    clock: u64,
    decoded: u64,
}

impl ImageCache {
    pub fn new(budget_bytes: usize) -> Self {
        ImageCache {
            budget: budget_bytes,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// Images decoded so far (a cache hit is not counted).
    pub fn decoded(&self) -> u64 {
        self.inner.lock().expect("not poisoned").decoded
    }

    /// The decoded images `wanted` (indices into `images`): hits from the cache, the others
    /// decoded in parallel. Each comes back with its pixels or why it could not be read.
    fn get(
        &self,
        images: &[super::data::TrainImage],
        wanted: &[u32],
    ) -> Vec<(u32, Result<Arc<RgbImage>, String>)> {
        let mut found = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        {
            let mut c = self.inner.lock().expect("not poisoned");
            for &i in wanted {
                c.clock += 1;
                let now = c.clock;
                match c.images.get_mut(&i) {
                    Some((img, used)) => {
                        *used = now;
                        found.push((i, Ok(img.clone())));
                    }
                    None => missing.push(i),
                }
            }
        }
        let decoded: Vec<(u32, Result<Arc<RgbImage>, String>)> = missing
            .par_iter()
            .map(|&i| {
                let path = &images[i as usize].path;
                (i, decode(path).map(Arc::new).map_err(|e| e.to_string()))
            })
            .collect();
        let mut c = self.inner.lock().expect("not poisoned");
        for (i, img) in &decoded {
            let Ok(img) = img else { continue };
            c.decoded += 1;
            c.clock += 1;
            let now = c.clock;
            c.bytes += img.len();
            c.images.insert(*i, (img.clone(), now));
        }
        // The least recently used go first; the ones of this batch are held by it anyway.
        while c.bytes > self.budget && !c.images.is_empty() {
            let oldest = *c
                .images
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(i, _)| i)
                .expect("not empty");
            let (img, _) = c.images.remove(&oldest).expect("present");
            c.bytes -= img.len();
        }
        found.extend(decoded);
        found
    }
}

/// What decides a pixel cache: the index it was made from and the warp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PixelSpec {
    index: RegionSpec,
    regions: usize,
    input_size: i32,
    padding: i32,
    mean: [f32; 3],
}

/// Every region of an index warped once to bytes (CHW, the mean colour as fill), mapped.
pub struct PixelCache {
    size: i32,
    data: Mmap,
}

impl PixelCache {
    fn crop_len(size: i32) -> usize {
        3 * size as usize * size as usize
    }

    /// Opens `index`'s pixel cache for `warp` or builds it, image by image in parallel;
    /// `on_image` is called once per image.
    pub fn open_or_build(
        index: &RegionIndex,
        warp: &WarpParams,
        on_image: &(dyn Fn() + Sync),
    ) -> Result<PixelCache, TrainError> {
        let dir = &index.dir;
        let json_path = dir.join(format!("{}.pixels.json", index.name));
        let data_path = dir.join(format!("{}.u8", index.name));
        let _lock = crate::run::lock::FileLock::acquire(
            &dir.join(format!("{}.pixels.lock", index.name)),
            "another process is building the pixel cache",
        )?;
        let spec = PixelSpec {
            index: index.spec.clone(),
            regions: index.len(),
            input_size: warp.size,
            padding: warp.padding,
            mean: warp.mean,
        };
        let len = Self::crop_len(warp.size);
        let same = std::fs::read(&json_path)
            .ok()
            .and_then(|t| serde_json::from_slice::<PixelSpec>(&t).ok())
            .is_some_and(|s| s == spec);
        if same {
            if let Some(cache) = Self::map(&data_path, warp.size, index.len() * len)? {
                return Ok(cache);
            }
        }
        let bytes_warp = WarpParams {
            std: [1.0; 3],
            ..*warp
        };
        let tmp = data_path.with_extension("u8.partial");
        let written = (|| -> Result<(), TrainError> {
            let mut file =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
            let images = index.spec.images.len();
            let chunk = 4 * rayon::current_num_threads().max(1);
            for start in (0..images).step_by(chunk) {
                let done: Vec<Result<Vec<u8>, String>> = (start..(start + chunk).min(images))
                    .into_par_iter()
                    .map(|i| {
                        let range = index.image_range(i);
                        let mut bytes = vec![0u8; range.len() * len];
                        if !range.is_empty() {
                            let path = &index.spec.images[i].path;
                            let img = decode(path).map_err(|e| e.to_string())?;
                            let src = WarpSource::new(&img).map_err(|e| format!("OpenCV: {e}"))?;
                            for (r, out) in range.zip(bytes.chunks_exact_mut(len)) {
                                src.warp_u8_into(&index.region(r).bbox, &bytes_warp, out)
                                    .map_err(|e| format!("{}: OpenCV: {e}", path.display()))?;
                            }
                        }
                        on_image();
                        Ok(bytes)
                    })
                    .collect();
                for d in done {
                    // An image unreadable now but not when indexed: the cache cannot be whole.
                    let bytes = d.map_err(TrainError::Data)?;
                    file.write_all(&bytes).map_err(io_err(&tmp))?;
                }
            }
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &data_path).map_err(io_err(&data_path))?;
        eval::write_atomically(
            &json_path,
            &serde_json::to_vec(&spec).expect("the spec serialises"),
        )?;
        Self::map(&data_path, warp.size, index.len() * len)?.ok_or_else(|| {
            TrainError::Data(format!(
                "{}: the cache just written does not read back",
                data_path.display()
            ))
        })
    }

    fn map(path: &Path, size: i32, expected: usize) -> Result<Option<PixelCache>, TrainError> {
        let Ok(file) = std::fs::File::open(path) else {
            return Ok(None);
        };
        // Safety: written once and renamed into place; a rebuild renames a new file over it.
        let data = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        Ok((data.len() == expected).then_some(PixelCache { size, data }))
    }

    fn crop(&self, i: usize) -> &[u8] {
        let len = Self::crop_len(self.size);
        &self.data[i * len..(i + 1) * len]
    }
}

/// Where the pixels come from.
pub enum Pixels {
    Stream(ImageCache),
    Cache(PixelCache),
}

/// Mini-batches of an index: the regions drawn for a step, their pixels warped and normalised
/// on the device, their labels.
pub struct Batches<'a> {
    pub index: &'a RegionIndex,
    pub pixels: Pixels,
    warp: WarpParams,
    /// Images found unreadable while training, with the reason: drawn no more.
    dropped: Mutex<BTreeMap<u32, String>>,
}

impl<'a> Batches<'a> {
    /// Streamed batches with at most `cache_bytes` of decoded images kept.
    pub fn stream(index: &'a RegionIndex, warp: WarpParams, cache_bytes: usize) -> Self {
        Batches {
            index,
            pixels: Pixels::Stream(ImageCache::new(cache_bytes)),
            warp,
            dropped: Mutex::new(BTreeMap::new()),
        }
    }

    /// Batches from the pixel cache of `index` (built first where missing).
    pub fn cached(
        index: &'a RegionIndex,
        warp: WarpParams,
        on_image: &(dyn Fn() + Sync),
    ) -> Result<Self, TrainError> {
        Ok(Batches {
            index,
            pixels: Pixels::Cache(PixelCache::open_or_build(index, &warp, on_image)?),
            warp,
            dropped: Mutex::new(BTreeMap::new()),
        })
    }

    /// Images dropped from sampling so far.
    pub fn dropped(&self) -> usize {
        self.dropped.lock().expect("not poisoned").len()
    }

    /// Bytes of the pixel cache (none when streamed).
    pub fn cache_bytes(&self) -> u64 {
        match &self.pixels {
            Pixels::Stream(_) => 0,
            Pixels::Cache(c) => c.data.len() as u64,
        }
    }

    /// Images decoded so far (streamed).
    pub fn decoded(&self) -> u64 {
        match &self.pixels {
            Pixels::Stream(c) => c.decoded(),
            Pixels::Cache(_) => 0,
        }
    }

    /// The normaliser of this run's network, on `device`.
    pub fn normaliser(&self, device: Device) -> Normaliser {
        Normaliser::new(self.warp.mean, self.warp.std, device)
    }

    /// The batch of step `step` (see [`RegionIndex::sample`]): an image found unreadable is
    /// named, dropped and the step drawn again without it.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        seed: u64,
        step: u64,
        n_pos: usize,
        n_bg: usize,
        flip: bool,
        norm: &Normaliser,
        device: Device,
    ) -> Result<(Tensor, Tensor), TrainError> {
        loop {
            let dropped: BTreeSet<u32> = self
                .dropped
                .lock()
                .expect("not poisoned")
                .keys()
                .copied()
                .collect();
            let picks = self
                .index
                .sample(seed, step, n_pos, n_bg, flip, &dropped)
                .ok_or_else(|| TrainError::Data("no training image is readable any more".into()))?;
            match self.crops(&picks, norm, device) {
                Ok(batch) => return Ok(batch),
                Err(failed) => {
                    let mut d = self.dropped.lock().expect("not poisoned");
                    for (image, why) in failed {
                        tracing::warn!("{why}; dropped from training");
                        d.insert(image, why);
                    }
                }
            }
        }
    }

    /// The crops of `picks` (region, flipped), normalised `[n, 3, s, s]` f32 on `device`, and
    /// their `[n]` labels; or the images that could not be read.
    pub fn crops(
        &self,
        picks: &[(usize, bool)],
        norm: &Normaliser,
        device: Device,
    ) -> Result<(Tensor, Tensor), Vec<(u32, String)>> {
        let regions: Vec<_> = picks.iter().map(|&(i, _)| self.index.region(i)).collect();
        let labels: Vec<i64> = regions.iter().map(|r| r.label as i64).collect();
        let labels = pinned(Tensor::from_slice(&labels), device).to_device_(
            device,
            Kind::Int64,
            true,
            false,
        );
        let s = self.warp.size as i64;
        let n = picks.len() as i64;
        let crops = match &self.pixels {
            Pixels::Cache(cache) => {
                let mut bytes = Vec::with_capacity(picks.len() * PixelCache::crop_len(cache.size));
                for &(i, flip) in picks {
                    let crop = cache.crop(i);
                    if flip {
                        for row in crop.chunks_exact(cache.size as usize) {
                            bytes.extend(row.iter().rev());
                        }
                    } else {
                        bytes.extend_from_slice(crop);
                    }
                }
                let host = pinned(Tensor::from_slice(&bytes).view([n, 3, s, s]), device);
                return Ok((
                    norm.apply(&host.to_device_(device, Kind::Uint8, true, false)),
                    labels,
                ));
            }
            Pixels::Stream(cache) => {
                // The images in order of first use, each with the batch rows it gives.
                let mut order: Vec<u32> = Vec::new();
                let mut rows: HashMap<u32, Vec<usize>> = HashMap::new();
                for (row, r) in regions.iter().enumerate() {
                    rows.entry(r.image)
                        .or_insert_with(|| {
                            order.push(r.image);
                            Vec::new()
                        })
                        .push(row);
                }
                let got = cache.get(&self.index.spec.images, &order);
                let mut images: HashMap<u32, Arc<RgbImage>> = HashMap::new();
                let mut failed = Vec::new();
                for (i, img) in got {
                    match img {
                        Ok(img) => {
                            images.insert(i, img);
                        }
                        Err(why) => failed.push((i, why)),
                    }
                }
                if !failed.is_empty() {
                    return Err(failed);
                }
                let mut parts = Vec::with_capacity(order.len());
                let mut place = vec![0i64; picks.len()];
                let mut at = 0;
                for i in &order {
                    let image = upload(&images[i], device);
                    let boxes: Vec<_> = rows[i].iter().map(|&row| regions[row].bbox).collect();
                    parts.push(warp_boxes(&image, &boxes, &self.warp, norm));
                    for &row in &rows[i] {
                        place[row] = at;
                        at += 1;
                    }
                }
                let grouped = Tensor::cat(&parts, 0);
                let place = Tensor::from_slice(&place).to_device(device);
                grouped.index_select(0, &place)
            }
        };
        let flips: Vec<bool> = picks.iter().map(|p| p.1).collect();
        let crops = if flips.iter().any(|&f| f) {
            let mask = Tensor::from_slice(&flips)
                .to_device(device)
                .view([n, 1, 1, 1]);
            crops.flip([3]).where_self(&mask, &crops)
        } else {
            crops
        };
        Ok((crops, labels))
    }
}
