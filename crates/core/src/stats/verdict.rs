//! Did a student lose what the base knew on a data set, and through drift or through its head?
//! Decided by paired tests on per-pair outcomes (see [`super::paired`]), never by a fixed point
//! threshold. Three readouts are scored on the same pairs:
//!
//! - **base**: the base's linear probe on the base's states (what the base already knew);
//! - **probe on student**: the same probe, unchanged, on the student's states (does the
//!   student's representation still carry what the base knew?);
//! - **head**: the student's own reward head (what the student does with it).
//!
//! Three paired comparisons follow: *total* = head − base, *representation* = probe on student
//! − base, *head* = head − probe on student (total = representation + head, pair by pair).
//! Each has a difference, a percentile bootstrap interval (over pairs; over seeds and pairs
//! with several seeds), a two-sided p-value (exact McNemar for one seed, the bootstrap's for
//! several) adjusted by Holm across the family the caller names (the targets), and the
//! smallest difference it could detect (α over the family's size, power 0.8).
//!
//! The verdict: **lost** when the total comparison is a significant loss (Holm-adjusted p < α,
//! difference < 0); then *drift* if only the representation comparison is a significant loss,
//! *head* if only the head comparison is, *both* if both are, and *lost, cause unresolved* if
//! neither alone is. Not lost: **kept** when the student is at least as accurate as the base
//! on these pairs (difference ≥ 0), else **inconclusive** — a loss smaller than the detectable
//! difference may be there.

use serde::{Deserialize, Serialize};

use super::paired::{
    bootstrap_difference, detectable_difference, differences, holm, mcnemar_exact, Discordance,
};
use super::wilson;

/// Settings shared by every test of a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestSettings {
    pub alpha: f64,
    pub power: f64,
    pub resamples: usize,
    pub seed: u64,
}

impl Default for TestSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            resamples: 2000,
            seed: 0,
        }
    }
}

/// Per-pair outcomes (correct or not) of the three readouts on one data set. `probe_on_student`
/// and `head` have one vector per seed of the student; every vector has the base's length.
#[derive(Debug, Clone)]
pub struct Outcomes {
    pub base: Vec<bool>,
    pub probe_on_student: Vec<Vec<bool>>,
    pub head: Vec<Vec<bool>>,
}

/// An accuracy with its 95 % interval (Wilson for one seed, seed-and-pair bootstrap otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One paired comparison a − b.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// accuracy(a) − accuracy(b), a fraction (mean over seeds).
    pub difference: f64,
    pub lo: f64,
    pub hi: f64,
    /// Discordant pairs summed over seeds.
    pub a_only: usize,
    pub b_only: usize,
    /// Two-sided p: exact McNemar (one seed) or the bootstrap's (several).
    pub p: f64,
    /// `p` after Holm's adjustment across the family (set by [`adjust`]).
    pub p_adjusted: f64,
    /// Which test gave `p`.
    pub test: String,
    /// The smallest difference detectable at α / family size with the settings' power.
    pub detectable: f64,
}

impl Comparison {
    /// A significant loss after adjustment.
    pub fn significant_loss(&self, alpha: f64) -> bool {
        self.p_adjusted < alpha && self.difference < 0.0
    }
}

/// The verdict on one student and data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Kept,
    LostThroughDrift,
    LostThroughHead,
    LostThroughBoth,
    LostCauseUnresolved,
    Inconclusive,
}

impl Verdict {
    /// Words for tables.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Kept => "kept",
            Verdict::LostThroughDrift => "lost through drift",
            Verdict::LostThroughHead => "lost through the head",
            Verdict::LostThroughBoth => "lost through drift and the head",
            Verdict::LostCauseUnresolved => "lost, cause unresolved",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Whether the verdict says the student lost accuracy against the base.
    pub fn lost(self) -> bool {
        !matches!(self, Verdict::Kept | Verdict::Inconclusive)
    }
}

/// Everything measured on one student and data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellTests {
    pub pairs: usize,
    pub seeds: usize,
    pub base: Accuracy,
    pub probe_on_student: Accuracy,
    pub head: Accuracy,
    /// head − base.
    pub total: Comparison,
    /// probe on student − base.
    pub representation: Comparison,
    /// head − probe on student.
    pub head_change: Comparison,
    pub verdict: Verdict,
}

fn mean_accuracy(v: &[Vec<bool>], s: &TestSettings, salt: u64) -> Accuracy {
    let n = v[0].len();
    let k: usize = v.iter().map(|x| x.iter().filter(|b| **b).count()).sum();
    let value = k as f64 / (n * v.len()).max(1) as f64;
    if v.len() == 1 {
        let (lo, hi) = wilson(k as f64, n).unwrap_or((0.0, 1.0));
        // The formula can overshoot [0, 1] by a rounding error at 0 or n successes.
        return Accuracy {
            value,
            lo: lo.max(0.0),
            hi: hi.min(1.0),
        };
    }
    // Several seeds: the accuracy against an all-wrong reference is the accuracy itself.
    let d: Vec<Vec<i8>> = v
        .iter()
        .map(|x| x.iter().map(|b| *b as i8).collect())
        .collect();
    let b = bootstrap_difference(&d, s.resamples, 0.95, s.seed ^ salt)
        .expect("seeds of equal, non-zero length");
    Accuracy {
        value,
        lo: b.lo,
        hi: b.hi,
    }
}

fn compare(
    a: &[Vec<bool>],
    b: &[Vec<bool>],
    s: &TestSettings,
    family: usize,
    salt: u64,
) -> Comparison {
    let d: Vec<Vec<i8>> = a.iter().zip(b).map(|(x, y)| differences(x, y)).collect();
    let (mut a_only, mut b_only, mut disc) = (0, 0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let c = Discordance::of(x, y);
        a_only += c.a_only;
        b_only += c.b_only;
        disc += c.discordant_fraction();
    }
    disc /= a.len() as f64;
    let n = a[0].len();
    let boot = bootstrap_difference(&d, s.resamples, 1.0 - s.alpha, s.seed ^ salt)
        .expect("seeds of equal, non-zero length");
    let (p, test) = if a.len() == 1 {
        (mcnemar_exact(a_only, b_only), "exact McNemar".to_string())
    } else {
        (
            boot.p,
            format!("bootstrap over {} seeds and pairs", a.len()),
        )
    };
    let alpha = s.alpha / family.max(1) as f64;
    Comparison {
        difference: (a_only as f64 - b_only as f64) / (n * a.len()) as f64,
        lo: boot.lo,
        hi: boot.hi,
        a_only,
        b_only,
        p,
        p_adjusted: p,
        test,
        detectable: detectable_difference(n, disc, alpha, s.power).unwrap_or(1.0),
    }
}

/// The three comparisons of one student on one data set, before adjustment; `family` is the
/// number of data sets the adjustment will run over (for the detectable difference).
pub fn test_cell(o: &Outcomes, s: &TestSettings, family: usize) -> CellTests {
    test_cell_with_bases(
        std::slice::from_ref(&o.base),
        &o.probe_on_student,
        &o.head,
        s,
        family,
    )
}

/// [`test_cell`] where the base readout may differ between the student's seeds (a study fits
/// the base's probe on each seed's own split): `base` holds one vector shared by every seed, or
/// one per seed; each seed's student is compared with its own seed's base.
pub fn test_cell_with_bases(
    base: &[Vec<bool>],
    probe_on_student: &[Vec<bool>],
    head: &[Vec<bool>],
    s: &TestSettings,
    family: usize,
) -> CellTests {
    let seeds = head.len();
    assert!(
        seeds > 0 && probe_on_student.len() == seeds,
        "one head and one probe vector per seed"
    );
    assert!(
        base.len() == 1 || base.len() == seeds,
        "one base vector, or one per seed"
    );
    let n = base[0].len();
    assert!(
        head.iter()
            .chain(probe_on_student)
            .chain(base)
            .all(|v| v.len() == n),
        "every readout scored on the base's pairs"
    );
    let bases = if base.len() == 1 {
        vec![base[0].clone(); seeds]
    } else {
        base.to_vec()
    };
    let mut c = CellTests {
        pairs: n,
        seeds,
        base: mean_accuracy(base, s, 1),
        probe_on_student: mean_accuracy(probe_on_student, s, 2),
        head: mean_accuracy(head, s, 3),
        total: compare(head, &bases, s, family, 4),
        representation: compare(probe_on_student, &bases, s, family, 5),
        head_change: compare(head, probe_on_student, s, family, 6),
        verdict: Verdict::Inconclusive,
    };
    c.verdict = decide(&c, s.alpha);
    c
}

/// Holm's adjustment across a family of cells (one student's targets), each comparison kind
/// on its own; the verdicts are decided again on the adjusted p-values.
pub fn adjust(cells: &mut [CellTests], alpha: f64) {
    let kinds: [fn(&mut CellTests) -> &mut Comparison; 3] = [
        |c| &mut c.total,
        |c| &mut c.representation,
        |c| &mut c.head_change,
    ];
    for kind in kinds {
        let p: Vec<f64> = cells.iter_mut().map(|c| kind(c).p).collect();
        for (c, q) in cells.iter_mut().zip(holm(&p)) {
            kind(c).p_adjusted = q;
        }
    }
    for c in cells.iter_mut() {
        c.verdict = decide(c, alpha);
    }
}

/// The verdict from the (adjusted) comparisons; see the module docs.
pub fn decide(c: &CellTests, alpha: f64) -> Verdict {
    if c.total.significant_loss(alpha) {
        match (
            c.representation.significant_loss(alpha),
            c.head_change.significant_loss(alpha),
        ) {
            (true, true) => Verdict::LostThroughBoth,
            (true, false) => Verdict::LostThroughDrift,
            (false, true) => Verdict::LostThroughHead,
            (false, false) => Verdict::LostCauseUnresolved,
        }
    } else if c.total.difference >= 0.0 {
        Verdict::Kept
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pairs: the first `k` true, the rest false.
    fn first(k: usize, n: usize) -> Vec<bool> {
        (0..n).map(|i| i < k).collect()
    }

    /// By construction: the base right on 150 of 200 pairs; the probe on the student right on
    /// the first 100 only (50 pairs lost in the representation); the head right exactly where
    /// the probe on the student is. Every loss is in the representation: drift.
    #[test]
    fn a_representation_loss_is_drift() {
        let o = Outcomes {
            base: first(150, 200),
            probe_on_student: vec![first(100, 200)],
            head: vec![first(100, 200)],
        };
        let c = test_cell(&o, &TestSettings::default(), 1);
        assert_eq!(c.verdict, Verdict::LostThroughDrift);
        assert!((c.total.difference + 0.25).abs() < 1e-12);
        assert_eq!((c.representation.a_only, c.representation.b_only), (0, 50));
        assert_eq!((c.head_change.a_only, c.head_change.b_only), (0, 0));
        assert!(c.total.p < 1e-10 && c.total.hi < 0.0);
    }

    /// The probe on the student keeps what the base knew; the head drops 50 pairs: head.
    #[test]
    fn a_loss_with_the_representation_intact_is_the_head() {
        let o = Outcomes {
            base: first(150, 200),
            probe_on_student: vec![first(150, 200)],
            head: vec![first(100, 200)],
        };
        let c = test_cell(&o, &TestSettings::default(), 1);
        assert_eq!(c.verdict, Verdict::LostThroughHead);
    }

    /// Equal accuracy on different pairs: no loss, difference 0 → kept; one pair fewer →
    /// inconclusive, with a detectable difference stated.
    #[test]
    fn no_significant_loss_is_kept_or_inconclusive_by_the_sign() {
        let base = first(120, 200);
        let shifted: Vec<bool> = (0..200).map(|i| (10..130).contains(&i)).collect();
        let o = Outcomes {
            base: base.clone(),
            probe_on_student: vec![shifted.clone()],
            head: vec![shifted],
        };
        let c = test_cell(&o, &TestSettings::default(), 1);
        assert_eq!(c.verdict, Verdict::Kept);
        let o = Outcomes {
            base,
            probe_on_student: vec![first(119, 200)],
            head: vec![first(119, 200)],
        };
        let c = test_cell(&o, &TestSettings::default(), 1);
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(c.total.detectable > 0.03 && c.total.detectable < 0.2);
    }

    /// Holm across targets can turn a nominally significant loss into an inconclusive one:
    /// a loss with p ≈ 0.03 alone is lost; beside two clean targets (p = 1) it is not.
    #[test]
    fn holm_adjustment_changes_the_verdict_across_targets() {
        // 16 vs 5 discordant pairs: exact McNemar p ≈ 0.027.
        let base: Vec<bool> = (0..200).map(|i| i < 116).collect();
        let stud: Vec<bool> = (0..200).map(|i| (16..121).contains(&i)).collect();
        assert!((mcnemar_exact(5, 16) - 0.0266).abs() < 1e-3);
        let lossy = Outcomes {
            base: base.clone(),
            probe_on_student: vec![stud.clone()],
            head: vec![stud],
        };
        let clean = Outcomes {
            base: base.clone(),
            probe_on_student: vec![base.clone()],
            head: vec![base],
        };
        let s = TestSettings::default();
        let alone = test_cell(&lossy, &s, 1);
        assert!(alone.verdict.lost());
        let mut family = vec![
            test_cell(&lossy, &s, 3),
            test_cell(&clean, &s, 3),
            test_cell(&clean, &s, 3),
        ];
        adjust(&mut family, s.alpha);
        assert_eq!(family[0].verdict, Verdict::Inconclusive);
        assert!((family[0].total.p_adjusted - 3.0 * family[0].total.p).abs() < 1e-12);
    }

    /// Several seeds: the comparison's p comes from the bootstrap and the difference is the
    /// mean over seeds.
    #[test]
    fn seeds_use_the_two_way_bootstrap() {
        let o = Outcomes {
            base: first(150, 200),
            probe_on_student: vec![first(100, 200), first(110, 200), first(90, 200)],
            head: vec![first(100, 200), first(110, 200), first(90, 200)],
        };
        let c = test_cell(&o, &TestSettings::default(), 1);
        assert_eq!(c.seeds, 3);
        assert!((c.total.difference + 0.25).abs() < 1e-12);
        assert!(c.total.test.starts_with("bootstrap"));
        assert_eq!(c.verdict, Verdict::LostThroughDrift);
    }

    /// A base shared by every seed, given once or once per seed, gives the same comparisons.
    #[test]
    fn one_base_per_seed_equals_a_shared_base_when_they_agree() {
        let o = Outcomes {
            base: first(150, 200),
            probe_on_student: vec![first(100, 200), first(140, 200)],
            head: vec![first(90, 200), first(120, 200)],
        };
        let s = TestSettings::default();
        let shared = test_cell(&o, &s, 2);
        let each = test_cell_with_bases(
            &[o.base.clone(), o.base.clone()],
            &o.probe_on_student,
            &o.head,
            &s,
            2,
        );
        assert_eq!(shared.total, each.total);
        assert_eq!(shared.representation, each.representation);
        assert_eq!(shared.head_change, each.head_change);
        assert_eq!(shared.verdict, each.verdict);
    }

    /// Each seed's student is held to its own seed's base: seed 0's base knows 150 pairs and
    /// its student 100; seed 1's base knows 100 and its student 100, so the losses are 50 and 0
    /// pairs of 200: a mean difference of −0.125 (against a shared base of seed 0: −0.25).
    #[test]
    fn each_seed_is_compared_with_its_own_base() {
        let c = test_cell_with_bases(
            &[first(150, 200), first(100, 200)],
            &[first(100, 200), first(100, 200)],
            &[first(100, 200), first(100, 200)],
            &TestSettings::default(),
            1,
        );
        assert!((c.total.difference + 0.125).abs() < 1e-12);
        assert_eq!((c.total.a_only, c.total.b_only), (0, 50));
        assert!((c.base.value - 0.625).abs() < 1e-12);
    }
}
