//! `README.md` beside the demo's report: its run of record — the command, the machine, the
//! stages' wall time, the verdict per student and target, every reward model's accuracy and
//! the anchor advice — rendered from the run's own numbers (bytes; `run` writes them).

use std::fmt::Write as _;

use super::DemoSummary;
use crate::diagnose::Diagnosis;

/// The machine a run used, as far as Linux says (`unknown` elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: Option<f64>,
}

impl Machine {
    /// This machine: the CPU model from `/proc/cpuinfo`, the cores this process may use, the
    /// memory from `/proc/meminfo`.
    pub fn here() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| kib / (1024.0 * 1024.0))
        });
        Self {
            cpu,
            cores: std::thread::available_parallelism()
                .map(|c| c.get())
                .unwrap_or(1),
            memory_gib,
        }
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

/// Points with a sign and one decimal, rounded as the report rounds; never "-0.0".
fn signed_pct(v: f64) -> String {
    crate::fmt::signed1(100.0 * v)
}

/// The run of record as Markdown.
pub fn render(command: &str, machine: &Machine, s: &DemoSummary, d: &Diagnosis) -> Vec<u8> {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# The demo's run of record\n\nWritten by `{command}` beside the report it describes \
         ([report.md](report.md), [index.html](index.html); reference: \
         [docs/demo.md](../../docs/demo.md)); regenerated with every run, never edited by hand. \
         One seed of one regime: the committed study, not this run, is where a conclusion lies.\n"
    );
    let mem = machine
        .memory_gib
        .map(|g| format!(", {g:.0} GiB"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "Machine: {}, {} cores{mem}; repdrift {}. Wall time {:.0} s:\n",
        crate::fmt::md(&machine.cpu),
        machine.cores,
        env!("CARGO_PKG_VERSION"),
        s.total_seconds
    );
    let stages: Vec<Vec<String>> = s
        .stages
        .iter()
        .map(|(stage, secs)| vec![stage.clone(), format!("{secs:.1}")])
        .collect();
    o.push_str(&crate::fmt::md_table(&["stage", "seconds"], &stages));
    let _ = writeln!(
        o,
        "\n## Verdicts\n\nPer student and target, at layer {} (the one a reward head reads), over \
         the target's pairs: the base's probe and the student's head, their difference with its \
         95 % interval over pairs, the Holm-adjusted p and the smallest loss the test could have \
         seen.\n",
        d.verdict_layer
    );
    let verdicts: Vec<Vec<String>> = d
        .cells
        .iter()
        .filter(|c| c.role == "target")
        .map(|c| {
            let t = &c.tests;
            vec![
                c.student.clone(),
                c.set.clone(),
                t.pairs.to_string(),
                pct(t.base.value),
                pct(t.head.value),
                format!(
                    "{} [{}, {}]",
                    signed_pct(t.total.difference),
                    signed_pct(t.total.lo),
                    signed_pct(t.total.hi)
                ),
                crate::fmt::p_value(t.total.p_adjusted),
                pct(t.total.detectable),
                t.verdict.words().to_string(),
            ]
        })
        .collect();
    o.push_str(&crate::fmt::md_table(
        &[
            "student",
            "target",
            "pairs",
            "base probe %",
            "student head %",
            "Δ points [95 % CI]",
            "p (Holm)",
            "detectable loss (points)",
            "verdict",
        ],
        &verdicts,
    ));
    let sets: std::collections::BTreeSet<&String> =
        s.accuracy.values().flat_map(|m| m.keys()).collect();
    let _ = writeln!(
        o,
        "\n## Reward models' pairwise accuracy (%)\n\n`source_test` is the source's test split; \
         `weak` is the weak teacher (MiniLM + a linear head).\n"
    );
    let mut head = vec!["model".to_string()];
    head.extend(sets.iter().map(|s| s.to_string()));
    let rows: Vec<Vec<String>> = s
        .accuracy
        .iter()
        .map(|(model, acc)| {
            let mut r = vec![model.clone()];
            r.extend(
                sets.iter()
                    .map(|k| acc.get(*k).map(|v| pct(*v)).unwrap_or_else(|| "—".into())),
            );
            r
        })
        .collect();
    o.push_str(&crate::fmt::md_table(&head, &rows));
    let advice: Vec<String> = s
        .recommended_layers
        .iter()
        .zip(&s.recommended_weights)
        .map(|(l, w)| format!("layer {l} (λ {w:.3})"))
        .collect();
    let _ = writeln!(
        o,
        "\nAnchor advice from the naive student's drift, used to train the anchored student: {}.",
        if advice.is_empty() {
            "none".to_string()
        } else {
            advice.join(", ")
        }
    );
    o.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run of record prints a difference as the report beside it does (Rust's `{:+.1}` of
    /// the points, ties at the float's exact value), except that a difference rounding to zero
    /// is "+0.0", never "-0.0".
    #[test]
    fn differences_print_as_the_report_prints_them_and_never_as_minus_zero() {
        for v in [-0.3125, -0.2, 0.05, 0.1234, -0.00049, 0.0] {
            let want = format!("{:+.1}", 100.0 * v).replace("-0.0", "+0.0");
            assert_eq!(signed_pct(v), want, "{v}");
        }
        assert_eq!(signed_pct(-0.0004), "+0.0");
        assert_eq!(signed_pct(-0.3125), format!("{:+.1}", -31.25));
    }
}
