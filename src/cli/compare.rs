//! `repdrift compare`: its flags and run.

use std::path::PathBuf;

use super::args::parse_shard;
use super::progress;
use repdrift::capture::LayerSelection;
use repdrift::model::HookPoint;

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The base model's store.
    #[arg(long, required_unless_present = "merge")]
    pub base: Option<PathBuf>,
    /// A student's store as NAME=STORE (repeatable).
    #[arg(long = "student", value_name = "NAME=STORE")]
    pub students: Vec<String>,
    /// Output directory (metrics.json, metrics.csv, cross_layer_cka.json; state.* with --shard).
    #[arg(long)]
    pub out: PathBuf,
    /// Hook point to compare.
    #[arg(long, default_value = "resid_post")]
    pub hook: String,
    /// Comma-separated fields (default: all the stores hold, plus `diff` for pairs).
    #[arg(long)]
    pub fields: Option<String>,
    /// `all` (layers captured in both) or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Also write the base-layer × student-layer linear-CKA matrix (first field).
    #[arg(long)]
    pub cross_layer: bool,
    /// Bootstrap replicates for 95 % percentile intervals (0 = off).
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Bootstrap replicates for linear CKA's interval alone, computed in example space (fast:
    /// O(n²) a replicate; ignored with --bootstrap, which gives every measure's interval).
    #[arg(long, default_value_t = 0)]
    pub cka_bootstrap: usize,
    /// Permutations of the student's rows for every measure's null band (its chance level)
    /// and permutation p-value (0 = off; 1000 is a good choice).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed for the bootstrap and the permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// k of the mutual k-NN overlap.
    #[arg(long, default_value_t = 10)]
    pub knn_k: usize,
    /// Compute the kNN overlap only when n is at most this (it holds the layer's rows in memory).
    #[arg(long, default_value_t = 10_000)]
    pub knn_max_n: usize,
    /// Process only shard i of N (parts p with p % N == i) and write its accumulators.
    #[arg(long, value_name = "i/N")]
    pub shard: Option<String>,
    /// Merge shard outputs (directories written with --shard) instead of reading stores.
    #[arg(long, value_name = "DIR")]
    pub merge: Vec<PathBuf>,
    /// Precision of the d × d products behind CKA, debiased CKA and Procrustes: `f64`
    /// (float64 throughout, equal to a float64 reference to ≈ 1e-13) or `mixed` (f32 products
    /// per block of 256 rows summed in float64: ≈ 1e-7 relative from the reference, ≈ 1.7×
    /// as fast). kNN, bootstrap and permutations stay float64.
    #[arg(long, default_value = "f64", value_name = "f64|mixed")]
    pub precision: repdrift::metrics::Precision,
}

pub fn run_compare(a: &CompareArgs) -> anyhow::Result<()> {
    use repdrift::io::write_atomic;
    use repdrift::metrics::compare as cmp;
    if !a.merge.is_empty() {
        if a.base.is_some() || !a.students.is_empty() {
            return Err(repdrift::Error::param(
                "merge",
                "--merge reads shard outputs; do not also give --base/--student",
            )
            .into());
        }
        let report = cmp::merge_shards(&a.merge)?;
        write_atomic(&a.out.join("metrics.json"), &cmp::render_json(&report))?;
        write_atomic(&a.out.join("metrics.csv"), &cmp::render_csv(&report))?;
        eprintln!(
            "repdrift: merged {} shards into {}",
            a.merge.len(),
            a.out.display()
        );
        return Ok(());
    }
    let params = cmp::CompareParams {
        hook: HookPoint::parse(&a.hook)?,
        fields: a
            .fields
            .as_ref()
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect()),
        layers: LayerSelection::parse(&a.layers)?,
        cross_layer: a.cross_layer,
        bootstrap: a.bootstrap,
        cka_bootstrap: a.cka_bootstrap,
        permutations: a.permutations,
        seed: a.seed,
        knn_k: a.knn_k,
        knn_max_n: a.knn_max_n,
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        precision: a.precision,
    }
    .check()?;
    let base_dir = a
        .base
        .as_ref()
        .expect("clap requires --base without --merge");
    let base = repdrift::capture::Store::open(base_dir)?;
    let mut students = Vec::new();
    for s in &a.students {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| repdrift::Error::param("student", format!("`{s}` is not NAME=STORE")))?;
        if name.is_empty() || students.iter().any(|(n, _): &(String, _)| n == name) {
            return Err(repdrift::Error::param(
                "student",
                format!("student name `{name}` is empty or repeated"),
            )
            .into());
        }
        students.push((
            name.to_string(),
            repdrift::capture::Store::open(std::path::Path::new(path))?,
        ));
    }
    let mut lines = progress::Lines::new("compare", "layers");
    let mut started = false;
    let c = cmp::compare(&base, &students, &params, &mut |step| {
        if !started {
            lines.start(step.total, 0);
            started = true;
        }
        lines.set(
            step.done,
            &format!("last: {} {} layer {}", step.student, step.hook, step.layer),
        );
    })?;
    // One writer per output directory at a time (a second compare writing there gets
    // Error::Locked); taken once the results exist, so a failed compare creates nothing.
    let _lock = repdrift::io::lock_dir(&a.out)?;
    if c.shard.is_some() {
        let (json, st) = cmp::render_state(&c)?;
        write_atomic(&a.out.join("state.safetensors"), &st)?;
        write_atomic(&a.out.join("state.json"), &json)?;
    } else {
        write_atomic(&a.out.join("metrics.json"), &cmp::render_json(&c.report))?;
        write_atomic(&a.out.join("metrics.csv"), &cmp::render_csv(&c.report))?;
        if params.cross_layer {
            write_atomic(
                &a.out.join("cross_layer_cka.json"),
                &cmp::render_cross_layer(&c.report),
            )?;
        }
    }
    eprintln!(
        "repdrift: compared {} student(s) into {}",
        students.len(),
        a.out.display()
    );
    Ok(())
}
