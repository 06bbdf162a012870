//! OpenCV's selective search (ximgproc), the baseline of `rcnn proposals --backend opencv` and
//! `rcnn bench proposals`. Behind the default `opencv-contrib` feature.

use eval::BBox;
use opencv::core::{Mat, Rect, Scalar, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::ximgproc;
use proposals::search::{box_to_original, dedup_boxes, resize_for_search};
use proposals::{Mode, RgbImage};

/// Runs OpenCV's fast or quality selective search (base k 150, step 150, sigma 0.8, its
/// defaults) on the same resized image as ours, with the same 20 px filter, mapped back; an
/// image too narrow for the resize is refused as ours refuses it.
pub fn selective_search(
    img: &RgbImage,
    mode: Mode,
    resize_width: Option<usize>,
    min_box: i32,
) -> Result<Vec<BBox>, String> {
    let (h0, w0, _) = img.dim();
    if h0 == 0 || w0 == 0 {
        return Ok(Vec::new());
    }
    let (work, scale) = resize_for_search(img, resize_width).map_err(|e| e.to_string())?;
    search_resized(&work, mode, min_box, scale, (h0, w0)).map_err(|e| format!("OpenCV: {e}"))
}

fn search_resized(
    work: &RgbImage,
    mode: Mode,
    min_box: i32,
    scale: f64,
    (h0, w0): (usize, usize),
) -> opencv::Result<Vec<BBox>> {
    let (h, w, _) = work.dim();
    let mut mat = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC3, Scalar::all(0.0))?;
    // OpenCV wants BGR.
    let bytes = mat.data_bytes_mut()?;
    for (dst, src) in bytes
        .chunks_exact_mut(3)
        .zip(work.as_slice().expect("standard layout").chunks_exact(3))
    {
        dst.copy_from_slice(&[src[2], src[1], src[0]]);
    }
    let mut ss = ximgproc::create_selective_search_segmentation()?;
    ss.set_base_image(&mat)?;
    match mode {
        Mode::Fast => ss.switch_to_selective_search_fast(150, 150, 0.8)?,
        Mode::Quality => ss.switch_to_selective_search_quality(150, 150, 0.8)?,
    }
    let mut rects: Vector<Rect> = Vector::new();
    ss.process(&mut rects)?;
    let mut out: Vec<BBox> = Vec::with_capacity(rects.len());
    for r in rects
        .iter()
        .filter(|r| r.width >= min_box && r.height >= min_box)
    {
        let corners = [r.x, r.y, r.x + r.width - 1, r.y + r.height - 1].map(|v| v.max(0) as u32);
        out.push(box_to_original(corners, scale, w0, h0));
    }
    dedup_boxes(&mut out);
    Ok(out)
}
