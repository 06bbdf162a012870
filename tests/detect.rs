//! `rcnn detect` end to end on real photos with a small (untrained) model: every output format
//! reads back through the eval crate to the same detections, and map-eval runs on them.

use std::path::Path;
use std::process::Command;

use eval::formats::Format;
use eval::load::{load, Inputs};
use inception_rcnn::model::{GoogLeNetConfig, Layout, Model};
use tch::Device;

/// A small paper-layout model (64 px input, background + raccoon + other), untrained but
/// seeded, saved as `dir/name`.
fn tiny_model(dir: &Path, name: &str, seed: i64) -> std::path::PathBuf {
    tch::manual_seed(seed);
    let config = GoogLeNetConfig {
        width: 0.125,
        input_size: 64,
        num_classes: 3,
        ..GoogLeNetConfig::new(Layout::Paper)
    };
    let classes = vec![
        "__background__".to_string(),
        "raccoon".to_string(),
        "other".to_string(),
    ];
    let path = dir.join(name);
    Model::new(&config, classes, Device::Cpu)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// `--device` for the binary: `RCNN_TEST_DEVICE`, else the CPU (scripts/gpu-check.sh sets it).
fn test_device() -> String {
    std::env::var("RCNN_TEST_DEVICE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "cpu".into())
}

/// A detection's identity: image, class, score bits, x1 bits.
type Key = (String, usize, u64, u64);

#[test]
fn detect_writes_every_format_and_they_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model_path = tiny_model(d, "tiny.safetensors", 5);
    let corrupt = d.join("broken.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 truncated").unwrap();
    let images = root.join("data/raccoon/images");
    let out = d.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "detect",
            images.join("raccoon-1.jpg").to_str().unwrap(),
            images.join("raccoon-10.jpg").to_str().unwrap(),
        ])
        .arg(&corrupt)
        .args([
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            &test_device(),
        ])
        .args([
            "--format",
            "ilsvrc,csv,coco,txt",
            "--max-proposals",
            "40",
            "--score-threshold",
            "0",
            "--profile",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains("2 images (1 skipped, each named above)"),
        "{stdout}"
    );
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    assert!(
        stdout.contains("classify"),
        "--profile prints the stages: {stdout}"
    );

    let gt = root.join("data/raccoon/annotations");
    let read =
        |dets: std::path::PathBuf, format: Format, image_list: Option<std::path::PathBuf>| {
            let loaded = load(&Inputs {
                gt: gt.clone(),
                dets,
                dets_format: Some(format),
                image_list,
                classes: Some(d.join("classes.txt")),
                ..Default::default()
            })
            .unwrap();
            let mut v: Vec<(String, usize, u64, [u64; 4])> = loaded
                .dets
                .dets
                .iter()
                .map(|x| {
                    let b = [x.bbox.x1, x.bbox.y1, x.bbox.x2, x.bbox.y2].map(f64::to_bits);
                    (
                        loaded.gt.images.name(x.image).to_string(),
                        x.class,
                        (x.score as f32).to_bits() as u64,
                        b,
                    )
                })
                .collect();
            v.sort();
            v
        };
    std::fs::write(d.join("classes.txt"), "raccoon\nother\n").unwrap();
    let csv = read(out.join("detections.csv"), Format::Csv, None);
    assert!(!csv.is_empty(), "threshold 0 keeps detections");
    assert!(csv
        .iter()
        .all(|x| x.0 == "raccoon-1" || x.0 == "raccoon-10"));
    assert_eq!(
        read(
            out.join("detections.txt"),
            Format::Ilsvrc,
            Some(out.join("image_list.txt"))
        ),
        csv
    );
    assert_eq!(read(out.join("txt"), Format::Txt, None), csv);
    // COCO results name images and categories by number (line of image_list.txt, position in
    // classes.txt): read back through the eval crate and mapped, the same detections again.
    let mut issues = eval::Issues::new(true);
    let raw = eval::formats::coco::read_dets(
        &out.join("detections.json"),
        &Default::default(),
        &mut issues,
    )
    .unwrap();
    let list = eval::formats::ilsvrc::read_image_list(&out.join("image_list.txt")).unwrap();
    let key = |image: &String, class: usize, score: u64, x1: f64| {
        (image.clone(), class, score, x1.to_bits())
    };
    let mut coco: Vec<(Key, [f64; 4])> = raw
        .iter()
        .map(|r| {
            let eval::formats::ClassKey::Name(cat) = &r.class else {
                panic!("COCO names categories by id")
            };
            let image = list[r.image.parse::<usize>().unwrap() - 1].clone();
            let class = cat.parse::<usize>().unwrap() - 1;
            (
                key(&image, class, (r.score as f32).to_bits() as u64, r.bbox.x1),
                [r.bbox.x1, r.bbox.y1, r.bbox.x2, r.bbox.y2],
            )
        })
        .collect();
    coco.sort_by(|a, b| a.0.cmp(&b.0));
    let mut theirs: Vec<(Key, [f64; 4])> = csv
        .iter()
        .map(|v| {
            (
                key(&v.0, v.1, v.2, f64::from_bits(v.3[0])),
                v.3.map(f64::from_bits),
            )
        })
        .collect();
    theirs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(coco.len(), theirs.len());
    for (c, v) in coco.iter().zip(&theirs) {
        assert_eq!(c.0, v.0);
        // x + w in floating point: x2 to within rounding.
        assert!(
            c.1.iter().zip(&v.1).all(|(a, b)| (a - b).abs() < 1e-9),
            "{c:?} vs {v:?}"
        );
    }

    // Precomputed proposals: `rcnn proposals --out` then `rcnn detect --proposals`.
    let props = d.join("props.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "proposals",
            images.join("raccoon-1.jpg").to_str().unwrap(),
            "--top",
            "7",
            "--out",
            props.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "detect",
            images.join("raccoon-1.jpg").to_str().unwrap(),
            images.join("raccoon-10.jpg").to_str().unwrap(),
        ])
        .args([
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            d.join("out2").to_str().unwrap(),
            "--device",
            &test_device(),
        ])
        .args([
            "--proposals",
            props.to_str().unwrap(),
            "--score-threshold",
            "0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // raccoon-10 is not in the file: reported and skipped; raccoon-1 used its 7 proposals.
    assert!(
        stdout.contains("1 images (1 skipped, each named above), 7 proposals"),
        "{stdout}"
    );

    // map-eval runs on the output.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "map-eval",
            "--gt",
            gt.to_str().unwrap(),
            "--dets",
            out.join("detections.csv").to_str().unwrap(),
        ])
        .args([
            "--classes",
            d.join("classes.txt").to_str().unwrap(),
            "--metric",
            "voc",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean AP"));
}

#[test]
fn two_shards_merged_equal_one_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Wider than tiny_model: the last bits of its scores do show which kernels ran.
    tch::manual_seed(9);
    let config = GoogLeNetConfig {
        width: 0.25,
        input_size: 96,
        num_classes: 3,
        ..GoogLeNetConfig::new(Layout::Torchvision)
    };
    let model = d.join("m.safetensors");
    let classes = ["__background__", "raccoon", "other"]
        .map(String::from)
        .to_vec();
    Model::new(&config, classes, Device::Cpu)
        .unwrap()
        .save(&model)
        .unwrap();
    let images = root.join("data/raccoon/images");
    let inputs: Vec<String> = ["raccoon-1.jpg", "raccoon-10.jpg", "raccoon-100.jpg"]
        .iter()
        .map(|f| images.join(f).display().to_string())
        .collect();
    // 1, 20 and 5 proposals, batches of 16. In three shards, shard 1 scores raccoon-1's one
    // crop alone; the whole run scores it beside raccoon-10's. Were that a batch of 1, libtorch's
    // kernels would give other last bits (measured: "other" 0.31910842657 alone, 0.31910839677
    // in the whole run); padded to 16, every batch has the same shape and the bytes agree.
    let mut proposals = String::from("image,rank,xmin,ymin,xmax,ymax\n");
    for (name, n) in [("raccoon-1", 1), ("raccoon-10", 20), ("raccoon-100", 5)] {
        for r in 0..n {
            let (x, y) = ((r * 7) % 90, (r * 11) % 70);
            proposals.push_str(&format!(
                "{name},{},{x},{y},{},{}\n",
                r + 1,
                x + 40 + r,
                y + 60
            ));
        }
    }
    let proposals_file = d.join("proposals.csv");
    std::fs::write(&proposals_file, proposals).unwrap();
    let run_with = |out: &str, extra: &[&str], env: &[(&str, &str)]| {
        let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
            .envs(env.iter().copied())
            .arg("detect")
            .args(&inputs)
            .args([
                "--model",
                model.to_str().unwrap(),
                "--out",
                d.join(out).to_str().unwrap(),
                "--device",
                &test_device(),
            ])
            .args([
                "--proposals",
                proposals_file.to_str().unwrap(),
                "--batch",
                "16",
                "--score-threshold",
                "0",
                "--format",
                "ilsvrc,csv",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let run = |out: &str, extra: &[&str]| run_with(out, extra, &[]);
    run("all", &[]);
    run("s1", &["--shard", "1/2"]);
    run("s2", &["--shard", "2/2"]);
    for k in 1..=3 {
        run(&format!("t{k}"), &["--shard", &format!("{k}/3")]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "merge",
            d.join("s1").to_str().unwrap(),
            d.join("s2").to_str().unwrap(),
            "--out",
            d.join("merged").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap();
    // Shard 1 took images 1 and 3, shard 2 image 2, all indexed by the full list.
    assert!(
        read("s1/detections.csv").contains("raccoon-100,")
            && !read("s1/detections.csv").contains("raccoon-10,")
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("merge")
        .args([d.join("t1"), d.join("t2"), d.join("t3")])
        .arg("--out")
        .arg(d.join("merged3"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Byte for byte: a crop's scores do not depend on the crops that share its batch.
    for merged in ["merged", "merged3"] {
        for f in [
            "detections.csv",
            "detections.txt",
            "image_list.txt",
            "classes.txt",
        ] {
            assert_eq!(
                read(&format!("{merged}/{f}")),
                read(&format!("all/{f}")),
                "{merged}/{f}"
            );
        }
    }
    // --shard auto: a Kubernetes pod with index 1 of 3 is shard 2/3; a Slurm array task
    // 3 of --array=1-3 is shard 3/3; each writes what --shard K/N writes.
    let k8s = [("JOB_COMPLETION_INDEX", "1"), ("RCNN_SHARD_COUNT", "3")];
    run_with("k2", &["--shard", "auto"], &k8s);
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    run_with("a3", &["--shard", "auto"], &slurm);
    for (auto, fixed) in [("k2", "t2"), ("a3", "t3")] {
        for f in ["detections.csv", "shard.json"] {
            assert_eq!(
                read(&format!("{auto}/{f}")),
                read(&format!("{fixed}/{f}")),
                "{auto}/{f}"
            );
        }
    }
    // Outside a scheduler, auto is an error that says where K and N come from.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_STEP_ID")
        .arg("detect")
        .args(&inputs)
        .args([
            "--model",
            model.to_str().unwrap(),
            "--out",
            d.join("none").to_str().unwrap(),
        ])
        .args(["--shard", "auto"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no scheduler says which shard"),
        "{err}"
    );
    assert!(
        !d.join("none").exists(),
        "nothing is written before the shard is known"
    );
    // Shards that do not partition the run are refused, naming what is wrong.
    let merge = |dirs: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
        c.arg("merge");
        for x in dirs {
            c.arg(d.join(x));
        }
        let o = c.arg("--out").arg(d.join("bad")).output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = merge(&["s1", "s1"]);
    assert!(
        err.contains("shard 1/2 is given 2 times") && err.contains("shard 2/2 is missing"),
        "{err}"
    );
    let err = merge(&["s1"]);
    assert!(err.contains("shard 2/2 is missing"), "{err}");
    let err = merge(&["all", "s1"]);
    assert!(err.contains("is not a shard"), "{err}");
    // Nor may the merged outputs land on a shard's.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("merge")
        .args([d.join("s1"), d.join("s2")])
        .arg("--out")
        .arg(d.join("s1"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is an input of this run"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A bad shard spec is refused with a clear message.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "detect", "x.jpg", "--model", "m", "--out", "o", "--shard", "3/2",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("want 1 <= K <= N"));
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_outputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d, "m.safetensors", 11);
    // Twelve photos in a list file.
    let images = root.join("data/raccoon/images");
    let list = d.join("list.txt");
    let names: Vec<String> = (1..=12)
        .map(|i| {
            images
                .join(format!("raccoon-{i}.jpg"))
                .display()
                .to_string()
        })
        .collect();
    std::fs::write(&list, names.join("\n")).unwrap();
    let command = |out: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
        c.args([
            "detect",
            list.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            d.join(out).to_str().unwrap(),
        ])
        .args([
            "--device",
            &test_device(),
            "--max-proposals",
            "30",
            "--score-threshold",
            "0",
            "--format",
            "ilsvrc,csv,txt",
        ]);
        c
    };
    assert!(command("whole").output().unwrap().status.success());

    // The same run, killed with SIGKILL once a few images are in its journal.
    let mut child = command("killed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = d.join("killed/.rcnn-detect.journal");
    let start = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 3 || start.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !d.join("killed/detections.csv").exists(),
        "no output before the run ends"
    );
    // Resuming with other settings is refused before anything is touched, naming each change.
    let before = std::fs::read(&journal).unwrap();
    let o = command("killed")
        .args(["--resume", "--nms-iou", "0.5", "--top-per-class", "7"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("nms_iou: 0.3 -> 0.5") && err.contains("top_per_class: 100 -> 7"),
        "{err}"
    );
    assert_eq!(std::fs::read(&journal).unwrap(), before);
    let o = command("killed").arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("12 images (") && stdout.contains("from the journal)"),
        "{stdout}"
    );
    let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap();
    for f in [
        "detections.csv",
        "detections.txt",
        "image_list.txt",
        "txt/raccoon-7.txt",
    ] {
        assert_eq!(
            read(&format!("killed/{f}")),
            read(&format!("whole/{f}")),
            "{f}"
        );
    }
    assert!(
        !journal.exists(),
        "the journal goes once the outputs are written"
    );
}

#[test]
fn visualize_marks_hits_false_positives_and_misses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // raccoon-1's raccoon is (81, 88, 522, 408): one hit, one false positive far from it, and
    // nothing on raccoon-10, whose raccoon is then a miss.
    let dets = d.join("dets.csv");
    std::fs::write(&dets, "image,class,score,xmin,ymin,xmax,ymax\nraccoon-1,raccoon,0.9,85,90,520,400\nraccoon-1,raccoon,0.8,0,0,60,60\nraccoon-1,raccoon,0.2,85,90,520,400\n").unwrap();
    let images = root.join("data/raccoon/images");
    let out = d.join("vis");
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args([
            "visualize",
            images.join("raccoon-1.jpg").to_str().unwrap(),
            images.join("raccoon-10.jpg").to_str().unwrap(),
        ])
        .args([
            "--dets",
            dets.to_str().unwrap(),
            "--gt",
            root.join("data/raccoon/annotations").to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("drew 2 images") && stdout.contains("1 hits, 1 false positives, 1 misses"),
        "{stdout}"
    );
    // The hit is drawn green on the raccoon's left edge, the miss yellow on raccoon-10.
    let img = image::open(out.join("raccoon-1.jpg")).unwrap().to_rgb8();
    let px = img.get_pixel(85, 250).0;
    assert!(
        px[1] > 150 && px[0] < 120 && px[2] < 140,
        "green edge, got {px:?}"
    );
    assert!(std::fs::read_to_string(out.join("index.html"))
        .unwrap()
        .contains("raccoon-10.jpg"));
}

/// `rcnn detect` of the demo model over six raccoon test photos into `out`, with `extra` flags.
fn demo_detect(out: &Path, extra: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let images: Vec<String> = ["105", "106", "110", "113", "121", "128"]
        .iter()
        .map(|n| {
            root.join(format!("data/raccoon/images/raccoon-{n}.jpg"))
                .display()
                .to_string()
        })
        .collect();
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("detect")
        .args(&images)
        .args([
            "--model",
            root.join("data/models/raccoon-googlenet-paper-w025-s96.safetensors")
                .to_str()
                .unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            &test_device(),
            "--format",
            "ilsvrc,csv,coco,txt",
            "--max-proposals",
            "200",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// (image, box) -> score, from a detections.csv.
fn csv_scores(path: &Path) -> std::collections::HashMap<(String, [String; 4]), f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("image,"))
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                (c[0].to_string(), [c[3], c[4], c[5], c[6]].map(String::from)),
                c[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn any_number_of_workers_gives_the_same_bytes_and_both_warps_the_same_detections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    demo_detect(&d.join("w1"), &["--workers", "1"]);
    demo_detect(&d.join("w4"), &["--workers", "4"]);
    for f in [
        "detections.csv",
        "detections.txt",
        "detections.json",
        "image_list.txt",
        "txt/raccoon-121.txt",
    ] {
        let (a, b) = (
            std::fs::read(d.join("w1").join(f)).unwrap(),
            std::fs::read(d.join("w4").join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs between 1 and 4 workers");
    }
    // OpenCV's warp rounds crops to bytes, the device warp does not: the same boxes come out
    // with scores a hair apart. Every confident detection of one is in the other.
    demo_detect(&d.join("cpu"), &["--warp", "cpu"]);
    let (device, cpu) = (
        csv_scores(&d.join("w1/detections.csv")),
        csv_scores(&d.join("cpu/detections.csv")),
    );
    let mut worst = 0f64;
    for (a, b) in [(&device, &cpu), (&cpu, &device)] {
        for (key, score) in a.iter().filter(|(_, s)| **s >= 0.1) {
            let other = b
                .get(key)
                .unwrap_or_else(|| panic!("{key:?} ({score}) is found by one warp only"));
            worst = worst.max((score - other).abs());
        }
    }
    eprintln!(
        "{} and {} detections; largest score difference of those >= 0.1: {worst:.2e}",
        device.len(),
        cpu.len()
    );
    assert!(device.values().filter(|s| **s >= 0.1).count() >= 6);
    assert!(worst < 0.02, "scores {worst} apart");
}

/// Copies raccoon photos into `dir` under the given relative names.
fn photos(dir: &Path, names: &[(&str, &str)]) {
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/raccoon/images");
    for (from, to) in names {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if to.extension().is_some_and(|e| e == "png") {
            image::open(images.join(from)).unwrap().save(&to).unwrap();
        } else {
            std::fs::copy(images.join(from), &to).unwrap();
        }
    }
}

fn rcnn(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn no_output_ever_replaces_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d, "m.safetensors", 3);
    let imgs = d.join("imgs");
    photos(
        &imgs,
        &[
            ("raccoon-1.jpg", "raccoon-1.jpg"),
            ("raccoon-2.jpg", "raccoon-2.jpg"),
        ],
    );
    let original = std::fs::read(imgs.join("raccoon-1.jpg")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("detect")
        .arg(&imgs)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(d.join("out"))
        .arg("--visualize")
        .arg(&imgs)
        .args(["--device", "cpu", "--max-proposals", "5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("raccoon-1.jpg: is an input of this run"),
        "{err}"
    );
    // Refused before any work: no output folder made, the photo untouched.
    assert!(!d.join("out").exists());
    assert_eq!(std::fs::read(imgs.join("raccoon-1.jpg")).unwrap(), original);
    // rcnn visualize --out onto the images.
    let dets = d.join("dets.csv");
    std::fs::write(
        &dets,
        "image,class,score,xmin,ymin,xmax,ymax\nraccoon-1,raccoon,0.9,1,1,50,50\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("visualize")
        .arg(&imgs)
        .arg("--dets")
        .arg(&dets)
        .arg("--out")
        .arg(&imgs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("is an input of this run"), "{err}");
    assert_eq!(std::fs::read(imgs.join("raccoon-1.jpg")).unwrap(), original);
    // An output folder under a file is refused before the work starts.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("detect")
        .arg(&imgs)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(dets.join("sub"))
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dets.csv is a file"), "{err}");
    // So is a proposals file under a file, before the search.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .arg("proposals")
        .arg(&imgs)
        .arg("--out")
        .arg(dets.join("p.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dets.csv is a file"), "{err}");
}

#[test]
fn images_sharing_a_name_keep_their_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d, "m.safetensors", 4);
    let set = d.join("set");
    photos(
        &set,
        &[
            ("raccoon-1.jpg", "a/x.jpg"),
            ("raccoon-2.jpg", "b/x.jpg"),
            ("raccoon-3.jpg", "x.png"),
        ],
    );
    let out = d.join("out");
    let vis = d.join("vis");
    let o = rcnn(&[
        "detect".as_ref(),
        set.as_os_str(),
        "--model".as_ref(),
        model.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--visualize".as_ref(),
        vis.as_os_str(),
        "--visualize-threshold".as_ref(),
        "0".as_ref(),
        "--score-threshold".as_ref(),
        "0".as_ref(),
        "--max-proposals".as_ref(),
        "5".as_ref(),
        "--format".as_ref(),
        "csv,txt,ilsvrc".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("3 images"));
    let list = std::fs::read_to_string(out.join("image_list.txt")).unwrap();
    assert_eq!(list, "a/x 1\nb/x 2\nset/x 3\n");
    for n in ["a/x", "b/x", "set/x"] {
        assert!(out.join(format!("txt/{n}.txt")).is_file(), "{n}");
        assert!(vis.join(format!("{n}.jpg")).is_file(), "{n}");
    }
    let mapping = std::fs::read_to_string(out.join("image_paths.csv")).unwrap();
    assert!(
        mapping.contains(&format!("a/x,{}", set.join("a/x.jpg").display())),
        "{mapping}"
    );
    // Each image's detections stay its own: 3 images x 2 classes x at most 5 boxes, by name.
    let csv = std::fs::read_to_string(out.join("detections.csv")).unwrap();
    for n in ["a/x,", "b/x,", "set/x,"] {
        assert!(csv.lines().filter(|l| l.starts_with(n)).count() > 0, "{n}");
    }
    // map-eval reads the list back.
    let names = eval::formats::ilsvrc::read_image_list(&out.join("image_list.txt")).unwrap();
    assert_eq!(names, ["a/x", "b/x", "set/x"]);
    // Another run into the same folder, other images and formats: the earlier outputs it does
    // not rewrite are named, and kept.
    let o = rcnn(&[
        "detect".as_ref(),
        set.join("a").as_os_str(),
        "--model".as_ref(),
        model.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--max-proposals".as_ref(),
        "5".as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("outputs of an earlier run that this run does not rewrite: detections.txt, txt/ (3 files of other images)"),
        "{err}"
    );
    assert!(out.join("txt/a/x.txt").is_file());
}

#[test]
fn a_full_disk_names_the_file_and_reason_leaves_no_temporary_file_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d, "m.safetensors", 6);
    let imgs = d.join("imgs");
    photos(
        &imgs,
        &[
            ("raccoon-1.jpg", "r1.jpg"),
            ("raccoon-2.jpg", "r2.jpg"),
            ("raccoon-3.jpg", "r3.jpg"),
        ],
    );
    let out = d.join("out");
    let vis = d.join("vis");
    let args = format!(
        "detect {} --model {} --out {} --visualize {} --max-proposals 5 --device cpu",
        imgs.display(),
        model.display(),
        out.display(),
        vis.display()
    );
    // A file-size limit of 8 KiB stands in for a full disk: every drawing's write fails (EFBIG,
    // with SIGXFSZ ignored as a real ENOSPC would not raise it); the journal's lines still fit.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 8; exec {} {args}",
            env!("CARGO_BIN_EXE_rcnn")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("r1.jpg") && err.contains("File too large"),
        "{err}"
    );
    assert!(err.contains("--resume"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(&vis)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // No image is marked done: its drawing was never written.
    let journal = std::fs::read_to_string(out.join(".rcnn-detect.journal")).unwrap();
    assert_eq!(
        journal.lines().count(),
        1,
        "only the settings line: {journal}"
    );
    // Space again: --resume finishes every image and draws each.
    let o = Command::new(env!("CARGO_BIN_EXE_rcnn"))
        .args(args.split(' '))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in ["r1", "r2", "r3"] {
        assert!(vis.join(format!("{n}.jpg")).is_file(), "{n}");
    }
}
