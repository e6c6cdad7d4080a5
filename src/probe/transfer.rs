//! Transfer-aware summary metrics (our definitions, following the weak-to-strong papers'
//! intent). For a student S, weak teacher W and ceiling C (the strong model trained on gold
//! labels) with pairwise accuracy acc_D on dataset D (in [0, 1]):
//!
//! - gain G_D = 100 · (acc_D(S) − acc_D(W)), in accuracy points;
//! - in-distribution gain IDG = G_source;
//! - absolute OOD gain AOG = mean of G_D over the target datasets;
//! - performance gap recovered PGR_D = (acc_D(S) − acc_D(W)) / (acc_D(C) − acc_D(W)), null when
//!   no ceiling is given or acc_D(C) ≤ acc_D(W) (no gap to recover: the ratio's sign would
//!   invert its meaning);
//! - Net Transfer Score NTS = AOG − max(0, −IDG): OOD gain, penalised by any in-distribution loss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Accuracies per model per dataset (the input of `repdrift transfer --scores`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub source: String,
    pub targets: Vec<String>,
    /// The weak teacher's model name.
    pub weak: String,
    /// The ceiling's model name (strong model on gold labels), if any.
    #[serde(default)]
    pub ceiling: Option<String>,
    /// model → dataset → pairwise accuracy in [0, 1].
    pub accuracy: BTreeMap<String, BTreeMap<String, f64>>,
}

/// One student's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentTransfer {
    pub name: String,
    /// dataset → G_D in points.
    pub gains: BTreeMap<String, f64>,
    pub idg: f64,
    pub aog: f64,
    /// dataset → PGR_D (null without ceiling or without a positive gap).
    pub pgr: BTreeMap<String, Option<f64>>,
    pub nts: f64,
}

/// `transfer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    pub format: String,
    pub version: u32,
    pub source: String,
    pub targets: Vec<String>,
    pub weak: String,
    pub ceiling: Option<String>,
    pub students: Vec<StudentTransfer>,
}

fn acc(s: &Scores, model: &str, ds: &str) -> Result<f64> {
    let v = s
        .accuracy
        .get(model)
        .and_then(|m| m.get(ds))
        .copied()
        .ok_or_else(|| {
            Error::param(
                "scores",
                format!("no accuracy for model `{model}` on dataset `{ds}`"),
            )
        })?;
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::param(
            "scores",
            format!("accuracy of `{model}` on `{ds}` is {v}; accuracies are fractions in [0, 1]"),
        ));
    }
    Ok(v)
}

/// Compute IDG, AOG, PGR and NTS for every model other than the weak teacher and the ceiling.
///
/// ```
/// use repdrift::probe::transfer::{summarise, Scores};
/// let s: Scores = serde_json::from_str(r#"{"source":"hh","targets":["pku"],"weak":"w","ceiling":"c",
///   "accuracy":{"w":{"hh":0.6,"pku":0.55},"c":{"hh":0.7,"pku":0.65},"s":{"hh":0.66,"pku":0.55}}}"#).unwrap();
/// let r = summarise(&s).unwrap();
/// assert!((r.students[0].idg - 6.0).abs() < 1e-9 && r.students[0].aog.abs() < 1e-9);
/// ```
pub fn summarise(s: &Scores) -> Result<TransferReport> {
    if s.targets.is_empty() {
        return Err(Error::param("scores", "name at least one target dataset"));
    }
    let mut students = Vec::new();
    for name in s.accuracy.keys() {
        if *name == s.weak || Some(name) == s.ceiling.as_ref() {
            continue;
        }
        let mut gains = BTreeMap::new();
        let mut pgr = BTreeMap::new();
        for ds in std::iter::once(&s.source).chain(&s.targets) {
            let (a_s, a_w) = (acc(s, name, ds)?, acc(s, &s.weak, ds)?);
            gains.insert(ds.clone(), 100.0 * (a_s - a_w));
            let p = match &s.ceiling {
                Some(c) => {
                    let gap = acc(s, c, ds)? - a_w;
                    (gap > 0.0).then(|| (a_s - a_w) / gap)
                }
                None => None,
            };
            pgr.insert(ds.clone(), p);
        }
        let idg = gains[&s.source];
        let aog = s.targets.iter().map(|t| gains[t]).sum::<f64>() / s.targets.len() as f64;
        students.push(StudentTransfer {
            name: name.clone(),
            gains,
            idg,
            aog,
            pgr,
            nts: aog - (-idg).max(0.0),
        });
    }
    Ok(TransferReport {
        format: "repdrift-transfer".into(),
        version: 1,
        source: s.source.clone(),
        targets: s.targets.clone(),
        weak: s.weak.clone(),
        ceiling: s.ceiling.clone(),
        students,
    })
}

/// `transfer.json` bytes.
pub fn render_json(r: &TransferReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

#[cfg(test)]
mod regression {
    use super::*;

    /// Regression (repdrift demo, plain target): the weak teacher beat the gold ceiling
    /// (1.00 vs 0.92) and PGR came out as 1.5 for a student *below* both.
    #[test]
    fn pgr_is_null_when_the_ceiling_does_not_beat_the_weak_teacher() {
        let acc = |v: [f64; 2]| -> BTreeMap<String, f64> {
            [("src".to_string(), v[0]), ("t".to_string(), v[1])]
                .into_iter()
                .collect()
        };
        let s = Scores {
            source: "src".into(),
            targets: vec!["t".into()],
            weak: "w".into(),
            ceiling: Some("gold".into()),
            accuracy: [
                ("w".to_string(), acc([0.6, 1.0])),
                ("gold".to_string(), acc([0.9, 0.92])),
                ("s".to_string(), acc([0.8, 0.88])),
            ]
            .into_iter()
            .collect(),
        };
        let r = summarise(&s).unwrap();
        let st = &r.students[0];
        assert_eq!(st.pgr["t"], None);
        assert!((st.pgr["src"].unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }
}
