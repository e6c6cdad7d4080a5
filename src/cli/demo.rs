//! `repdrift demo`.

use std::path::PathBuf;

use repdrift::demo::{self, DemoConfig};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The small version for CI (≤ 2 min): fewer pairs and steps, no validation grid.
    #[arg(long)]
    pub quick: bool,
    /// Where the report goes (default reports/demo, or reports/tmp/demo-quick with --quick).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where checkpoints and stores go (default reports/tmp/demo-work[-quick]).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Override: training epochs (experiments with more steps).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override: learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override: trainable top blocks.
    #[arg(long)]
    pub trainable_blocks: Option<usize>,
    /// Override: anchor budget (layers).
    #[arg(long)]
    pub budget: Option<usize>,
    /// Also train the validation grid's alternatives (λ × 0.1, λ × 10, the lowest-scoring
    /// layers: about 6 more minutes).
    #[arg(long)]
    pub grid: bool,
    /// Run the story on other source pairs (JSONL, .gz allowed) instead of probes/w2s/source.jsonl.
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Other target sets, NAME=FILE (repeatable), instead of probes/w2s's chat and forum.
    #[arg(long = "target", value_name = "NAME=FILE")]
    pub targets: Vec<String>,
    /// Use only the first N source pairs.
    #[arg(long)]
    pub limit_source: Option<usize>,
    /// Use only the first N pairs of each target.
    #[arg(long)]
    pub limit_targets: Option<usize>,
    /// Override: token limit per sequence.
    #[arg(long)]
    pub max_tokens: Option<usize>,
}

pub fn run_demo(a: &DemoArgs) -> anyhow::Result<()> {
    let root = PathBuf::from(".");
    let mut cfg = if a.quick {
        DemoConfig::quick(&root)
    } else {
        DemoConfig::full(&root)
    };
    cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.trainable_blocks = a.trainable_blocks.unwrap_or(cfg.trainable_blocks);
    cfg.budget = a.budget.unwrap_or(cfg.budget);
    cfg.validate |= a.grid;
    if let Some(s) = &a.source {
        cfg.source = s.clone();
    }
    if !a.targets.is_empty() {
        cfg.targets = super::train::named_paths(&a.targets, "target")?;
    }
    cfg.limit_source = a.limit_source.or(cfg.limit_source);
    cfg.limit_targets = a.limit_targets.or(cfg.limit_targets);
    cfg.max_tokens = a.max_tokens.unwrap_or(cfg.max_tokens);
    for p in [&cfg.base, &cfg.teacher] {
        if !p.exists() {
            return Err(repdrift::Error::model(
                p,
                "missing: run `bash scripts/fetch-models.sh` from the repository root first",
            )
            .into());
        }
    }
    let suffix = if a.quick { "-quick" } else { "" };
    let out = a.out.clone().unwrap_or_else(|| {
        if a.quick {
            PathBuf::from("reports/tmp/demo-quick")
        } else {
            PathBuf::from("reports/demo")
        }
    });
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reports/tmp/demo-work{suffix}")));
    // How the run was asked for, as its run of record will say (`repdrift demo --quick`, …).
    let command = std::iter::once("repdrift".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let s = demo::run(
        &cfg,
        &command,
        &work,
        &out,
        &candle_core::Device::Cpu,
        &mut |line| eprintln!("{line}"),
    )?;
    eprintln!(
        "repdrift: demo finished in {:.0} s; report in {}",
        s.total_seconds,
        out.display()
    );
    for (m, acc) in &s.accuracy {
        let a: Vec<String> = acc
            .iter()
            .map(|(k, v)| format!("{k} {:.1} %", 100.0 * v))
            .collect();
        eprintln!("  {m:<6} {}", a.join(", "));
    }
    Ok(())
}
