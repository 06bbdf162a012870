//! `rcnn bench train-data`: `rcnn train` at growing N on synthetic datasets: disk per image of
//! the run folder, peak RSS of the process, region-index build time per image, steps/s.
//!
//! The datasets are drawn here: N JPEG photos-like images of noise and soft gradients with one
//! to three filled shapes each (three classes: rectangle, ellipse, triangle), and their boxes in
//! a CSV. Each N runs in its own `rcnn train` process, so that its peak RSS is its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proposals::rng::SplitMix64;
use rayon::prelude::*;

pub const CLASSES: [&str; 3] = ["rectangle", "ellipse", "triangle"];

/// Writes `n` images (`w` x `h`) to `dir/images`, their boxes to `dir/gt.csv` and, with
/// `proposals` > 0, that many proposals an image to `dir/proposals.csv` (as `rcnn proposals`
/// writes them: a third jittered about the objects, the rest anywhere); returns the number of
/// objects. A function of `seed`. Images go in chunks, so that memory stays bounded.
pub fn generate(
    dir: &Path,
    n: usize,
    (w, h): (u32, u32),
    proposals: usize,
    seed: u64,
) -> std::io::Result<usize> {
    use std::io::Write;
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let mut gt = std::io::BufWriter::new(std::fs::File::create(dir.join("gt.csv"))?);
    gt.write_all(b"image,class,xmin,ymin,xmax,ymax\n")?;
    let mut props = if proposals > 0 {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("proposals.csv"))?);
        f.write_all(b"image,rank,xmin,ymin,xmax,ymax\n")?;
        Some(f)
    } else {
        None
    };
    let mut objects = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let rows: Vec<std::io::Result<(String, String)>> = chunk
            .par_iter()
            .map(|&i| one_image(&images, i, (w, h), proposals, seed))
            .collect();
        for r in rows {
            let (g, p) = r?;
            objects += g.lines().count();
            gt.write_all(g.as_bytes())?;
            if let Some(f) = props.as_mut() {
                f.write_all(p.as_bytes())?;
            }
        }
    }
    gt.flush()?;
    if let Some(mut f) = props {
        f.flush()?;
    }
    Ok(objects)
}

/// Image `i`: its file written, its ground-truth and proposal rows returned.
fn one_image(
    images: &Path,
    i: usize,
    (w, h): (u32, u32),
    proposals: usize,
    seed: u64,
) -> std::io::Result<(String, String)> {
    {
        {
            let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut img = image::RgbImage::new(w, h);
            let base = [
                rng.below(200) as f32,
                rng.below(200) as f32,
                rng.below(200) as f32,
            ];
            for (x, y, p) in img.enumerate_pixels_mut() {
                let g = (x as f32 / w as f32 + y as f32 / h as f32) * 30.0;
                for c in 0..3 {
                    let noise = rng.below(40) as f32;
                    p[c] = (base[c] + g + noise).min(255.0) as u8;
                }
            }
            let mut csv = String::new();
            let mut placed = Vec::new();
            let name = format!("{i:06}");
            for _ in 0..1 + rng.below(3) {
                let (bw, bh) = (
                    w / 6 + rng.below((w / 2) as usize) as u32,
                    h / 6 + rng.below((h / 2) as usize) as u32,
                );
                let (x0, y0) = (
                    rng.below((w - bw) as usize) as u32,
                    rng.below((h - bh) as usize) as u32,
                );
                let class = rng.below(3);
                let colour = [
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ];
                for y in y0..y0 + bh {
                    for x in x0..x0 + bw {
                        let (u, v) = (
                            (x - x0) as f32 / bw as f32 - 0.5,
                            (y - y0) as f32 / bh as f32 - 0.5,
                        );
                        let inside = match class {
                            0 => true,
                            1 => u * u + v * v <= 0.25,
                            _ => v + 0.5 >= 2.0 * u.abs(),
                        };
                        if inside {
                            img.put_pixel(x, y, image::Rgb(colour));
                        }
                    }
                }
                writeln!(
                    csv,
                    "{name},{},{x0},{y0},{},{}",
                    CLASSES[class],
                    x0 + bw - 1,
                    y0 + bh - 1
                )
                .expect("in memory");
                placed.push((
                    x0 as f64,
                    y0 as f64,
                    (x0 + bw - 1) as f64,
                    (y0 + bh - 1) as f64,
                ));
            }
            img.save(images.join(format!("{name}.jpg")))
                .map_err(std::io::Error::other)?;
            let mut props = String::with_capacity(proposals * 32);
            let (wf, hf) = (w as f64 - 1.0, h as f64 - 1.0);
            for rank in 0..proposals {
                let (x1, y1, x2, y2) = if rank % 3 == 0 {
                    let o = placed[rank / 3 % placed.len()];
                    let mut j =
                        |v: f64, lim: f64| (v + rng.below(31) as f64 - 15.0).clamp(0.0, lim);
                    (j(o.0, wf), j(o.1, hf), j(o.2, wf), j(o.3, hf))
                } else {
                    let (a, b) = (rng.below(w as usize) as f64, rng.below(w as usize) as f64);
                    let (c, d) = (rng.below(h as usize) as f64, rng.below(h as usize) as f64);
                    (a.min(b), c.min(d), a.max(b), c.max(d))
                };
                writeln!(props, "{name},{},{x1},{y1},{x2},{y2}", rank + 1).expect("in memory");
            }
            Ok((csv, props))
        }
    }
}

/// One N measured.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    pub images: usize,
    pub regions: usize,
    /// Bytes of the run folder (index, checkpoint, model, log) per image.
    pub disk_per_image: f64,
    /// Bytes of the region index alone per image.
    pub index_per_image: f64,
    /// What `--pixels cache` would add at 224 px: regions x 3 x 224^2 bytes, per image.
    pub pixels_224_per_image: f64,
    pub peak_rss_kb: u64,
    pub index_seconds_per_image: f64,
    pub steps_per_s: f64,
    pub generate_seconds: f64,
}

/// Runs `rcnn GLOBAL train` (`global`: flags before the subcommand, such as `--threads`; with
/// `train_flags` after it) over a fresh dataset of `n` images in `work/n-N`, for `steps` steps,
/// and measures it.
pub fn measure(
    rcnn: &Path,
    global: &[String],
    work: &Path,
    n: usize,
    proposals: usize,
    steps: usize,
    train_flags: &[String],
) -> Result<ScaleRow, String> {
    let dir = work.join(format!("n-{n}"));
    let started = Instant::now();
    generate(&dir, n, (192, 144), proposals, n as u64)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let out = dir.join("run");
    let mut cmd = Command::new(rcnn);
    cmd.args(global)
        .arg("train")
        .arg("--images")
        .arg(dir.join("images"))
        .arg("--annotations")
        .arg(dir.join("gt.csv"))
        .arg("--out")
        .arg(&out)
        .args(["--steps", &steps.to_string()])
        .args(["--log-every", "5", "--checkpoint-every", &steps.to_string()])
        .args(train_flags)
        .args(if proposals > 0 {
            vec![
                std::ffi::OsString::from("--proposals"),
                dir.join("proposals.csv").into_os_string(),
            ]
        } else {
            Vec::new()
        })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let (status, rss_kb, stderr) = run_measured(cmd)?;
    if !status {
        return Err(format!(
            "rcnn train over {n} images failed: {}",
            stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ));
    }
    let log_line = |needle: &str| {
        stderr
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
            .ok_or_else(|| format!("no `{needle}` line in rcnn train's log"))
    };
    let indexed = log_line("positives) indexed")?;
    let regions: usize = indexed
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .ok_or("no region count")?;
    let built = log_line("region index ready in")?;
    let index_seconds: f64 = built
        .split("ready in ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or("no index time")?;
    let steps_per_s = steps_per_second(&out.join("log.csv"))?;
    let disk = folder_bytes(&out) as f64;
    let index = ["cache/train.regions", "cache/train.index.json"]
        .iter()
        .filter_map(|f| std::fs::metadata(out.join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>() as f64;
    Ok(ScaleRow {
        images: n,
        regions,
        disk_per_image: disk / n as f64,
        index_per_image: index / n as f64,
        pixels_224_per_image: regions as f64 * 3.0 * 224.0 * 224.0 / n as f64,
        peak_rss_kb: rss_kb,
        index_seconds_per_image: index_seconds / n as f64,
        steps_per_s,
        generate_seconds,
    })
}

/// Steps per second between the first and last lines of a training log.
fn steps_per_second(log: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let rows: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, f.last()?.parse().ok()?))
        })
        .collect();
    match (rows.first(), rows.last()) {
        (Some(a), Some(b)) if b.1 > a.1 => Ok((b.0 - a.0) / (b.1 - a.1)),
        _ => Err(format!("{}: too few lines to time", log.display())),
    }
}

/// Runs `cmd` to its end: whether it succeeded, its own peak RSS in KB (from wait4, so no
/// other child counts) and its stderr.
fn run_measured(mut cmd: Command) -> Result<(bool, u64, String), String> {
    let mut child = cmd.spawn().map_err(|e| format!("starting rcnn: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the pid is our child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let text = reader.join().unwrap_or_default();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, usage.ru_maxrss as u64, text))
}

/// The rcnn binary running now (the bench's children are the same build).
pub fn this_binary() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("finding the rcnn binary: {e}"))
}

/// Bytes of the files under `dir` (a run folder's disk use).
fn folder_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
