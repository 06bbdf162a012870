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

/// Runs `deploy/slurm/submit-detect.sh` with a stand-in `sbatch` that records its environment
/// and prints a job id; returns what the script printed.
fn submit_with_fake_sbatch(dir: &Path, args: &[&Path]) -> std::process::Output {
    submit_script_with_fake_sbatch("submit-detect.sh", dir, args)
}

/// `deploy/slurm/SCRIPT` run as [`submit_with_fake_sbatch`] runs submit-detect.sh.
fn submit_script_with_fake_sbatch(
    script: &str,
    dir: &Path,
    args: &[&Path],
) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(
        &sbatch,
        "#!/bin/sh\nenv > \"$FAKE_SBATCH_ENV.$$\"\necho 42\n",
    )
    .unwrap();
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rcnn = bin.join("rcnn");
    std::fs::write(&rcnn, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&rcnn, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("bash")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/slurm")
                .join(script),
        )
        .args(args)
        .env("PATH", path)
        .env("FAKE_SBATCH_ENV", dir.join("env"))
        .env_remove("RCNN")
        .output()
        .unwrap()
}

#[test]
fn the_slurm_recipe_keeps_paths_whole_and_prints_commands_safe_to_paste() {
    let dir = tempfile::tempdir().unwrap();
    // A folder whose name is a command, and models whose paths hold a space and a glob.
    let images = dir.path().join("imgs;touch PWNED");
    std::fs::create_dir_all(&images).unwrap();
    let models = dir.path().join("my models");
    std::fs::create_dir_all(&models).unwrap();
    let (a, b) = (models.join("a *.safetensors"), models.join("b.safetensors"));
    std::fs::write(&a, b"x").unwrap();
    std::fs::write(&b, b"x").unwrap();
    std::fs::write(models.join("a other.safetensors"), b"x").unwrap();
    let run = dir.path().join("run");
    let o = submit_with_fake_sbatch(dir.path(), &[&images, &run, Path::new("2"), &a, &b]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The models, one a line, whole: what detect.sbatch reads.
    let listed = std::fs::read_to_string(run.join("models.txt")).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    let real = |p: &Path| p.canonicalize().unwrap().display().to_string();
    assert_eq!(listed, [real(&a), real(&b)]);
    // The printed resubmit line, pasted into a shell (with the stand-in sbatch), runs nothing
    // from the folder's name.
    let line = out
        .lines()
        .find(|l| l.contains("sbatch --array=K"))
        .unwrap()
        .replace("--array=K", "--array=2");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(&line)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.path().join("bin").display()),
        )
        .env("FAKE_SBATCH_ENV", dir.path().join("env"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !dir.path().join("PWNED").exists(),
        "the pasted line ran `touch`"
    );
    // detect.sbatch hands each listed model to rcnn as one argument.
    let args_file = dir.path().join("args");
    let fake = dir.path().join("bin/print-args");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            args_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm/detect.sbatch"))
        .env("IMAGES", &images)
        .env("MODELS_FILE", run.join("models.txt"))
        .env("RUN", &run)
        .env("RCNN_SHARD_COUNT", "2")
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("RCNN", &fake)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let args = std::fs::read_to_string(&args_file).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let model_args: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--model")
        .map(|w| w[1])
        .collect();
    assert_eq!(model_args, [real(&a), real(&b)]);
    // A missing model is refused at submit time, naming it.
    let o = submit_with_fake_sbatch(
        dir.path(),
        &[
            &images,
            &run,
            Path::new("2"),
            &models.join("gone.safetensors"),
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no model file at"));
}

#[test]
fn the_proposals_then_training_recipe_submits_two_jobs_and_refuses_split_flags() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("photos");
    std::fs::create_dir_all(&images).unwrap();
    let run = dir.path().join("run");
    let flags = ["--annotations", "gt.csv", "--steps", "10"].map(Path::new);
    let mut args: Vec<&Path> = vec![&images, &run, Path::new("3")];
    args.extend(flags.iter().copied());
    let o = submit_script_with_fake_sbatch("submit-train.sh", dir.path(), &args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("3 array tasks") && out.contains("train/model.safetensors"),
        "{out}"
    );
    // Two sbatch calls (the array, then the training), both with the flags and the count.
    let envs: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(envs.len(), 2);
    for e in &envs {
        assert!(
            e.contains("TRAIN_FLAGS=--annotations gt.csv --steps 10"),
            "{e}"
        );
        assert!(e.contains("RCNN_SHARD_COUNT=3"), "{e}");
    }
    // A flag holding a space would be split by train.sbatch: refused before any submission.
    let spaced = Path::new("my data/gt.csv");
    let o = submit_script_with_fake_sbatch(
        "submit-train.sh",
        &dir.path().join("second"),
        &[
            &images,
            &run,
            Path::new("3"),
            Path::new("--annotations"),
            spaced,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("white space"));
}
