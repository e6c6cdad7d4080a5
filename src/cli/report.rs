//! `repdrift report` and `repdrift export`: their flags and runs.

use std::path::PathBuf;

use super::args::named;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A student directory written by `repdrift train` (a delta), or any Llama reward model.
    #[arg(long)]
    pub model: PathBuf,
    /// The HF directory to write (config.json, model.safetensors in f32, tokenizer.json and
    /// the training records).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace OUT when it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A `repdrift compare` output directory.
    #[arg(long)]
    pub metrics: PathBuf,
    /// A `repdrift probe` output directory (repeatable: one per model).
    #[arg(long = "probe", value_name = "DIR")]
    pub probes: Vec<PathBuf>,
    /// A `repdrift transfer` output file.
    #[arg(long)]
    pub transfer: Option<PathBuf>,
    /// A `repdrift recommend` output file (adds the recommendation and its validation).
    #[arg(long)]
    pub recommendation: Option<PathBuf>,
    /// A `repdrift validate` output (validate.json) of the base model: adds its numerical floor
    /// and check results to "Can these numbers be trusted?".
    #[arg(long)]
    pub validate: Option<PathBuf>,
    /// A `repdrift cues` output directory, NAME=DIR (repeatable): adds the cue and value
    /// section.
    #[arg(long = "cues", value_name = "NAME=DIR")]
    pub cues: Vec<String>,
    /// A `repdrift values` output directory, NAME=DIR (repeatable).
    #[arg(long = "values", value_name = "NAME=DIR")]
    pub values: Vec<String>,
    /// The NAME (of --cues) of the gold student, whose cue effects the others are held to.
    #[arg(long)]
    pub gold: Option<String>,
    #[arg(long, default_value = "repdrift report")]
    pub title: String,
    /// The model name (`probe --model`) of the base model's probe results.
    #[arg(long, default_value = "base")]
    pub base_model: String,
    /// Output directory (index.html, report.md, report.json, plots/).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_export(a: &ExportArgs) -> anyhow::Result<()> {
    if a.out.exists() && !a.force {
        return Err(repdrift::Error::param(
            "out",
            format!("{} exists; pass --force to replace it", a.out.display()),
        )
        .into());
    }
    repdrift::model::export(&a.model, &a.out, &candle_core::Device::Cpu)?;
    eprintln!(
        "repdrift: wrote {} (HF LlamaForSequenceClassification, f32)",
        a.out.display()
    );
    Ok(())
}

/// The cue and value section from `--cues` / `--values` directories (None when neither given).
fn bias_section(a: &ReportArgs) -> repdrift::Result<Option<repdrift::bias::summary::BiasSection>> {
    use repdrift::bias::{cues::CueReport, summary, values::ValueReport};
    fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> repdrift::Result<T> {
        let bytes = std::fs::read(path).map_err(|e| repdrift::Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| repdrift::Error::Json {
            path: path.to_path_buf(),
            cause: e,
        })
    }
    let mut models: Vec<(String, Option<CueReport>, Option<ValueReport>)> = Vec::new();
    for (flag, list) in [("cues", &a.cues), ("values", &a.values)] {
        for s in list {
            let (name, dir) = named(s, flag, None)?;
            let i = match models.iter().position(|m| m.0 == name) {
                Some(i) => i,
                None => {
                    models.push((name, None, None));
                    models.len() - 1
                }
            };
            if flag == "cues" {
                models[i].1 = Some(read(&dir.join("cues.json"))?);
            } else {
                models[i].2 = Some(read(&dir.join("values.json"))?);
            }
        }
    }
    if models.is_empty() {
        return Ok(None);
    }
    let measured: Vec<summary::Measured<'_>> = models
        .iter()
        .map(|(n, c, v)| summary::Measured {
            name: n,
            cues: c.as_ref(),
            values: v.as_ref(),
            implicit: None,
        })
        .collect();
    Ok(Some(summary::section(&measured, a.gold.as_deref())))
}

pub fn run_report(a: &ReportArgs) -> anyhow::Result<()> {
    use repdrift::report;
    let mut inputs = report::read_inputs(
        &a.metrics,
        &a.probes,
        a.transfer.as_deref(),
        a.recommendation.as_deref(),
        &a.title,
        &a.base_model,
    )?;
    if let Some(v) = &a.validate {
        inputs.validate = Some(report::trust::summary_for(
            v,
            &inputs.metrics.base.model_sha256,
        )?);
    }
    inputs.bias = bias_section(a)?;
    let r = report::build(&inputs, &report::diagnosis::Rules::default());
    let plots = report::plots::render_all(&r)?;
    report::write(&a.out, &r, &plots)?;
    for f in &r.findings {
        for s in &f.sentences {
            eprintln!("{s}");
        }
    }
    eprintln!(
        "repdrift: report with {} plots in {}",
        plots.len(),
        a.out.display()
    );
    Ok(())
}
