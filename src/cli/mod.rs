//! The command line: clap definitions close to the flags, turned once into validated library
//! parameters. Progress bars live here, never in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod args;
pub mod bias;
pub mod capture;
pub mod compare;
pub mod demo;
pub mod device;
pub mod diagnose;
pub mod probe;
pub mod progress;
pub mod recommend;
pub mod report;
pub mod store;
pub mod study;
pub mod train;
pub mod validate;

/// repdrift: why does a reward model (not) transfer? Per-layer drift, probes, anchoring.
#[derive(Debug, Parser)]
#[command(name = "repdrift", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose your own reward models in one command: a base, its students, a source and
    /// targets → drift, probes, per-pair tests, a verdict per student and target, anchor advice.
    Diagnose(diagnose::DiagnoseArgs),
    /// Capture pooled per-layer activations of a model on a JSONL data set into a store.
    Capture(capture::CaptureArgs),
    /// Per-layer drift measures between a base store and student stores of the same examples.
    Compare(compare::CompareArgs),
    /// Operations on stores: `store merge` joins the shards of `capture --shard i/N`.
    Store(store::StoreArgs),
    /// Per-layer linear probes: in-distribution, transfer to targets, cross-model, control.
    Probe(probe::ProbeArgs),
    /// Transfer-aware summary metrics (IDG, AOG, PGR, NTS) from per-model accuracies.
    Transfer(probe::TransferArgs),
    /// Drift plots, a self-contained HTML page, report.md and a diagnosis in words.
    Report(report::ReportArgs),
    /// Train a reward model: gold ceiling, naive, confidence or anchored weak-to-strong student.
    Train(train::TrainArgs),
    /// Write a student stored as a delta (base + changed tensors) as a full HF
    /// LlamaForSequenceClassification directory.
    Export(report::ExportArgs),
    /// Fit the weak teacher on source half 1 and write its soft labels for half 2.
    Teacher(train::TeacherArgs),
    /// Rank layers for anchoring, propose λ per layer, optionally validate by training.
    Recommend(recommend::RecommendArgs),
    /// The whole story on the embedded default (SmolLM2-135M): train, capture, compare,
    /// probe, recommend, report into reports/demo/.
    Demo(demo::DemoArgs),
    /// A grid of weak-to-strong trainings (methods × regimes × seeds): accuracy table with
    /// error bars, drift against transfer, trajectories, drift or head (resumable).
    Study(study::StudyArgs),
    /// The implicit reward of a causal LM on a data set: response log-probabilities (minus a
    /// reference model's), and its pairwise accuracy on preference pairs.
    ImplicitReward(bias::ImplicitRewardArgs),
    /// Reward-hacking cues: the reward change when a reply gets more length, a list, an apology
    /// or hedging with its content kept; length bias; per-layer cue directions.
    Cues(bias::CuesArgs),
    /// Value bias on the Big Two: agency against communion rewards on the repo's value lexicon,
    /// the reward direction's alignment with the agency–communion axis per layer, and its move
    /// from the base.
    Values(bias::ValuesArgs),
    /// Prove that the measures measure on a real model and data: numerical floor, identity and
    /// invariances, null, planted drift, layer matching, shuffled-label probes, sample size.
    Validate(validate::ValidateArgs),
}

/// Run the parsed command line. User errors are returned as `anyhow` errors wrapping
/// [`repdrift::Error`]; `main` maps them to exit code 2.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Diagnose(a) => diagnose::run_diagnose(a)?,
        Command::Capture(a) => capture::run_capture(a)?,
        Command::Compare(a) => compare::run_compare(a)?,
        Command::Probe(a) => probe::run_probe(a)?,
        Command::Transfer(a) => probe::run_transfer(a)?,
        Command::Report(a) => report::run_report(a)?,
        Command::Train(a) => train::run_train(a)?,
        Command::Export(a) => report::run_export(a)?,
        Command::Teacher(a) => train::run_teacher(a)?,
        Command::Recommend(a) => recommend::run_recommend(a)?,
        Command::Demo(a) => demo::run_demo(a)?,
        Command::Study(a) => study::run_study(a)?,
        Command::Validate(a) => return validate::run_validate(a),
        Command::Store(a) => store::run_store(a)?,
        Command::ImplicitReward(a) => bias::run_implicit_reward(a)?,
        Command::Cues(a) => bias::run_cues(a)?,
        Command::Values(a) => bias::run_values(a)?,
    }
    Ok(ExitCode::SUCCESS)
}
