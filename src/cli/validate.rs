//! `repdrift validate`: flags → checked parameters, run, write `validate.json` and
//! `validate.md`, print each check; exit 1 when a check fails.

use std::path::PathBuf;
use std::process::ExitCode;

use repdrift::capture::Pooling;
use repdrift::validate::{self, Status, ValidateParams};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The model (a .gguf file or an HF directory).
    #[arg(long)]
    pub model: PathBuf,
    /// Data (any shape `capture` reads; pairs enable the probe and layer-matching checks).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory: validate.json and validate.md (the students it trains live in
    /// OUT/work while it runs and are removed at the end).
    #[arg(long)]
    pub out: PathBuf,
    /// Examples to use (the first N).
    #[arg(long, default_value_t = 128)]
    pub limit: usize,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// last, mean or response-mean.
    #[arg(long, default_value = "last")]
    pub pool: String,
    /// Permutations of the null check.
    #[arg(long, default_value_t = 2000)]
    pub permutations: usize,
    /// Random subsets per size in the sample-size check.
    #[arg(long, default_value_t = 100)]
    pub bootstrap: usize,
    /// Planted-noise strengths (relative to each weight's rms), ascending.
    #[arg(long, default_value = "0.001,0.01,0.1,1")]
    pub strengths: String,
    /// Blocks to plant drift in (default: at a quarter, half and three quarters depth).
    #[arg(long)]
    pub blocks: Option<String>,
    /// Skip training the two students of the layer-matching check.
    #[arg(long)]
    pub no_students: bool,
    /// Trainable top blocks of those students.
    #[arg(long, default_value_t = 8)]
    pub student_blocks: usize,
    /// A quick run for CI: 48 examples, strengths 0.01,1, one block, 500 permutations, no
    /// students.
    #[arg(long)]
    pub quick: bool,
    /// hh, plain or model (how message lists become text).
    #[arg(long, default_value = "hh")]
    pub template: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn list<T: std::str::FromStr>(flag: &str, s: &str) -> repdrift::Result<Vec<T>> {
    s.split(',')
        .map(|v| {
            v.trim().parse().map_err(|_| {
                repdrift::Error::param(flag, format!("`{v}` in `{s}` is not a number"))
            })
        })
        .collect()
}

pub fn run_validate(a: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let device = super::device::parse_device(&a.device)?;
    let mut p = ValidateParams {
        pooling: Pooling::parse(&a.pool)?,
        max_tokens: Some(a.max_tokens),
        batch_size: a.batch_size,
        permutations: a.permutations,
        bootstrap: a.bootstrap,
        strengths: list("strengths", &a.strengths)?,
        blocks: a
            .blocks
            .as_deref()
            .map(|b| list("blocks", b))
            .transpose()?
            .unwrap_or_default(),
        students: !a.no_students,
        student_blocks: a.student_blocks,
        knn_k: 10,
        seed: a.seed,
    };
    let mut limit = a.limit;
    if a.quick {
        limit = limit.min(48);
        p.strengths = vec![0.01, 1.0];
        p.permutations = p.permutations.min(500);
        p.bootstrap = p.bootstrap.min(30);
        p.students = false;
    }
    let params = p.check()?;
    let model = repdrift::model::load(&a.model, &device)?;
    let data = repdrift::data::read_jsonl_with(
        &a.data,
        &repdrift::data::ReadOptions {
            limit: Some(limit),
            label: repdrift::data::PairLabel::Safer,
            template: super::train::template(&a.template, model.as_ref())?,
        },
    )?;
    let n_layers = model.info().n_layers;
    drop(model);
    let mut params = params;
    if a.quick && params.blocks.is_empty() {
        let mut q = (*params).clone();
        q.blocks = vec![n_layers / 2];
        params = q.check()?;
    }
    let t0 = std::time::Instant::now();
    let report = validate::validate(
        &a.model,
        &data,
        &params,
        &a.out.join("work"),
        &device,
        &mut |m| eprintln!("[{:>7.1} s] {m}", t0.elapsed().as_secs_f64()),
    )?;
    // The students were only needed for the layer-matching figures.
    let work = a.out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| repdrift::Error::io(&work, e))?;
    }
    repdrift::io::write_atomic(
        &a.out.join("validate.json"),
        &validate::render_json(&report),
    )?;
    repdrift::io::write_atomic(
        &a.out.join("validate.md"),
        &validate::render_markdown(&report),
    )?;
    for c in &report.checks {
        eprintln!(
            "{:>7}  {} · {}: {}",
            c.status.name(),
            c.section,
            c.name,
            c.figure
        );
    }
    let counted = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Pass | Status::Fail))
        .count();
    eprintln!(
        "repdrift: {} of {counted} checks passed; wrote {}",
        counted - report.failures(),
        a.out.join("validate.md").display()
    );
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
