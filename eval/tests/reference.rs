//! Every number in the reference data's EXPECTED.md files, reproduced.

use std::path::{Path, PathBuf};

use eval::formats::{BoxFormat, Format};
use eval::load::{load, Inputs};
use eval::metrics::{evaluate, EvalParams, Metric};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval-reference")
        .join(p)
}

fn one_class_ap(inputs: &Inputs, metric: Metric, iou: f64) -> f64 {
    let loaded = load(inputs).unwrap();
    assert_eq!(loaded.issues.total(), 0, "{}", loaded.issues);
    assert_eq!(loaded.classes.len(), 1);
    let mut params = EvalParams::new(metric);
    params.iou = iou;
    let e = evaluate(&loaded.gt, &loaded.dets, loaded.classes.len(), &params);
    e.per_class[0].ap
}

#[test]
fn padilla_case_1_voc_ap_at_four_thresholds() {
    let inputs = Inputs {
        gt: fixture("padilla-case1/gts"),
        dets: fixture("padilla-case1/dets"),
        box_format: BoxFormat::Xywh,
        ..Default::default()
    };
    let loaded = load(&inputs).unwrap();
    assert_eq!((loaded.gt.boxes.len(), loaded.dets.dets.len()), (15, 24));
    let published = [
        (0.10, 0.3333333333, 0.3371980676),
        (0.30, 0.2683982683, 0.2456866804),
        (0.50, 0.0303030303, 0.0222222222),
        (0.75, 0.0, 0.0),
    ];
    assert_voc_aps(&inputs, &published, 1e-10);
}

/// Checks (IoU, 11-point AP, all-point AP) rows of a one-class set to `tolerance`.
fn assert_voc_aps(inputs: &Inputs, rows: &[(f64, f64, f64)], tolerance: f64) {
    for &(iou, voc07, all) in rows {
        let a = one_class_ap(inputs, Metric::Voc07, iou);
        let b = one_class_ap(inputs, Metric::Voc, iou);
        assert!(
            (a - voc07).abs() < tolerance,
            "IoU {iou}: 11-point {a} vs {voc07}"
        );
        assert!(
            (b - all).abs() < tolerance,
            "IoU {iou}: all-point {b} vs {all}"
        );
    }
}

#[test]
fn voc_toy_cat_ap() {
    let inputs = Inputs {
        gt: fixture("voc-toy-cat/gts"),
        dets: fixture("voc-toy-cat/dets"),
        ..Default::default()
    };
    assert_voc_aps(
        &inputs,
        &[(0.50, 0.886364, 0.895833), (0.75, 0.492424, 0.509722)],
        1e-6,
    );
}

#[test]
fn coco_sample_twelve_numbers() {
    let inputs = Inputs {
        gt: fixture("coco-sample/gt.json"),
        dets: fixture("coco-sample/dets.json"),
        gt_format: Some(Format::Coco),
        dets_format: Some(Format::Coco),
        ..Default::default()
    };
    let loaded = load(&inputs).unwrap();
    assert_eq!((loaded.gt.boxes.len(), loaded.dets.dets.len()), (830, 734));
    let e = evaluate(
        &loaded.gt,
        &loaded.dets,
        loaded.classes.len(),
        &EvalParams::new(Metric::Coco),
    );
    let ours = e.coco.unwrap().as_array();
    let expected = [
        0.503647, 0.696973, 0.571667, 0.593252, 0.557991, 0.489363, 0.386813, 0.593680, 0.595353,
        0.654764, 0.603130, 0.553744,
    ];
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() < 1e-6,
            "{}: {a} vs pycocotools {b}",
            eval::metrics::CocoStats::NAMES[i]
        );
    }
}

#[test]
fn coco_random_data_agrees_with_pycocotools() {
    // Made by scripts/make_coco_random_fixture.py: crowds, ties, empty images, >100 detections.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coco-random");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let inputs = Inputs {
        gt: dir.join("gt.json"),
        dets: dir.join("dets.json"),
        ..Default::default()
    };
    let loaded = load(&inputs).unwrap();
    assert_eq!(
        loaded.gt.images.len() as u64,
        expected["images"].as_u64().unwrap()
    );
    assert_eq!(
        loaded.dets.dets.len() as u64,
        expected["detections"].as_u64().unwrap()
    );
    let e = evaluate(
        &loaded.gt,
        &loaded.dets,
        loaded.classes.len(),
        &EvalParams::new(Metric::Coco),
    );
    let ours = e.coco.unwrap().as_array();
    for (i, theirs) in expected["stats"].as_array().unwrap().iter().enumerate() {
        let theirs = theirs.as_f64().unwrap();
        assert!(
            (ours[i] - theirs).abs() < 1e-9,
            "{}: {} vs pycocotools {theirs}",
            eval::metrics::CocoStats::NAMES[i],
            ours[i]
        );
    }
}

#[test]
fn ilsvrc_and_voc_rules_agree_with_a_straight_line_implementation() {
    // Made by scripts/make_ilsvrc_random_fixture.py: tiny objects, inverted boxes, ties, a
    // blacklist, difficult objects, a submission in shuffled order.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ilsvrc-random");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut inputs = Inputs {
        gt: dir.join("gt.csv"),
        dets: dir.join("dets.txt"),
        image_list: Some(dir.join("image_list.txt")),
        ..Default::default()
    };
    let plain = load(&inputs).unwrap();
    inputs.blacklist = Some(dir.join("blacklist.txt"));
    let with_blacklist = load(&inputs).unwrap();
    assert_eq!(with_blacklist.blacklist.len(), 20);
    assert_eq!(
        plain.gt.boxes.len() as u64,
        expected["objects"].as_u64().unwrap()
    );
    assert_eq!(
        plain.dets.dets.len() as u64,
        expected["detections"].as_u64().unwrap()
    );
    // The inverted boxes are counted, and kept.
    assert!(plain.issues.inverted_boxes > 0);
    assert_eq!(plain.classes.len(), 200);

    for (metric, loaded) in [
        (Metric::Ilsvrc, &with_blacklist),
        (Metric::Voc, &plain),
        (Metric::Voc07, &plain),
    ] {
        let mut params = EvalParams::new(metric);
        params.blacklist = loaded.blacklist.clone();
        let e = evaluate(&loaded.gt, &loaded.dets, loaded.classes.len(), &params);
        let theirs = expected[metric.name()].as_object().unwrap();
        let ours: Vec<_> = e.per_class.iter().filter(|c| c.n_gt > 0).collect();
        assert_eq!(ours.len(), theirs.len(), "{metric}: classes with objects");
        for c in ours {
            let wnid = &loaded.classes.wnids[c.class];
            let t = theirs[wnid.as_str()].as_f64().unwrap();
            assert!((c.ap - t).abs() < 1e-9, "{metric} {wnid}: {} vs {t}", c.ap);
        }
    }
}

#[test]
fn the_devkit_demo_submission_parses_and_its_bad_boxes_are_counted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ilsvrc-demo/demo.val.pred.det.txt");
    let mut issues = eval::Issues::new(false);
    let dets = eval::formats::ilsvrc::read_dets(&path, None, &mut issues).unwrap();
    assert_eq!(dets.len(), 49_013, "every line kept");
    assert_eq!(issues.inverted_boxes, 1_692);
    assert_eq!(issues.negative_coordinates, 3_910);
    assert_eq!(issues.malformed + issues.non_finite_scores, 0);
    assert!(
        issues.examples[0].contains("demo.val.pred.det.txt:"),
        "{}",
        issues.examples[0]
    );
    let classes = eval::ClassList::ilsvrc200();
    assert!(dets.iter().all(
        |d| matches!(d.class, eval::formats::ClassKey::Id(id) if classes.index_of_id(id).is_some())
    ));
    // --strict stops at the first one, naming its line.
    let err =
        eval::formats::ilsvrc::read_dets(&path, None, &mut eval::Issues::new(true)).unwrap_err();
    assert!(err.to_string().contains("demo.val.pred.det.txt:"), "{err}");
}
