//! `rcnn classify` against torchvision: the parity fixture's GoogLeNet on three real photos,
//! every crop of 1, 10 and 144 and their averages equal to PyTorch's to 1e-4
//! (tests/fixtures/classify, made by scripts/make_classify_fixture.py).

use std::path::{Path, PathBuf};
use std::process::Command;

use inception_rcnn::classify::{
    classify, make_crops, plan, top_k, Classified, ClassifyParams, Crops,
};
use inception_rcnn::detect::decode::decode;
use inception_rcnn::ensemble::Ensemble;
use inception_rcnn::model::weights::{infer_config, load_state_dict, read_state_dict};
use inception_rcnn::model::Model;
use inception_rcnn::run::device::test_device;
use inception_rcnn::run::tensor::rows;
use inception_rcnn::run::tensor::upload;
use serde_json::Value;
use tch::Kind;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn weights() -> PathBuf {
    root().join("tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth")
}

fn expected() -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/classify/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn photos() -> Vec<PathBuf> {
    expected()["meta"]["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            root()
                .join("tests/fixtures/classify")
                .join(p["png"].as_str().unwrap())
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn model(transform_input: bool) -> Model {
    let path = weights();
    let tensors = read_state_dict(&path).unwrap();
    let mut config = infer_config(&tensors, &path).unwrap();
    config.transform_input = transform_input;
    let mut model = Model::new(&config, Vec::new(), test_device()).unwrap();
    load_state_dict(&mut model.vs, &tensors, &path).unwrap();
    model
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn top5(p: &[f32]) -> Vec<usize> {
    top_k(p, 5).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn every_crop_and_every_mean_equals_torchvisions() {
    tch::set_num_threads(2);
    let want = expected();
    let ensemble = Ensemble::of_image_classifiers(vec![model(true)], Kind::Float, false).unwrap();
    let images = photos();
    for crops in [Crops::One, Crops::Ten, Crops::Paper] {
        // Each crop on its own, in torchvision's order: a crop taken from the wrong place
        // would hide in a mean of 144 but not here.
        for image in &images {
            let name = image.file_name().unwrap().to_str().unwrap();
            let rgb = decode(image).unwrap();
            let (h, w, _) = rgb.dim();
            let specs = plan(h as i64, w as i64, crops, 224);
            let pixels = make_crops(&upload(&rgb, ensemble.device), &specs, 224);
            let ours = rows(&tch::no_grad(|| ensemble.image_scores(&pixels)));
            let theirs = want["per_crop_transform_input_true"][crops.name()][name]
                .as_array()
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "{name}: {} crops", crops.name());
            for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
                let d = max_difference(o, &floats(t));
                assert!(d < 1e-4, "{name}, {} crops, crop {i}: {d}", crops.name());
            }
        }
        // The pipeline's means: crops of the three photos share batches of 50 (padded at the end).
        let params = ClassifyParams {
            crops,
            batch: 50,
            workers: 2,
        };
        let mut seen = 0;
        classify(&images, &ensemble, &params, |c| {
            let Classified::Done {
                image,
                probabilities,
            } = c
            else {
                panic!("a photo failed")
            };
            assert_eq!(image, images[seen], "in order");
            seen += 1;
            let name = image.file_name().unwrap().to_str().unwrap();
            let theirs = floats(&want["probabilities"]["transform_input_true"][crops.name()][name]);
            let d = max_difference(&probabilities, &theirs);
            assert!(
                d < 1e-4,
                "{name}, {} crops: mean differs by {d}",
                crops.name()
            );
            assert_eq!(
                top5(&probabilities),
                top5(&theirs),
                "{name}, {} crops",
                crops.name()
            );
        });
        assert_eq!(seen, 3);
    }
}

fn rcnn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rcnn"))
}

/// `--device` for the binary: `RCNN_TEST_DEVICE`, else the CPU (scripts/gpu-check.sh sets it).
fn device_flag() -> String {
    std::env::var("RCNN_TEST_DEVICE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "cpu".into())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The fixture's weights imported by `rcnn import-weights`, transform_input on and off.
fn imported(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (
        dir.join("ti-on.safetensors"),
        dir.join("ti-off.safetensors"),
    );
    for (out, flag) in [(&a, "true"), (&b, "false")] {
        run(rcnn()
            .arg("import-weights")
            .arg(weights())
            .arg("--out")
            .arg(out)
            .args(["--transform-input", flag, "--device", "cpu"]));
    }
    (a, b)
}

fn classify_json(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("classifications.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// All ten probabilities of an image from `--top 10` output, by class.
fn all_probabilities(entry: &Value) -> Vec<f32> {
    let mut p = vec![f32::NAN; 10];
    for t in entry["top"].as_array().unwrap() {
        p[t["class"].as_u64().unwrap() as usize] = t["probability"].as_f64().unwrap() as f32;
    }
    p
}

#[test]
fn an_ensemble_of_two_normalisations_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = imported(dir.path());
    let want = expected();
    for crops in ["1", "10"] {
        let out = dir.path().join(format!("out{crops}"));
        let stdout = run(rcnn()
            .arg("classify")
            .arg(root().join("tests/fixtures/classify"))
            .arg("--model")
            .arg(&a)
            .arg("--model")
            .arg(&b)
            .args([
                "--crops", crops, "--top", "10", "--batch", "7", "-q", "--device",
            ])
            .arg(device_flag())
            .arg("--out")
            .arg(&out));
        assert!(stdout.contains("3 images"), "{stdout}");
        let got = classify_json(&out);
        assert_eq!(got.len(), 3);
        for entry in got {
            let png = Path::new(entry["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let theirs = floats(&want["probabilities"]["ensemble"][crops][&png]);
            let ours = all_probabilities(&entry);
            let d = max_difference(&ours, &theirs);
            assert!(d < 1e-4, "{png}, {crops} crops, ensemble: {d}");
            // Best first.
            let listed: Vec<usize> = entry["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["class"].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(listed[..5], top5(&theirs)[..], "{png}");
        }
        // The CSV says the same, one row per rank.
        let csv = std::fs::read_to_string(out.join("classifications.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 3 * 10);
        assert!(csv.starts_with("image,rank,class,wnid,name,probability\n"));
    }
}

#[test]
fn top_k_error_from_labels_files_and_folder_trees_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = imported(dir.path());
    let want = expected();
    // Ten made-up WNIDs name the fixture network's classes.
    let classes = dir.path().join("classes.tsv");
    let tsv: String = (0..10)
        .map(|i| format!("{i}\tn0000000{i}\tthing {i}\n"))
        .collect();
    std::fs::write(&classes, tsv).unwrap();
    // The reference's best class for two photos; the sixth best for the third: top-1 and
    // top-5 error are both 1/3.
    let rank = |png: &str, k: usize| {
        let p = floats(&want["probabilities"]["transform_input_true"]["1"][png]);
        top_k(&p, 10)[k].0
    };
    let labelled = [
        ("raccoon-1-334x263.png", rank("raccoon-1-334x263.png", 0)),
        ("raccoon-10-263x306.png", rank("raccoon-10-263x306.png", 0)),
        ("bccd-00000-300x300.png", rank("bccd-00000-300x300.png", 5)),
    ];
    // As a folder tree, with a truncated photo that must be skipped, not fatal.
    let tree = dir.path().join("val");
    for (png, class) in labelled {
        let d = tree.join(format!("n0000000{class}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            root().join("tests/fixtures/classify").join(png),
            d.join(png),
        )
        .unwrap();
    }
    let bytes =
        std::fs::read(root().join("tests/fixtures/classify/raccoon-1-334x263.png")).unwrap();
    std::fs::write(
        tree.join(format!("n0000000{}", labelled[0].1))
            .join("cut.png"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    let out = dir.path().join("out");
    let report = dir.path().join("report.json");
    let classify = |labels: &Path, out: &Path| {
        let mut c = rcnn();
        c.arg("classify")
            .arg(&tree)
            .arg("--model")
            .arg(&a)
            .arg("--classes")
            .arg(&classes)
            .arg("--labels")
            .arg(labels)
            .arg("--report")
            .arg(&report)
            .args(["--crops", "1", "--device"])
            .arg(device_flag())
            .arg("--out")
            .arg(out);
        c
    };
    let stdout = run(&mut classify(&tree, &out));
    assert!(stdout.contains("3 images (1 skipped"), "{stdout}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let third = 1.0 / 3.0;
    assert_eq!(r["overall"]["images"], 3);
    assert!(
        (r["overall"]["top1_error"].as_f64().unwrap() - third).abs() < 1e-12,
        "{r}"
    );
    assert!(
        (r["overall"]["top5_error"].as_f64().unwrap() - third).abs() < 1e-12,
        "{r}"
    );
    let csv = std::fs::read_to_string(out.join("classifications.csv")).unwrap();
    assert!(
        csv.contains(&format!(",1,{0},n0000000{0},thing {0},", labelled[0].1)),
        "{csv}"
    );
    // The same labels as a file: WNIDs for two, an index for the third, and a bad line.
    let file = dir.path().join("labels.txt");
    std::fs::write(
        &file,
        format!(
            "raccoon-1-334x263.png n0000000{}\nraccoon-10-263x306 n0000000{}\nbccd-00000-300x300.png {}\nno label here\n",
            labelled[0].1, labelled[1].1, labelled[2].1
        ),
    )
    .unwrap();
    let out2 = dir.path().join("out2");
    // The outputs cannot be written (a folder where the CSV goes): the run fails after every
    // image is in the journal; --resume then finishes without classifying anything again.
    std::fs::create_dir_all(out2.join("classifications.csv")).unwrap();
    let failed = classify(&file, &out2).output().unwrap();
    assert!(!failed.status.success());
    std::fs::remove_dir(out2.join("classifications.csv")).unwrap();
    let resumed = classify(&file, &out2).arg("--resume").output().unwrap();
    assert!(resumed.status.success());
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("resumed 3 images from the journal; 1 to go"),
        "{stderr}"
    );
    assert!(
        stderr.contains("labels.txt:4"),
        "the bad line is named: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out2.join("classifications.csv")).unwrap(),
        csv
    );
    let r2: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r2["overall"], r["overall"]);
    assert!(
        !out2.join(".rcnn-classify.journal").exists(),
        "the journal goes once outputs are written"
    );
}

#[test]
fn shards_of_a_classification_merge_into_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = imported(dir.path());
    let classify = |out: &Path, shard: Option<&str>| {
        let mut c = rcnn();
        c.arg("classify")
            .arg(root().join("tests/fixtures/classify"))
            .arg("--model")
            .arg(&a)
            .args(["--crops", "1", "--batch", "1", "-q", "--device"])
            .arg(device_flag())
            .arg("--out")
            .arg(out);
        if let Some(s) = shard {
            c.args(["--shard", s]);
        }
        run(&mut c);
    };
    let one = dir.path().join("one");
    classify(&one, None);
    let (s1, s2) = (dir.path().join("s1"), dir.path().join("s2"));
    classify(&s1, Some("1/2"));
    classify(&s2, Some("2/2"));
    assert_eq!(classify_json(&s1).len(), 2, "images 1 and 3");
    assert_eq!(classify_json(&s2).len(), 1, "image 2");
    let merged = dir.path().join("merged");
    let stdout = run(rcnn()
        .arg("merge")
        .arg(&s2)
        .arg(&s1)
        .arg("--out")
        .arg(&merged));
    assert!(stdout.contains("3 of 3 images"), "{stdout}");
    for f in [
        "classifications.csv",
        "classifications.json",
        "image_paths.csv",
    ] {
        assert_eq!(
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(merged.join(f)).unwrap(),
            "{f}"
        );
    }
    // A shard given twice is refused by name.
    let out = rcnn()
        .arg("merge")
        .arg(&s1)
        .arg(&s1)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 2/2 is missing"));
}
