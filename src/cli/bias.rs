//! `implicit-reward`, `cues` and `values`: arguments and the runs (outputs written here, rendered by the
//! library).

use std::path::PathBuf;

use crate::capture::Progress;

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

pub fn run_implicit_reward(a: &ImplicitRewardArgs) -> anyhow::Result<()> {
    use crate::bias::implicit::{implicit_reward, render_csv, render_json};
    use crate::bias::ScoreParams;
    let params = ScoreParams {
        max_tokens: a.run.max_tokens(),
        batch_size: a.run.batch_size,
    }
    .check()?;
    let device = a.run.device()?;
    let model = a.run.load(&a.model, &device)?;
    let reference = a
        .reference
        .as_deref()
        .map(|p| a.run.load(p, &device))
        .transpose()?;
    let data = a.data_args.read(&a.data, model.as_ref())?;
    let mut progress = SeqLines(
        super::progress::Lines::new("implicit-reward", "sequences"),
        0,
    );
    let r = implicit_reward(
        model.as_ref(),
        reference.as_deref(),
        &data,
        &params,
        &device,
        &mut progress,
    )?;
    crate::io::write_atomic(&a.out.join("implicit_reward.json"), &render_json(&r))?;
    crate::io::write_atomic(&a.out.join("implicit_reward.csv"), &render_csv(&r))?;
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
    use crate::bias::cues::{cues, render_csv, render_json, render_md};
    use crate::bias::score::Scorer;
    use crate::bias::ScoreParams;
    let params = ScoreParams {
        max_tokens: a.run.max_tokens(),
        batch_size: a.run.batch_size,
    }
    .check()?;
    let device = a.run.device()?;
    let model = a.run.load(&a.model, &device)?;
    let reference = a
        .reference
        .as_deref()
        .map(|p| a.run.load(p, &device))
        .transpose()?;
    let scorer = Scorer {
        model: model.as_ref(),
        reference: reference.as_deref(),
        params: &params,
        device: &device,
    };
    scorer.source()?;
    let data = a.data_args.read(&a.data, model.as_ref())?;
    let mut progress = SeqLines(super::progress::Lines::new("cues", "sequences"), 0);
    let r = cues(&scorer, &data, &mut progress)?;
    crate::io::write_atomic(&a.out.join("cues.json"), &render_json(&r))?;
    crate::io::write_atomic(&a.out.join("cues.csv"), &render_csv(&r))?;
    let md = render_md(&r, &a.model.display().to_string());
    crate::io::write_atomic(&a.out.join("cues.md"), md.as_bytes())?;
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
    use crate::bias::score::Scorer;
    use crate::bias::values::{render_csv, render_json, render_md, values};
    use crate::bias::ScoreParams;
    let params = ScoreParams {
        max_tokens: a.run.max_tokens(),
        batch_size: a.run.batch_size,
    }
    .check()?;
    let device = a.run.device()?;
    let model = a.run.load(&a.model, &device)?;
    let reference = a
        .reference
        .as_deref()
        .map(|p| a.run.load(p, &device))
        .transpose()?;
    let base = a
        .base
        .as_deref()
        .map(|p| a.run.load(p, &device))
        .transpose()?;
    let scorer = Scorer {
        model: model.as_ref(),
        reference: reference.as_deref(),
        params: &params,
        device: &device,
    };
    scorer.source()?;
    let base_scorer = base.as_deref().map(|b| Scorer::new(b, &params, &device));
    let items = a.data_args.read(&a.items, model.as_ref())?;
    let mut progress = SeqLines(super::progress::Lines::new("values", "sequences"), 0);
    let r = values(&scorer, base_scorer.as_ref(), &items, &mut progress)?;
    crate::io::write_atomic(&a.out.join("values.json"), &render_json(&r))?;
    crate::io::write_atomic(&a.out.join("values.csv"), &render_csv(&r))?;
    let md = render_md(&r, &a.model.display().to_string());
    crate::io::write_atomic(&a.out.join("values.md"), md.as_bytes())?;
    eprintln!(
        "repdrift: {}",
        crate::bias::values::reward_sentence("the model", &r.value)
    );
    eprintln!("repdrift: value bias in {}", a.out.display());
    Ok(())
}
