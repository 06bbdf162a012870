//! pycocotools' COCOeval for boxes, with its parameters: evaluate (match each detection of an
//! (image, category) once per area range), accumulate (the `precision`, `recall` and `scores`
//! arrays of pycocotools' shapes), summarize (the 12 numbers).
//!
//! The same semantics as cocoeval.py 2.0.11, quirks included (a detection matched to an object
//! whose id is 0 counts as unmatched; accumulate's sub-parameters index the evaluation's
//! layout), but only (image, category) pairs that hold an object or a detection are visited,
//! never the full grid. Used by `map-eval --metric coco` and by the Python package.

use std::cmp::Ordering;

use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::{Detections, GroundTruth};
use crate::PixelConvention;

/// The 12 numbers of `COCOeval.summarize()`, in `stats` order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CocoStats {
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ap_small: f64,
    pub ap_medium: f64,
    pub ap_large: f64,
    pub ar1: f64,
    pub ar10: f64,
    pub ar100: f64,
    pub ar_small: f64,
    pub ar_medium: f64,
    pub ar_large: f64,
}

impl CocoStats {
    pub fn as_array(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }

    pub const NAMES: [&'static str; 12] = [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ];
}

/// numpy.linspace(start, stop, num) exactly: i * ((stop - start) / (num - 1)) + start, last = stop.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// Annotations or results, one column per field, as COCO's JSON holds them.
#[derive(Debug, Clone, Default)]
pub struct CocoAnns {
    pub image_id: Vec<i64>,
    pub category_id: Vec<i64>,
    /// [x, y, w, h].
    pub bbox: Vec<[f64; 4]>,
    /// Compared with the area ranges: the annotation's `area` (w * h for loaded results).
    pub area: Vec<f64>,
    pub iscrowd: Vec<bool>,
    pub id: Vec<i64>,
    /// Detections only (0 for ground truth).
    pub score: Vec<f64>,
}

impl CocoAnns {
    pub fn len(&self) -> usize {
        self.image_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.image_id.is_empty()
    }

    pub fn push(&mut self, a: CocoAnn) {
        self.image_id.push(a.image_id);
        self.category_id.push(a.category_id);
        self.bbox.push(a.bbox);
        self.area.push(a.area);
        self.iscrowd.push(a.iscrowd);
        self.id.push(a.id);
        self.score.push(a.score);
    }
}

/// One annotation or result: a row of [`CocoAnns`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoAnn {
    pub image_id: i64,
    pub category_id: i64,
    pub bbox: [f64; 4],
    pub area: f64,
    pub iscrowd: bool,
    pub id: i64,
    pub score: f64,
}

/// `COCOeval.params` for boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoParams {
    pub img_ids: Vec<i64>,
    pub cat_ids: Vec<i64>,
    pub iou_thrs: Vec<f64>,
    pub rec_thrs: Vec<f64>,
    pub max_dets: Vec<usize>,
    pub area_rng: Vec<[f64; 2]>,
    pub use_cats: bool,
}

impl CocoParams {
    /// pycocotools' defaults for boxes over these images and categories.
    pub fn bbox(img_ids: Vec<i64>, cat_ids: Vec<i64>) -> Self {
        CocoParams {
            img_ids,
            cat_ids,
            iou_thrs: linspace(0.5, 0.95, 10),
            rec_thrs: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_rng: vec![
                [0.0, 1e10],
                [0.0, 32.0 * 32.0],
                [32.0 * 32.0, 96.0 * 96.0],
                [96.0 * 96.0, 1e10],
            ],
            use_cats: true,
        }
    }

    /// What `evaluate()` does to the parameters first: image ids (and category ids, with
    /// categories on) sorted without repeats, detection limits sorted.
    pub fn normalised(&self) -> Self {
        let mut p = self.clone();
        p.img_ids.sort_unstable();
        p.img_ids.dedup();
        if p.use_cats {
            p.cat_ids.sort_unstable();
            p.cat_ids.dedup();
        }
        p.max_dets.sort_unstable();
        p
    }
}

/// Highest score first, ties in input order, NaN last: numpy's stable argsort of -score.
fn by_score_desc(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => b.partial_cmp(&a).expect("not NaN"),
    }
}

/// maskApi.c's bbIou: boxes [x, y, w, h]; against a crowd box, intersection over the
/// detection's own area.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = d[2] * d[3];
    let u = if crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

const MATCHED: u8 = 1;
const IGNORED: u8 = 2;

/// `evaluateImg` for one (category, area range, image): what accumulate needs of it.
#[derive(Debug, Clone)]
pub struct ImageEval {
    /// Scores of the kept detections (at most the largest detection limit), highest first.
    pub scores: Vec<f64>,
    /// `[t * D + d]`: MATCHED (dtMatches != 0) and IGNORED (dtIgnore) bits.
    flags: Vec<u8>,
    /// Objects not ignored.
    pub n_gt: usize,
}

impl ImageEval {
    pub fn matched(&self, t: usize, d: usize) -> bool {
        self.flags[t * self.scores.len() + d] & MATCHED != 0
    }

    pub fn ignored(&self, t: usize, d: usize) -> bool {
        self.flags[t * self.scores.len() + d] & IGNORED != 0
    }
}

/// The result of `evaluate()`: the parameters it ran with (`_paramsEval`) and `evalImgs`,
/// stored sparsely: slot `k * A + a` holds (image position, evaluation) for the images that
/// have an object or a detection, in image order.
#[derive(Debug, Clone)]
pub struct CocoEvalImgs {
    pub params: CocoParams,
    slots: Vec<Vec<(usize, ImageEval)>>,
}

impl CocoEvalImgs {
    /// The evaluations that pycocotools' evalImgs holds as dicts (not None).
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One (category slot, image) pair: indices of its objects and (ranked, kept) detections.
struct Group {
    k: usize,
    image: usize,
    gt: Vec<usize>,
    dt: Vec<usize>,
}

/// Groups annotations by (category slot, image position); within a group, category order
/// (without categories: the order of `cat_ids`, repeats repeated) then file order.
fn group_keys(anns: &CocoAnns, p: &CocoParams) -> Vec<(usize, usize, usize, usize)> {
    use std::collections::HashMap;
    let image_pos: HashMap<i64, usize> = p
        .img_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let mut cat_pos: HashMap<i64, Vec<usize>> = HashMap::new();
    for (j, &c) in p.cat_ids.iter().enumerate() {
        cat_pos.entry(c).or_default().push(j);
    }
    let mut keys = Vec::with_capacity(anns.len());
    for n in 0..anns.len() {
        let (Some(&image), Some(cats)) = (
            image_pos.get(&anns.image_id[n]),
            cat_pos.get(&anns.category_id[n]),
        ) else {
            continue;
        };
        if p.use_cats {
            // Ids are unique after normalisation: one slot.
            keys.push((cats[0], image, 0, n));
        } else {
            keys.extend(cats.iter().map(|&j| (0, image, j, n)));
        }
    }
    keys.sort_unstable();
    keys
}

fn groups(gt: &CocoAnns, dt: &CocoAnns, p: &CocoParams) -> Vec<Group> {
    let gk = group_keys(gt, p);
    let dk = group_keys(dt, p);
    let mut out: Vec<Group> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < gk.len() || j < dk.len() {
        let key = match (gk.get(i), dk.get(j)) {
            (Some(g), Some(d)) => (g.0, g.1).min((d.0, d.1)),
            (Some(g), None) => (g.0, g.1),
            (None, Some(d)) => (d.0, d.1),
            (None, None) => unreachable!(),
        };
        let mut group = Group {
            k: key.0,
            image: key.1,
            gt: Vec::new(),
            dt: Vec::new(),
        };
        while i < gk.len() && (gk[i].0, gk[i].1) == key {
            group.gt.push(gk[i].3);
            i += 1;
        }
        while j < dk.len() && (dk[j].0, dk[j].1) == key {
            group.dt.push(dk[j].3);
            j += 1;
        }
        out.push(group);
    }
    out
}

/// evaluateImg in full for one (category, area range, image): what pycocotools' evalImgs dict
/// holds, as annotation indices and ids.
#[derive(Debug, Clone)]
pub struct ImageDetail {
    /// Category slot (position in catIds; 0 without categories) and image position.
    pub k: usize,
    pub image: usize,
    /// Detections (annotation indices), highest score first, at most the largest limit.
    pub dt: Vec<usize>,
    /// Objects (annotation indices), ignored ones last.
    pub gt: Vec<usize>,
    /// `[t * D + d]`: the id of the object matched, 0 for none (dtMatches).
    pub dt_matches: Vec<i64>,
    /// `[t * G + g]`: the id of the detection matched, 0 for none (gtMatches).
    pub gt_matches: Vec<i64>,
    /// Per object, in `gt`'s order (gtIgnore).
    pub gt_ignore: Vec<bool>,
    /// `[t * D + d]` (dtIgnore).
    pub dt_ignore: Vec<bool>,
}

impl ImageDetail {
    fn compact(&self, dt: &CocoAnns) -> ImageEval {
        let flags = self
            .dt_matches
            .iter()
            .zip(&self.dt_ignore)
            .map(|(&m, &ig)| (u8::from(m != 0) * MATCHED) | (u8::from(ig) * IGNORED))
            .collect();
        ImageEval {
            scores: self.dt.iter().map(|&n| dt.score[n]).collect(),
            flags,
            n_gt: self.gt_ignore.iter().filter(|&&i| !i).count(),
        }
    }
}

/// evaluateImg for every area range of one group; `ious[d][g]` in the group's object order.
fn evaluate_group(
    group: &Group,
    gt: &CocoAnns,
    dt: &CocoAnns,
    p: &CocoParams,
    ious: &[Vec<f64>],
) -> Vec<ImageDetail> {
    let n_t = p.iou_thrs.len();
    let n_d = group.dt.len();
    let n_g = group.gt.len();
    p.area_rng
        .iter()
        .map(|rng| {
            let out_of = |area: f64| area < rng[0] || area > rng[1];
            let g_ignore: Vec<bool> = group
                .gt
                .iter()
                .map(|&g| gt.iscrowd[g] || out_of(gt.area[g]))
                .collect();
            // Ignored objects last, stably (argsort, mergesort).
            let mut order: Vec<usize> = (0..n_g).collect();
            order.sort_by_key(|&g| g_ignore[g]);
            let mut dt_matches = vec![0i64; n_t * n_d];
            let mut gt_matches = vec![0i64; n_t * n_g];
            let mut dt_ignore = vec![false; n_t * n_d];
            if n_g > 0 && n_d > 0 {
                for (t, &thr) in p.iou_thrs.iter().enumerate() {
                    for d in 0..n_d {
                        let mut best = thr.min(1.0 - 1e-10);
                        let mut m: Option<usize> = None;
                        for (gi, &g) in order.iter().enumerate() {
                            // gtMatches holds the detection's id: taken when it is > 0.
                            if gt_matches[t * n_g + gi] > 0 && !gt.iscrowd[group.gt[g]] {
                                continue;
                            }
                            // Once matched to a real object, stop at the ignored ones.
                            if let Some(mm) = m {
                                if !g_ignore[order[mm]] && g_ignore[g] {
                                    break;
                                }
                            }
                            if ious[d][g] < best {
                                continue;
                            }
                            best = ious[d][g];
                            m = Some(gi);
                        }
                        if let Some(gi) = m {
                            let g = order[gi];
                            dt_ignore[t * n_d + d] = g_ignore[g];
                            // An object whose id is 0 reads as no match.
                            dt_matches[t * n_d + d] = gt.id[group.gt[g]];
                            gt_matches[t * n_g + gi] = dt.id[group.dt[d]];
                        }
                    }
                }
            }
            // Unmatched detections outside the area range do not count.
            for (d, &n) in group.dt.iter().enumerate() {
                if out_of(dt.area[n]) {
                    for t in 0..n_t {
                        if dt_matches[t * n_d + d] == 0 {
                            dt_ignore[t * n_d + d] = true;
                        }
                    }
                }
            }
            ImageDetail {
                k: group.k,
                image: group.image,
                dt: group.dt.clone(),
                gt: order.iter().map(|&g| group.gt[g]).collect(),
                dt_matches,
                gt_matches,
                gt_ignore: order.iter().map(|&g| g_ignore[g]).collect(),
                dt_ignore,
            }
        })
        .collect()
}

/// Every pair that has an object or a detection, in (category slot, image) order, on the
/// worker threads: its detections ranked and cut at the largest limit, its IoU matrix `[d][g]`
/// (detections ranked, objects in file order: pycocotools' `ious[imgId, catId]`), and its
/// evaluation per area range, handed to `each`. `p` is normalised.
fn match_pairs<T: Send>(
    gt: &CocoAnns,
    dt: &CocoAnns,
    p: &CocoParams,
    each: impl Fn(Vec<Vec<f64>>, Vec<ImageDetail>) -> T + Sync,
) -> Vec<T> {
    let max_det = p.max_dets.last().copied().unwrap_or(0);
    groups(gt, dt, p)
        .into_par_iter()
        .map(|mut group| {
            group
                .dt
                .sort_by(|&a, &b| by_score_desc(dt.score[a], dt.score[b]));
            group.dt.truncate(max_det);
            let ious: Vec<Vec<f64>> = group
                .dt
                .iter()
                .map(|&d| {
                    group
                        .gt
                        .iter()
                        .map(|&g| iou(&dt.bbox[d], &gt.bbox[g], gt.iscrowd[g]))
                        .collect()
                })
                .collect();
            let details = evaluate_group(&group, gt, dt, p, &ious);
            each(ious, details)
        })
        .collect()
}

/// `COCOeval.evaluate()` for boxes: the parameters are normalised as pycocotools does.
pub fn evaluate_images(gt: &CocoAnns, dt: &CocoAnns, params: &CocoParams) -> CocoEvalImgs {
    let p = params.normalised();
    let n_a = p.area_rng.len();
    let n_k = if p.use_cats { p.cat_ids.len() } else { 1 };
    // Only the compact form outlives a pair: the full one is made again on demand.
    let per_pair = match_pairs(gt, dt, &p, |_, details| {
        details
            .iter()
            .map(|e| (e.k, e.image, e.compact(dt)))
            .collect::<Vec<_>>()
    });
    let mut slots: Vec<Vec<(usize, ImageEval)>> = vec![Vec::new(); n_k * n_a];
    for evals in per_pair {
        for (a, (k, image, e)) in evals.into_iter().enumerate() {
            slots[k * n_a + a].push((image, e));
        }
    }
    CocoEvalImgs { params: p, slots }
}

/// What `evaluate()` leaves in pycocotools' `ious` and `evalImgs`, in full, for the pairs that
/// have an object or a detection (in category slot, then image order): per pair its IoU matrix
/// `[d][g]` and one [`ImageDetail`] per area range. Made again from the annotations on demand:
/// [`evaluate_images`] keeps only what accumulate needs.
pub fn evaluate_images_in_full(
    gt: &CocoAnns,
    dt: &CocoAnns,
    params: &CocoParams,
) -> Vec<(Vec<Vec<f64>>, Vec<ImageDetail>)> {
    match_pairs(gt, dt, &params.normalised(), |ious, details| {
        (ious, details)
    })
}

/// Which parts of the evaluation `accumulate(p)` reads, as pycocotools computes them from `p`
/// and `_paramsEval`: positions in p's lists (`k_list`, `a_list`, `i_list`), the detection
/// limits themselves (`m_list`), and p's array sizes.
#[derive(Debug, Clone)]
pub struct AccumulateSpec {
    pub k_list: Vec<usize>,
    pub a_list: Vec<usize>,
    pub m_list: Vec<usize>,
    pub i_list: Vec<usize>,
    pub rec_thrs: Vec<f64>,
    /// [T, R, K, A, M] of the arrays.
    pub counts: [usize; 5],
}

impl AccumulateSpec {
    /// `accumulate()` with the parameters `evaluate()` ran with.
    pub fn of(p: &CocoParams) -> Self {
        let k = if p.use_cats { p.cat_ids.len() } else { 1 };
        AccumulateSpec {
            k_list: (0..k).collect(),
            a_list: (0..p.area_rng.len()).collect(),
            m_list: p.max_dets.clone(),
            i_list: (0..p.img_ids.len()).collect(),
            rec_thrs: p.rec_thrs.clone(),
            counts: [
                p.iou_thrs.len(),
                p.rec_thrs.len(),
                k,
                p.area_rng.len(),
                p.max_dets.len(),
            ],
        }
    }
}

/// `COCOeval.eval`: arrays in C order, -1 where nothing was computed.
#[derive(Debug, Clone)]
pub struct Accumulated {
    /// [T, R, K, A, M].
    pub counts: [usize; 5],
    pub precision: Vec<f64>,
    /// [T, K, A, M].
    pub recall: Vec<f64>,
    pub scores: Vec<f64>,
}

impl Accumulated {
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let [_, n_r, n_k, n_a, n_m] = self.counts;
        self.precision[(((t * n_r + r) * n_k + k) * n_a + a) * n_m + m]
    }

    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let [_, _, n_k, n_a, n_m] = self.counts;
        self.recall[((t * n_k + k) * n_a + a) * n_m + m]
    }
}

/// Precision at each recall threshold (and the score there), and the final recall, of one
/// (category, area range, detection limit), for each IoU threshold of the evaluation.
struct Curve {
    t: usize,
    q: Vec<f64>,
    ss: Vec<f64>,
    recall: f64,
}

/// Every image's first `max_det` detections as (score, image, rank), images in order, ranked
/// by a stable sort (numpy's mergesort of -score). For a smaller limit the ranking is this one
/// with the later detections left out: a stable sort of a subset keeps the subset's order.
fn ranked(evals: &[&ImageEval], max_det: usize) -> Vec<(f64, u32, u32)> {
    let mut entries: Vec<(f64, u32, u32)> = Vec::new();
    for (e, ev) in evals.iter().enumerate() {
        for d in 0..ev.scores.len().min(max_det) {
            entries.push((ev.scores[d], e as u32, d as u32));
        }
    }
    entries.sort_by(|a, b| by_score_desc(a.0, b.0));
    entries
}

fn accumulate_one(
    evals: &[&ImageEval],
    entries: &[(f64, u32, u32)],
    n_t: usize,
    rec_thrs: &[f64],
) -> Vec<Curve> {
    let n_gt: usize = evals.iter().map(|e| e.n_gt).sum();
    if n_gt == 0 {
        return Vec::new();
    }
    let nd = entries.len();
    let mut curves = Vec::with_capacity(n_t);
    let mut rc = vec![0.0; nd];
    let mut pr = vec![0.0; nd];
    for t in 0..n_t {
        // Ignored detections keep their place in the ranking but count as neither.
        let (mut tp, mut fp) = (0u64, 0u64);
        for (i, &(_, e, d)) in entries.iter().enumerate() {
            let ev = evals[e as usize];
            if !ev.ignored(t, d as usize) {
                if ev.matched(t, d as usize) {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
            rc[i] = tp as f64 / n_gt as f64;
            pr[i] = tp as f64 / (fp as f64 + tp as f64 + f64::EPSILON);
        }
        let recall = rc.last().copied().unwrap_or(0.0);
        for i in (1..nd).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        let mut q = vec![0.0; rec_thrs.len()];
        let mut ss = vec![0.0; rec_thrs.len()];
        // numpy.searchsorted(rc, recThrs, side='left'); the first index past the end stops
        // the filling (pycocotools' try/except).
        for (ri, &r) in rec_thrs.iter().enumerate() {
            let pi = rc.partition_point(|&x| x < r);
            if pi >= nd {
                break;
            }
            q[ri] = pr[pi];
            ss[ri] = entries[pi].0;
        }
        curves.push(Curve { t, q, ss, recall });
    }
    curves
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AccumulateError(pub String);

/// `COCOeval.accumulate(p)`: `spec` made from `p` (see [`AccumulateSpec`]).
pub fn accumulate(
    evals: &CocoEvalImgs,
    spec: &AccumulateSpec,
) -> Result<Accumulated, AccumulateError> {
    let [n_t, n_r, n_k, n_a, n_m] = spec.counts;
    let pe = &evals.params;
    let n_t0 = pe.iou_thrs.len();
    if n_t0 > n_t {
        return Err(AccumulateError(format!(
            "the evaluation has {n_t0} IoU thresholds, the parameters {n_t}"
        )));
    }
    if spec.rec_thrs.len() != n_r {
        return Err(AccumulateError("recThrs and the array size differ".into()));
    }
    let (i0, a0) = (pe.img_ids.len(), pe.area_rng.len());
    let k0_count = if pe.use_cats { pe.cat_ids.len() } else { 1 };
    let total = k0_count * a0 * i0;
    let identity_images =
        spec.i_list.len() == i0 && spec.i_list.iter().enumerate().all(|(n, &i)| n == i);
    // pycocotools reads evalImgs[k0 * A0 * I0 + a0 * I0 + i] with positions taken from p.
    let gather = |k0: usize, a0_: usize| -> Result<Vec<&ImageEval>, AccumulateError> {
        if identity_images && k0 < k0_count && a0_ < a0 {
            return Ok(evals.slots[k0 * a0 + a0_].iter().map(|(_, e)| e).collect());
        }
        let mut out = Vec::new();
        for &i in &spec.i_list {
            let flat = k0 * a0 * i0 + a0_ * i0 + i;
            if flat >= total {
                return Err(AccumulateError(format!(
                    "evalImgs index {flat} out of range ({total}): the parameters do not fit the evaluation"
                )));
            }
            let (k, rest) = (flat / (a0 * i0), flat % (a0 * i0));
            let (a, image) = (rest / i0, rest % i0);
            let slot = &evals.slots[k * a0 + a];
            if let Ok(j) = slot.binary_search_by_key(&image, |(im, _)| *im) {
                out.push(&slot[j].1);
            }
        }
        Ok(out)
    };
    let mut precision = vec![-1.0; n_t * n_r * n_k * n_a * n_m];
    let mut scores = vec![-1.0; n_t * n_r * n_k * n_a * n_m];
    let mut recall = vec![-1.0; n_t * n_k * n_a * n_m];
    if spec.k_list.len() > n_k || spec.a_list.len() > n_a || spec.m_list.len() > n_m {
        return Err(AccumulateError(
            "more categories, area ranges or limits than the arrays hold".into(),
        ));
    }
    type Cell = (usize, usize, usize, Vec<Curve>);
    let cells: Vec<Cell> = spec
        .k_list
        .par_iter()
        .enumerate()
        .map(|(k, &k0)| -> Result<Vec<Cell>, AccumulateError> {
            let mut out = Vec::new();
            for (a, &a0_) in spec.a_list.iter().enumerate() {
                let evals = gather(k0, a0_)?;
                if evals.is_empty() {
                    continue;
                }
                let all = ranked(&evals, spec.m_list.iter().copied().max().unwrap_or(0));
                for (m, &max_det) in spec.m_list.iter().enumerate() {
                    let entries: Vec<(f64, u32, u32)> = all
                        .iter()
                        .filter(|x| (x.2 as usize) < max_det)
                        .copied()
                        .collect();
                    out.push((
                        k,
                        a,
                        m,
                        accumulate_one(&evals, &entries, n_t0, &spec.rec_thrs),
                    ));
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    for (k, a, m, curves) in cells {
        for c in curves {
            recall[((c.t * n_k + k) * n_a + a) * n_m + m] = c.recall;
            for r in 0..n_r {
                let at = (((c.t * n_r + r) * n_k + k) * n_a + a) * n_m + m;
                precision[at] = c.q[r];
                scores[at] = c.ss[r];
            }
        }
    }
    Ok(Accumulated {
        counts: spec.counts,
        precision,
        recall,
        scores,
    })
}

/// `summarize()`'s 12 numbers for the default area ranges and detection limits [1, 10, 100]:
/// the mean of the values that are not -1, or -1.
pub fn summarize(acc: &Accumulated, p: &CocoParams) -> CocoStats {
    let [n_t, n_r, n_k, _, _] = acc.counts;
    let m_of = |max_det: usize| p.max_dets.iter().position(|&m| m == max_det);
    let stat = |ap: bool, iou: Option<f64>, area: usize, max_det: usize| -> f64 {
        let Some(m) = m_of(max_det) else { return -1.0 };
        let ts: Vec<usize> = (0..n_t)
            .filter(|&t| iou.is_none_or(|v| p.iou_thrs[t] == v))
            .collect();
        let (mut sum, mut n) = (0.0, 0usize);
        for &t in &ts {
            for k in 0..n_k {
                if ap {
                    for r in 0..n_r {
                        let v = acc.precision_at(t, r, k, area, m);
                        if v > -1.0 {
                            sum += v;
                            n += 1;
                        }
                    }
                } else {
                    let v = acc.recall_at(t, k, area, m);
                    if v > -1.0 {
                        sum += v;
                        n += 1;
                    }
                }
            }
        }
        if n == 0 {
            -1.0
        } else {
            sum / n as f64
        }
    };
    let last = |i: usize| p.max_dets.get(i).copied().unwrap_or(usize::MAX);
    CocoStats {
        ap: stat(true, None, 0, 100),
        ap50: stat(true, Some(0.5), 0, last(2)),
        ap75: stat(true, Some(0.75), 0, last(2)),
        ap_small: stat(true, None, 1, last(2)),
        ap_medium: stat(true, None, 2, last(2)),
        ap_large: stat(true, None, 3, last(2)),
        ar1: stat(false, None, 0, last(0)),
        ar10: stat(false, None, 0, last(1)),
        ar100: stat(false, None, 0, last(2)),
        ar_small: stat(false, None, 1, last(2)),
        ar_medium: stat(false, None, 2, last(2)),
        ar_large: stat(false, None, 3, last(2)),
    }
}

/// COCOeval(gt, dt, 'bbox') with the default parameters, on resolved ground truth: images by
/// index (in the ground truth's order: COCO readers sort them by id, as pycocotools),
/// categories by class index.
pub fn evaluate(gt: &GroundTruth, dets: &Detections, n_classes: usize) -> CocoStats {
    let xywh = |b: &crate::BBox| [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1];
    let mut g = CocoAnns::default();
    for b in &gt.boxes {
        let area = b
            .area
            .unwrap_or_else(|| b.bbox.area(PixelConvention::Continuous));
        g.push(CocoAnn {
            image_id: b.image as i64,
            category_id: b.class as i64,
            bbox: xywh(&b.bbox),
            area,
            iscrowd: b.crowd,
            id: g.len() as i64 + 1,
            score: 0.0,
        });
    }
    let mut d = CocoAnns::default();
    for det in &dets.dets {
        let bbox = xywh(&det.bbox);
        d.push(CocoAnn {
            image_id: det.image as i64,
            category_id: det.class as i64,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd: false,
            id: d.len() as i64 + 1,
            score: det.score,
        });
    }
    // Detections of images without ground truth are evaluated too (they are false positives).
    let n_images = dets
        .dets
        .iter()
        .map(|d| d.image + 1)
        .chain(gt.boxes.iter().map(|b| b.image + 1))
        .fold(gt.images.len(), usize::max) as i64;
    let p = CocoParams::bbox((0..n_images).collect(), (0..n_classes as i64).collect());
    let evals = evaluate_images(&g, &d, &p);
    let acc = accumulate(&evals, &AccumulateSpec::of(&evals.params)).expect("own parameters fit");
    summarize(&acc, &evals.params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpys() {
        let t = linspace(0.5, 0.95, 10);
        assert_eq!(t[0], 0.5);
        assert_eq!(t[5], 0.75);
        assert_eq!(t[9], 0.95);
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r[1], 0.01);
        assert_eq!(r[100], 1.0);
    }

    #[test]
    fn crowd_iou_is_over_the_detection() {
        let d = [0.0, 0.0, 10.0, 10.0];
        let g = [0.0, 0.0, 100.0, 100.0];
        assert_eq!(iou(&d, &g, true), 1.0);
        assert!((iou(&d, &g, false) - 0.01).abs() < 1e-15);
    }

    #[test]
    fn scores_rank_as_numpys_stable_argsort() {
        let mut v = [
            (0.5, 0),
            (f64::NAN, 1),
            (0.9, 2),
            (0.5, 3),
            (-0.0, 4),
            (0.0, 5),
        ];
        v.sort_by(|a, b| by_score_desc(a.0, b.0));
        let order: Vec<usize> = v.iter().map(|x| x.1).collect();
        assert_eq!(order, [2, 0, 3, 4, 5, 1]);
    }
}
