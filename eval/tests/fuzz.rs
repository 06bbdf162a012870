//! Property tests over every reader: arbitrary bytes and arbitrary mutations of valid files
//! (flipped, inserted and deleted bytes, truncation) never panic, and whatever is read holds
//! only finite boxes and scores.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eval::formats::{BoxFormat, Format};
use eval::load::{read_raw_dets, read_raw_gt};
use eval::{BBox, Issues};
use proptest::prelude::*;

#[path = "common/mutation.rs"]
mod mutation;
use mutation::{edits, mutated};

const VOC: &str =
    "<annotation><filename>a.jpg</filename><object><name>cat</name><difficult>0</difficult>\
<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>";
const COCO_GT: &str = r#"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2}],
"categories": [{"id": 1, "name": "cat"}],
"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "area": 1200, "iscrowd": 0}]}"#;
const COCO_DETS: &str =
    r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9}]"#;
const CSV_GT: &str = "image,class,xmin,ymin,xmax,ymax\na,cat,1,2,30,40\n\"b,c\",dog,0,0,9,9\n";
const CSV_DETS: &str = "image,class,score,xmin,ymin,xmax,ymax\na,cat,0.9,1,2,30,40\n";
const TXT_GT: &str = "cat 1 2 30 40\ndog 0 0 9 9 difficult\n";
const TXT_DETS: &str = "cat 0.9 1 2 30 40\n";
const ILSVRC: &str = "1 1 0.9 1 2 30 40\n2 3 0.5 0 0 9 9\n";
const LIST: &str = "a 1\nmy photo 2\n# comment\n";

fn finite(b: &BBox) -> bool {
    [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite())
}

/// Writes `bytes` where `format` wants it (a folder for VOC XML and txt) and returns the path.
fn place(dir: &Path, format: Format, bytes: &[u8]) -> PathBuf {
    match format {
        Format::VocXml | Format::Txt => {
            let folder = dir.join("folder");
            std::fs::create_dir_all(&folder).unwrap();
            let ext = if format == Format::VocXml {
                "xml"
            } else {
                "txt"
            };
            std::fs::write(folder.join(format!("a.{ext}")), bytes).unwrap();
            folder
        }
        Format::Coco => {
            let p = dir.join("f.json");
            std::fs::write(&p, bytes).unwrap();
            p
        }
        _ => {
            let p = dir.join("f.csv");
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }
}

fn check_gt(format: Format, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), format, bytes);
    for strict in [false, true] {
        let mut issues = Issues::new(strict);
        if let Ok(gt) = read_raw_gt(&path, format, BoxFormat::Xyxy, None, false, &mut issues) {
            for b in &gt.boxes {
                prop_assert!(finite(&b.bbox), "{format:?}: {:?}", b.bbox);
            }
        }
    }
    Ok(())
}

fn check_dets(format: Format, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = place(dir.path(), format, bytes);
    let list = ["a".to_string(), "b".to_string()];
    let image_list = (format == Format::Ilsvrc).then_some(&list[..]);
    for strict in [false, true] {
        let mut issues = Issues::new(strict);
        if let Ok(dets) = read_raw_dets(
            &path,
            format,
            image_list,
            BoxFormat::Xyxy,
            &HashMap::new(),
            &mut issues,
        ) {
            for d in &dets {
                prop_assert!(finite(&d.bbox), "{format:?}: {:?}", d.bbox);
                prop_assert!(d.score.is_finite(), "{format:?}: score {}", d.score);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ground_truth_readers_survive_mutations((e, cut) in edits()) {
        check_gt(Format::VocXml, &mutated(VOC.as_bytes(), &e, cut))?;
        check_gt(Format::Coco, &mutated(COCO_GT.as_bytes(), &e, cut))?;
        check_gt(Format::Csv, &mutated(CSV_GT.as_bytes(), &e, cut))?;
        check_gt(Format::Txt, &mutated(TXT_GT.as_bytes(), &e, cut))?;
    }

    #[test]
    fn detection_readers_survive_mutations((e, cut) in edits()) {
        check_dets(Format::Coco, &mutated(COCO_DETS.as_bytes(), &e, cut))?;
        check_dets(Format::Csv, &mutated(CSV_DETS.as_bytes(), &e, cut))?;
        check_dets(Format::Txt, &mutated(TXT_DETS.as_bytes(), &e, cut))?;
        check_dets(Format::Ilsvrc, &mutated(ILSVRC.as_bytes(), &e, cut))?;
    }

    #[test]
    fn every_reader_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for f in [Format::VocXml, Format::Coco, Format::Csv, Format::Txt] {
            check_gt(f, &bytes)?;
        }
        for f in [Format::Coco, Format::Csv, Format::Txt, Format::Ilsvrc] {
            check_dets(f, &bytes)?;
        }
    }

    #[test]
    fn list_and_class_readers_survive_mutations((e, cut) in edits(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().unwrap();
        for b in [mutated(LIST.as_bytes(), &e, cut), bytes] {
            let p = dir.path().join("list.txt");
            std::fs::write(&p, &b).unwrap();
            let _ = eval::names::read_listed(&p);
            let _ = eval::formats::ilsvrc::read_image_list(&p);
            let _ = eval::ClassList::read(&p);
        }
    }

    #[test]
    fn numbers_from_text_are_finite_or_refused(x in "[-+]?([0-9]{1,3}(\\.[0-9]*)?([eE][-+]?[0-9]{1,4})?|nan|NaN|inf|-inf|infinity)") {
        let csv = format!("image,class,score,xmin,ymin,xmax,ymax\na,cat,0.5,{x},0,10,10\n");
        check_dets(Format::Csv, csv.as_bytes())?;
        let voc = VOC.replace("<xmin>1</xmin>", &format!("<xmin>{x}</xmin>"));
        check_gt(Format::VocXml, voc.as_bytes())?;
        let coco = COCO_GT.replace("[1, 2, 30, 40]", &format!("[1, 2, {x}, 40]"));
        check_gt(Format::Coco, coco.as_bytes())?;
    }
}
