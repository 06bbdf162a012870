//! The GPU recipes name what the code has: a lent card's 15 minutes are lost if
//! `scripts/gpu-bundle.sh` cannot build the binary or `scripts/gpu-check.sh` filters its tests
//! down to none. Both were bitten when the tree moved (the `cli` feature; `classifier.rs`
//! became `ensemble.rs`).

use std::path::Path;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

/// The `required-features` of the `rcnn` binary in Cargo.toml.
fn rcnn_required_features() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let bin = manifest
        .split("[[bin]]")
        .find(|s| s.contains("name = \"rcnn\""))
        .expect("Cargo.toml has the rcnn binary");
    let line = bin
        .lines()
        .find(|l| l.starts_with("required-features"))
        .unwrap_or("required-features = []");
    line.split(['[', ']', ',', '"'])
        .skip(1)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn the_gpu_bundle_builds_rcnn_with_its_required_features() {
    let required = rcnn_required_features();
    assert_eq!(required, ["cli"]);
    let script = read("scripts/gpu-bundle.sh");
    let builds: Vec<&str> = script
        .lines()
        .filter(|l| l.contains("cargo ") && l.contains("--no-default-features"))
        .collect();
    assert_eq!(builds.len(), 2, "the binary and the tests: {builds:?}");
    for line in builds {
        for feature in &required {
            assert!(
                line.contains(&format!("--features {feature}")),
                "{line}\nlacks --features {feature}: cargo refuses to build rcnn without it"
            );
        }
    }
}

/// Every module path of the library (`detect::warp`; not the binary's `cli/`) that holds tests,
/// and every test function name there.
fn test_names() -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let module = if prefix.is_empty() {
                stem.clone()
            } else if stem == "mod" {
                prefix.to_string()
            } else {
                format!("{prefix}::{stem}")
            };
            if path.is_dir() {
                if module != "cli" {
                    walk(&path, &module, out);
                }
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            if !source.contains("#[test]") {
                continue;
            }
            out.push(module);
            let mut lines = source.lines();
            while let Some(line) = lines.next() {
                if line.trim() == "#[test]" {
                    if let Some(f) = lines.next().and_then(|l| l.trim().strip_prefix("fn ")) {
                        out.push(f.split('(').next().unwrap_or("").to_string());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut out,
    );
    out
}

#[test]
fn gpu_checks_library_test_filters_each_match_a_test() {
    let script = read("scripts/gpu-check.sh");
    let names = test_names();
    let mut checked = 0;
    for line in script
        .lines()
        .filter(|l| l.contains("--lib --") || l.contains("tests/inception_rcnn\""))
    {
        let filters = line
            .split(" -- ")
            .nth(1)
            .or_else(|| line.split("tests/inception_rcnn\"").nth(1))
            .unwrap();
        for filter in filters.split_whitespace() {
            assert!(
                names.iter().any(|n| n.contains(filter)),
                "gpu-check.sh filters the library's tests by {filter:?}, which names none:\n{line}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "both modes' filters were read: {checked}");
}
