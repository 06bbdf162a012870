//! The shipped data sets read as their sources describe them (data/README.md).

use std::path::Path;

use eval::formats::Format;
use eval::load::load_gt;

fn data(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(p)
}

#[test]
fn bccd_has_its_documented_images_classes_boxes_and_splits() {
    let (gt, classes, issues) = load_gt(
        &data("bccd/annotations"),
        Some(Format::VocXml),
        None,
        None,
        false,
    )
    .unwrap();
    assert_eq!(gt.images.len(), 364);
    assert_eq!(classes.names, ["Platelets", "RBC", "WBC"]);
    let count = |c: usize| gt.boxes.iter().filter(|b| b.class == c).count();
    assert_eq!((count(0), count(1), count(2)), (361, 4155, 372));
    // The two zero-size boxes are read (x2 = x1 is not inverted, so no issue is counted).
    let empty: Vec<&str> = gt
        .boxes
        .iter()
        .filter(|b| b.bbox.x2 <= b.bbox.x1 || b.bbox.y2 <= b.bbox.y1)
        .map(|b| gt.images.name(b.image))
        .collect();
    assert_eq!(empty, ["BloodImage_00338", "BloodImage_00343"], "{issues}");
    for (split, n) in [("train", 205), ("val", 87), ("test", 72), ("trainval", 292)] {
        let names = eval::load::read_image_names(&data(&format!("bccd/splits/{split}.txt")), split)
            .unwrap();
        assert_eq!(names.len(), n, "{split}");
        assert!(names.iter().all(|n| gt.images.get(n).is_some()), "{split}");
    }
}
