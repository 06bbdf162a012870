//! Where outputs go and how they are written: every file a run writes is named through
//! [`file_in`] (so that no image name, however made, reaches outside the output folder), written
//! by [`write_atomically`] (a new temporary file, never an existing one or a link planted at its
//! name, then a rename), and never over one of the run's inputs ([`protect_inputs`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::EvalError;

/// The files this run reads, canonical: no writer may replace one ([`protect_inputs`]).
fn inputs() -> &'static std::sync::Mutex<std::collections::HashSet<PathBuf>> {
    static INPUTS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
        std::sync::OnceLock::new();
    INPUTS.get_or_init(Default::default)
}

/// Where `path` is, or would be once written: symbolic links and `..` resolved.
fn canonical_target(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

/// Registers the input files of this run: every later [`write_atomically`] refuses to write
/// over one of them, whatever flag named the output.
pub fn protect_inputs<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) {
    let mut set = inputs().lock().unwrap_or_else(|e| e.into_inner());
    set.extend(
        paths
            .into_iter()
            .filter_map(|p| p.as_ref().canonicalize().ok()),
    );
}

/// An error if writing `path` would replace one of the run's inputs.
pub fn check_not_input(path: &Path) -> Result<(), EvalError> {
    let set = inputs().lock().unwrap_or_else(|e| e.into_inner());
    if set.is_empty() {
        return Ok(());
    }
    match canonical_target(path) {
        Some(target) if set.contains(&target) => Err(EvalError::Usage(format!(
            "{}: is an input of this run; refusing to write over it (choose another output \
             location)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks, before long work starts, that files can be created in the folder `dir` (created if
/// missing): no ancestor is a file, and the nearest existing folder is writable.
pub fn check_output_dir(dir: &Path) -> Result<(), EvalError> {
    let mut existing = dir;
    loop {
        if existing.as_os_str().is_empty() {
            existing = Path::new(".");
        }
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(EvalError::Usage(format!(
                    "{}: cannot be an output folder: {} is a file",
                    dir.display(),
                    existing.display()
                )))
            }
            Err(_) => match existing.parent() {
                Some(p) => existing = p,
                None => break,
            },
        }
    }
    // A probe file says more than permission bits (read-only mounts, ACLs, root).
    let (probe, _) =
        create_temporary(Some(existing), "rcnn-probe").map_err(|e| EvalError::io(existing, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` beside `path` under a temporary name, syncs it, then renames it into place, so
/// a killed run or a full disk never leaves half a file, and a file once renamed is durable.
/// Missing parent folders are created. The error names `path` and the OS reason, and the
/// temporary file is removed. Refuses to write over an input of the run.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    use std::io::Write;
    check_not_input(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            std::fs::create_dir_all(parent).map_err(|e| EvalError::io(parent, e))?;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, file) = create_temporary(path.parent(), &name).map_err(|e| EvalError::io(path, e))?;
    let written = (&file).write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(EvalError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EvalError::io(path, e)
    })?;
    // The rename itself is durable once the folder is synced.
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Temporary files made by this process so far: the `n` of their names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a new file named `.{stem}.{pid}.{n}.tmp` in `dir` (the current folder if none),
/// exclusively: O_CREAT | O_EXCL never opens an existing file and never follows a symbolic
/// link, so a link planted at a predictable name is stepped over, not written through.
fn create_temporary(dir: Option<&Path>, stem: &str) -> std::io::Result<(PathBuf, File)> {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut last = None;
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Why `name` cannot name a file under an output folder, if it cannot: it must be relative,
/// its `/`-separated parts neither empty nor `.` nor `..`, and free of control characters
/// (which would break line-based lists such as image_list.txt).
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.starts_with('/') {
        return Some("it is an absolute path");
    }
    if name.chars().any(char::is_control) {
        return Some("it holds a control character");
    }
    if name.split('/').any(|part| part.is_empty()) {
        return Some("it has an empty folder part");
    }
    if name.split('/').any(|part| part == "." || part == "..") {
        return Some("it has a '.' or '..' part");
    }
    None
}

/// The file for image `name` (which may hold `/`: images told apart by their folders) with
/// `extension` under `dir`, or an error naming it where the name could reach outside `dir`.
/// Every writer that makes a file from a name goes through here.
pub fn file_in(dir: &Path, name: &str, extension: &str) -> Result<PathBuf, EvalError> {
    match unsafe_name(name) {
        Some(why) => Err(EvalError::Usage(format!(
            "image name {name:?} cannot name a file under {}: {why}",
            dir.display()
        ))),
        None => Ok(dir.join(format!("{name}{extension}"))),
    }
}

/// `name` as a relative URL (a link in index.html): every byte but letters, digits, `-._~` and
/// the `/` between folders percent-encoded, so that no name becomes a scheme (`javascript:`),
/// a query or markup.
pub fn url_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_that_leave_the_folder_are_refused_by_name() {
        let dir = Path::new("/out");
        assert_eq!(
            file_in(dir, "a/x", ".txt").unwrap(),
            Path::new("/out/a/x.txt")
        );
        assert_eq!(
            file_in(dir, "...", ".jpg").unwrap(),
            Path::new("/out/....jpg")
        );
        for bad in [
            "../../../x",
            "/abs/path",
            "a/../b",
            "a//b",
            "",
            ".",
            "a\nb",
            "x\u{1b}[2J",
        ] {
            let err = file_in(dir, bad, ".txt").unwrap_err().to_string();
            assert!(
                err.contains("cannot name a file under /out"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn links_are_relative_paths_whatever_the_name() {
        assert_eq!(url_path("a/b c.jpg"), "a/b%20c.jpg");
        assert_eq!(url_path("javascript:alert(1)"), "javascript%3Aalert%281%29");
        assert_eq!(url_path("\"><script>"), "%22%3E%3Cscript%3E");
        assert_eq!(url_path("é"), "%C3%A9");
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // Every temporary name this process could take next, each a link to the victim.
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 8 {
            let planted = dir
                .path()
                .join(format!(".out.txt.{}.{n}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        let out = dir.path().join("out.txt");
        write_atomically(&out, b"result").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"result");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let probe_victim = dir.path().join("probe-victim");
        std::fs::write(&probe_victim, b"keep").unwrap();
        check_output_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read(&probe_victim).unwrap(), b"keep");
    }

    proptest! {
        /// Whatever the name, a file it is allowed to name lies inside the folder.
        #[test]
        fn an_allowed_name_stays_inside_the_folder(name in "[a-z./%\\\\\\x00-\\x1f]{0,12}") {
            let dir = Path::new("/out/run");
            if let Ok(path) = file_in(dir, &name, ".txt") {
                let mut depth = 0i32;
                for c in path.strip_prefix(dir).unwrap().components() {
                    match c {
                        std::path::Component::Normal(_) => depth += 1,
                        other => prop_assert!(false, "{name:?} gave {other:?} in {path:?}"),
                    }
                }
                prop_assert!(depth >= 1);
            }
        }
    }
}
