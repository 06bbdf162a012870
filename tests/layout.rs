//! The library's modules import one another in one direction: no circle between the top-level
//! modules (stages, tasks, infrastructure), none between files, and `run` (the helpers every
//! stage uses) imports none of them. Read from the `crate::` and `super::` paths in `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`detect::warp`) -> its source, for every file of the library (not `cli/`, which
/// belongs to the binary, nor lib.rs and main.rs).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(name);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if name != "mod" {
                    module.push(name);
                }
                out.insert(module.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&src, &[], &mut out);
    out.retain(|m, _| !m.is_empty() && m != "lib" && m != "main" && !m.starts_with("cli"));
    out
}

/// The paths after each `crate::` or `super::` in `source` (comments skipped), relative to the
/// crate root; `a::{b, c::d}` gives `a::b` and `a::c::d`.
fn imported_paths(module: &str, source: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_string()
    };
    let mut out = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (anchor, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
            for (i, _) in code.match_indices(anchor) {
                let rest = &code[i + anchor.len()..];
                let head = ident(rest);
                let mut prefix = base.clone();
                prefix.extend(head.split("::").filter(|s| !s.is_empty()).map(String::from));
                let after = &rest[head.len()..];
                // `a::{..}`, or `{..}` straight after the anchor.
                match after
                    .strip_prefix("::{")
                    .or_else(|| after.strip_prefix('{'))
                {
                    Some(group) => {
                        let group = group.split('}').next().unwrap_or("");
                        for item in group.split(',') {
                            let mut path = prefix.clone();
                            path.extend(ident(item.trim()).split("::").map(String::from));
                            out.push(path);
                        }
                    }
                    None => out.push(prefix),
                }
            }
        }
    }
    out
}

/// The module a file's `super::` names: its parent (a `mod.rs` is its folder's module).
fn parent(module: &str) -> Vec<String> {
    let mut parts: Vec<String> = module.split("::").map(String::from).collect();
    parts.pop();
    parts
}

/// module -> the other modules it imports (the longest known prefix of each path).
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in &modules {
        for path in imported_paths(module, source) {
            let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains_key(m))
            else {
                continue;
            };
            // A child's use of its own ancestors (the module's shared error type) is no circle.
            if target == *module || module.starts_with(&format!("{target}::")) {
                continue;
            }
            let cut = |m: &str| m.split("::").take(depth).collect::<Vec<_>>().join("::");
            let (from, to) = (cut(module), cut(&target));
            if from != to {
                g.entry(from).or_default().insert(to);
            }
        }
    }
    g
}

/// A circle in `g`, if any, as the modules along it.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        stack.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_parser_sees_grouped_and_parent_imports() {
    let paths = imported_paths(
        "train::regions",
        "use super::{io_err, data::Region};\nuse crate::detect::warp; // crate::jobs\n",
    );
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        ["train::io_err", "train::data::Region", "detect::warp"]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circle(&g).unwrap(), ["a", "b", "a"]);
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let g = graph(1);
    assert!(
        g.contains_key("jobs"),
        "the parser found jobs' imports: {g:?}"
    );
    assert_eq!(circle(&g), None, "{g:#?}");
}

#[test]
fn no_import_circle_between_files() {
    let g = graph(usize::MAX);
    assert!(g.len() > 30, "{g:?}");
    assert_eq!(circle(&g), None, "{g:#?}");
}

#[test]
fn run_helpers_import_no_stage() {
    let g = graph(1);
    assert_eq!(g.get("run"), None, "run imports {:?}", g.get("run"));
}
