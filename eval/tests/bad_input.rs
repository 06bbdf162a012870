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

    // A report named like an input (here the ground truth, then the class file) is refused
    // and the input is left as it was.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ilsvrc-random");
    for victim in ["gt.csv", "classes.txt"] {
        for f in ["gt.csv", "dets.txt", "image_list.txt"] {
            std::fs::copy(fx.join(f), dir.path().join(f)).unwrap();
        }
        std::fs::write(dir.path().join("classes.txt"), "n02062744\nn03337140\n").unwrap();
        let before = std::fs::read(dir.path().join(victim)).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_map-eval"))
            .current_dir(dir.path())
            .args([
                "--gt",
                "gt.csv",
                "--dets",
                "dets.txt",
                "--image-list",
                "image_list.txt",
            ])
            .args(["--classes", "classes.txt", "--report", victim])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("is an input of this run"),
            "{err}"
        );
        assert_eq!(std::fs::read(dir.path().join(victim)).unwrap(), before);
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

#[test]
fn non_finite_and_absurd_coordinates_are_dropped_with_their_place_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    // VOC XML ground truth: one good object, three bad ones.
    let gts = dir.path().join("gts");
    std::fs::create_dir(&gts).unwrap();
    let obj = |x: &str| {
        format!("<object><name>cat</name><bndbox><xmin>{x}</xmin><ymin>0</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>")
    };
    write(
        &gts,
        "a.xml",
        &format!(
            "<annotation>{}{}{}{}</annotation>",
            obj("0"),
            obj("NaN"),
            obj("inf"),
            obj("1e308")
        ),
    );
    // Detections with the same problems.
    let dets = write(
        dir.path(),
        "dets.csv",
        "image,class,score,xmin,ymin,xmax,ymax\na,cat,0.9,0,0,9,9\na,cat,0.8,nan,0,9,9\na,cat,0.7,0,0,1e308,9\n",
    );
    let loaded = load(&Inputs {
        gt: gts,
        dets,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.issues.non_finite_boxes, 5);
    assert_eq!(loaded.gt.boxes.len(), 1);
    assert_eq!(loaded.dets.dets.len(), 1);
    assert!(loaded
        .issues
        .examples
        .iter()
        .any(|e| e.contains("a.xml: object cat") && e.contains("NaN")));
    assert!(loaded
        .issues
        .examples
        .iter()
        .any(|e| e.contains("dets.csv:4")));
    for b in loaded
        .gt
        .boxes
        .iter()
        .map(|g| g.bbox)
        .chain(loaded.dets.dets.iter().map(|d| d.bbox))
    {
        assert!([b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite()));
    }
    // --strict stops at the first.
    let err = load(&Inputs {
        gt: dir.path().join("gts"),
        dets: dir.path().join("dets.csv"),
        strict: true,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("NaN") && err.contains("--strict"), "{err}");
}

#[test]
fn coco_image_id_problems_are_reported_as_pycocotools_treats_them() {
    let dir = tempfile::tempdir().unwrap();
    // Image 1 twice, image "x" (a string id), an annotation on image 7 which `images` lacks,
    // and one with an absurd width (JSON has no NaN or infinity).
    let gt = write(
        dir.path(),
        "gt.json",
        r#"{"images": [{"id": 1}, {"id": 1}, {"id": "x"}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
              {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
              {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e308, 10], "area": 100, "iscrowd": 0}
            ]}"#,
    );
    let dets = write(
        dir.path(),
        "dets.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]"#,
    );
    let loaded = load(&Inputs {
        gt,
        dets,
        ..Default::default()
    })
    .unwrap();
    let i = &loaded.issues;
    assert_eq!(
        (i.image_id_issues, i.non_finite_boxes),
        (3, 1),
        "{:?}",
        i.examples
    );
    // Two images (1 and "x"); image 7 is not invented; one object.
    assert_eq!(loaded.gt.images.len(), 2);
    assert!(loaded.gt.images.get("7").is_none());
    assert_eq!(loaded.gt.boxes.len(), 1);
    assert!(i
        .examples
        .iter()
        .any(|e| e.contains("image_id 7 is not in `images`")));
    assert!(i.examples.iter().any(|e| e.contains("repeats id 1")));
    assert!(i
        .examples
        .iter()
        .any(|e| e.contains("non-integer id \"x\"")));
}

#[test]
fn empty_non_utf8_and_foreign_files_in_an_xml_folder_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let gts = dir.path().join("gts");
    std::fs::create_dir(&gts).unwrap();
    write(&gts, "a.xml", "<annotation><object><name>cat</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>");
    write(&gts, "empty.xml", "");
    std::fs::write(
        gts.join("latin1.xml"),
        b"<annotation><object><name>caf\xe9</name></object></annotation>",
    )
    .unwrap();
    let dets = write(dir.path(), "dets.csv", "a,cat,0.9,0,0,9,9\n");
    let loaded = load(&Inputs {
        gt: gts,
        dets: dets.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.issues.malformed, 2, "{:?}", loaded.issues.examples);
    assert!(loaded
        .issues
        .examples
        .iter()
        .any(|e| e.contains("latin1.xml: not UTF-8")));
    assert!(loaded
        .issues
        .examples
        .iter()
        .any(|e| e.contains("empty.xml") && e.contains("no <annotation> element")));
    assert_eq!(loaded.gt.boxes.len(), 1);
    // A CSV file read as VOC XML is not a VOC file: no silent 0 classes and exit 0.
    let csv = write(
        dir.path(),
        "gt.csv",
        "image,class,xmin,ymin,xmax,ymax\na,cat,0,0,9,9\n",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_map-eval"))
        .args(["--gt-format", "voc", "--gt"])
        .arg(&csv)
        .arg("--dets")
        .arg(&dets)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("no <annotation> element"), "{stderr}");
}

#[test]
fn list_files_keep_dotted_names_and_spaces() {
    let dir = tempfile::tempdir().unwrap();
    // Roboflow-style names (dots before the extension) and a name with a space.
    let gt = write(
        dir.path(),
        "gt.csv",
        "image,class,xmin,ymin,xmax,ymax\n\
         IMG_2274_jpeg_jpg.rf.2f319e94,cat,0,0,9,9\n\
         my photo,cat,0,0,9,9\n\
         other,cat,0,0,9,9\n",
    );
    let dets = write(
        dir.path(),
        "dets.csv",
        "image,class,score,xmin,ymin,xmax,ymax\nIMG_2274_jpeg_jpg.rf.2f319e94,cat,0.9,0,0,9,9\nmy photo,cat,0.8,0,0,9,9\n",
    );
    let subset = write(
        dir.path(),
        "test.txt",
        "IMG_2274_jpeg_jpg.rf.2f319e94\nmy photo.jpg\n",
    );
    let loaded = load(&Inputs {
        gt,
        dets,
        subset: Some(subset),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.gt.boxes.len(), 2);
    assert_eq!(loaded.dets.dets.len(), 2);
    // An image list as rcnn detect writes it reads back, spaces and all.
    let list = write(dir.path(), "image_list.txt", "my photo 1\nIMG_1.rf.ab 2\n");
    assert_eq!(
        eval::formats::ilsvrc::read_image_list(&list).unwrap(),
        vec!["my photo".to_string(), "IMG_1.rf.ab".to_string()]
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_a_name_and_unmatched_names_are_counted() {
    // A subset written by a Windows editor began with a BOM: its first name matched nothing,
    // and a typo was dropped without a word.
    let dir = tempfile::tempdir().unwrap();
    let gt = write(
        dir.path(),
        "gt.csv",
        "\u{feff}image,class,xmin,ymin,xmax,ymax\na,cat,0,0,9,9\nb,cat,0,0,9,9\nc,cat,0,0,9,9\n",
    );
    let dets = write(
        dir.path(),
        "dets.csv",
        "image,class,score,xmin,ymin,xmax,ymax\na,cat,0.9,0,0,9,9\nb,cat,0.8,0,0,9,9\n",
    );
    let subset = write(dir.path(), "subset.txt", "\u{feff}a\nb\ntypo\n");
    let classes = write(dir.path(), "classes.txt", "\u{feff}cat\n");
    let loaded = load(&Inputs {
        gt,
        dets,
        subset: Some(subset),
        classes: Some(classes),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.classes.names, ["cat"]);
    assert_eq!(
        loaded.gt.images.len(),
        2,
        "a and b, the BOM's line included"
    );
    assert_eq!(loaded.issues.unmatched_names, 1);
    assert!(
        loaded
            .issues
            .examples
            .iter()
            .any(|e| e.contains("subset.txt:3: typo")),
        "{:?}",
        loaded.issues.examples
    );
    let ap = loaded.evaluate(Metric::Voc, 0.5).mean_ap.unwrap();
    assert!((ap - 1.0).abs() < 1e-12, "{ap}");
}

#[test]
fn coco_ids_written_as_floats_are_the_same_ids_and_odd_categories_are_said() {
    // Results with "image_id": 1.0 were scored as another image (AP 0); pycocotools takes
    // 1.0 as 1. Two categories with one name were merged silently; a float category_id was
    // reported as a missing field.
    let dir = tempfile::tempdir().unwrap();
    let gt = write(
        dir.path(),
        "gt.json",
        r#"{"images": [{"id": 1}, {"id": 2.0}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat"}],
            "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
              {"id": 2, "image_id": 2, "category_id": 1.0, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0},
              {"id": 3, "image_id": 2, "category_id": 1.5, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0}
            ]}"#,
    );
    let dets = write(
        dir.path(),
        "dets.json",
        r#"[{"image_id": 1.0, "category_id": 1.0, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.8}]"#,
    );
    let loaded = load(&Inputs {
        gt,
        dets,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.gt.images.len(), 2);
    assert_eq!(loaded.issues.detections_on_unknown_images, 0);
    let examples = loaded.issues.examples.join("\n");
    assert!(
        examples.contains("categories 1 and 2 are both named `cat`"),
        "{examples}"
    );
    assert!(
        examples.contains("has category_id 1.5, not an integer"),
        "{examples}"
    );
    let ap = loaded.evaluate(Metric::Voc, 0.5).mean_ap.unwrap();
    assert!((ap - 1.0).abs() < 1e-12, "{ap}");
}

#[test]
fn a_line_too_long_for_a_list_is_refused_before_it_is_read_whole() {
    // A 1 GB line once took 4.9 GB; 64 MiB stands for it here.
    let dir = tempfile::tempdir().unwrap();
    let subset = dir.path().join("subset.txt");
    let mut text = "a\n".to_string();
    text.push_str(&"x".repeat(64 << 20));
    std::fs::write(&subset, text).unwrap();
    let err = eval::names::read_listed(&subset).unwrap_err().to_string();
    assert!(
        err.contains("subset.txt:2: a line longer than 1048576 bytes"),
        "{err}"
    );
    // CSV is streamed by the csv crate, which buffers a whole record: bounded the same way.
    let gt = dir.path().join("gt.csv");
    let mut csv = "image,class,xmin,ymin,xmax,ymax\na,cat,0,0,9,9\n".to_string();
    csv.push_str(&"x".repeat(64 << 20));
    std::fs::write(&gt, csv).unwrap();
    let err = eval::load::load_gt(&gt, None, None, None, false)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a line longer than 1048576 bytes"), "{err}");
    // A line of exactly the bound, ended, is a line.
    let mut fine = "y".repeat(eval::names::MAX_LINE - 1);
    fine.push('\n');
    std::fs::write(&subset, fine).unwrap();
    assert_eq!(eval::names::read_listed(&subset).unwrap().len(), 1);
}
