//! The demo's cue and value measurements: the base (implicit reward) and each student (its
//! reward head) on held-out source pairs (`repdrift cues`) and on the value lexicon
//! (`repdrift values`, students against the base). Each model's reports are written to
//! `WORK/bias/{model}-{cues,values}.{json,md}`; the section goes into the report.

use std::path::Path;

use candle_core::Device;

use crate::bias::cues::{self, CueReport};
use crate::bias::implicit::{implicit_reward, ImplicitReport};
use crate::bias::score::Scorer;
use crate::bias::summary::{section, BiasSection, Measured};
use crate::bias::values::{self, ValueReport};
use crate::bias::ScoreParams;
use crate::capture::NoProgress;
use crate::data::read_jsonl;
use crate::error::Result;

/// What to measure.
pub struct BiasPlan<'a> {
    pub base: &'a Path,
    /// (name, directory) of each student, the gold one named `gold`.
    pub students: Vec<(&'a str, std::path::PathBuf)>,
    pub cue_data: &'a Path,
    pub cue_pairs: usize,
    pub value_items: &'a Path,
    pub value_pairs: usize,
    pub max_tokens: usize,
}

/// Measure, write each model's reports under `work/bias/`, and return the report section.
pub fn measure(plan: &BiasPlan<'_>, work: &Path, device: &Device) -> Result<BiasSection> {
    let params = ScoreParams {
        max_tokens: Some(plan.max_tokens),
        batch_size: 8,
    }
    .check()?;
    let cue_data = read_jsonl(plan.cue_data, Some(plan.cue_pairs))?;
    let items = read_jsonl(plan.value_items, Some(plan.value_pairs))?;
    let dir = work.join("bias");
    let write = |name: &str, c: &CueReport, v: &ValueReport| -> Result<()> {
        crate::io::write_atomic(
            &dir.join(format!("{name}-cues.json")),
            &cues::render_json(c),
        )?;
        crate::io::write_atomic(
            &dir.join(format!("{name}-cues.md")),
            cues::render_md(c, name).as_bytes(),
        )?;
        crate::io::write_atomic(
            &dir.join(format!("{name}-values.json")),
            &values::render_json(v),
        )?;
        crate::io::write_atomic(
            &dir.join(format!("{name}-values.md")),
            values::render_md(v, name).as_bytes(),
        )
    };
    let implicit = |m: &dyn crate::model::HookedModel,
                    r: Option<&dyn crate::model::HookedModel>,
                    name: &str|
     -> Result<ImplicitReport> {
        let i = implicit_reward(m, r, &cue_data, &params, device, &mut NoProgress)?;
        crate::io::write_atomic(
            &dir.join(format!("{name}-implicit_reward.json")),
            &crate::bias::implicit::render_json(&i),
        )?;
        Ok(i)
    };
    let base = crate::model::load(plan.base, device)?;
    let bs = Scorer::new(base.as_ref(), &params, device);
    let base_cues = cues::cues(&bs, &cue_data, &mut NoProgress)?;
    let base_scored = values::score_items(&bs, &items, &mut NoProgress)?;
    let base_values = values::analyse(&base_scored, None, &items)?;
    let base_implicit = implicit(base.as_ref(), None, "base")?;
    write("base", &base_cues, &base_values)?;
    let mut reports = vec![("base".to_string(), base_cues, base_values, base_implicit)];
    for (name, path) in &plan.students {
        let m = crate::model::load(path, device)?;
        let s = Scorer::new(m.as_ref(), &params, device);
        let c = cues::cues(&s, &cue_data, &mut NoProgress)?;
        let scored = values::score_items(&s, &items, &mut NoProgress)?;
        let v = values::analyse(&scored, Some(&base_scored), &items)?;
        // The student's LM (its trained blocks under the tied embeddings) against the base.
        let i = implicit(m.as_ref(), Some(base.as_ref()), name)?;
        write(name, &c, &v)?;
        reports.push((name.to_string(), c, v, i));
    }
    let measured: Vec<Measured<'_>> = reports
        .iter()
        .map(|(n, c, v, i)| Measured {
            name: n,
            cues: Some(c),
            values: Some(v),
            implicit: Some(i),
        })
        .collect();
    Ok(section(&measured, Some("gold")))
}
