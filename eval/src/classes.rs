//! Class lists: the ILSVRC 200 by default, or any list of names.

use std::collections::HashMap;
use std::path::Path;

use crate::EvalError;

/// The 200 ILSVRC detection classes (DET_ID, WNID, name), from the devkit's meta_det.mat.
const ILSVRC_200: &str = include_str!("../../data/ilsvrc/det_synsets_200.tsv");

/// The 1000 ILSVRC2012 classification classes (0-based index, WNID, name), in the order of
/// Caffe's and torchvision's classifiers: WNIDs sorted.
const ILSVRC_1000: &str = include_str!("../../data/ilsvrc/cls_synsets_1000.tsv");

/// Classes by index. A class is found by name, by WNID, or (for ILSVRC) by 1-based DET_ID.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassList {
    /// Display names ("accordion", "raccoon").
    pub names: Vec<String>,
    /// WordNet IDs where known ("n02672831"); empty otherwise.
    pub wnids: Vec<String>,
    lookup: HashMap<String, usize>,
}

impl ClassList {
    /// The ILSVRC 200, index i = DET_ID - 1.
    pub fn ilsvrc200() -> Self {
        Self::parse_tsv(ILSVRC_200, Path::new("data/ilsvrc/det_synsets_200.tsv"))
            .expect("shipped class list parses")
    }

    /// The 1000 ILSVRC2012 classification classes, index i = the classifier's output i.
    pub fn ilsvrc1000() -> Self {
        Self::parse_tsv(ILSVRC_1000, Path::new("data/ilsvrc/cls_synsets_1000.tsv"))
            .expect("shipped class list parses")
    }

    /// A list of names, in the given order.
    pub fn from_names(names: Vec<String>) -> Self {
        let wnids = vec![String::new(); names.len()];
        Self::build(names, wnids)
    }

    fn build(names: Vec<String>, wnids: Vec<String>) -> Self {
        let mut lookup = HashMap::new();
        for (i, (n, w)) in names.iter().zip(&wnids).enumerate() {
            lookup.entry(n.clone()).or_insert(i);
            lookup.entry(n.to_lowercase()).or_insert(i);
            if !w.is_empty() {
                lookup.entry(w.clone()).or_insert(i);
            }
        }
        ClassList {
            names,
            wnids,
            lookup,
        }
    }

    /// Reads a class file: one class a line, either `name`, or the ILSVRC form
    /// `ID<TAB>WNID<TAB>name` with consecutive IDs from 1 (ILSVRC's DET_ID) or from 0 (the
    /// classification list's index); lines starting with `#` are comments.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let text = crate::names::read_lines_text(path)?;
        Self::parse_tsv(&text, path)
    }

    fn parse_tsv(text: &str, path: &Path) -> Result<Self, EvalError> {
        let mut names = Vec::new();
        let mut wnids = Vec::new();
        // The first ID says whether the file counts from 0 or from 1.
        let mut first_id: Option<usize> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                [name] => {
                    names.push(name.trim().to_string());
                    wnids.push(String::new());
                }
                [id, wnid, name] => {
                    let parsed = id.trim().parse::<usize>().ok();
                    let base = *first_id.get_or_insert(match parsed {
                        Some(0) => 0,
                        _ => 1,
                    });
                    let expected = names.len() + base;
                    if parsed != Some(expected) {
                        return Err(EvalError::parse(
                            path,
                            i + 1,
                            format!("expected class ID {expected}, got `{id}`"),
                        ));
                    }
                    names.push(name.trim().to_string());
                    wnids.push(wnid.trim().to_string());
                }
                _ => {
                    return Err(EvalError::parse(
                        path,
                        i + 1,
                        "expected `name` or `ID<TAB>WNID<TAB>name`".to_string(),
                    ))
                }
            }
        }
        if names.is_empty() {
            return Err(EvalError::parse(path, 0, "no classes".to_string()));
        }
        Ok(Self::build(names, wnids))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Index of a class given by name or WNID (exact, then case-insensitive).
    pub fn index(&self, key: &str) -> Option<usize> {
        self.lookup
            .get(key)
            .or_else(|| self.lookup.get(&key.to_lowercase()))
            .copied()
    }

    /// Index of a class given by its 1-based ID (ILSVRC's DET_ID).
    pub fn index_of_id(&self, id: usize) -> Option<usize> {
        (1..=self.len()).contains(&id).then(|| id - 1)
    }

    /// True when every key names one of the ILSVRC 200 (by WNID or name).
    pub fn all_ilsvrc<'a>(keys: impl IntoIterator<Item = &'a str>) -> bool {
        let ilsvrc = Self::ilsvrc200();
        let mut any = false;
        for k in keys {
            any = true;
            if ilsvrc.index(k).is_none() {
                return false;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ilsvrc_200_by_id_wnid_and_name() {
        let c = ClassList::ilsvrc200();
        assert_eq!(c.len(), 200);
        assert_eq!(c.index("n02672831"), Some(0));
        assert_eq!(c.index("accordion"), Some(0));
        assert_eq!(c.names[199], "zebra");
        assert_eq!(c.index_of_id(200), Some(199));
        assert_eq!(c.index_of_id(0), None);
        assert_eq!(c.index_of_id(201), None);
        assert_eq!(c.index("raccoon"), None);
        assert!(ClassList::all_ilsvrc(["zebra", "n02672831"]));
        assert!(!ClassList::all_ilsvrc(["zebra", "raccoon"]));
    }

    #[test]
    fn plain_names_and_errors_with_line_numbers() {
        let c = ClassList::from_names(vec!["cat".into(), "Dog".into()]);
        assert_eq!(c.index("dog"), Some(1));
        let err = ClassList::parse_tsv("1\tn1\ta\n3\tn3\tc\n", Path::new("x.tsv")).unwrap_err();
        assert_eq!(err.to_string(), "x.tsv:2: expected class ID 2, got `3`");
        let err = ClassList::parse_tsv("0\tn0\ta\n2\tn2\tc\n", Path::new("x.tsv")).unwrap_err();
        assert_eq!(err.to_string(), "x.tsv:2: expected class ID 1, got `2`");
    }

    #[test]
    fn ilsvrc_1000_in_the_classifiers_order() {
        let c = ClassList::ilsvrc1000();
        assert_eq!(c.len(), 1000);
        assert_eq!(
            (c.wnids[0].as_str(), c.names[0].as_str()),
            ("n01440764", "tench")
        );
        assert_eq!(c.names[999], "toilet tissue");
        assert_eq!(c.index("n15075141"), Some(999));
        // Sorted WNIDs: the order every Caffe and torchvision ILSVRC2012 classifier uses.
        assert!(c.wnids.windows(2).all(|w| w[0] < w[1]));
    }
}
