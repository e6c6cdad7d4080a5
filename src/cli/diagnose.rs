//! `repdrift diagnose`.

use std::path::PathBuf;

use repdrift::diagnose::{self, DiagnoseConfig, DiagnoseProgress, Named};

#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// A TOML file with the same fields as the flags (`[[student]]` and `[[target]]` tables);
    /// flags given beside it override its settings and add students and targets.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The base model the students were fine-tuned from (.gguf, HF directory).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// A student reward model, NAME=PATH (repeatable; HF directory or repdrift delta). The
    /// same NAME twice means two seeds of one method.
    #[arg(long = "student", value_name = "NAME=PATH")]
    pub students: Vec<String>,
    /// The source preference pairs (JSONL, .gz or Parquet).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// A held-out target data set, NAME=FILE (repeatable).
    #[arg(long = "target", value_name = "NAME=FILE")]
    pub targets: Vec<String>,
    /// Where the report, its data and the capture cache go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Layers to capture and compare: `all` or e.g. `0,10,20,30` (the verdict layer is added).
    #[arg(long)]
    pub layers: Option<String>,
    /// Pooling: `last` (the token a reward head reads) or `mean`.
    #[arg(long)]
    pub pool: Option<String>,
    /// Token limit per sequence.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Use only the first N pairs of every data set.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The layer the verdict's probe reads (default: the last, which a reward head reads).
    #[arg(long)]
    pub verdict_layer: Option<usize>,
    /// Permutations behind each drift measure's chance band (0: none).
    #[arg(long)]
    pub permutations: Option<usize>,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Reuse the captures of an earlier run in --out and capture only what is new (also
    /// finishes a killed run).
    #[arg(long)]
    pub resume: bool,
    /// Delete what --out holds and start over.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Capture only (model, data set) number T into the cache and stop — one task of a
    /// cluster's array job; a later run with --resume finds every task's capture. T = model ×
    /// data sets + data set, models base then students, data sets source then targets, in the
    /// order given.
    #[arg(long, value_name = "T", conflicts_with = "force")]
    pub capture_task: Option<usize>,
}

fn named(items: &[String], flag: &str) -> repdrift::Result<Vec<Named>> {
    Ok(super::train::named_paths(items, flag)?
        .into_iter()
        .map(|(name, path)| Named { name, path })
        .collect())
}

impl DiagnoseArgs {
    /// The configuration: the file's, then the flags on top.
    pub fn config(&self) -> repdrift::Result<DiagnoseConfig> {
        let missing =
            |flag: &str| repdrift::Error::param(flag, format!("give --{flag} (or --config FILE)"));
        let mut c = match &self.config {
            Some(p) => DiagnoseConfig::read(p)?,
            None => DiagnoseConfig::new(
                self.base.clone().ok_or_else(|| missing("base"))?,
                Vec::new(),
                self.source.clone().ok_or_else(|| missing("source"))?,
                Vec::new(),
                self.out.clone().ok_or_else(|| missing("out"))?,
            ),
        };
        if let Some(b) = &self.base {
            c.base = b.clone();
        }
        if let Some(s) = &self.source {
            c.source = s.clone();
        }
        if let Some(o) = &self.out {
            c.out = o.clone();
        }
        c.students.extend(named(&self.students, "student")?);
        c.targets.extend(named(&self.targets, "target")?);
        if let Some(v) = &self.layers {
            c.layers = v.clone();
        }
        if let Some(v) = &self.pool {
            c.pool = v.clone();
        }
        c.max_tokens = self.max_tokens.unwrap_or(c.max_tokens);
        c.limit = self.limit.or(c.limit);
        c.verdict_layer = self.verdict_layer.or(c.verdict_layer);
        c.permutations = self.permutations.unwrap_or(c.permutations);
        Ok(c)
    }
}

struct Lines;
impl DiagnoseProgress for Lines {
    fn line(&mut self, msg: &str) {
        eprintln!("diagnose: {msg}");
    }
}

pub fn run_diagnose(a: &DiagnoseArgs) -> anyhow::Result<()> {
    let cfg = a.config()?.check()?;
    let device = super::device::parse_device(&a.device)?;
    let t0 = std::time::Instant::now();
    if let Some(task) = a.capture_task {
        let s = diagnose::capture_task(&cfg, task, &device, &mut Lines)?;
        println!(
            "capture task {task} of {}: captured {}, found {} in the cache; {:.1} s",
            diagnose::capture_tasks(&cfg),
            s.captured.len(),
            s.reused.len(),
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let (d, summary) = diagnose::run(&cfg, a.resume, a.force, &device, &mut Lines)?;
    for c in d.cells.iter().filter(|c| c.role == "target") {
        println!(
            "{} on {}: {} (Δ head − base {:+.1} points, 95 % CI {:+.1} to {:+.1}; detectable loss {:.1})",
            c.student,
            c.set,
            c.tests.verdict.words(),
            100.0 * c.tests.total.difference,
            100.0 * c.tests.total.lo,
            100.0 * c.tests.total.hi,
            100.0 * c.tests.total.detectable
        );
    }
    println!(
        "captured {} (model, data set) pairs, reused {} from the cache; drift computed for {} data set(s), reused for {}; {:.1} s; report in {}",
        summary.captured.len(),
        summary.reused.len(),
        summary.drift_computed.len(),
        summary.drift_reused.len(),
        t0.elapsed().as_secs_f64(),
        cfg.out.join("index.html").display()
    );
    Ok(())
}
