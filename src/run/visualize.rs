//! Drawings of detections: boxes in one colour per class, a label "name 0.87" on a filled tab
//! in that colour with black or white text (whichever reads better on it), and an index.html
//! that shows the drawings as a grid. OpenCV imgproc draws; the `image` crate encodes.

use std::fmt::Write as _;
use std::path::Path;

use eval::BBox;
use opencv::core::{Point, Rect, Scalar};
use opencv::imgproc;
use opencv::prelude::*;
use proposals::RgbImage;

/// One box to draw.
#[derive(Debug, Clone)]
pub struct Mark {
    pub label: String,
    pub class: usize,
    pub bbox: BBox,
    /// Overrides the class colour (true/false positives and misses against ground truth).
    pub colour: Option<[u8; 3]>,
}

/// Styles of `rcnn visualize --gt`: hits green, false positives red, misses yellow.
pub const TRUE_POSITIVE: [u8; 3] = [40, 200, 60];
pub const FALSE_POSITIVE: [u8; 3] = [230, 30, 30];
pub const MISS: [u8; 3] = [255, 215, 0];

/// A bright colour per class, spread around the hue circle by the golden ratio.
pub fn colour_for(class: usize) -> [u8; 3] {
    let h = (class as f64 * 0.618_033_988_75).fract() * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    // Value 0.9, saturation 0.85: vivid but not neon.
    [r, g, b].map(|c: f64| ((0.15 + 0.85 * c) * 0.9 * 255.0).round() as u8)
}

/// Black on light colours, white on dark ones (relative luminance, ITU-R BT.709).
pub fn text_colour(bg: [u8; 3]) -> [u8; 3] {
    let l = 0.2126 * bg[0] as f64 + 0.7152 * bg[1] as f64 + 0.0722 * bg[2] as f64;
    if l > 140.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// The image with `marks` drawn on it.
pub fn draw(img: &RgbImage, marks: &[Mark]) -> opencv::Result<RgbImage> {
    let (h, w, _) = img.dim();
    let mut mat = crate::run::tensor::rgb_mat(img)?;
    // Mat holds RGB here, so colours are given as (r, g, b).
    let scalar = |c: [u8; 3]| Scalar::new(c[0] as f64, c[1] as f64, c[2] as f64, 0.0);
    let thickness = ((w.max(h) as f64 / 400.0).round() as i32).clamp(1, 6);
    let font_scale = (w.max(h) as f64 / 1000.0).clamp(0.4, 1.5);
    for m in marks {
        let colour = m.colour.unwrap_or_else(|| colour_for(m.class));
        let (x1, y1) = (m.bbox.x1.max(0.0) as i32, m.bbox.y1.max(0.0) as i32);
        let (x2, y2) = (
            (m.bbox.x2 as i32).min(w as i32 - 1),
            (m.bbox.y2 as i32).min(h as i32 - 1),
        );
        if x2 < x1 || y2 < y1 {
            continue;
        }
        imgproc::rectangle(
            &mut mat,
            Rect::new(x1, y1, x2 - x1 + 1, y2 - y1 + 1),
            scalar(colour),
            thickness,
            imgproc::LINE_8,
            0,
        )?;
        let mut baseline = 0;
        let size = imgproc::get_text_size(
            &m.label,
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            1,
            &mut baseline,
        )?;
        // The tab sits above the box, or inside it at the top edge of the image.
        let tab_h = size.height + baseline + 4;
        let top = if y1 >= tab_h { y1 - tab_h } else { y1 };
        imgproc::rectangle(
            &mut mat,
            Rect::new(x1, top, size.width + 6, tab_h),
            scalar(colour),
            imgproc::FILLED,
            imgproc::LINE_8,
            0,
        )?;
        let org = Point::new(x1 + 3, top + size.height + 2);
        imgproc::put_text(
            &mut mat,
            &m.label,
            org,
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            scalar(text_colour(colour)),
            1,
            imgproc::LINE_AA,
            false,
        )?;
    }
    Ok(RgbImage::from_shape_vec((h, w, 3), mat.data_bytes()?.to_vec()).expect("same size"))
}

/// Encodes `img` as JPEG at `path` (temporary name, then rename).
pub fn save_jpeg(img: &RgbImage, path: &Path) -> Result<(), String> {
    let (h, w, _) = img.dim();
    let buf = image::RgbImage::from_raw(
        w as u32,
        h as u32,
        img.as_slice().expect("standard layout").to_vec(),
    )
    .expect("sizes agree");
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(buf)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eval::write_atomically(path, &bytes).map_err(|e| e.to_string())
}

/// index.html: the drawings as a grid, each captioned with its name and detection count.
pub fn write_index(dir: &Path, entries: &[(String, usize)]) -> Result<(), String> {
    let mut html = String::from(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>detections</title>\n<style>body{font-family:sans-serif;margin:1em}\
         .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}\
         figure{margin:0}img{width:100%;height:auto}figcaption{font-size:13px}</style>\n<div class=\"grid\">\n",
    );
    for (file, n) in entries {
        // The link a relative URL (a name such as `javascript:alert(1)` stays a file name), the
        // caption text with markup escaped.
        let link = eval::output::url_path(file);
        let caption = file
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        writeln!(html, "<figure><a href=\"{link}\"><img src=\"{link}\" loading=\"lazy\"></a><figcaption>{caption}: {n} detections</figcaption></figure>")
            .expect("write to a string");
    }
    html.push_str("</div>\n");
    eval::write_atomically(&dir.join("index.html"), html.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_differ_and_labels_stay_readable() {
        let colours: Vec<[u8; 3]> = (0..20).map(colour_for).collect();
        for i in 0..20 {
            for j in 0..i {
                let d: i32 = (0..3)
                    .map(|c| (colours[i][c] as i32 - colours[j][c] as i32).abs())
                    .sum();
                assert!(
                    d > 20,
                    "classes {i} and {j} look alike: {:?} {:?}",
                    colours[i],
                    colours[j]
                );
            }
        }
        assert_eq!(text_colour([250, 250, 60]), [0, 0, 0]);
        assert_eq!(text_colour([30, 30, 200]), [255, 255, 255]);
    }

    #[test]
    fn draws_the_box_and_its_tab() {
        let img = RgbImage::from_elem((100, 120, 3), 128);
        let marks = [Mark {
            label: "cat 0.90".into(),
            class: 3,
            bbox: BBox::new(20.0, 40.0, 80.0, 90.0),
            colour: None,
        }];
        let out = draw(&img, &marks).unwrap();
        let c = colour_for(3);
        // The box's left edge at x = 20, halfway down, in the class colour.
        assert_eq!([out[[65, 20, 0]], out[[65, 20, 1]], out[[65, 20, 2]]], c);
        // Inside the box, away from the tab, the image is untouched.
        assert_eq!(out[[70, 50, 0]], 128);
        // The tab above the box holds the class colour too.
        assert!((25..40).any(|y| [out[[y, 22, 0]], out[[y, 22, 1]], out[[y, 22, 2]]] == c));
        // A box entirely outside draws nothing.
        let none = draw(
            &img,
            &[Mark {
                label: "x".into(),
                class: 0,
                bbox: BBox::new(500.0, 500.0, 600.0, 600.0),
                colour: None,
            }],
        )
        .unwrap();
        assert_eq!(none, img);
    }
}
