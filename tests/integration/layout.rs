//! The module layout has no import circles (issue 20: "src/ has no import circle"): every
//! top-level module of `src/` may use only modules that do not use it back, directly or
//! through others. Truth: the `crate::X` paths written in the sources (comments excluded).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::common::root;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the top-level modules it names as `crate::X`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = g.entry(top.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    g
}

#[test]
fn src_modules_form_no_import_circle() {
    let g = graph();
    // Depth-first search with colours; a grey node reached again closes a circle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let i = path.iter().position(|p| p == n).unwrap();
                let mut c = path[i..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(n, &g, &mut state, &mut path) {
            panic!("import circle: {}", c.join(" → "));
        }
    }
    // The arrows the README draws hold: model, capture and metrics never reach up to report,
    // recommend, study, train or cli.
    for low in ["model", "capture", "metrics", "data", "error", "fmt"] {
        for high in ["report", "recommend", "study", "train", "cli", "demo"] {
            assert!(
                !g.get(low).is_some_and(|d| d.contains(high)),
                "{low} imports {high}"
            );
        }
    }
}
