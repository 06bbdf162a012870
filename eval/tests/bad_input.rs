//! Bad input is counted and reported with file and line, never a crash, never silently lost.

use std::path::Path;
use std::process::Command;

use eval::load::{load, Inputs};
use eval::metrics::{evaluate, EvalParams, Metric};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_lines_are_counted_and_unknown_images_are_false_positives() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(
        dir.path(),
        "gt.csv",
        "image,class,xmin,ymin,xmax,ymax\na,cat,0,0,9,9\nb,cat,0,0,9,9\n",
    );
    let dets = write(
        dir.path(),
        "dets.csv",
        "image,class,score,xmin,ymin,xmax,ymax\n\
         a,cat,0.9,0,0,9,9\n\
         a,cat,nan,0,0,9,9\n\
         a,cat,oops,0,0,9,9\n\
         a,dog,0.8,0,0,9,9\n\
         z,cat,0.95,0,0,9,9\n\
         b,cat,0.5,9,9,0,0\n\
         b,cat,-0.1,0,0,9,9\n",
    );
    let loaded = load(&Inputs {
        gt: gt.clone(),
        dets: dets.clone(),
        ..Default::default()
    })
    .unwrap();
    let i = &loaded.issues;
    assert_eq!(
        (
            i.malformed,
            i.non_finite_scores,
            i.unknown_classes,
            i.detections_on_unknown_images,
            i.inverted_boxes,
            i.negative_scores
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert!(
        i.examples.iter().any(|e| e.ends_with(
            "dets.csv:4: `oops` is not a number (want image,class,score,xmin,ymin,xmax,ymax)"
        )),
        "{:?}",
        i.examples
    );
    // Kept: a (hit), z (unknown image: false positive), b inverted (false positive), b -0.1 (hit).
    assert_eq!(loaded.dets.dets.len(), 4);
    let e = evaluate(
        &loaded.gt,
        &loaded.dets,
        loaded.classes.len(),
        &EvalParams::new(Metric::Voc),
    );
    // Ranked: z 0.95 (FP), a 0.9 (TP), b 0.5 (FP), b -0.1 (TP): AP = 0.5 * 1/2 + 0.5 * 2/4.
    assert!(
        (e.per_class[0].ap - 0.5).abs() < 1e-12,
        "{}",
        e.per_class[0].ap
    );

    // --strict stops at the first, with its line.
    let err = load(&Inputs {
        gt,
        dets,
        strict: true,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("dets.csv:3") && err.contains("--strict"),
        "{err}"
    );
}

#[test]
fn malformed_xml_is_reported_with_file_and_line_and_the_rest_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let gts = dir.path().join("gts");
    std::fs::create_dir(&gts).unwrap();
    write(&gts, "a.xml", "<annotation><object><name>cat</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>");
    write(&gts, "b.xml", "<annotation>\n<object>\n<name>cat</name>\n<bndbox><xmin>zero</xmin></bndbox></object></annotation>");
    let dets = write(dir.path(), "dets.csv", "a,cat,0.9,0,0,9,9\n");
    let loaded = load(&Inputs {
        gt: gts,
        dets,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.issues.malformed, 1);
    assert!(
        loaded.issues.examples[0].contains("b.xml:4: <xmin> `zero` is not a number"),
        "{:?}",
        loaded.issues.examples
    );
    assert_eq!(loaded.gt.boxes.len(), 1);
}

#[test]
fn map_eval_binary_prints_the_table_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let fx =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval-reference/voc-toy-cat");
    let report = dir.path().join("r.json");
    let o = Command::new(env!("CARGO_BIN_EXE_map-eval"))
        .args([
            "--gt",
            fx.join("gts").to_str().unwrap(),
            "--dets",
            fx.join("dets").to_str().unwrap(),
        ])
        .args(["--metric", "voc", "--report", report.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cat") && l.contains("0.8958")),
        "{out}"
    );
    assert!(out.contains("mean AP   0.8958 over 1 classes"), "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!((r["classes"][0]["ap"].as_f64().unwrap() - 0.895833).abs() < 1e-6);
    assert_eq!(r["classes"][0]["n_gt"], 12);

    // --plots: a PNG per class with objects or detections, and a summary.
    let plots = dir.path().join("plots");
    let o = Command::new(env!("CARGO_BIN_EXE_map-eval"))
        .args([
            "--gt",
            fx.join("gts").to_str().unwrap(),
            "--dets",
            fx.join("dets").to_str().unwrap(),
        ])
        .args(["--plots", plots.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["pr_001_cat.png", "summary.png"]);
    for n in &names {
        let bytes = std::fs::read(plots.join(n)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{n} is a PNG");
        // IHDR width and height.
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 640);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 480);
    }

    // A missing file is named.
    let o = Command::new(env!("CARGO_BIN_EXE_map-eval"))
        .args(["--gt", "/nonexistent/gt.json", "--dets", "x.json"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/gt.json"));
}

#[test]
fn every_writer_reads_back_to_the_same_detections() {
    use eval::formats::Format;
    use eval::writers;
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ilsvrc-random");
    let inputs = Inputs {
        gt: fx.join("gt.csv"),
        dets: fx.join("dets.txt"),
        image_list: Some(fx.join("image_list.txt")),
        ..Default::default()
    };
    let loaded = load(&inputs).unwrap();
    let sorted = |d: &eval::Detections, l: &eval::load::Loaded| {
        let mut v: Vec<(String, usize, u64, [u64; 4])> = d
            .dets
            .iter()
            .map(|x| {
                (
                    l.gt.images.name(x.image).to_string(),
                    x.class,
                    x.score.to_bits(),
                    [x.bbox.x1, x.bbox.y1, x.bbox.x2, x.bbox.y2].map(f64::to_bits),
                )
            })
            .collect();
        v.sort();
        v
    };
    let original = sorted(&loaded.dets, &loaded);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    writers::write_ilsvrc(
        &d.join("out.txt"),
        &d.join("list.txt"),
        &loaded.dets,
        &loaded.gt.images,
    )
    .unwrap();
    writers::write_csv(
        &d.join("out.csv"),
        &loaded.dets,
        &loaded.gt.images,
        &loaded.classes,
    )
    .unwrap();
    writers::write_txt_dir(
        &d.join("txt"),
        &loaded.dets,
        &loaded.gt.images,
        &loaded.classes,
    )
    .unwrap();
    for (dets, format, list) in [
        (d.join("out.txt"), Format::Ilsvrc, Some(d.join("list.txt"))),
        (d.join("out.csv"), Format::Csv, None),
        (d.join("txt"), Format::Txt, None),
    ] {
        let back = load(&Inputs {
            dets,
            dets_format: Some(format),
            image_list: list.or(inputs.image_list.clone()),
            ..inputs.clone()
        })
        .unwrap();
        let again = sorted(&back.dets, &back);
        assert_eq!(again.len(), original.len(), "{format:?}");
        if let Some(i) = (0..again.len()).find(|&i| again[i] != original[i]) {
            panic!(
                "{format:?}: first difference at {i}: {:?} vs {:?}",
                again[i], original[i]
            );
        }
    }
    // COCO: image ids are positions + 1 for these non-numeric names; check boxes and scores.
    writers::write_coco(&d.join("out.json"), &loaded.dets, &loaded.gt.images).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out.json")).unwrap()).unwrap();
    let first = &v[0];
    let x = &loaded.dets.dets[0];
    assert_eq!(first["image_id"], x.image as u64 + 1);
    assert_eq!(first["category_id"], x.class as u64 + 1);
    assert_eq!(first["bbox"][2].as_f64().unwrap(), x.bbox.x2 - x.bbox.x1);
    assert_eq!(v.as_array().unwrap().len(), loaded.dets.dets.len());
}

#[test]
fn a_submission_line_beyond_the_image_list_is_one_false_positive_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(dir.path(), "gt.csv", "a,n02672831,0,0,9,9\n");
    let list = write(dir.path(), "list.txt", "a 1\n");
    let dets = write(
        dir.path(),
        "dets.txt",
        "1 1 0.9 0 0 9 9\n7 1 0.95 0 0 9 9\n",
    );
    let loaded = load(&Inputs {
        gt,
        dets,
        image_list: Some(list),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.issues.detections_on_unknown_images, 1);
    assert!(
        loaded.issues.examples[0].contains("#7 (beyond the image list of 1)"),
        "{:?}",
        loaded.issues.examples
    );
    let e = evaluate(
        &loaded.gt,
        &loaded.dets,
        loaded.classes.len(),
        &EvalParams::new(Metric::Ilsvrc),
    );
    // The stray detection ranks first and is a false positive: AP = 1/2.
    assert!((e.per_class[0].ap - 0.5).abs() < 1e-12);
}

#[test]
fn a_subset_keeps_only_its_images_objects_and_detections() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write(
        dir.path(),
        "gt.csv",
        "image,class,xmin,ymin,xmax,ymax\na,cat,0,0,9,9\nb,cat,0,0,9,9\nc,cat,0,0,9,9\n",
    );
    // a: a hit; b: a miss (no detection); c: only a false positive.
    let dets = write(
        dir.path(),
        "dets.csv",
        "image,class,score,xmin,ymin,xmax,ymax\na,cat,0.9,0,0,9,9\nc,cat,0.8,50,50,59,59\n",
    );
    let ap = |subset: Option<std::path::PathBuf>| {
        let loaded = load(&Inputs {
            gt: gt.clone(),
            dets: dets.clone(),
            subset,
            ..Default::default()
        })
        .unwrap();
        let e = evaluate(&loaded.gt, &loaded.dets, 1, &EvalParams::new(Metric::Voc));
        (
            e.per_class[0].n_gt,
            e.per_class[0].n_dets,
            e.mean_ap.unwrap(),
        )
    };
    // All three images: 3 objects, 2 detections, AP = precision 1 at recall 1/3.
    let (n_gt, n_dets, all) = ap(None);
    assert_eq!((n_gt, n_dets), (3, 2));
    assert!((all - 1.0 / 3.0).abs() < 1e-12, "{all}");
    // VOC ImageSets style, names with an extension and a comment: a and c only.
    let subset = write(dir.path(), "test.txt", "# test split\na.jpg\nc\n");
    let (n_gt, n_dets, some) = ap(Some(subset));
    assert_eq!((n_gt, n_dets), (2, 2));
    assert!((some - 0.5).abs() < 1e-12, "{some}");
}
