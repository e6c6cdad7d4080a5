//! The user documentation keeps its promises: the README is a guide of at most 300 lines that
//! shows the two set-up commands exactly as CI runs them, "Diagnose your own checkpoints" within
//! its first 60 lines, and every relative link in the README, `docs/`, `CHANGELOG.md` and the
//! runs of record (`reports/**/README.md`, `fuzz/README.md`) names a file that exists.
//! Truth: the files themselves and `.ci/run`, which must call the README's test command.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const DEMO: &str = "bash scripts/setup.sh && cargo run --release -- demo";
const TESTS: &str = "bash scripts/setup.sh && cargo test --release";

#[test]
fn the_readme_is_a_guide_with_the_two_set_up_commands_that_ci_runs() {
    let readme = read(&root().join("README.md"));
    let lines: Vec<&str> = readme.lines().collect();
    assert!(lines.len() <= 300, "README has {} lines", lines.len());
    for cmd in [DEMO, TESTS] {
        assert!(
            lines.iter().any(|l| l.trim() == cmd),
            "the README lacks the set-up command `{cmd}`"
        );
    }
    let at = lines
        .iter()
        .position(|l| l.trim() == "## Diagnose your own checkpoints")
        .expect("no \"Diagnose your own checkpoints\" section");
    assert!(
        at < 60,
        "\"Diagnose your own checkpoints\" at line {}",
        at + 1
    );
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == TESTS),
        ".ci/run does not call the README's test command"
    );
}

/// Markdown files a user reads: the README, docs/, the changelog, runs of record.
fn user_docs() -> Vec<PathBuf> {
    let r = root();
    let mut v = vec![
        r.join("README.md"),
        r.join("CHANGELOG.md"),
        r.join("fuzz/README.md"),
    ];
    let mut dirs = vec![r.join("docs"), r.join("reports")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && name != "tmp" && name != "runs" && name != "plots" {
                dirs.push(p);
            } else if d.ends_with("docs") && name.ends_with(".md") || name == "README.md" {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// The targets of `](target)` links that are not web addresses or in-page anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.contains(' ') {
            out.push(target.to_string());
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_user_docs_names_a_file_that_exists() {
    let docs = user_docs();
    assert!(docs.len() >= 15, "only {} doc files found", docs.len());
    let mut broken = Vec::new();
    for f in &docs {
        for l in relative_links(&read(f)) {
            if !f.parent().unwrap().join(&l).exists() {
                broken.push(format!("{} → {l}", f.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn relative_links_are_found_and_web_links_and_anchors_are_not() {
    let t = "see [a](docs/a.md), [b](../b.md#x), [c](https://x.org/y), [d](#here)";
    assert_eq!(relative_links(t), vec!["docs/a.md", "../b.md"]);
}
