//! PASCAL VOC / ILSVRC XML annotations: one file per image, `<object>`s with `<name>` (a word
//! in VOC, a WNID in ILSVRC), `<difficult>` and `<bndbox>`.

use std::path::Path;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{check_box, stem, ClassKey, RawGroundTruth, RawGt};
use crate::issues::{Issues, Kind};
use crate::EvalError;
use boxes::BBox;

/// Reads every `.xml` in `dir` (sorted by name); the image is the file's stem. A file that does
/// not parse is reported with its line and skipped.
pub fn read_dir(dir: &Path, issues: &mut Issues) -> Result<RawGroundTruth, EvalError> {
    let mut gt = RawGroundTruth::default();
    let files = if dir.is_dir() {
        // Recursively: ILSVRC DET's devkit keeps its train annotations in one folder per class.
        super::files_under(dir, &["xml"])?
    } else {
        vec![dir.to_path_buf()]
    };
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| EvalError::io(&path, e))?;
        let image = stem(&path);
        // A file that is not UTF-8 text is one malformed file, skipped like any other.
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                issues.record(Kind::Malformed, || {
                    format!(
                        "{}: not UTF-8 text (byte {at}); file skipped",
                        path.display()
                    )
                })?;
                continue;
            }
        };
        match parse(&text, &image) {
            Ok(objects) => {
                for o in objects {
                    if check_box(issues, &o.bbox, &|| {
                        format!("{}: object {}", path.display(), o.class)
                    })? {
                        gt.boxes.push(o);
                    }
                }
                gt.images.push(image);
            }
            Err((offset, message)) => {
                let line = text[..offset.min(text.len())].matches('\n').count() + 1;
                issues.record(Kind::Malformed, || {
                    format!("{}:{line}: {message}; file skipped", path.display())
                })?;
            }
        }
    }
    Ok(gt)
}

#[derive(Default)]
struct Object {
    name: Option<String>,
    difficult: bool,
    coords: [Option<f64>; 4],
}

/// The objects of one annotation file, or (byte offset, message).
fn parse(text: &str, image: &str) -> Result<Vec<RawGt>, (usize, String)> {
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    let mut current: Option<Object> = None;
    let mut root = false;
    loop {
        let offset = reader.buffer_position() as usize;
        match reader.read_event() {
            Err(e) => return Err((reader.error_position() as usize, format!("XML error: {e}"))),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if tag == "object" && path.last().map(String::as_str) == Some("annotation") {
                    current = Some(Object::default());
                }
                root |= path.is_empty() && tag == "annotation";
                path.push(tag);
            }
            Ok(Event::End(e)) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if path.pop().as_deref() != Some(tag.as_str()) {
                    return Err((offset, format!("unexpected </{tag}>")));
                }
                if tag == "object" && path.last().map(String::as_str) == Some("annotation") {
                    let o = current.take().expect("object started");
                    let name = o
                        .name
                        .ok_or((offset, "object without <name>".to_string()))?;
                    let [Some(x1), Some(y1), Some(x2), Some(y2)] = o.coords else {
                        return Err((offset, format!("object {name} lacks a complete <bndbox>")));
                    };
                    objects.push(RawGt {
                        image: image.to_string(),
                        class: ClassKey::Name(name),
                        bbox: BBox::new(x1, y1, x2, y2),
                        difficult: o.difficult,
                        crowd: false,
                        area: None,
                    });
                }
            }
            Ok(Event::Empty(e)) => {
                root |= path.is_empty() && e.name().as_ref() == b"annotation";
            }
            Ok(Event::Text(t)) => {
                let Some(obj) = current.as_mut() else {
                    continue;
                };
                let value = t
                    .unescape()
                    .map_err(|e| (offset, format!("XML error: {e}")))?;
                let value = value.trim();
                let n = path.len();
                let parent = if n >= 2 { path[n - 2].as_str() } else { "" };
                match (parent, path.last().map(String::as_str)) {
                    ("object", Some("name")) => obj.name = Some(value.to_string()),
                    ("object", Some("difficult")) => obj.difficult = value == "1",
                    ("bndbox", Some(tag @ ("xmin" | "ymin" | "xmax" | "ymax"))) => {
                        let v: f64 = value
                            .parse()
                            .map_err(|_| (offset, format!("<{tag}> `{value}` is not a number")))?;
                        let i = ["xmin", "ymin", "xmax", "ymax"]
                            .iter()
                            .position(|t| *t == tag)
                            .expect("matched");
                        obj.coords[i] = Some(v);
                    }
                    _ => {}
                }
            }
            Ok(_) => {}
        }
    }
    if !path.is_empty() {
        return Err((
            text.len(),
            format!("unclosed <{}>", path.last().expect("non-empty")),
        ));
    }
    // An empty file, a CSV file, any text without the root element: not an annotation.
    if !root {
        return Err((
            0,
            "no <annotation> element: not a VOC/ILSVRC annotation".into(),
        ));
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_difficult_and_reports_bad_files() {
        let ok = "<annotation><filename>a.jpg</filename><object><name>cat</name><difficult>1</difficult>\
                  <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40.5</ymax></bndbox></object>\
                  <object><name>dog</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>7</xmax><ymax>8</ymax></bndbox>\
                  </object></annotation>";
        let objects = parse(ok, "a").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].class, ClassKey::Name("cat".into()));
        assert!(objects[0].difficult && !objects[1].difficult);
        assert_eq!(objects[0].bbox, BBox::new(1.0, 2.0, 30.0, 40.5));
        let bad = "<annotation>\n<object><name>cat</name>\n<bndbox><xmin>x</xmin></bndbox></object></annotation>";
        let (offset, msg) = parse(bad, "b").unwrap_err();
        assert!(msg.contains("`x` is not a number"), "{msg}");
        assert_eq!(bad[..offset].matches('\n').count() + 1, 3);
        assert!(parse("<annotation><object>", "c").is_err());
        assert!(parse("", "d").is_err());
        assert!(parse("image,class,xmin\na,b,1\n", "e").is_err());
        assert_eq!(parse("<annotation/>", "f").map(|o| o.len()), Ok(0));
    }
}
