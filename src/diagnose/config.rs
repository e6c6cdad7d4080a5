//! What `repdrift diagnose` runs on, checked once at the boundary: [`DiagnoseConfig`] (from the
//! command line or a TOML file with the same fields) → [`DiagnoseConfig::check`] →
//! [`ValidDiagnose`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::capture::{LayerSelection, Pooling};
use crate::error::{Error, Result};

/// A named path: a student (`naive` = a checkpoint) or a target data set (`rail` = a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: String,
    pub path: PathBuf,
}

/// The diagnosis's inputs and settings. In TOML, students and targets are arrays of tables:
///
/// ```toml
/// base = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
/// source = "data/source.jsonl"
/// out = "reports/my-diagnosis"
/// [[student]]
/// name = "naive"
/// path = "runs/naive"
/// [[target]]
/// name = "rail"
/// path = "data/rail.jsonl"
/// ```
///
/// The same student name given twice means two seeds of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseConfig {
    /// The base model every student was fine-tuned from.
    pub base: PathBuf,
    #[serde(rename = "student")]
    pub students: Vec<Named>,
    /// The source data (what the students were trained for); the base's probe is fitted here.
    pub source: PathBuf,
    #[serde(rename = "target")]
    pub targets: Vec<Named>,
    pub out: PathBuf,
    /// Layers to capture and compare (`all` or a list); the verdict layer is always captured.
    #[serde(default = "default_layers")]
    pub layers: String,
    /// Pooling of each sequence: `last` (the token a reward head reads) or `mean`.
    #[serde(default = "default_pool")]
    pub pool: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Use only the first N pairs of every data set.
    #[serde(default)]
    pub limit: Option<usize>,
    /// The layer whose states the verdict's probe reads (default: the last, which a reward head
    /// reads).
    #[serde(default)]
    pub verdict_layer: Option<usize>,
    /// Permutations behind each drift measure's chance band.
    #[serde(default = "default_permutations")]
    pub permutations: usize,
    /// Bootstrap resamples behind every interval.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// The tests' level, before Holm's adjustment across targets.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub seed: u64,
    /// Anchor advice: how many layers, and the lowest layer the next run can anchor (its first
    /// trainable block's output; 1 = any).
    #[serde(default = "default_budget")]
    pub anchor_budget: usize,
    #[serde(default = "default_anchor_from")]
    pub anchor_from: usize,
    /// λ is set so the anchor term starts at this fraction of the BT loss
    /// (`recommend --fraction`).
    #[serde(default = "default_anchor_fraction")]
    pub anchor_fraction: f64,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Where the captures are cached (default `OUT/cache`); a cache shared by several
    /// diagnoses serves each the captures it has.
    #[serde(default)]
    pub cache: Option<PathBuf>,
}

fn default_layers() -> String {
    "all".into()
}
fn default_pool() -> String {
    "last".into()
}
fn default_max_tokens() -> usize {
    256
}
fn default_permutations() -> usize {
    100
}
fn default_resamples() -> usize {
    2000
}
fn default_alpha() -> f64 {
    0.05
}
fn default_budget() -> usize {
    2
}
fn default_anchor_from() -> usize {
    1
}
fn default_anchor_fraction() -> f64 {
    0.5
}
fn default_batch() -> usize {
    8
}

impl DiagnoseConfig {
    /// A configuration with every setting at its default.
    pub fn new(
        base: PathBuf,
        students: Vec<Named>,
        source: PathBuf,
        targets: Vec<Named>,
        out: PathBuf,
    ) -> Self {
        Self {
            base,
            students,
            source,
            targets,
            out,
            layers: default_layers(),
            pool: default_pool(),
            max_tokens: default_max_tokens(),
            limit: None,
            verdict_layer: None,
            permutations: default_permutations(),
            resamples: default_resamples(),
            alpha: default_alpha(),
            seed: 0,
            anchor_budget: default_budget(),
            anchor_from: default_anchor_from(),
            anchor_fraction: default_anchor_fraction(),
            batch_size: default_batch(),
            cache: None,
        }
    }

    /// Read a TOML configuration (`path` names the file in errors).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| {
            Error::param(
                "config",
                format!("{}: {}", path.display(), e.to_string().trim_end()),
            )
        })
    }

    /// Check every setting once; the models and data are checked by [`super::plan`].
    pub fn check(self) -> Result<ValidDiagnose> {
        if self.students.is_empty() {
            return Err(Error::param(
                "student",
                "name at least one student, NAME=PATH",
            ));
        }
        if self.targets.is_empty() {
            return Err(Error::param(
                "target",
                "name at least one target data set, NAME=FILE",
            ));
        }
        for n in self.students.iter().chain(&self.targets) {
            check_name(&n.name)?;
        }
        if self.students.iter().any(|s| s.name == "base") {
            return Err(Error::param(
                "student",
                "`base` names the base model; call the student something else",
            ));
        }
        let mut t: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        t.sort_unstable();
        if let Some(w) = t.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::param(
                "target",
                format!("target `{}` is named twice", w[0]),
            ));
        }
        if t.contains(&"source") {
            return Err(Error::param(
                "target",
                "`source` names the source data; call the target something else",
            ));
        }
        let layers = LayerSelection::parse(&self.layers)?;
        let pooling = Pooling::parse(&self.pool)?;
        if self.max_tokens == 0 || self.batch_size == 0 {
            return Err(Error::param(
                "max-tokens",
                "max tokens and batch size must be at least 1",
            ));
        }
        if self.limit == Some(0) {
            return Err(Error::param("limit", "must be at least 1"));
        }
        if self.permutations == 1 {
            return Err(Error::param("permutations", "use 0 (off) or at least 2"));
        }
        if self.resamples < 100 {
            return Err(Error::param(
                "resamples",
                format!(
                    "use at least 100 bootstrap resamples, got {}",
                    self.resamples
                ),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::param(
                "alpha",
                format!("must lie in (0, 1), got {}", self.alpha),
            ));
        }
        if self.anchor_budget == 0 {
            return Err(Error::param("anchor-budget", "must be at least 1"));
        }
        if !(self.anchor_fraction > 0.0 && self.anchor_fraction.is_finite()) {
            return Err(Error::param(
                "anchor-fraction",
                format!("must be positive, got {}", self.anchor_fraction),
            ));
        }
        Ok(ValidDiagnose {
            layers,
            pooling,
            config: self,
        })
    }

    /// The capture cache's directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| self.out.join("cache"))
    }

    /// The students' ids: their name, or `name.k` (k = 1, 2, …) when the name is given more
    /// than once (seeds of one method).
    pub fn student_ids(&self) -> Vec<String> {
        let count = |n: &str| self.students.iter().filter(|s| s.name == n).count();
        let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
        self.students
            .iter()
            .map(|s| {
                if count(&s.name) == 1 {
                    s.name.clone()
                } else {
                    let k = seen.entry(&s.name).or_insert(0);
                    *k += 1;
                    format!("{}.{k}", s.name)
                }
            })
            .collect()
    }
}

fn check_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::param(
            "name",
            format!("`{n}`: names use letters, digits, `_` and `-` only"),
        ))
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct ValidDiagnose {
    pub config: DiagnoseConfig,
    pub layers: LayerSelection,
    pub pooling: Pooling,
}

impl std::ops::Deref for ValidDiagnose {
    type Target = DiagnoseConfig;
    fn deref(&self) -> &DiagnoseConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DiagnoseConfig {
        DiagnoseConfig::new(
            "b".into(),
            vec![Named {
                name: "naive".into(),
                path: "n".into(),
            }],
            "s".into(),
            vec![Named {
                name: "rail".into(),
                path: "r".into(),
            }],
            "o".into(),
        )
    }

    #[test]
    fn repeated_student_names_are_seeds() {
        let mut c = cfg();
        c.students.push(Named {
            name: "anchor".into(),
            path: "a".into(),
        });
        c.students.push(Named {
            name: "naive".into(),
            path: "n2".into(),
        });
        assert_eq!(c.student_ids(), ["naive.1", "anchor", "naive.2"]);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut c = cfg();
        c.targets.push(Named {
            name: "rail".into(),
            path: "r2".into(),
        });
        assert!(c.check().unwrap_err().to_string().contains("named twice"));
        let mut c = cfg();
        c.students[0].name = "base".into();
        assert!(c.check().is_err());
        let mut c = cfg();
        c.alpha = 1.5;
        assert!(c.check().unwrap_err().to_string().contains("alpha"));
        let mut c = cfg();
        c.targets[0].name = "a b".into();
        assert!(c.check().is_err());
        assert!(cfg().check().is_ok());
    }

    #[test]
    fn toml_with_the_same_fields_parses() {
        let t = r#"
base = "b"
source = "s"
out = "o"
max_tokens = 64
[[student]]
name = "naive"
path = "n"
[[target]]
name = "rail"
path = "r"
"#;
        let c: DiagnoseConfig = toml::from_str(t).unwrap();
        assert_eq!(c.max_tokens, 64);
        assert_eq!(c.students[0].name, "naive");
        assert_eq!(c.layers, "all");
        assert!(toml::from_str::<DiagnoseConfig>(&format!("{t}\nfoo = 1")).is_err());
    }
}
