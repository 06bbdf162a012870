//! Ground truth as people have it: the shipped BCCD set (VOC XML) converted to COCO JSON, CSV,
//! txt and YOLO labels gives the same training set (images, boxes to 1e-6, labels), the same
//! region index (regions, labels and IoUs in the same order) and the same `map-eval` AP, with
//! the detections in CSV whatever the ground truth's format (a COCO image, named by its id,
//! is found by its file name's stem).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use eval::BBox;
use inception_rcnn::train::data::{load_images_from, read_split, GtSource, Loaded};
use inception_rcnn::train::regions::{Precomputed, ProposalsStamp, RegionIndex, RegionSpec};

#[allow(dead_code)]
mod common;
use common::root;

const CLASSES: [&str; 3] = ["Platelets", "RBC", "WBC"];

fn bccd() -> (PathBuf, PathBuf) {
    (
        root().join("data/bccd/images"),
        root().join("data/bccd/annotations"),
    )
}

fn load(source: &GtSource) -> Loaded {
    let (images, _) = bccd();
    let split = read_split(&root().join("data/bccd/splits/train.txt")).unwrap();
    load_images_from(&images, source, Some(&split[..40]), None).unwrap()
}

/// An image file, its width and height, and its objects `(class, box)`.
type Annotated = (String, u32, u32, Vec<(String, BBox)>);

/// Every object of the VOC set by image, in file order.
fn voc_objects() -> Vec<Annotated> {
    let (images, annotations) = bccd();
    let (gt, classes, _) = eval::load::load_gt(&annotations, None, None, None, false).unwrap();
    let mut by_image: BTreeMap<usize, Vec<(String, BBox)>> = BTreeMap::new();
    for b in &gt.boxes {
        by_image
            .entry(b.image)
            .or_default()
            .push((classes.names[b.class].clone(), b.bbox));
    }
    (0..gt.images.len())
        .filter_map(|i| {
            let name = gt.images.name(i).to_string();
            let file = format!("{name}.jpg");
            let (w, h) = image::image_dimensions(images.join(&file)).ok()?;
            Some((file, w, h, by_image.remove(&i).unwrap_or_default()))
        })
        .collect()
}

/// Writes the VOC set as COCO JSON, CSV, a txt folder and YOLO labels (with data.yaml) under
/// `dir`; returns each format's ground-truth path.
fn convert(dir: &Path) -> Vec<(&'static str, GtSource)> {
    let set = voc_objects();
    let class_id = |c: &str| CLASSES.iter().position(|k| *k == c).unwrap();
    // COCO: ids from 1 in file order, bbox [x, y, w, h] with w = xmax - xmin.
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for (i, (file, w, h, objects)) in set.iter().enumerate() {
        images.push(serde_json::json!({"id": i + 1, "file_name": file, "width": w, "height": h}));
        for (c, b) in objects {
            annotations.push(serde_json::json!({
                "id": annotations.len() + 1, "image_id": i + 1, "category_id": class_id(c) + 1,
                "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                "area": (b.x2 - b.x1) * (b.y2 - b.y1), "iscrowd": 0,
            }));
        }
    }
    let categories: Vec<_> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({"id": i + 1, "name": c}))
        .collect();
    let coco = dir.join("bccd.json");
    std::fs::write(
        &coco,
        serde_json::json!({"images": images, "annotations": annotations, "categories": categories})
            .to_string(),
    )
    .unwrap();
    // CSV and txt: image by stem, pixels as VOC writes them.
    let csv = dir.join("bccd.csv");
    let txt = dir.join("txt");
    std::fs::create_dir_all(&txt).unwrap();
    let mut csv_text = String::from("image,class,xmin,ymin,xmax,ymax\n");
    for (file, _, _, objects) in &set {
        let stem = file.trim_end_matches(".jpg");
        let mut lines = String::new();
        for (c, b) in objects {
            writeln!(csv_text, "{stem},{c},{},{},{},{}", b.x1, b.y1, b.x2, b.y2).unwrap();
            writeln!(lines, "{c} {} {} {} {}", b.x1, b.y1, b.x2, b.y2).unwrap();
        }
        std::fs::write(txt.join(format!("{stem}.txt")), lines).unwrap();
    }
    std::fs::write(&csv, csv_text).unwrap();
    // YOLO: labels/ with data.yaml beside it; centres and sizes over the image's size.
    let yolo = dir.join("yolo/labels");
    std::fs::create_dir_all(&yolo).unwrap();
    std::fs::write(
        dir.join("yolo/data.yaml"),
        "path: .\ntrain: images\nnc: 3\nnames:\n  0: Platelets\n  1: RBC\n  2: WBC\n",
    )
    .unwrap();
    for (file, w, h, objects) in &set {
        let (w, h) = (*w as f64, *h as f64);
        let mut lines = String::new();
        for (c, b) in objects {
            writeln!(
                lines,
                "{} {:.12} {:.12} {:.12} {:.12}",
                class_id(c),
                (b.x1 + b.x2) / 2.0 / w,
                (b.y1 + b.y2) / 2.0 / h,
                (b.x2 - b.x1) / w,
                (b.y2 - b.y1) / h
            )
            .unwrap();
        }
        std::fs::write(yolo.join(file.replace(".jpg", ".txt")), lines).unwrap();
    }
    let (_, voc) = bccd();
    let guess = |p: &Path| GtSource::guess(p);
    vec![
        ("voc", guess(&voc)),
        ("coco", guess(&coco)),
        ("csv", guess(&csv)),
        (
            "txt",
            GtSource {
                format: Some(eval::formats::Format::Txt),
                ..guess(&txt)
            },
        ),
        ("yolo", guess(&yolo)),
    ]
}

#[test]
fn each_format_of_bccd_gives_the_same_training_set_regions_and_ap() {
    let dir = tempfile::tempdir().unwrap();
    let sources = convert(dir.path());
    // The YOLO folder is recognised as YOLO, not as the txt format.
    assert_eq!(
        eval::formats::Format::guess(&sources[4].1.path).unwrap(),
        eval::formats::Format::Yolo
    );
    let reference = load(&sources[0].1);
    assert_eq!(reference.images.len(), 40);
    assert_eq!(reference.classes.names, CLASSES);
    let objects: usize = reference.images.iter().map(|i| i.objects.len()).sum();
    assert!(objects > 400, "{objects} objects");
    // Proposals: each object's box shifted by a few pixels either way, and one far corner.
    let proposals = |images: &[inception_rcnn::train::data::TrainImage]| {
        Precomputed::in_memory(
            ProposalsStamp {
                path: "shifted".into(),
                bytes: 0,
                modified: 0,
            },
            images
                .iter()
                .map(|im| {
                    let mut b: Vec<BBox> = Vec::new();
                    for o in &reference
                        .images
                        .iter()
                        .find(|r| r.key == im.key)
                        .unwrap()
                        .objects
                    {
                        for d in [-9.0, 4.0, 15.0] {
                            let o = o.bbox;
                            b.push(BBox::new(o.x1 + d, o.y1 - d, o.x2 + d, o.y2 + d / 2.0));
                        }
                    }
                    b.push(BBox::new(0.0, 0.0, 30.0, 30.0));
                    (im.path.clone(), b)
                })
                .collect(),
        )
    };
    let index_of = |name: &str, loaded: &Loaded| {
        let spec = RegionSpec {
            max_background: 0,
            proposals: Some(ProposalsStamp {
                path: "shifted".into(),
                bytes: 0,
                modified: 0,
            }),
            ..RegionSpec::new(loaded.images.clone(), 1)
        };
        RegionIndex::open_or_build(
            &dir.path().join("index"),
            name,
            &spec,
            &proposals(&loaded.images),
            &|| {},
        )
        .unwrap()
    };
    let reference_index = index_of("voc", &reference);
    for (name, source) in &sources[1..] {
        let loaded = load(source);
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        assert_eq!(loaded.classes.names, CLASSES, "{name}");
        assert_eq!(loaded.images.len(), reference.images.len(), "{name}");
        for (a, b) in loaded.images.iter().zip(&reference.images) {
            assert_eq!((&a.key, &a.path), (&b.key, &b.path), "{name}");
            assert_eq!(a.objects.len(), b.objects.len(), "{name}: {}", a.key);
            for (x, y) in a.objects.iter().zip(&b.objects) {
                assert_eq!(x.label, y.label, "{name}: {}", a.key);
                let d = [
                    x.bbox.x1 - y.bbox.x1,
                    x.bbox.y1 - y.bbox.y1,
                    x.bbox.x2 - y.bbox.x2,
                    x.bbox.y2 - y.bbox.y2,
                ];
                assert!(
                    d.iter().all(|v| v.abs() <= 1e-6),
                    "{name}: {}: {:?} vs {:?}",
                    a.key,
                    x.bbox,
                    y.bbox
                );
            }
        }
        let index = index_of(name, &loaded);
        assert_eq!(index.len(), reference_index.len(), "{name}");
        assert_eq!(index.positives(), reference_index.positives(), "{name}");
        for (r, s) in index.iter().zip(reference_index.iter()) {
            assert_eq!((r.image, r.label), (s.image, s.label), "{name}");
            assert!(
                (r.iou - s.iou).abs() <= 1e-6,
                "{name}: IoU {} vs {}",
                r.iou,
                s.iou
            );
            let d = (r.bbox.x1 - s.bbox.x1).abs() + (r.bbox.y2 - s.bbox.y2).abs();
            assert!(d <= 1e-4, "{name}: {:?} vs {:?}", r.bbox, s.bbox);
        }
    }

    // map-eval: detections in CSV (each object found a little off, with a score, plus a false
    // positive per image), scored against each format of the ground truth.
    let mut dets = String::from("image,class,score,xmin,ymin,xmax,ymax\n");
    for (k, (file, _, _, objects)) in voc_objects().iter().enumerate() {
        let stem = file.trim_end_matches(".jpg");
        for (j, (c, b)) in objects.iter().enumerate() {
            let s = 0.3 + 0.7 * (((k * 31 + j * 17) % 97) as f64 / 97.0);
            let d = ((k + j) % 7) as f64 * 3.0;
            writeln!(
                dets,
                "{stem},{c},{s:.4},{},{},{},{}",
                b.x1 + d,
                b.y1,
                b.x2 + d,
                b.y2
            )
            .unwrap();
        }
        writeln!(dets, "{stem},RBC,0.5,0,0,40,40").unwrap();
    }
    let dets_path = dir.path().join("dets.csv");
    std::fs::write(&dets_path, dets).unwrap();
    let mut aps = Vec::new();
    for (name, source) in &sources {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rcnn"));
        c.args(["map-eval", "--metric", "voc", "--gt"])
            .arg(&source.path)
            .arg("--dets")
            .arg(&dets_path);
        if *name == "yolo" {
            // Its images are not beside the labels here.
            c.arg("--gt-images").arg(bccd().0);
        }
        if let Some(f) = source.format {
            c.args(["--gt-format", &format!("{f:?}").to_lowercase()]);
        }
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let map = out
            .lines()
            .find_map(|l| l.strip_prefix("mean AP"))
            .unwrap_or_else(|| panic!("{name}: no mean AP line in {out}"))
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        aps.push((*name, map));
    }
    eprintln!("map-eval --metric voc by ground-truth format: {aps:?}");
    assert!(aps[0].1 > 0.5 && aps[0].1 < 1.0, "{aps:?}");
    for (name, ap) in &aps[1..] {
        assert!(
            (ap - aps[0].1).abs() < 1e-9,
            "{name}: {ap} vs VOC's {}",
            aps[0].1
        );
    }
}
