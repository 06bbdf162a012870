//! The first stage: image files to RGB arrays, with the `image` crate.
//!
//! EXIF orientation is applied; grey, 16-bit and alpha images become 8-bit RGB. A file that
//! cannot be read or decoded is an error naming the file and the reason, never a panic.

use std::path::{Path, PathBuf};

use eval::names::is_image_file;
use image::{DynamicImage, ImageDecoder, ImageReader};
use proposals::RgbImage;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DecodeError {
    pub path: PathBuf,
    pub reason: String,
}

/// The default of `--max-pixels`: 100 megapixels (a 10000 x 10000 photo), 300 MB as RGB.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

static MAX_PIXELS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_MAX_PIXELS);

/// Sets the largest image [`decode`] accepts (`--max-pixels`).
pub fn set_max_pixels(n: u64) {
    MAX_PIXELS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Decodes one image file into `[height, width, 3]` RGB. An image declaring more pixels than
/// `--max-pixels` is refused from its header, before anything is allocated.
pub fn decode(path: &Path) -> Result<RgbImage, DecodeError> {
    let fail = |reason: String| DecodeError {
        path: path.to_path_buf(),
        reason,
    };
    let reader = ImageReader::open(path)
        .map_err(|e| fail(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?;
    let max = MAX_PIXELS.load(std::sync::atomic::Ordering::Relaxed);
    let mut limits = image::Limits::default();
    // Decoders' own buffers are bounded too (4 bytes a pixel covers RGBA and 16-bit grey).
    limits.max_alloc = Some(max.saturating_mul(8));
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| fail(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max {
        return Err(fail(format!(
            "{w} x {h} = {} pixels, more than --max-pixels {max}; skipped",
            w as u64 * h as u64
        )));
    }
    let orientation = decoder.orientation().map_err(|e| fail(e.to_string()))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| fail(e.to_string()))?;
    img.apply_orientation(orientation);
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    RgbImage::from_shape_vec((h as usize, w as usize, 3), rgb.into_raw())
        .map_err(|e| fail(e.to_string()))
}

pub use eval::names::IMAGE_EXTENSIONS;

/// The images named by `inputs`: folders (recursively), image files, and list files (`.txt`,
/// one path per line, relative to the list). Sorted and deduplicated, so that image indices are
/// stable from run to run.
pub fn collect_images(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    collect_images_outside(inputs, &[])
}

/// [`collect_images`], never entering the folders `outputs` (a run's own `--out` inside its
/// input folder: its drawings are not images to detect in). A subfolder that cannot be read is
/// named in a warning and left out; files in folders that are not images are counted.
pub fn collect_images_outside(
    inputs: &[PathBuf],
    outputs: &[&Path],
) -> std::io::Result<Vec<PathBuf>> {
    use std::collections::HashSet;
    let named = |dir: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
    };
    // Links are followed, but each real folder is entered once (a link loop ends) and each
    // real file is taken once, however many links lead to it. The outputs count as seen.
    // (An output that is itself an input folder is still read: it holds the images.)
    let input_dirs: HashSet<PathBuf> = inputs
        .iter()
        .filter_map(|i| i.canonicalize().ok())
        .collect();
    let mut seen_dirs: HashSet<PathBuf> = outputs
        .iter()
        .filter_map(|o| o.canonicalize().ok())
        .filter(|o| !input_dirs.contains(o))
        .collect();
    let mut seen_files = HashSet::new();
    let mut not_images = 0usize;
    let mut walk = |top: &Path, out: &mut Vec<PathBuf>| -> std::io::Result<()> {
        let mut stack = vec![top.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(real) = dir.canonicalize() else {
                continue; // a dangling link
            };
            if !seen_dirs.insert(real) {
                continue;
            }
            let listed = std::fs::read_dir(&dir).and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.path()))
                    .collect::<Result<Vec<PathBuf>, _>>()
            });
            let mut entries = match listed {
                Ok(entries) => entries,
                Err(e) if dir == top => return Err(named(&dir, e)),
                Err(e) => {
                    tracing::warn!("{}: {e}; its images are left out", dir.display());
                    continue;
                }
            };
            entries.sort();
            // Depth first, in name order: subfolders pushed in reverse.
            let mut subfolders = Vec::new();
            for p in entries {
                if p.is_dir() {
                    subfolders.push(p);
                } else if !is_image_file(&p) {
                    not_images += 1;
                } else if p.canonicalize().is_ok_and(|r| seen_files.insert(r)) {
                    out.push(p);
                }
            }
            stack.extend(subfolders.into_iter().rev());
        }
        Ok(())
    };
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut out)?;
        } else if input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
        {
            let base = input.parent().unwrap_or(Path::new("."));
            let text = eval::names::read_lines_text(input).map_err(std::io::Error::other)?;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                out.push(base.join(line));
            }
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or folder", input.display()),
            ));
        }
    }
    if not_images > 0 {
        tracing::info!("{not_images} files in the input folders are not images (jpg, jpeg, png, bmp, webp) and were left out");
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The file name without extension: how images meet their annotations.
pub fn image_key(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One part of an image name, made safe to be a file name and a line of a list: control
/// characters (a newline would split image_list.txt) percent-encoded, and `.` or `..` (which
/// would climb out of an output folder) written as `%2E`.
fn name_part(part: &str) -> String {
    if part == "." || part == ".." {
        return part.replace('.', "%2E");
    }
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        if c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The plain folder and file names of `path`, read lexically: `.` skipped, `..` taking back the
/// part before it, the root and any prefix dropped. A name is made from these alone, so that it
/// never holds `..` or starts at `/`, however the path was written.
fn plain_parts(path: &Path) -> Vec<String> {
    use std::path::Component;
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts
}

/// The name of each image of a run, unique within it: the file name without its extension
/// where no other image shares it (how images meet their annotations), else as many trailing
/// folders as make it unique (`a/x`, `b/x`), else the file name with its extension (`x.jpg`,
/// `x.png`), else a `~2`, `~3` suffix. Every output, the journal and the drawings use these
/// names; each is a relative path of plain parts ([`name_part`]), so that a file made from it
/// stays inside its output folder (`eval::output::file_in` checks).
pub fn image_names(images: &[PathBuf]) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    // An empty stem (a path "" or one ending in `..`) is written `%00`, here as well as at the
    // end of a longer name, which would otherwise end in an empty part (`a/`).
    let key = |p: &Path| match name_part(&image_key(p)) {
        k if k.is_empty() => "%00".to_string(),
        k => k,
    };
    // `k` trailing parts, the last without (or with) its extension.
    let suffix = |p: &Path, k: usize, with_ext: bool| -> String {
        let parts = plain_parts(p);
        let k = k.clamp(1, parts.len().max(1));
        let mut tail: Vec<String> = parts[parts.len().saturating_sub(k)..]
            .iter()
            .map(|s| name_part(s))
            .collect();
        match tail.last_mut() {
            Some(last) if !with_ext => *last = key(p),
            None => tail.push(key(p)),
            _ => {}
        }
        tail.join("/")
    };
    let mut names: Vec<String> = images.iter().map(|p| key(p)).collect();
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        groups.entry(n.clone()).or_default().push(i);
    }
    for group in groups.values().filter(|g| g.len() > 1) {
        let depth = group
            .iter()
            .map(|&i| plain_parts(&images[i]).len())
            .max()
            .unwrap_or(1);
        'found: for with_ext in [false, true] {
            for k in 1..=depth {
                let candidate: Vec<String> = group
                    .iter()
                    .map(|&i| suffix(&images[i], k, with_ext))
                    .collect();
                let mut seen = HashSet::new();
                if candidate.iter().all(|c| seen.insert(c.clone())) {
                    for (&i, c) in group.iter().zip(candidate) {
                        names[i] = c;
                    }
                    break 'found;
                }
            }
        }
    }
    // Paths that differ only in what a name leaves out (`/x.jpg` and `x.jpg`, or an empty
    // stem): numbered, so that no two images share an output.
    let mut taken: HashSet<String> = HashSet::new();
    for name in &mut names {
        if name.is_empty() {
            *name = "%00".into();
        }
        let mut n = 1;
        let base = name.clone();
        while !taken.insert(name.clone()) {
            n += 1;
            *name = format!("{base}~{n}");
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_real_photo_and_reports_a_corrupt_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raccoon/images");
        let img = decode(&dir.join("raccoon-1.jpg")).unwrap();
        assert_eq!(img.dim(), (417, 650, 3)); // its annotation's size
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.jpg");
        let bytes = std::fs::read(dir.join("raccoon-1.jpg")).unwrap();
        // Cut inside the headers (the decoder fills a file cut in its scan data, as most do).
        std::fs::write(&bad, &bytes[..200]).unwrap();
        let err = decode(&bad).unwrap_err().to_string();
        assert!(err.starts_with(&bad.display().to_string()), "{err}");
        std::fs::write(&bad, b"not an image").unwrap();
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn grey_and_alpha_images_become_rgb() {
        let tmp = tempfile::tempdir().unwrap();
        let grey = tmp.path().join("g.png");
        image::GrayImage::from_pixel(5, 3, image::Luma([77]))
            .save(&grey)
            .unwrap();
        let img = decode(&grey).unwrap();
        assert_eq!(img.dim(), (3, 5, 3));
        assert!(img.iter().all(|&v| v == 77));
        let rgba = tmp.path().join("a.PNG");
        image::RgbaImage::from_pixel(2, 2, image::Rgba([1, 2, 3, 4]))
            .save_with_format(&rgba, image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode(&rgba).unwrap()[[1, 1, 2]], 3);
        // Found by extension in any case, sorted.
        let found = collect_images(&[tmp.path().to_path_buf()]).unwrap();
        assert_eq!(found, vec![rgba, grey]);
    }

    /// CRC-32 (PNG's), to forge a header.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bomb.png");
        image::GrayImage::new(4, 4).save(&path).unwrap();
        let mut png = std::fs::read(&path).unwrap();
        // IHDR: length(4) "IHDR"(4) width(4) height(4) ... CRC over type and data.
        let at = png.windows(4).position(|w| w == b"IHDR").unwrap();
        png[at + 4..at + 8].copy_from_slice(&40_000u32.to_be_bytes());
        png[at + 8..at + 12].copy_from_slice(&40_000u32.to_be_bytes());
        let crc = crc32(&png[at..at + 17]);
        png[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, &png).unwrap();
        let err = decode(&path).unwrap_err().to_string();
        assert!(
            err.contains("40000 x 40000") && err.contains("--max-pixels"),
            "{err}"
        );
    }

    #[test]
    fn link_loops_end_and_each_real_file_is_taken_once() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("set");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        image::GrayImage::new(2, 2).save(d.join("a.png")).unwrap();
        std::os::unix::fs::symlink(&d, d.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(d.join("a.png"), d.join("sub/again.png")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        let found = collect_images(std::slice::from_ref(&d)).unwrap();
        assert_eq!(found, vec![d.join("a.png")]);
    }

    #[test]
    fn images_sharing_a_stem_get_distinct_names() {
        let p = |s: &str| PathBuf::from(s);
        let images = [
            p("set/a/x.jpg"),
            p("set/b/x.jpg"),
            p("set/c/y.jpg"),
            p("set/c/y.png"),
            p("set/IMG_1.rf.ab12.jpg"),
            p("set/z.jpg"),
        ];
        assert_eq!(
            image_names(&images),
            ["a/x", "b/x", "y.jpg", "y.png", "IMG_1.rf.ab12", "z"]
        );
    }

    #[test]
    fn names_never_climb_out_of_an_output_folder() {
        let p = |s: &str| PathBuf::from(s);
        // The image list that made `--format txt` write two folders above `--out`.
        let images = [
            p("a/b/c/../../../x.jpg"),
            p("d/x.jpg"),
            p("/abs/y.jpg"),
            p("y.jpg"),
            p("/z.jpg"),
            p("z.jpg"),
            p("line\nbreak.jpg"),
            p("q/...jpg"),
            p("r/...jpg"),
        ];
        let names = image_names(&images);
        assert_eq!(
            names,
            [
                "x",
                "d/x",
                "abs/y",
                "y",
                "z",
                "z~2",
                "line%0Abreak",
                "q/%2E%2E",
                "r/%2E%2E"
            ]
        );
        for n in &names {
            assert_eq!(eval::output::unsafe_name(n), None, "{n:?}");
        }
    }

    #[test]
    fn an_empty_path_and_one_ending_in_dotdot_get_whole_names() {
        // Found by the property below: both have an empty stem; the longer name ended in `/`.
        let names = image_names(&[PathBuf::from(""), PathBuf::from("%/a/\n/../")]);
        assert_eq!(names, ["%00", "%/%00"]);
        for n in &names {
            assert_eq!(eval::output::unsafe_name(n), None, "{n:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the paths, every name is unique and names a file inside the output folder.
        #[test]
        fn any_paths_give_unique_safe_names(
            paths in proptest::collection::vec("(/|\\.\\./|\\./|[ab\\n%.]{0,3}/){0,4}[ab\\n.]{0,3}(\\.jpg)?", 1..8)
        ) {
            let images: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            let names = image_names(&images);
            let unique: std::collections::HashSet<&String> = names.iter().collect();
            proptest::prop_assert_eq!(unique.len(), names.len(), "{:?} -> {:?}", images, names);
            for n in &names {
                proptest::prop_assert_eq!(eval::output::unsafe_name(n), None, "{:?} from {:?}", n, images);
            }
        }
    }
}
