//! `repdrift store merge`: join the shard stores of `capture --shard i/N` into one store.

use std::path::PathBuf;

/// Operations on activation stores.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Join the N shard stores of `capture --shard i/N` (any order) into the store a single
    /// capture would have written (same files, same manifest, byte for byte).
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shard stores, all N of them.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The store to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite a non-empty OUT.
    #[arg(long)]
    pub force: bool,
}

pub fn run_store(a: &StoreArgs) -> anyhow::Result<()> {
    match &a.command {
        StoreCommand::Merge(m) => {
            let t0 = std::time::Instant::now();
            let manifest = repdrift::capture::merge::merge_shards(&m.shards, &m.out, m.force)?;
            eprintln!(
                "repdrift: merged {} shards ({} examples, {} parts) into {} in {:.1} s",
                m.shards.len(),
                manifest.n_examples(),
                manifest.parts.len(),
                m.out.display(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}
