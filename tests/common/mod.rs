//! What the training and heads tests share: six small raccoon photos and how many libtorch
//! threads a test may use.

use std::path::Path;
use std::process::{Command, Stdio};

use inception_rcnn::train::data::{load_images, Loaded, SplitEntry};

/// Six of the smallest raccoon photos of the train split, one raccoon each.
pub const IMAGES: [&str; 6] = [
    "raccoon-155",
    "raccoon-132",
    "raccoon-166",
    "raccoon-159",
    "raccoon-131",
    "raccoon-39",
];

/// libtorch threads per test: the harness runs these tests side by side, and more threads than
/// cores make libtorch's spinning OpenMP workers slow each other several-fold (32 to 190 s for
/// tests/train.rs on two cores, against 18 s one test at a time).
pub const TORCH_THREADS: i32 = 1;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// [`IMAGES`] with their boxes, loaded as `rcnn train` loads a split.
pub fn six_raccoons() -> Loaded {
    let keys: Vec<SplitEntry> = IMAGES
        .iter()
        .map(|s| SplitEntry {
            key: s.to_string(),
            whole: None,
        })
        .collect();
    let data = root().join("data/raccoon");
    load_images(
        &data.join("images"),
        &data.join("annotations"),
        Some(&keys),
        None,
    )
    .unwrap()
}

/// `rcnn train` with a tiny network on the images of `split`; callers add the run's length.
pub fn train_command(split: &Path, out: &Path, resume: bool) -> Command {
    let data = root().join("data/raccoon");
    let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
    c.args([
        "--threads",
        &TORCH_THREADS.to_string(),
        "train",
        "--device",
        "cpu",
    ])
    .arg("--images")
    .arg(data.join("images"))
    .arg("--annotations")
    .arg(data.join("annotations"))
    .arg("--split")
    .arg(split)
    .args([
        "--width",
        "0.125",
        "--input-size",
        "80",
        "--max-proposals",
        "200",
        "--max-background",
        "32",
        "--batch-positives",
        "8",
        "--batch-background",
        "24",
        "--lr-every-epochs",
        "0.5",
        "--log-every",
        "5",
    ])
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if resume {
        c.arg("--resume");
    }
    c
}
