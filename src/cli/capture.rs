//! `repdrift capture`: its flags, progress (a bar on a terminal, lines otherwise) and run.

use std::path::PathBuf;

use super::args::{self, parse_shard};
use super::progress;
use repdrift::capture::{self, CaptureParams, LayerSelection, Pooling, Progress};
use repdrift::model::HookPoint;

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// A .gguf file (Llama family) or an HF directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL: {"text"}, {"prompt","chosen","rejected"} or {"chosen","rejected"} per line.
    #[arg(long)]
    pub data: PathBuf,
    /// The store directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Pooling: last, mean or response-mean.
    #[arg(long, default_value = "last")]
    pub pool: String,
    /// Comma-separated hook points: resid_post, attn_out, mlp_out.
    #[arg(long, default_value = "resid_post")]
    pub hooks: String,
    /// `all` or a comma-separated list of layers (HF hidden_states indexing).
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[command(flatten)]
    pub run: args::RunArgs,
    #[command(flatten)]
    pub data_args: args::DataArgs,
    /// Examples per store part (the unit of atomic write and resume).
    #[arg(long, default_value_t = 256)]
    pub part_size: usize,
    /// Continue an interrupted capture at its first missing part.
    #[arg(long)]
    pub resume: bool,
    /// Overwrite a non-empty store.
    #[arg(long)]
    pub force: bool,
    /// Capture only shard i of N (a contiguous run of the store's parts, e.g. one Slurm array
    /// task each); join the N shard stores with `repdrift store merge`.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
}

impl CaptureArgs {
    /// The validated library parameters.
    pub fn params(&self) -> repdrift::Result<capture::ValidCaptureParams> {
        let hooks = self
            .hooks
            .split(',')
            .map(|h| HookPoint::parse(h.trim()))
            .collect::<repdrift::Result<Vec<_>>>()?;
        CaptureParams {
            pooling: Pooling::parse(&self.pool)?,
            hooks,
            layers: LayerSelection::parse(&self.layers)?,
            batch_size: self.run.batch_size,
            max_tokens: self.run.max_tokens(),
            part_size: self.part_size,
            resume: self.resume,
            force: self.force,
            shard: self.shard.as_deref().map(parse_shard).transpose()?,
        }
        .check()
    }
}

/// Capture progress on a terminal: a bar over examples, tokens/s as its message.
struct Bar {
    bar: indicatif::ProgressBar,
    tokens: usize,
}

impl Progress for Bar {
    fn start(&mut self, total: usize, done: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.reset_eta();
    }
    fn advance(&mut self, _sequences: usize, tokens: usize) {
        self.tokens += tokens;
        let secs = self.bar.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{:.0} tok/s", self.tokens as f64 / secs));
    }
    fn part_written(&mut self, examples_done: usize) {
        self.bar.set_position(examples_done as u64);
    }
    fn finish(&mut self) {
        self.bar.finish();
    }
}

/// Capture progress as lines (not a terminal): examples written and tokens/s.
struct CaptureLines {
    lines: progress::Lines,
    examples_done: usize,
    tokens: usize,
}

impl Progress for CaptureLines {
    fn start(&mut self, total: usize, done: usize) {
        self.examples_done = done;
        self.lines.start(total, done);
    }
    fn advance(&mut self, _sequences: usize, tokens: usize) {
        self.tokens += tokens;
        let tps = self.tokens as f64 / self.lines.elapsed_secs().max(1e-9);
        self.lines
            .set(self.examples_done, &format!("{tps:.0} tok/s"));
    }
    fn part_written(&mut self, examples_done: usize) {
        self.examples_done = examples_done;
    }
}

pub fn run_capture(args: &CaptureArgs) -> anyhow::Result<()> {
    let params = args.params()?;
    let device = args.run.device()?;
    let model = args.run.load(&args.model, &device)?;
    let data = args.data_args.read(&args.data, model.as_ref())?;
    let mut progress: Box<dyn Progress> = if progress::is_terminal() {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} examples ({per_sec}) {msg} ETA {eta}",
            )
            .expect("valid template"),
        );
        Box::new(Bar { bar: pb, tokens: 0 })
    } else {
        let stage = match params.shard {
            Some((i, n)) => format!("capture shard {i}/{n}"),
            None => "capture".into(),
        };
        Box::new(CaptureLines {
            lines: progress::Lines::new(stage, "examples"),
            examples_done: 0,
            tokens: 0,
        })
    };
    let t0 = std::time::Instant::now();
    let s = capture::capture(
        model.as_ref(),
        &data,
        &args.out,
        &params,
        &device,
        progress.as_mut(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "repdrift: captured {} examples into {} ({} parts written, {} resumed; {} tokens in {:.1} s, {:.0} tok/s)",
        s.examples,
        args.out.display(),
        s.parts_written,
        s.parts_skipped,
        s.tokens,
        secs,
        s.tokens as f64 / secs.max(1e-9)
    );
    Ok(())
}
