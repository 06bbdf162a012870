//! MultiBox end to end: `rcnn train-multibox` on six raccoon photos learns to rank the boxes of
//! its training images first, resumes exactly, and its boxes reach `rcnn proposals`, `rcnn
//! detect` and `rcnn train` through `--mode multibox|entry`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{root, six_raccoons, IMAGES, TORCH_THREADS};
use eval::{BBox, PixelConvention};
use inception_rcnn::detect::propose::DUPLICATE_IOU;
use inception_rcnn::multibox::MultiBox;
use tch::Device;

fn rcnn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
    c.args(["--threads", &TORCH_THREADS.to_string()]);
    c
}

fn ok(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string() + &stderr
}

fn fails(out: Output) -> String {
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `rcnn train-multibox` on the six photos: a tiny network, 20 priors, no crops.
fn train(split: &Path, out: &Path, steps: usize, resume: bool) -> Output {
    let data = root().join("data/raccoon");
    let mut c = rcnn();
    c.args(["train-multibox", "--device", "cpu"])
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
            "96",
            "--priors",
            "20",
            "--batch",
            "6",
            "--min-crop",
            "1",
            "--checkpoint-every",
            "40",
            "--log-every",
            "10",
            "--steps",
            &steps.to_string(),
        ])
        .arg("--out")
        .arg(out);
    if resume {
        c.arg("--resume");
    }
    c.output().unwrap()
}

fn iou(a: &BBox, b: &BBox) -> f64 {
    a.iou(b, PixelConvention::Inclusive)
}

/// Reads `rcnn proposals --out` CSV: boxes per image name, in rank order.
fn read_csv(path: &Path) -> std::collections::HashMap<String, Vec<BBox>> {
    let mut issues = eval::Issues::new(true);
    inception_rcnn::detect::propose::read_proposals(path, &mut issues).unwrap()
}

#[test]
fn multibox_learns_resumes_and_feeds_proposals_detect_and_train() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("six.txt");
    std::fs::write(&split, IMAGES.join("\n")).unwrap();
    let set = six_raccoons();
    let images: Vec<_> = set
        .images
        .iter()
        .map(|i| (crate::decode(&i.path), i.objects[0].bbox))
        .collect();

    // The untrained network ranks its priors by nothing (every logit starts equal): its best
    // box is the first prior's whatever the image.
    let full = dir.path().join("full");
    ok(train(&split, &full, 80, false), "train-multibox");
    let model = full.join("model.safetensors");
    let mb = MultiBox::load(&model, Device::Cpu).unwrap();
    assert_eq!((mb.k(), mb.info.priors, mb.info.steps), (20, 20, 80));
    assert_eq!(mb.info.training_images, 6);
    assert_eq!(mb.config().input_size, 96);

    // Learned: the loss falls and the best box of each training image finds its raccoon.
    let log = std::fs::read_to_string(full.join("log.csv")).unwrap();
    let losses: Vec<f64> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert!(
        losses.last().unwrap() < &(0.6 * losses[0]),
        "loss {losses:?}"
    );
    let refs: Vec<&proposals::RgbImage> = images.iter().map(|(i, _)| i).collect();
    let best = mb.propose(&refs, 1);
    let ious: Vec<f64> = best
        .iter()
        .zip(&images)
        .map(|(b, (_, gt))| iou(&b[0].0, gt))
        .collect();
    let hits = ious.iter().filter(|&&v| v >= 0.5).count();
    assert!(hits >= 5, "top-1 IoU with the raccoon: {ious:?}");
    // Boxes inside the image, K of them, best first.
    let all = mb.propose(&refs, 1000);
    for (boxes, img) in all.iter().zip(&refs) {
        let (h, w, _) = img.dim();
        assert_eq!(boxes.len(), 20);
        assert!(boxes.windows(2).all(|p| p[0].1 >= p[1].1));
        assert!(boxes.iter().all(|(b, _)| b.x1 >= 0.0
            && b.y1 >= 0.0
            && b.x2 <= (w - 1) as f64
            && b.y2 <= (h - 1) as f64
            && b.x1 <= b.x2));
    }

    // Killed after its first checkpoint and resumed: the same weights as the run in one go.
    let part = dir.path().join("part");
    ok(train(&split, &part, 40, false), "train-multibox 40");
    ok(train(&split, &part, 80, true), "train-multibox --resume");
    let (a, _) = inception_rcnn::model::weights::read_tensors(&model).unwrap();
    let (b, _) =
        inception_rcnn::model::weights::read_tensors(&part.join("model.safetensors")).unwrap();
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after --resume");
    }

    // rcnn proposals: MultiBox alone, fast selective search, and the entry's mix.
    let imgs: Vec<String> = set
        .images
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    let run = |mode: &str, file: &str| {
        let out = dir.path().join(file);
        let mut c = rcnn();
        c.arg("proposals").args(&imgs).args(["--mode", mode]);
        if mode != "fast" {
            c.arg("--multibox")
                .arg(&model)
                .args(["--multibox-top", "7"]);
        }
        ok(c.arg("--out").arg(&out).output().unwrap(), mode);
        read_csv(&out)
    };
    let learned = run("multibox", "mb.csv");
    let search = run("fast", "ss.csv");
    let entry = run("entry", "entry.csv");
    for (i, (img, _)) in images.iter().enumerate() {
        let name = IMAGES[i];
        assert_eq!(learned[name].len(), 7, "{name}");
        // The same boxes as the library's, best first.
        let direct = mb.propose(&[img], 7);
        for (a, (b, _)) in learned[name].iter().zip(&direct[0]) {
            assert!(
                (a.x1 - b.x1).abs() < 1e-3 && (a.y2 - b.y2).abs() < 1e-3,
                "{a:?} {b:?}"
            );
        }
        // The mix: every box of either source is in it or duplicates one that is; none twice.
        let mix = &entry[name];
        assert!(mix.len() <= learned[name].len() + search[name].len());
        for b in learned[name].iter().chain(&search[name]) {
            assert!(
                mix.iter().any(|m| iou(m, b) >= DUPLICATE_IOU),
                "{name}: {b:?} lost"
            );
        }
        for (i, a) in mix.iter().enumerate() {
            assert!(mix[..i].iter().all(|b| iou(a, b) < DUPLICATE_IOU));
        }
        assert_eq!(mix[0], learned[name][0], "learned boxes come first");
    }

    // Wrong files and missing flags are refused by name.
    let demo = root().join("data/models/raccoon-googlenet-paper-w025-s96.safetensors");
    let e = fails(
        rcnn()
            .arg("proposals")
            .arg(&imgs[0])
            .args(["--mode", "entry", "--multibox"])
            .arg(&demo)
            .output()
            .unwrap(),
    );
    assert!(e.contains("not a MultiBox model"), "{e}");
    let e = fails(
        rcnn()
            .arg("proposals")
            .arg(&imgs[0])
            .args(["--mode", "multibox"])
            .output()
            .unwrap(),
    );
    assert!(e.contains("--mode multibox needs --multibox FILE"), "{e}");
    let e = fails(
        rcnn()
            .arg("detect")
            .arg(&imgs[0])
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(dir.path().join("d0"))
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("a MultiBox model") && e.contains("--multibox"),
        "{e}"
    );

    // rcnn detect with the entry's proposals: the proposals per image are the mix's.
    let d = dir.path().join("det");
    let out = ok(
        rcnn()
            .arg("detect")
            .args(&imgs[..2])
            .arg("--model")
            .arg(&demo)
            .args(["--device", "cpu", "--mode", "entry", "--multibox-top", "7"])
            .arg("--multibox")
            .arg(&model)
            .arg("--out")
            .arg(&d)
            .output()
            .unwrap(),
        "detect --mode entry",
    );
    let per_image = (entry[IMAGES[0]].len() + entry[IMAGES[1]].len()) as f64 / 2.0;
    assert!(
        out.contains(&format!("{per_image:.0} proposals")),
        "want {per_image:.0} proposals per image: {out}"
    );

    // rcnn train on MultiBox's boxes alone: the region cache says where its proposals came from.
    let t = dir.path().join("train");
    let mut c = common::train_command(&split, &t, false);
    c.args([
        "--steps",
        "2",
        "--mode",
        "multibox",
        "--multibox-top",
        "7",
        "--multibox",
    ])
    .arg(&model);
    let r = c.output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let listing: Vec<_> = walk(&t);
    let index = std::fs::read_to_string(t.join("cache/train.index.json"))
        .unwrap_or_else(|e| panic!("{e}: {listing:?}"));
    assert!(index.contains("top 7") && index.contains("\"alone\":true"));
}

fn decode(path: &Path) -> proposals::RgbImage {
    inception_rcnn::detect::decode::decode(path).unwrap()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
