//! Everything checked before any capture: the data sets (preference pairs, no pair whose
//! chosen and rejected are identical, enough pairs to test), the models (each student of the
//! base's architecture, width and depth, with a reward head) and the content address of every
//! (model, data set) capture.

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::ValidDiagnose;
use crate::data::{read_jsonl, Dataset};
use crate::error::{Error, Result};
use crate::model::ModelInfo;
use crate::stats::paired::detectable_difference;

/// Below this many pairs a target gets a warning that states its detectable difference.
pub const FEW_PAIRS: usize = 50;

/// One data set of the diagnosis.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// `source` or the target's name.
    pub name: String,
    pub data: Dataset,
}

/// One model of the diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// `base`, or the student's id (`naive`, or `naive.2` for its second seed).
    pub id: String,
    /// The method's name (the id without the seed suffix).
    pub group: String,
    pub path: PathBuf,
    pub architecture: String,
    pub weights_sha256: String,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub reward_head: bool,
}

impl ModelEntry {
    fn of(id: &str, group: &str, path: &std::path::Path, info: &ModelInfo, head: bool) -> Self {
        Self {
            id: id.into(),
            group: group.into(),
            path: path.to_path_buf(),
            architecture: info.architecture.clone(),
            weights_sha256: info.weights_sha256.clone(),
            n_layers: info.n_layers,
            hidden_size: info.hidden_size,
            reward_head: head,
        }
    }
}

/// The checked inputs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The source first, then the targets in the order given.
    pub sets: Vec<DataSet>,
    pub base: ModelEntry,
    pub students: Vec<ModelEntry>,
    /// Layers captured and compared (the verdict layer among them).
    pub layers: Vec<usize>,
    pub verdict_layer: usize,
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every model, the base first.
    pub fn models(&self) -> impl Iterator<Item = &ModelEntry> {
        std::iter::once(&self.base).chain(&self.students)
    }

    pub fn targets(&self) -> &[DataSet] {
        &self.sets[1..]
    }

    /// The content address of a capture: sha256 over the model's weights hash, the data's hash
    /// and its limit, and every capture setting (first 16 hex digits).
    pub fn store_key(&self, model: &ModelEntry, set: &DataSet, cfg: &ValidDiagnose) -> String {
        let key = serde_json::json!({
            "store_format": crate::capture::store::STORE_VERSION,
            "model": model.weights_sha256,
            "data": set.data.sha256,
            "pairs": set.data.examples.len(),
            "pool": cfg.pooling.name(),
            "max_tokens": cfg.max_tokens,
            "hooks": ["resid_post"],
            "layers": self.layers,
        });
        crate::io::sha256_bytes(key.to_string().as_bytes())[..16].to_string()
    }
}

/// A data set read and checked: preference pairs, none with identical chosen and rejected.
fn read_set(name: &str, path: &std::path::Path, limit: Option<usize>) -> Result<DataSet> {
    let data = read_jsonl(path, limit)?;
    if data.format.fields() != ["chosen", "rejected"] {
        return Err(Error::param(
            "data",
            format!(
                "{}: diagnose needs preference pairs (chosen and rejected), found {:?} examples",
                path.display(),
                data.format
            ),
        ));
    }
    if let Some(e) = data
        .examples
        .iter()
        .find(|e| e.sequences[0].text == e.sequences[1].text)
    {
        return Err(Error::MalformedLine {
            path: path.to_path_buf(),
            line: e.line,
            reason: "chosen and rejected are identical: no reward model or probe can rank this pair; remove it".into(),
        });
    }
    Ok(DataSet {
        name: name.into(),
        data,
    })
}

/// The warning for a target with few pairs: the loss it could detect, at the discordance the
/// issue's reviewers used as a reference (the readouts disagreeing on a quarter of the pairs).
fn few_pairs_warning(set: &DataSet, family: usize, alpha: f64) -> Option<String> {
    let n = set.data.examples.len();
    (n < FEW_PAIRS).then(|| {
        let d = detectable_difference(n, 0.25, alpha / family as f64, 0.8).unwrap_or(1.0);
        format!(
            "target `{}` has {n} pairs (fewer than {FEW_PAIRS}): if a student and the base disagree on a quarter of them, only a loss of {:.0} points or more is detectable with 80 % power",
            set.name,
            100.0 * d
        )
    })
}

/// Load `path` long enough to read what it is, then free it. A LoRA adapter is read over the
/// diagnosis's base (`base`): the students were fine-tuned from it.
fn inspect(
    path: &std::path::Path,
    base: &std::path::Path,
    device: &Device,
) -> Result<(ModelInfo, bool)> {
    let m = crate::model::load_with_base(path, Some(base), device, candle_core::DType::F32)?;
    Ok((m.info().clone(), m.has_reward_head()))
}

/// Check every student against the base.
fn check_student(base: &ModelEntry, s: &ModelEntry) -> Result<()> {
    let differ = |what: &str, b: String, v: String| {
        Err(Error::model(
            &s.path,
            format!(
                "student `{}` has {what} {v} but the base ({}) has {b}: a student must be fine-tuned from the base",
                s.id,
                base.path.display()
            ),
        ))
    };
    if s.architecture != base.architecture {
        return differ(
            "architecture",
            base.architecture.clone(),
            s.architecture.clone(),
        );
    }
    if s.hidden_size != base.hidden_size {
        return differ(
            "hidden size",
            base.hidden_size.to_string(),
            s.hidden_size.to_string(),
        );
    }
    if s.n_layers != base.n_layers {
        return differ(
            "layer count",
            base.n_layers.to_string(),
            s.n_layers.to_string(),
        );
    }
    if !s.reward_head {
        return Err(Error::model(
            &s.path,
            format!(
                "student `{}` has no reward head (score.weight): diagnose compares a reward model's own head with the base's probe",
                s.id
            ),
        ));
    }
    Ok(())
}

/// Read and check the data, inspect and check the models, resolve the layers.
pub fn plan(cfg: &ValidDiagnose, device: &Device, say: &mut dyn FnMut(&str)) -> Result<Plan> {
    let mut sets = vec![read_set("source", &cfg.source, cfg.limit)?];
    for t in &cfg.targets {
        sets.push(read_set(&t.name, &t.path, cfg.limit)?);
    }
    let (info, head) = inspect(&cfg.base, &cfg.base, device)?;
    let base = ModelEntry::of("base", "base", &cfg.base, &info, head);
    let mut students = Vec::new();
    for (s, id) in cfg.students.iter().zip(cfg.student_ids()) {
        let (info, head) = inspect(&s.path, &cfg.base, device)?;
        let e = ModelEntry::of(&id, &s.name, &s.path, &info, head);
        check_student(&base, &e)?;
        say(&format!(
            "checked {id}: {} ({} blocks, width {})",
            e.architecture, e.n_layers, e.hidden_size
        ));
        students.push(e);
    }
    let n = base.n_layers;
    let verdict_layer = cfg.verdict_layer.unwrap_or(n);
    if verdict_layer > n {
        return Err(Error::param(
            "verdict-layer",
            format!("{verdict_layer} is past the base's last layer {n} (hidden states 0..={n})"),
        ));
    }
    let available: Vec<usize> = (0..=n).collect();
    let mut layers = cfg.layers.resolve(&available, "the base's layers")?;
    if !layers.contains(&verdict_layer) {
        layers.push(verdict_layer);
        layers.sort_unstable();
    }
    let family = cfg.targets.len();
    let warnings: Vec<String> = sets[1..]
        .iter()
        .filter_map(|s| few_pairs_warning(s, family, cfg.alpha))
        .collect();
    Ok(Plan {
        sets,
        base,
        students,
        layers,
        verdict_layer,
        warnings,
    })
}
