//! `repdrift probe` and `repdrift transfer`: their flags and runs.

use std::path::PathBuf;

use super::args::named;
use repdrift::capture::LayerSelection;
use repdrift::model::HookPoint;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The source store to train on, as STORE or NAME=STORE (default name `source`).
    #[arg(long)]
    pub train: String,
    /// A target store of the same model, NAME=STORE (repeatable).
    #[arg(long = "eval", value_name = "NAME=STORE")]
    pub evals: Vec<String>,
    /// Another model's store of the training examples, MODEL=STORE (repeatable).
    #[arg(long = "apply-to", value_name = "MODEL=STORE")]
    pub apply_to: Vec<String>,
    /// The name of the model whose stores --train and --eval are.
    #[arg(long, default_value = "model")]
    pub model: String,
    /// Output directory (probe.json, probe.csv).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "resid_post")]
    pub hook: String,
    /// `all` (layers captured in every store) or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Comma-separated grid of inverse L2 strengths (scikit-learn's C).
    #[arg(long, default_value = "0.001,0.01,0.1,1")]
    pub c: String,
    /// Also train on shuffled preference labels (Hewitt & Liang's control task).
    #[arg(long)]
    pub control: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// JSON: {"source", "targets", "weak", "ceiling"?, "accuracy": {model: {dataset: acc}}}.
    #[arg(long)]
    pub scores: PathBuf,
    /// Output file (transfer.json).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_probe(a: &ProbeArgs) -> anyhow::Result<()> {
    use repdrift::probe::run::{probe, render_csv, render_json, NamedStore, ProbeParams};
    let cs =
        a.c.split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| repdrift::Error::param("c", format!("`{v}` is not a number")))
            })
            .collect::<repdrift::Result<Vec<_>>>()?;
    let params = ProbeParams {
        model: a.model.clone(),
        hook: HookPoint::parse(&a.hook)?,
        layers: LayerSelection::parse(&a.layers)?,
        folds: a.folds,
        cs,
        control: a.control,
        seed: a.seed,
        ..Default::default()
    }
    .check()?;
    let open = |s: &str, flag: &str, default: Option<&str>| -> repdrift::Result<NamedStore> {
        let (name, path) = named(s, flag, default)?;
        Ok(NamedStore {
            name,
            store: repdrift::capture::Store::open(&path)?,
        })
    };
    let train = open(&a.train, "train", Some("source"))?;
    let evals = a
        .evals
        .iter()
        .map(|e| open(e, "eval", None))
        .collect::<repdrift::Result<Vec<_>>>()?;
    let apply = a
        .apply_to
        .iter()
        .map(|e| open(e, "apply-to", None))
        .collect::<repdrift::Result<Vec<_>>>()?;
    let report = probe(&train, &evals, &apply, &params)?;
    repdrift::io::write_atomic(&a.out.join("probe.json"), &render_json(&report))?;
    repdrift::io::write_atomic(&a.out.join("probe.csv"), &render_csv(&report))?;
    eprintln!(
        "repdrift: {} probe rows into {}",
        report.rows.len(),
        a.out.display()
    );
    Ok(())
}

pub fn run_transfer(a: &TransferArgs) -> anyhow::Result<()> {
    use repdrift::probe::transfer::{render_json, summarise, Scores};
    let text = std::fs::read(&a.scores).map_err(|e| repdrift::Error::io(&a.scores, e))?;
    let scores: Scores = serde_json::from_slice(&text).map_err(|e| repdrift::Error::Json {
        path: a.scores.clone(),
        cause: e,
    })?;
    let r = summarise(&scores)?;
    repdrift::io::write_atomic(&a.out, &render_json(&r))?;
    eprintln!(
        "repdrift: transfer summary of {} student(s) into {}",
        r.students.len(),
        a.out.display()
    );
    Ok(())
}
