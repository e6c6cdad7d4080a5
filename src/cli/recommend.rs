//! `repdrift recommend`.

use std::path::PathBuf;

use repdrift::recommend::{self, RecommendParams};
use repdrift::train::{self, TrainParams, Trainable};

#[derive(Debug, clap::Args)]
pub struct RecommendArgs {
    /// A `repdrift compare` output directory (its stores are read for the λ calibration).
    #[arg(long)]
    pub metrics: PathBuf,
    /// `repdrift probe` output directories (one must be the base model's).
    #[arg(long = "probe", value_name = "DIR")]
    pub probes: Vec<PathBuf>,
    /// The student to analyse (default: the first in the metrics).
    #[arg(long)]
    pub student: Option<String>,
    /// The model name of the base's probe results.
    #[arg(long, default_value = "base")]
    pub base_model: String,
    /// How many layers to propose.
    #[arg(long, default_value_t = 3)]
    pub budget: usize,
    /// The next run's trainable part (`top:K` or `all`): only layers it computes can be anchored.
    #[arg(long, default_value = "top:4")]
    pub trainable: String,
    /// The share of ln 2 each anchored layer adds at the analysed student's drift.
    #[arg(long, default_value_t = 0.5)]
    pub fraction: f64,
    /// The file to write (recommend.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Validate by training anchored students on a grid (needs --base, --data, --teacher-labels).
    #[arg(long)]
    pub validate: bool,
    /// `small` (5 runs) or `full` (7 runs).
    #[arg(long, default_value = "small")]
    pub grid: String,
    /// Base model for --validate.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Source pairs for --validate.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Weak labels (`weak_labels.json`) for --validate; they also give the teacher's accuracies.
    #[arg(long)]
    pub teacher_labels: Option<PathBuf>,
    /// NAME=FILE target sets for --validate (names must match the teacher's evals).
    #[arg(long = "eval", value_name = "NAME=FILE")]
    pub evals: Vec<String>,
    /// Where the candidates' checkpoints go.
    #[arg(long, default_value = "runs/recommend")]
    pub runs: PathBuf,
    #[command(flatten)]
    pub run: super::train::RunFlags,
}

pub fn run_recommend(a: &RecommendArgs) -> anyhow::Result<()> {
    let trainable = Trainable::parse(&a.trainable)?;
    let (metrics, probes) = recommend::read(&a.metrics, &a.probes)?;
    let n_layers = repdrift::capture::Store::open(&metrics.base.path)?
        .manifest()
        .model
        .n_layers;
    let min_layer = match trainable {
        Trainable::Top(k) => n_layers.saturating_sub(k) + 1,
        Trainable::All => 0,
    };
    let mut rec = recommend::recommend(
        &metrics,
        &probes,
        &RecommendParams {
            student: a.student.clone(),
            base_model: a.base_model.clone(),
            budget: a.budget,
            min_layer,
            fraction: a.fraction,
        },
    )?;
    if a.validate {
        let need = |o: &Option<PathBuf>, flag: &str| {
            o.clone()
                .ok_or_else(|| repdrift::Error::param(flag, format!("--validate needs --{flag}")))
        };
        let (base_path, data_path, labels_path) = (
            need(&a.base, "base")?,
            need(&a.data, "data")?,
            need(&a.teacher_labels, "teacher-labels")?,
        );
        let full = match a.grid.as_str() {
            "small" => false,
            "full" => true,
            g => {
                return Err(repdrift::Error::param(
                    "grid",
                    format!("`{g}`: expected small or full"),
                )
                .into())
            }
        };
        let device = candle_core::Device::Cpu;
        let data = repdrift::data::read_jsonl(&data_path, None)?;
        let evals: Vec<(String, repdrift::data::Dataset)> =
            super::train::named_paths(&a.evals, "eval")?
                .into_iter()
                .map(|(n, p)| Ok((n, repdrift::data::read_jsonl(&p, None)?)))
                .collect::<repdrift::Result<_>>()?;
        let labels = super::train::read_labels(&labels_path)?;
        let base = repdrift::model::load_llama(&base_path, &device)?;
        let params = a.run.apply(TrainParams {
            trainable,
            ..Default::default()
        });
        let valid = params.clone().check()?;
        let mut progress = train::NoTrainProgress;
        let prep = train::prepare(&base, &data, &evals, &valid, &device, &mut progress)?;
        let targets: Vec<String> = evals.iter().map(|e| e.0.clone()).collect();
        let proposals = recommend::grid(&rec, full);
        rec.validation = Some(recommend::validate(
            &prep,
            &proposals,
            &params,
            &labels,
            &targets,
            &[],
            &a.runs,
            &device,
            &mut progress,
        )?);
    }
    repdrift::io::write_atomic(&a.out, &repdrift::io::json_bytes(&rec))?;
    let layers: Vec<String> = rec
        .proposal
        .layers
        .iter()
        .zip(&rec.proposal.weights)
        .map(|(l, w)| format!("{l} (λ {w:.3})"))
        .collect();
    eprintln!(
        "repdrift: anchor {} for the next run of `{}`; written to {}",
        layers.join(", "),
        rec.student,
        a.out.display()
    );
    if let Some(v) = &rec.validation {
        eprintln!("{}", v.verdict);
    }
    Ok(())
}
