//! Image names in lists (split files, `--subset`, ILSVRC image lists): one reader and one
//! matching rule for every tool.
//!
//! A line is a name, optionally followed by an integer field (the ILSVRC list's index, VOC's
//! per-class `1`/`-1`): the field is the last blank-separated token when it is an integer, and
//! the name is everything before it, so names may contain spaces and dots. A listed name means
//! an image when it is the image's name exactly, or that name plus a known image extension:
//! `IMG_2274_jpeg_jpg.rf.2f31` and `IMG_2274_jpeg_jpg.rf.2f31.jpg` both mean the image whose
//! file is `IMG_2274_jpeg_jpg.rf.2f31.jpg` (only a known image extension is ever stripped).

use std::path::Path;

use crate::EvalError;

/// Extensions of the images we read, compared without case.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// `name` without a trailing known image extension (`a.b.jpg` -> `a.b`; `a.b` stays).
pub fn strip_image_extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty() && IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(ext)) =>
        {
            stem
        }
        _ => name,
    }
}

/// The key a listed name matches: images are keyed by their file name without its image
/// extension, and so are listed names.
pub fn name_key(listed: &str) -> String {
    strip_image_extension(listed.trim()).to_string()
}

/// One listed image: its 1-based line, its name, and the integer field after it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub line: usize,
    pub name: String,
    pub field: Option<i64>,
}

impl Listed {
    /// The key the name matches ([`name_key`]).
    pub fn key(&self) -> String {
        name_key(&self.name)
    }

    /// Where the line ended in an integer field, the key of the whole line: an image may be
    /// called `IMG 2`, and a line that names it whole still means it.
    pub fn whole_key(&self) -> Option<String> {
        self.field.map(|f| name_key(&format!("{} {f}", self.name)))
    }
}

/// Splits one line; `None` for blank lines and `#` comments.
pub fn parse_line(line: &str) -> Option<(String, Option<i64>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Some((name, last)) = line.rsplit_once(|c: char| c.is_whitespace()) {
        if let Ok(v) = last.parse::<i64>() {
            return Some((name.trim_end().to_string(), Some(v)));
        }
    }
    Some((line.to_string(), None))
}

/// The text of the file at `path`, as every reader of lists, classes and annotations takes it:
/// UTF-8 (else an error naming the file and the byte), without the byte-order mark that
/// Windows editors put first (it once made the first name match nothing).
pub fn read_text(path: &Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
    text_of(path, bytes)
}

/// The longest line a line-based file (a list, a class file, a submission, a txt folder's
/// file) may have: a name or a detection is a few hundred bytes; a 1 GB line once took 4.9 GB.
pub const MAX_LINE: usize = 1 << 20;

/// [`read_text`] for line-based files: read a line at a time, refused at the first line longer
/// than [`MAX_LINE`] (naming it) before more of it is read.
pub fn read_lines_text(path: &Path) -> Result<String, EvalError> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    for line in 1.. {
        let start = bytes.len();
        let n = reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| EvalError::io(path, e))?;
        if n == 0 {
            break;
        }
        if bytes.len() - start > MAX_LINE && bytes.last() != Some(&b'\n') {
            return Err(EvalError::parse(
                path,
                line,
                format!("a line longer than {MAX_LINE} bytes: not a list of names or records"),
            ));
        }
    }
    text_of(path, bytes)
}

/// A reader that fails, as soon as it is read past, on a line longer than [`MAX_LINE`]: for
/// readers that stream records (the csv crate buffers a whole record, however long).
pub struct LineBounded<R> {
    inner: R,
    /// Bytes since the last newline.
    run: usize,
}

impl<R> LineBounded<R> {
    pub fn new(inner: R) -> Self {
        LineBounded { inner, run: 0 }
    }
}

impl<R: std::io::Read> std::io::Read for LineBounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.run = if b == b'\n' { 0 } else { self.run + 1 };
            if self.run > MAX_LINE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE} bytes"),
                ));
            }
        }
        Ok(n)
    }
}

/// `bytes` of the file at `path` as UTF-8 text without a leading byte-order mark.
fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String, EvalError> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        EvalError::parse(
            path,
            0,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Every listed image of the file at `path` (read by [`read_lines_text`]).
pub fn read_listed(path: &Path) -> Result<Vec<Listed>, EvalError> {
    let text = read_lines_text(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            parse_line(l).map(|(name, field)| Listed {
                line: i + 1,
                name,
                field,
            })
        })
        .collect())
}

/// [`read_listed`], where a list that names no image is an error (`what` names the list in
/// it: split, subset, ...).
pub fn read_nonempty(path: &Path, what: &str) -> Result<Vec<Listed>, EvalError> {
    let listed = read_listed(path)?;
    if listed.is_empty() {
        return Err(EvalError::Usage(format!(
            "{}: the {what} file names no images",
            path.display()
        )));
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_dots_and_spaces_and_drop_only_image_extensions() {
        for (listed, key) in [
            (
                "IMG_2274_jpeg_jpg.rf.2f319e94",
                "IMG_2274_jpeg_jpg.rf.2f319e94",
            ),
            (
                "IMG_2274_jpeg_jpg.rf.2f319e94.jpg",
                "IMG_2274_jpeg_jpg.rf.2f319e94",
            ),
            ("raccoon-1.JPG", "raccoon-1"),
            ("my photo.png", "my photo"),
            ("archive.tar", "archive.tar"),
            (".jpg", ".jpg"),
        ] {
            assert_eq!(name_key(listed), key, "{listed}");
        }
        assert_eq!(parse_line("my photo 3"), Some(("my photo".into(), Some(3))));
        assert_eq!(parse_line("000005 -1"), Some(("000005".into(), Some(-1))));
        assert_eq!(
            parse_line("  my photo.jpg "),
            Some(("my photo.jpg".into(), None))
        );
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line("   "), None);
    }
}
