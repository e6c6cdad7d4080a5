//! The study's paired tests, on the per-pair margins every run stores (`RunResult::pairs`):
//! the same tests as `repdrift diagnose` (`stats::verdict`), so that "lost", "drift" and
//! "head" mean the same thing in both. Per run (one seed: exact McNemar) and per method and
//! regime over its seeds (the seed-and-pair bootstrap; each seed's student held to its own
//! seed's base probe), Holm across the targets; the source test part is tested alone. Runs
//! written before margins were stored have none, and get no test here.

use serde::{Deserialize, Serialize};

use super::run::{PairMargins, RunResult};
use crate::stats::paired::{bootstrap_mean_over_sets, differences};
use crate::stats::verdict::{adjust, test_cell_with_bases, CellTests, TestSettings, Verdict};

/// The tests of one method in one regime on one set, over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairCell {
    pub regime: String,
    pub method: String,
    pub set: String,
    /// `target` (in the Holm family) or `source` (tested alone).
    pub role: String,
    /// The seeds whose runs entered, in order.
    pub seeds: Vec<u64>,
    pub tests: CellTests,
}

fn right(v: &[f64]) -> Vec<bool> {
    v.iter().map(|m| *m > 0.0).collect()
}

/// (base, probe on student, head) per run, for the runs that stored margins of `set` on
/// pairs of one length; None if any run lacks them.
type Readouts = (Vec<Vec<bool>>, Vec<Vec<bool>>, Vec<Vec<bool>>);

fn readouts(runs: &[&RunResult], set: &str) -> Option<Readouts> {
    let m: Vec<&PairMargins> = runs
        .iter()
        .map(|r| r.pairs.get(set))
        .collect::<Option<_>>()?;
    let n = m.first()?.base_probe.len();
    if n == 0
        || m.iter()
            .any(|p| p.base_probe.len() != n || p.probe_on_student.len() != n || p.head.len() != n)
    {
        return None;
    }
    Some((
        m.iter().map(|p| right(&p.base_probe)).collect(),
        m.iter().map(|p| right(&p.probe_on_student)).collect(),
        m.iter().map(|p| right(&p.head)).collect(),
    ))
}

/// The cells of `runs` (one method and regime, any number of seeds) on the source test part
/// and every target; targets adjusted together. Empty when a run stored no margins.
fn cells_of(runs: &[&RunResult], targets: &[String], s: &TestSettings) -> Vec<(String, CellTests)> {
    family_cells(targets, s, |set, family| {
        let (b, p, h) = readouts(runs, set)?;
        Some(test_cell_with_bases(&b, &p, &h, s, family))
    })
}

/// `cell` on the source test part (tested alone) and on every target (Holm together); empty
/// when any target has no cell.
fn family_cells(
    targets: &[String],
    s: &TestSettings,
    cell: impl Fn(&str, usize) -> Option<CellTests>,
) -> Vec<(String, CellTests)> {
    let mut out: Vec<(String, CellTests)> = cell("source_test", 1)
        .map(|c| ("source_test".to_string(), c))
        .into_iter()
        .collect();
    let mut family: Vec<(String, CellTests)> = Vec::new();
    for t in targets {
        let Some(c) = cell(t, targets.len()) else {
            return Vec::new();
        };
        family.push((t.clone(), c));
    }
    let mut tests: Vec<CellTests> = family.iter().map(|f| f.1.clone()).collect();
    adjust(&mut tests, s.alpha);
    out.extend(family.into_iter().map(|f| f.0).zip(tests));
    out
}

/// The (regime, method) cells of `runs`, in the order they first appear.
fn regime_methods(runs: &[RunResult]) -> Vec<(&str, &str)> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.regime.as_str(), r.method.as_str())) {
            keys.push((&r.regime, &r.method));
        }
    }
    keys
}

/// The runs of one method in one regime, ordered by seed; only `seeds` when given.
fn runs_of<'a>(
    runs: &'a [RunResult],
    regime: &str,
    method: &str,
    seeds: Option<&[u64]>,
) -> Vec<&'a RunResult> {
    let mut v: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.regime == regime && r.method == method)
        .filter(|r| seeds.is_none_or(|s| s.contains(&r.seed)))
        .collect();
    v.sort_by_key(|r| r.seed);
    v
}

/// The seeds both `method` and `against` ran in `regime`, ascending.
fn shared_seeds(runs: &[RunResult], regime: &str, method: &str, against: &str) -> Vec<u64> {
    let theirs: Vec<u64> = runs_of(runs, regime, against, None)
        .iter()
        .map(|r| r.seed)
        .collect();
    let mut seeds: Vec<u64> = runs_of(runs, regime, method, None)
        .iter()
        .map(|r| r.seed)
        .filter(|s| theirs.contains(s))
        .collect();
    seeds.dedup();
    seeds
}

/// Every method × regime's paired tests over its seeds (runs ordered by seed).
pub fn pair_tests(runs: &[RunResult], targets: &[String]) -> Vec<PairCell> {
    let s = TestSettings::default();
    let mut out = Vec::new();
    for (regime, method) in regime_methods(runs) {
        let cell = runs_of(runs, regime, method, None);
        for (set, tests) in cells_of(&cell, targets, &s) {
            out.push(PairCell {
                regime: regime.to_string(),
                method: method.to_string(),
                role: if set == "source_test" {
                    "source"
                } else {
                    "target"
                }
                .into(),
                set,
                seeds: cell.iter().map(|r| r.seed).collect(),
                tests,
            });
        }
    }
    out
}

/// One method against another in one regime on one set, over the seeds both ran: Δ =
/// `method` − `against` in pairwise accuracy of the students' own heads, pair by pair within a
/// seed (the seed-and-pair bootstrap; exact McNemar with one seed), Holm across the targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contrast {
    pub regime: String,
    pub method: String,
    pub against: String,
    pub set: String,
    pub role: String,
    pub seeds: Vec<u64>,
    /// `total` is the contrast (`against`'s head as the reference); the other fields of the
    /// cell are not read.
    pub tests: CellTests,
}

/// The contrasts the pre-registrations name: naive against gold (did weak labels cost
/// transfer?) and every other weak-label method against naive (did it keep more?), per
/// regime, on the source test part and every target; then the `extra` pairs a grid names
/// (`contrasts = [["a", "b"]]`: a − b). Runs without margins give none.
pub fn contrasts(
    runs: &[RunResult],
    targets: &[String],
    extra: &[(String, String)],
) -> Vec<Contrast> {
    let s = TestSettings::default();
    let mut regimes: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for r in runs {
        if !regimes.contains(&r.regime.as_str()) {
            regimes.push(&r.regime);
        }
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if methods.contains(&"naive") && methods.contains(&"gold") {
        pairs.push(("naive", "gold"));
    }
    if methods.contains(&"naive") {
        pairs.extend(
            methods
                .iter()
                .filter(|m| !["naive", "gold"].contains(m))
                .map(|m| (*m, "naive")),
        );
    }
    for (a, b) in extra {
        let pair = (a.as_str(), b.as_str());
        if methods.contains(&pair.0) && methods.contains(&pair.1) && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    let mut out = Vec::new();
    for regime in regimes {
        for &(method, against) in &pairs {
            out.extend(contrast_cells(runs, regime, method, against, targets, &s));
        }
    }
    out
}

/// One contrast's cells: the seeds both methods ran, then the source test part (alone) and
/// the targets (Holm together); empty when a run lacks margins.
fn contrast_cells(
    runs: &[RunResult],
    regime: &str,
    method: &str,
    against: &str,
    targets: &[String],
    s: &TestSettings,
) -> Vec<Contrast> {
    let seeds = shared_seeds(runs, regime, method, against);
    let a = runs_of(runs, regime, method, Some(&seeds));
    let b = runs_of(runs, regime, against, Some(&seeds));
    let heads = |rs: &[&RunResult], set: &str| readouts(rs, set).map(|r| r.2);
    let cell = |set: &str, family: usize| {
        let (h, reference) = (heads(&a, set)?, heads(&b, set)?);
        (h[0].len() == reference[0].len())
            .then(|| test_cell_with_bases(&reference, &h, &h, s, family))
    };
    if seeds.is_empty() {
        return Vec::new();
    }
    let found = family_cells(targets, s, cell);
    found
        .into_iter()
        .map(|(set, tests)| Contrast {
            regime: regime.into(),
            method: method.into(),
            against: against.into(),
            role: if set == "source_test" {
                "source"
            } else {
                "target"
            }
            .into(),
            set,
            seeds: seeds.clone(),
            tests,
        })
        .collect()
}

/// One run's drift-or-head outcome from its paired tests on the targets (None when it stored
/// no margins): `transferred` when no target's loss is significant and none is below the base
/// on these pairs, `inconclusive` when a loss is not significant, else the cause of the
/// significant losses — `drift`, `head`, `both`, `unresolved` — or `mixed` when targets differ.
/// For a mixed run, `causes` holds each lost target's cause, in target order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub outcome: String,
    pub causes: Vec<(String, String)>,
}

impl RunOutcome {
    /// An outcome with no per-target causes.
    pub fn plain(outcome: &str) -> Self {
        Self {
            outcome: outcome.to_string(),
            causes: Vec::new(),
        }
    }

    /// The causes in words: "chat: head; forum: unresolved" (empty unless mixed).
    pub fn detail(&self) -> String {
        causes_in_words(&self.causes)
    }
}

/// Per-target causes in words: "chat: head; forum: unresolved".
pub fn causes_in_words(causes: &[(String, String)]) -> String {
    let v: Vec<String> = causes.iter().map(|(t, c)| format!("{t}: {c}")).collect();
    v.join("; ")
}

/// The cause of a lost target, in the outcome's words.
fn cause(v: Verdict) -> &'static str {
    match v {
        Verdict::LostThroughDrift => "drift",
        Verdict::LostThroughHead => "head",
        Verdict::LostThroughBoth => "both",
        _ => "unresolved",
    }
}

/// See [`RunOutcome`].
pub fn run_outcome(r: &RunResult, targets: &[String]) -> Option<RunOutcome> {
    let cells = cells_of(&[r], targets, &TestSettings::default());
    let verdicts: Vec<(String, Verdict)> = cells
        .into_iter()
        .filter(|(set, _)| set != "source_test")
        .map(|(set, c)| (set, c.verdict))
        .collect();
    if verdicts.is_empty() {
        return None;
    }
    let lost: Vec<(&str, &'static str)> = verdicts
        .iter()
        .filter(|(_, v)| v.lost())
        .map(|(set, v)| (set.as_str(), cause(*v)))
        .collect();
    Some(if lost.is_empty() {
        if verdicts.iter().any(|(_, v)| *v == Verdict::Inconclusive) {
            RunOutcome::plain("inconclusive")
        } else {
            RunOutcome::plain("transferred")
        }
    } else if lost.iter().all(|c| c.1 == lost[0].1) {
        RunOutcome::plain(lost[0].1)
    } else {
        RunOutcome {
            outcome: "mixed".into(),
            causes: lost
                .iter()
                .map(|(t, c)| (t.to_string(), c.to_string()))
                .collect(),
        }
    })
}

/// A method's mean over the targets against a reference, over seeds and pairs: the
/// seed-and-pair bootstrap of the mean over targets of each target's mean difference
/// ([`crate::stats::paired::bootstrap_mean_over_sets`]; every target weighs the same, as in
/// the table's "mean target"). The reference is `base probe` (each seed's own probe on the
/// base's states: what the base knew) or another method's heads on the same seeds, pair by
/// pair (`naive` for every method but gold and naive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanOverTargets {
    pub regime: String,
    pub method: String,
    pub against: String,
    pub seeds: Vec<u64>,
    /// Mean over targets of the mean difference, a fraction.
    pub difference: f64,
    pub lo: f64,
    pub hi: f64,
    /// The bootstrap's two-sided p.
    pub p: f64,
}

/// The reference of [`MeanOverTargets`] that is the base's own probe.
pub const BASE_PROBE: &str = "base probe";

/// Per regime and method: the mean over targets against the base probe and, for each method
/// but gold and naive, against naive. Runs without margins give none.
pub fn means_over_targets(runs: &[RunResult], targets: &[String]) -> Vec<MeanOverTargets> {
    let keys = regime_methods(runs);
    let mut out = Vec::new();
    for &(regime, method) in &keys {
        let cell = runs_of(runs, regime, method, None);
        let seeds: Vec<u64> = cell.iter().map(|r| r.seed).collect();
        let vs_base = per_target(targets, |t| {
            let (b, _, h) = readouts(&cell, t)?;
            Some(h.iter().zip(&b).map(|(x, y)| differences(x, y)).collect())
        });
        out.extend(mean_over(regime, method, BASE_PROBE, &seeds, vs_base));
        if ["gold", "naive"].contains(&method) || !keys.contains(&(regime, "naive")) {
            continue;
        }
        let common = shared_seeds(runs, regime, method, "naive");
        let (a, b) = (
            runs_of(runs, regime, method, Some(&common)),
            runs_of(runs, regime, "naive", Some(&common)),
        );
        let vs_naive = per_target(targets, |t| {
            let (ha, hb) = (readouts(&a, t)?.2, readouts(&b, t)?.2);
            (ha[0].len() == hb[0].len())
                .then(|| ha.iter().zip(&hb).map(|(x, y)| differences(x, y)).collect())
        });
        out.extend(mean_over(regime, method, "naive", &common, vs_naive));
    }
    out
}

/// `d(target)` for every target (set → seed → pair), or None if any target has none.
fn per_target(
    targets: &[String],
    d: impl Fn(&str) -> Option<Vec<Vec<i8>>>,
) -> Option<Vec<Vec<Vec<i8>>>> {
    targets.iter().map(|t| d(t)).collect()
}

fn mean_over(
    regime: &str,
    method: &str,
    against: &str,
    seeds: &[u64],
    d: Option<Vec<Vec<Vec<i8>>>>,
) -> Option<MeanOverTargets> {
    let d = d.filter(|d| !d.is_empty() && !seeds.is_empty())?;
    let s = TestSettings::default();
    let sets: Vec<&[Vec<i8>]> = d.iter().map(|x| x.as_slice()).collect();
    let boot = bootstrap_mean_over_sets(&sets, s.resamples, 1.0 - s.alpha, s.seed ^ 7)?;
    let mean = |set: &[Vec<i8>]| {
        let total: i64 = set.iter().flatten().map(|&x| x as i64).sum();
        total as f64 / (set.len() * set[0].len()) as f64
    };
    Some(MeanOverTargets {
        regime: regime.into(),
        method: method.into(),
        against: against.into(),
        seeds: seeds.to_vec(),
        difference: sets.iter().map(|s| mean(s)).sum::<f64>() / sets.len() as f64,
        lo: boot.lo,
        hi: boot.hi,
        p: boot.p,
    })
}
