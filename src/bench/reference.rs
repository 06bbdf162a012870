//! The Python reference implementations (PyTorch, torchvision, pycocotools) run as scripts
//! from `scripts/`, in the virtual environment `scripts/setup-reference.sh` makes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds the reference interpreter: `$RCNN_REFERENCE_PYTHON`, else `.venv-ref/bin/python`
/// in the current directory.
pub fn find_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RCNN_REFERENCE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(".venv-ref/bin/python");
    local.is_file().then(|| local.to_path_buf())
}

/// A reference script: `scripts/NAME` under the current directory, else in the source tree
/// this binary was built from.
pub fn script(name: &str) -> PathBuf {
    let local = Path::new("scripts").join(name);
    if local.is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name)
    }
}

/// Runs `python script args...` and returns its stdout's lines that parse as JSON objects.
pub fn run_json_lines(
    python: &Path,
    script: &Path,
    args: &[String],
) -> Result<Vec<serde_json::Value>, String> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect())
}
