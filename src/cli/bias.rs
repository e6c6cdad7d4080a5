//! `implicit-reward`, `cues` and `values`: arguments and the runs (outputs written here, rendered by the
//! library).

use std::path::PathBuf;

use repdrift::capture::Progress;

#[derive(Debug, clap::Args)]
pub struct ImplicitRewardArgs {
    /// A causal LM: a .gguf file, an HF directory with an LM head (or tied embeddings), or a
    /// student written by `repdrift train` (its tied embeddings are the LM head).
    #[arg(long)]
    pub model: PathBuf,
    /// The reference LM whose log-probabilities are subtracted (DPO-style implicit reward).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// JSONL preference pairs (or texts: then every token after the first is scored).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory (implicit_reward.json, implicit_reward.csv).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: super::args::RunArgs,
    #[command(flatten)]
    pub data_args: super::args::DataArgs,
}

/// Progress lines counting scored sequences.
pub struct SeqLines(pub super::progress::Lines, pub usize);

impl Progress for SeqLines {
    fn start(&mut self, total: usize, done: usize) {
        self.1 = done;
        self.0.start(total, done);
    }
    fn advance(&mut self, sequences: usize, _tokens: usize) {
        self.1 += sequences;
        self.0.set(self.1, "");
    }
}

/// What every scoring command loads: checked parameters, the device, the model and the optional
/// reference (and, for `values`, the base), each in the `--dtype` it resolves to.
struct Loaded {
    params: repdrift::bias::ValidScoreParams,
    device: candle_core::Device,
    model: Box<dyn repdrift::model::HookedModel>,
    reference: Option<Box<dyn repdrift::model::HookedModel>>,
}

impl Loaded {
    fn new(
        run: &super::args::RunArgs,
        model: &std::path::Path,
        reference: Option<&std::path::Path>,
    ) -> repdrift::Result<Self> {
        let params = repdrift::bias::ScoreParams {
            max_tokens: run.max_tokens(),
            batch_size: run.batch_size,
        }
        .check()?;
        let device = run.device()?;
        let model = run.load(model, &device)?;
        let reference = reference.map(|p| run.load(p, &device)).transpose()?;
        Ok(Self {
            params,
            device,
            model,
            reference,
        })
    }

    /// The scorer of the model (and reference); refuses a reference for a reward model.
    fn scorer(&self) -> repdrift::Result<repdrift::bias::score::Scorer<'_>> {
        let s = repdrift::bias::score::Scorer {
            model: self.model.as_ref(),
            reference: self.reference.as_deref(),
            params: &self.params,
            device: &self.device,
        };
        s.source()?;
        Ok(s)
    }
}

/// Write `DIR/{stem}.json`, `.csv` and, when given, `.md`.
fn write_outputs(
    out: &std::path::Path,
    stem: &str,
    json: &[u8],
    csv: &[u8],
    md: Option<String>,
) -> repdrift::Result<()> {
    repdrift::io::write_atomic(&out.join(format!("{stem}.json")), json)?;
    repdrift::io::write_atomic(&out.join(format!("{stem}.csv")), csv)?;
    if let Some(md) = md {
        repdrift::io::write_atomic(&out.join(format!("{stem}.md")), md.as_bytes())?;
    }
    Ok(())
}

pub fn run_implicit_reward(a: &ImplicitRewardArgs) -> anyhow::Result<()> {
    use repdrift::bias::implicit::{implicit_reward, render_csv, render_json};
    let l = Loaded::new(&a.run, &a.model, a.reference.as_deref())?;
    let data = a.data_args.read(&a.data, l.model.as_ref())?;
    let mut progress = SeqLines(
        super::progress::Lines::new("implicit-reward", "sequences"),
        0,
    );
    let r = implicit_reward(
        l.model.as_ref(),
        l.reference.as_deref(),
        &data,
        &l.params,
        &l.device,
        &mut progress,
    )?;
    write_outputs(
        &a.out,
        "implicit_reward",
        &render_json(&r),
        &render_csv(&r),
        None,
    )?;
    match &r.summary {
        Some(s) => eprintln!(
            "repdrift: implicit reward of {} pairs: accuracy {:.1} % (summed log-prob), {:.1} % (per-token mean); {}",
            s.pairs,
            100.0 * s.sum.accuracy,
            100.0 * s.mean.accuracy,
            a.out.display()
        ),
        None => eprintln!(
            "repdrift: log-probabilities of {} examples in {}",
            r.examples.len(),
            a.out.display()
        ),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CuesArgs {
    /// A reward model (a checkpoint with a reward head, e.g. a `repdrift train` student) or a
    /// causal LM (then its implicit reward is used).
    #[arg(long)]
    pub model: PathBuf,
    /// For a causal LM: the reference LM of its implicit reward.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// JSONL preference pairs; every reply is edited once per cue.
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory (cues.json, cues.csv, cues.md).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: super::args::RunArgs,
    #[command(flatten)]
    pub data_args: super::args::DataArgs,
}

pub fn run_cues(a: &CuesArgs) -> anyhow::Result<()> {
    use repdrift::bias::cues::{cues, render_csv, render_json, render_md};
    let l = Loaded::new(&a.run, &a.model, a.reference.as_deref())?;
    let scorer = l.scorer()?;
    let data = a.data_args.read(&a.data, l.model.as_ref())?;
    let mut progress = SeqLines(super::progress::Lines::new("cues", "sequences"), 0);
    let r = cues(&scorer, &data, &mut progress)?;
    let md = render_md(&r, &a.model.display().to_string());
    write_outputs(&a.out, "cues", &render_json(&r), &render_csv(&r), Some(md))?;
    for c in &r.cues {
        eprintln!(
            "repdrift: cue {:8} mean Δreward {:+.3} ({:+.2} sd) over {} replies",
            c.cue.name(),
            c.mean_delta,
            c.effect_sd,
            c.n
        );
    }
    eprintln!("repdrift: cue sensitivity in {}", a.out.display());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ValuesArgs {
    /// A reward model, or a causal LM (then its implicit reward is used).
    #[arg(long)]
    pub model: PathBuf,
    /// For a causal LM: the reference LM of its implicit reward.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// The base the model was trained from: adds its reward side, its agency–communion axis and
    /// how the model's alignment moved from it (a causal LM base is scored by implicit reward).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// The value lexicon: matched pairs, agency reply as `chosen`, communion as `rejected`.
    #[arg(long, default_value = "probes/values/items.jsonl")]
    pub items: PathBuf,
    /// Output directory (values.json, values.csv, values.md).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: super::args::RunArgs,
    #[command(flatten)]
    pub data_args: super::args::DataArgs,
}

pub fn run_values(a: &ValuesArgs) -> anyhow::Result<()> {
    use repdrift::bias::score::Scorer;
    use repdrift::bias::values::{render_csv, render_json, render_md, values};
    let l = Loaded::new(&a.run, &a.model, a.reference.as_deref())?;
    let base = a
        .base
        .as_deref()
        .map(|p| a.run.load(p, &l.device))
        .transpose()?;
    let scorer = l.scorer()?;
    let base_scorer = base
        .as_deref()
        .map(|b| Scorer::new(b, &l.params, &l.device));
    let items = a.data_args.read(&a.items, l.model.as_ref())?;
    let mut progress = SeqLines(super::progress::Lines::new("values", "sequences"), 0);
    let r = values(&scorer, base_scorer.as_ref(), &items, &mut progress)?;
    let md = render_md(&r, &a.model.display().to_string());
    write_outputs(
        &a.out,
        "values",
        &render_json(&r),
        &render_csv(&r),
        Some(md),
    )?;
    eprintln!(
        "repdrift: {}",
        repdrift::bias::values::reward_sentence("the model", &r.value)
    );
    eprintln!("repdrift: value bias in {}", a.out.display());
    Ok(())
}
