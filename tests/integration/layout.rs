//! The module layout has no import circles (issue 20: "src/ has no import circle"; issue 34:
//! "no circle at any level"): every top-level module of `src/` may use only modules that do not
//! use it back, directly or through others, and so may every file. Truth: the `crate::`,
//! `super::` and `self::` paths and `use` trees written in the sources (comments and strings
//! excluded), each resolved to the file that holds the longest module prefix it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::common::root;

/// Depth-first search with colours; a grey node reached again closes a circle.
fn find_circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
        if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Source text without comments, string contents and brace characters in char literals (so
/// braces count blocks).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut s = String::new();
        let mut chars = line.chars().peekable();
        let mut in_str = false;
        while let Some(c) = chars.next() {
            if in_str {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_str = false;
                    s.push('"');
                }
                continue;
            }
            match c {
                '"' => {
                    in_str = true;
                    s.push('"');
                }
                '/' if chars.peek() == Some(&'/') => break,
                '\'' => {
                    // A char literal such as '{' or '}' (a lifetime has no closing quote).
                    let rest: String = chars.clone().take(2).collect();
                    if rest.len() == 2 && rest.ends_with('\'') {
                        chars.next();
                        chars.next();
                        s.push_str("' '");
                    } else {
                        s.push(c);
                    }
                }
                _ => s.push(c),
            }
        }
        out.push_str(&s);
        out.push('\n');
    }
    out
}

/// The paths of a `use` tree (`a::{b, c::{d, e}}` → a::b, a::c::d, a::c::e).
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("");
        let path = path.split("as").next().unwrap_or("");
        return vec![path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            expand_use(p).into_iter().map(|rest| {
                let mut v = prefix.clone();
                v.extend(rest);
                v
            })
        })
        .collect()
}

/// File → the files it names, by module path (`src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`).
/// The source folders of the workspace's crates (each crate's `crate::` paths are its own).
const CRATE_SRCS: [&str; 2] = ["src", "crates/core/src"];

fn file_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let module_of = |f: &Path| -> Vec<String> {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut m: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            m.pop();
        }
        m
    };
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| {
            (
                module_of(f),
                f.strip_prefix(src).unwrap().display().to_string(),
            )
        })
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let name = f.strip_prefix(src).unwrap().display().to_string();
        let here = module_of(f);
        let is_mod = f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        // `super` of `a::b` (a/b.rs) and of `a::b` (a/b/mod.rs) alike is `a`.
        let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        // (path, inside an inline `mod x { … }`), from `use` trees and written paths.
        let mut paths: Vec<(Vec<String>, bool)> = Vec::new();
        let (mut depth, mut inline): (i32, Vec<i32>) = (0, Vec::new());
        let mut pending_use: Option<(String, bool)> = None;
        for line in code.lines() {
            let t = line.trim_start();
            let is_inline_mod = {
                let u = t
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub(super) ");
                let u = u.trim_start_matches("pub ");
                u.starts_with("mod ") && u.trim_end().ends_with('{')
            };
            let inside = !inline.is_empty();
            if let Some((mut u, i)) = pending_use.take() {
                u.push_str(line);
                pending_use = Some((u, i));
            } else if let Some(rest) = t
                .strip_prefix("pub use ")
                .or_else(|| t.strip_prefix("use "))
                .or_else(|| t.strip_prefix("pub(crate) use "))
                .or_else(|| t.strip_prefix("pub(super) use "))
            {
                pending_use = Some((rest.to_string(), inside));
            }
            if let Some((u, i)) = &pending_use {
                if let Some(end) = u.find(';') {
                    for p in expand_use(&u[..end]) {
                        paths.push((p, *i));
                    }
                    pending_use = None;
                }
            }
            let mut rest = line;
            while let Some(k) = ["crate::", "super::", "self::"]
                .iter()
                .filter_map(|kw| rest.find(kw).map(|i| (i, kw.len())))
                .min()
                .map(|(i, _)| i)
            {
                let word_start = k == 0
                    || !rest[..k]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
                let token: String = rest[k..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if word_start {
                    let p: Vec<String> = token
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    paths.push((p, inside));
                }
                rest = &rest[k + token.len().max(1)..];
            }
            for c in line.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if inline.last() == Some(&depth) {
                            inline.pop();
                        }
                    }
                    _ => {}
                }
            }
            if is_inline_mod {
                inline.push(depth - 1);
            }
        }
        let deps = g.entry(name.clone()).or_default();
        for (p, inside) in paths {
            let Some(first) = p.first() else { continue };
            let full: Vec<String> = match first.as_str() {
                "crate" => p[1..].to_vec(),
                // Inside an inline module, `super` is this file's own module.
                "super" if inside => here.iter().chain(&p[1..]).cloned().collect(),
                "super" => {
                    let mut base = parent.clone();
                    let mut r = &p[1..];
                    while r.first().is_some_and(|s| s == "super") {
                        base.pop();
                        r = &r[1..];
                    }
                    base.into_iter().chain(r.iter().cloned()).collect()
                }
                "self" => here.iter().chain(&p[1..]).cloned().collect(),
                // `use child::X` in a mod.rs names its child module.
                c if is_mod
                    && modules.contains_key(&[here.clone(), vec![c.to_string()]].concat()) =>
                {
                    here.iter().chain(&p).cloned().collect()
                }
                _ => continue,
            };
            let target = (0..=full.len())
                .rev()
                .find_map(|k| modules.get(&full[..k]))
                .cloned();
            if let Some(t) = target {
                if t != name && t != "lib.rs" {
                    deps.insert(t);
                }
            }
        }
    }
    g
}

#[test]
fn src_files_form_no_import_circle() {
    let g = file_graph(&root().join("src"));
    // The graph is not empty: the resolver finds the arrows that are there.
    assert!(
        g["capture/mod.rs"].contains("capture/store.rs"),
        "{:?}",
        g["capture/mod.rs"]
    );
    assert!(g["validate/floor.rs"].contains("validate/context.rs"));
    assert!(g["model/llama_grad.rs"].contains("model/llama_block.rs"));
    let core = file_graph(&root().join("crates/core/src"));
    assert!(core["store/read.rs"].contains("store/manifest.rs"));
    assert!(core["metrics/compare.rs"].contains("store/mod.rs"));
    for (src, g) in [("src", g), ("crates/core/src", core)] {
        if let Some(c) = find_circle(&g) {
            panic!("import circle between files of {src}: {}", c.join(" → "));
        }
    }
}

/// Issue 34: "the Python binding compiles only what it uses: the store reader and the metrics
/// need neither candle, tokenizers nor the CLI's crates". Truth: `python/Cargo.lock`, the
/// resolved list of every crate `pip install ./python` compiles, and the core crate's manifest.
#[test]
fn the_python_binding_builds_without_the_model_runtime_or_the_cli_crates() {
    let lock = std::fs::read_to_string(root().join("python/Cargo.lock")).unwrap();
    let names: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"'))
        .collect();
    assert!(
        names.contains(&"repdrift-core") && names.contains(&"pyo3"),
        "{names:?}"
    );
    for heavy in [
        "repdrift",
        "candle-core",
        "candle-nn",
        "candle-transformers",
        "tokenizers",
        "clap",
        "indicatif",
        "plotters",
        "parquet",
        "minijinja",
    ] {
        assert!(
            !names.contains(&heavy),
            "python/Cargo.lock compiles {heavy}"
        );
    }
}

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
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
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
    for src in CRATE_SRCS {
        if let Some(c) = find_circle(&graph(&root().join(src))) {
            panic!("import circle in {src}: {}", c.join(" → "));
        }
    }
    let g = graph(&root().join("src"));
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

/// Issue 34: "no function over 150 lines in `src/` (count from the `fn` line to its closing
/// brace)". Truth: the sources with comments and strings removed, braces counted.
#[test]
fn no_function_in_src_is_longer_than_150_lines() {
    let mut files = Vec::new();
    for src in CRATE_SRCS {
        walk(&root().join(src), &mut files);
    }
    let mut long = Vec::new();
    let mut counted = 0;
    for f in files {
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let lines: Vec<&str> = code.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "const fn ",
                "pub const fn ",
                "unsafe fn ",
                "pub unsafe fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn {
                continue;
            }
            let (mut depth, mut opened) = (0i32, false);
            for (j, m) in lines[i..].iter().enumerate() {
                if !opened && m.contains(';') && !m.contains('{') {
                    break; // a declaration without a body
                }
                for c in m.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if opened && depth == 0 {
                    counted += 1;
                    if j + 1 > 150 {
                        long.push(format!("{}:{} ({} lines)", f.display(), i + 1, j + 1));
                    }
                    break;
                }
            }
        }
    }
    assert!(
        counted > 1000,
        "only {counted} functions found: the counter is broken"
    );
    assert!(long.is_empty(), "functions over 150 lines: {long:?}");
}
