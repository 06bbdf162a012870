//! Exclusive locks, so that two processes never write one output: `flock` on a file that stays
//! (removing a lock file others may have opened would break the exclusion), released by the
//! kernel when its holder exits or dies, so a killed run never leaves a folder locked.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of an output folder.
pub const OUTPUT_LOCK: &str = ".rcnn.lock";

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Another process holds it; `holder` is what it wrote there.
    #[error(
        "{} is in use by another run ({holder}): two runs into one output would replace each \
         other's files; wait for it to finish or choose another output",
        what.display()
    )]
    Held { what: PathBuf, holder: String },
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

fn open(path: &Path) -> Result<File, LockError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .custom_flags(libc::O_NOFOLLOW)
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| LockError::Io {
            path: path.to_path_buf(),
            error,
        })
}

/// `flock(fd, op)`, retried when a signal interrupts it; `Ok(false)` when the lock is held
/// elsewhere and `op` does not wait.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor that `file` owns for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(e),
        }
    }
}

impl FileLock {
    /// Waits for the lock on `path` (created if missing), logging once that it waits.
    pub fn acquire(path: &Path, waiting: &str) -> Result<FileLock, LockError> {
        let file = open(path)?;
        let io = |error| LockError::Io {
            path: path.to_path_buf(),
            error,
        };
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(io)? {
            tracing::info!("{}: {waiting}; waiting", path.display());
            flock(&file, libc::LOCK_EX).map_err(io)?;
        }
        Ok(FileLock { _file: file })
    }
}

/// Takes the output lock of `dir` (created if missing) for this process, writing there who
/// holds it (`what`, e.g. `rcnn detect`, with the process id), or refuses naming the holder.
pub fn lock_output(dir: &Path, what: &str) -> Result<FileLock, LockError> {
    std::fs::create_dir_all(dir).map_err(|error| LockError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    lock_exclusive(&dir.join(OUTPUT_LOCK), dir, what)
}

/// [`lock_output`] for an output that is one file: the lock is `.NAME.rcnn.lock` beside it.
pub fn lock_output_file(file: &Path, what: &str) -> Result<FileLock, LockError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock = file.with_file_name(format!(".{name}.rcnn.lock"));
    lock_exclusive(&lock, file, what)
}

fn lock_exclusive(path: &Path, guarded: &Path, what: &str) -> Result<FileLock, LockError> {
    let mut file = open(path)?;
    let io = |error| LockError::Io {
        path: path.to_path_buf(),
        error,
    };
    if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(io)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "a process that has not said which".to_string(),
            h => h.to_string(),
        };
        return Err(LockError::Held {
            what: guarded.to_path_buf(),
            holder,
        });
    }
    let me = format!("{what}, process {}", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(io)?;
    Ok(FileLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_into_a_locked_folder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = lock_output(&out, "rcnn detect").unwrap();
        // flock locks belong to the open file: a second open in this process stands for a
        // second process.
        let err = lock_output(&out, "rcnn classify").unwrap_err().to_string();
        assert!(err.contains("in use by another run"), "{err}");
        assert!(
            err.contains(&format!("rcnn detect, process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = lock_output(&out, "rcnn classify").unwrap();
        drop(again);
        let model = dir.path().join("m.safetensors");
        let held = lock_output_file(&model, "rcnn train-heads").unwrap();
        assert!(lock_output_file(&model, "rcnn train-heads").is_err());
        drop(held);
        assert!(lock_output_file(&model, "rcnn train-heads").is_ok());
    }
}
