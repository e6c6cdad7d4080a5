//! `repdrift study`: parse, check the grid against the base, run it, render after every run.

use std::path::PathBuf;

use repdrift::report::trust::ValidateSummary;
use repdrift::study::{self, render, StudyJob, StudyProgress};

#[derive(Debug, clap::Args)]
pub struct StudyArgs {
    /// The grid (TOML; see the README's "repdrift study").
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory (runs/, labels/, study.json, study.md, index.html, plots/).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue: skip runs whose result exists (the grid may have grown).
    #[arg(long)]
    pub resume: bool,
    /// Replace OUT.
    #[arg(long)]
    pub force: bool,
    /// Only re-render the tables and plots from the finished runs.
    #[arg(long)]
    pub render_only: bool,
    /// Run at most N runs now, then stop (resume later with --resume).
    #[arg(long)]
    pub max_runs: Option<usize>,
    /// The pages' title [default: the config's `title`, else "repdrift study"].
    #[arg(long)]
    pub title: Option<String>,
    /// cpu or cuda:N (build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// A `repdrift validate` output (validate.json) of the base: its numerical floor and
    /// chance level go into "Can these numbers be trusted?" [default: the config's `validate`].
    #[arg(long)]
    pub validate: Option<PathBuf>,
}

/// Plain progress lines with the elapsed time (a job log shows where the study is), and each
/// run's training steps every few seconds (stage, done/total, rate, ETA).
struct Lines(std::time::Instant, Option<(String, super::progress::Lines)>);

impl StudyProgress for Lines {
    fn line(&mut self, msg: &str) {
        eprintln!("[{:>7.1} s] {msg}", self.0.elapsed().as_secs_f64());
    }
    fn step(&mut self, run: &str, done: usize, total: usize) {
        if self.1.as_ref().is_none_or(|(r, _)| r != run) {
            let mut l = super::progress::Lines::new(format!("study run {run}"), "steps");
            l.start(total, 0);
            self.1 = Some((run.to_string(), l));
        }
        if let Some((_, l)) = &mut self.1 {
            l.set(done, "");
        }
    }
}

fn render_all(
    s: &study::ValidStudy,
    a: &StudyArgs,
    validate: Option<&ValidateSummary>,
) -> repdrift::Result<study::Summary> {
    let runs = study::finished_runs(s, &a.out)?;
    let targets: Vec<String> = s.config.targets.keys().cloned().collect();
    let mut summary = study::summarise(&runs, &targets, &s.config.contrasts);
    summary.trust = study::trust::trust_lines(&runs, validate);
    let title = a
        .title
        .as_deref()
        .or(s.config.title.as_deref())
        .unwrap_or("repdrift study");
    render::write(&a.out, title, &runs, &summary)?;
    Ok(summary)
}

pub fn run_study(a: &StudyArgs) -> anyhow::Result<()> {
    let cfg = study::read_config(&a.config)?;
    let device = super::device::parse_device(&a.device)?;
    let base = repdrift::model::load_llama(&cfg.base, &device)?;
    let n_layers = base.blocks().len();
    let mut s = cfg.check(n_layers)?;
    let full = s.clone();
    let validate = a
        .validate
        .as_deref()
        .or(s.config.validate.as_deref())
        .map(|v| {
            use repdrift::model::HookedModel;
            repdrift::report::trust::summary_for(v, &base.info().weights_sha256)
        })
        .transpose()?;
    let validate = validate.as_ref();
    if a.render_only {
        let summary = render_all(&s, a, validate)?;
        eprintln!(
            "repdrift: rendered {} finished runs into {}",
            summary.n_runs,
            a.out.display()
        );
        return Ok(());
    }
    if let Some(m) = a.max_runs {
        let out = a.out.clone();
        let mut left = m;
        s.runs.retain(|r| {
            let done = study::run::run_path(&out, &r.id).exists();
            if done {
                return true;
            }
            if left > 0 {
                left -= 1;
                true
            } else {
                false
            }
        });
    }
    let job = StudyJob {
        out: &a.out,
        resume: a.resume,
        force: a.force,
    };
    let mut progress = Lines(std::time::Instant::now(), None);
    let mut after = || render_all(&full, a, validate).map(|_| ());
    study::run_study(&s, &base, &job, &device, &mut progress, &mut after)?;
    let summary = render_all(&full, a, validate)?;
    eprintln!(
        "repdrift: {} runs finished of {}; outputs in {}",
        summary.n_runs,
        full.runs.len(),
        a.out.display()
    );
    Ok(())
}
