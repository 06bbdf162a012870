//! `--plots DIR`: a precision-recall curve per class and a summary chart, as PNG.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use rayon::prelude::*;

use crate::classes::ClassList;
use crate::metrics::{ClassResult, Evaluation};
use crate::EvalError;

/// Fonts tried in order; `RCNN_FONT` names another TrueType file.
const FONT_CANDIDATES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a TrueType font with plotters once per process.
fn ensure_font() -> Result<(), EvalError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("RCNN_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            "--plots needs a TrueType font: install fonts-dejavu-core or set RCNN_FONT".to_string()
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable font", path.display()))
    })
    .clone()
    .map_err(EvalError::Usage)
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::parse(path, 0, format!("drawing the plot: {e}"))
}

/// Draws into memory, encodes a PNG and writes it through [`crate::write_atomically`] (a
/// temporary file renamed into place; never over an input; errors name the path and reason).
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), EvalError> {
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        draw(&root).map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, rgb).expect("the buffer has the size");
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| plot_error(path, e))?;
    crate::write_atomically(path, &png)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A chart's frame as every line chart here has it: caption, margin, room for axis labels.
fn framed<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50);
    builder
}

fn pr_curve(path: &Path, name: &str, c: &ClassResult) -> Result<(), EvalError> {
    draw_png(path, (640, 480), |root| {
        let caption = format!(
            "{name}: AP {:.4} ({} objects, {} detections)",
            c.ap, c.n_gt, c.n_dets
        );
        let mut chart = framed(root, &caption)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("recall")
            .y_desc("precision")
            .draw()
            .map_err(|e| e.to_string())?;
        // The precision envelope that all-point AP integrates, under the raw curve.
        let mut envelope: Vec<(f64, f64)> = c
            .curve
            .recall
            .iter()
            .copied()
            .zip(c.curve.precision.iter().copied())
            .collect();
        for i in (0..envelope.len().saturating_sub(1)).rev() {
            envelope[i].1 = envelope[i].1.max(envelope[i + 1].1);
        }
        chart
            .draw_series(LineSeries::new(
                envelope,
                RGBColor(160, 190, 230).stroke_width(3),
            ))
            .map_err(|e| e.to_string())?;
        let raw = c
            .curve
            .recall
            .iter()
            .copied()
            .zip(c.curve.precision.iter().copied());
        chart
            .draw_series(LineSeries::new(raw, BLUE.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn bars(
    path: &Path,
    caption: &str,
    values: &[(String, f64)],
    mean: Option<f64>,
) -> Result<(), EvalError> {
    let width = (values.len() as u32 * 6).clamp(640, 2400);
    draw_png(path, (width, 480), |root| {
        let n = values.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(if n <= 40 { 30 } else { 10 })
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..1.02f64)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = values.iter().map(|(l, _)| l.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(if n <= 40 { n } else { 0 })
            .x_label_formatter(&|x| labels.get(*x as usize).cloned().unwrap_or_default())
            .y_desc("AP")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new(
                    [(i as f64 + 0.1, 0.0), (i as f64 + 0.9, v.max(0.0))],
                    BLUE.mix(0.7).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        if let Some(m) = mean {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, m), (n as f64, m)],
                    RED.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// The most precision-recall curves one `--plots` writes: ILSVRC has 200 classes, the
/// classification list 1000; a ground truth of 100,000 categories would otherwise write as
/// many files. The summary chart still holds every class.
pub const MAX_PR_CURVES: usize = 1000;

/// Writes `pr_NNN_CLASS.png` for each class with objects or detections (the first
/// [`MAX_PR_CURVES`] of them by class index) and `summary.png` (AP per class, best first, with
/// the mean; for COCO, its 12 numbers). Returns the count written and the curves left out.
pub fn write_plots(
    dir: &Path,
    e: &Evaluation,
    classes: &ClassList,
) -> Result<(usize, usize), EvalError> {
    write_plots_within(dir, e, classes, MAX_PR_CURVES)
}

fn write_plots_within(
    dir: &Path,
    e: &Evaluation,
    classes: &ClassList,
    max_curves: usize,
) -> Result<(usize, usize), EvalError> {
    ensure_font()?;
    std::fs::create_dir_all(dir).map_err(|err| EvalError::io(dir, err))?;
    if let Some(c) = &e.coco {
        let values: Vec<(String, f64)> = crate::metrics::CocoStats::NAMES
            .iter()
            .map(|n| n.to_string())
            .zip(c.as_array())
            .collect();
        bars(&dir.join("summary.png"), "COCO summary", &values, None)?;
        return Ok((1, 0));
    }
    let shown: Vec<&ClassResult> = e
        .per_class
        .iter()
        .filter(|c| c.n_gt > 0 || c.n_dets > 0)
        .collect();
    let curves = shown.len().min(max_curves);
    shown[..curves]
        .par_iter()
        .map(|c| {
            let name = &classes.names[c.class];
            pr_curve(
                &dir.join(format!("pr_{:03}_{}.png", c.class + 1, file_safe(name))),
                name,
                c,
            )
        })
        .collect::<Result<Vec<()>, EvalError>>()?;
    let mut values: Vec<(String, f64)> = shown
        .iter()
        .filter(|c| c.n_gt > 0)
        .map(|c| (classes.names[c.class].clone(), c.ap))
        .collect();
    values.sort_by(|a, b| b.1.total_cmp(&a.1));
    let caption = match e.mean_ap {
        Some(m) => format!(
            "{} AP per class at IoU {}: mean {m:.4} over {} classes",
            e.metric,
            e.iou,
            values.len()
        ),
        None => format!("{}: no class has ground truth", e.metric),
    };
    bars(&dir.join("summary.png"), &caption, &values, e.mean_ap)?;
    Ok((curves + 1, shown.len() - curves))
}

/// The largest x of any series (at least 1).
fn x_max(series: &[(String, Vec<(f64, f64)>)]) -> f64 {
    series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max)
}

/// Draws each named series as a line in its own colour, with a legend at `legend`.
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    const COLOURS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A line chart of named series (x, y), y in 0..1, x on a log scale.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), EvalError> {
    ensure_font()?;
    let x_max = x_max(series);
    draw_png(path, (720, 480), |root| {
        let mut chart = framed(root, title)
            .build_cartesian_2d((1f64..x_max * 1.2).log_scale(), 0f64..1.02f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, series, SeriesLabelPosition::LowerRight)
    })
}

/// A line chart of named series on linear axes, y from 0 to `y_max` (training curves).
pub fn curve_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_max: f64,
) -> Result<(), EvalError> {
    ensure_font()?;
    let x_max = x_max(series);
    let y_max = if y_max.is_finite() && y_max > 0.0 {
        y_max
    } else {
        1.0
    };
    // The legend goes where the curves end low, so that it hides none of them.
    let ends_high = series
        .iter()
        .filter_map(|(_, s)| s.last())
        .any(|p| p.1 > 0.5 * y_max);
    let legend = if ends_high {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    };
    // Non-finite points are left out and the rest clipped to the axis.
    let shown: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, points)| {
            let points = points
                .iter()
                .filter(|p| p.1.is_finite())
                .map(|&(x, y)| (x, y.min(y_max)))
                .collect();
            (name.clone(), points)
        })
        .collect();
    draw_png(path, (720, 480), |root| {
        let mut chart = framed(root, title)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, &shown, legend)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Detection, Detections, GroundTruth, GtBox};
    use crate::{BBox, EvalParams, Metric};

    #[test]
    fn curves_are_capped_and_the_summary_holds_every_class() {
        // A ground truth of thousands of categories wrote a curve for each.
        let n = 12;
        let mut gt = GroundTruth::default();
        let image = gt.images.intern("img");
        let mut dets = Detections::default();
        for class in 0..n {
            let bbox = BBox::new(0.0, 0.0, 10.0 + class as f64, 10.0);
            gt.boxes.push(GtBox {
                image,
                class,
                bbox,
                difficult: false,
                crowd: false,
                area: None,
            });
            dets.dets.push(Detection {
                image,
                class,
                score: 0.9,
                bbox,
            });
        }
        dets.first_unknown_image = 1;
        let e = crate::evaluate(&gt, &dets, n, &EvalParams::new(Metric::Voc));
        let classes = ClassList::from_names((0..n).map(|i| format!("c{i}")).collect());
        let dir = tempfile::tempdir().unwrap();
        let (written, left_out) = write_plots_within(dir.path(), &e, &classes, 5).unwrap();
        assert_eq!((written, left_out), (6, n - 5));
        let curves = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|f| {
                let f = f.as_ref().unwrap().file_name();
                f.to_string_lossy().starts_with("pr_")
            })
            .count();
        assert_eq!(curves, 5);
        assert!(dir.path().join("summary.png").is_file());
    }
}
