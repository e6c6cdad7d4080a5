//! repdrift's side of `scripts/bench.sh`: one workload per process, so that the driver
//! (`scripts/bench.py`) measures each one's wall time and peak RSS beside its Python reference.
//! Prints one JSON line (`{"seconds": …, …}`: the timed workload, model loading and data
//! generation excluded, as in the references).
//!
//!     cargo bench --bench side_by_side -- capture [--reps 5]
//!     cargo bench --bench side_by_side -- stores --n 4096 --students 2 --dir DIR
//!     cargo bench --bench side_by_side -- compare --n 4096 --students 2 --dir DIR [--precision mixed]
//!     cargo bench --bench side_by_side -- probe
//!     cargo bench --bench side_by_side -- capture-model --model DIR --data PAIRS --ids-out IDS.json
//!
//! Workloads (the references in `benches/reference/` do the same work):
//! - `capture`: SmolLM2-135M (GGUF dequantized to f32), 8 sequences × 128 tokens, all 31
//!   `resid_post` hidden states pooled (last token) by the sink `repdrift capture` uses;
//!   median seconds per batch over `--reps` after one warm-up.
//! - `stores`: writes synthetic stores (base + students) of `n` rows, d = 576, 31 layers.
//! - `compare`: `repdrift compare` on those stores from disk, all measures but kNN and bootstrap.
//! - `probe`: 31 layers × 2,000 pairs × d = 576 Bradley–Terry probes, 5-fold CV over C ∈
//!   {0.001, 0.01, 0.1, 1} and the final fit, layers over the cores; saves the matrices to
//!   `target/bench-stores/probe_data.safetensors` for scikit-learn.
//! - `capture-model`: `repdrift capture`'s library call on a checkpoint directory (the
//!   random-weight bf16 shapes of `scripts/big-model.sh`): the model's loading and the capture
//!   (`--max-tokens 128`, batch 8, all layers, last token, reward) timed apart; writes the token
//!   ids of every batch, in the order capture runs them, to `--ids-out` so that the reference
//!   (`benches/reference/capture_big_torch.py`) runs exactly the same sequences.
//!
//! Training is measured with the `repdrift train` binary itself (`steps_per_second` of its
//! `train_summary.json`).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use repdrift::capture::Store;
use repdrift::metrics::compare::{compare, CompareParams};
use repdrift::probe::{cross_validate, ProbeData, Solver};

#[path = "common/stores.rs"]
mod stores;
#[path = "common/workloads.rs"]
mod workloads;
use workloads::{probe_layer, save_probe_data, P_LAYERS};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn capture(reps: usize) -> String {
    let model = workloads::smollm2();
    let (batch, seq) = (8usize, 128usize);
    let seqs = workloads::capture_seqs(batch, seq);
    let run = || workloads::capture_all_layers(model.as_ref(), &seqs, batch);
    run();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    format!(
        "{{\"seconds\": {med}, \"tokens\": {}, \"tokens_per_second\": {}, \"reps\": {reps}}}",
        batch * seq,
        (batch * seq) as f64 / med
    )
}

/// Load a checkpoint, capture `data` through it into a scratch store, and write the batches'
/// token ids for the reference.
fn capture_model(model_dir: &str, data: &str, ids_out: &str, work: &std::path::Path) -> String {
    use repdrift::capture::{capture, prepare_example, CaptureParams, NoProgress, Pooling};
    let dev = candle_core::Device::Cpu;
    let t = Instant::now();
    let model = repdrift::model::load(model_dir.as_ref(), &dev).expect("load the checkpoint");
    let load_s = t.elapsed().as_secs_f64();
    let data = repdrift::data::read_jsonl(data.as_ref(), None).expect("read the pairs");
    let params = CaptureParams {
        max_tokens: Some(128),
        force: true,
        ..CaptureParams::default()
    }
    .check()
    .expect("valid parameters");
    // The sequences capture runs, sorted by length as its batches are (ties by position).
    let mut seqs: Vec<Vec<u32>> = data
        .examples
        .iter()
        .flat_map(|ex| {
            prepare_example(
                model.as_ref(),
                ex,
                Pooling::Last,
                params.max_tokens,
                &data.path,
            )
            .expect("tokenize")
        })
        .map(|s| s.ids)
        .collect();
    seqs.sort_by_key(|s| s.len());
    let batches: Vec<&[Vec<u32>]> = seqs.chunks(params.batch_size).collect();
    std::fs::write(ids_out, serde_json::to_string(&batches).unwrap()).expect("write --ids-out");
    let store = work.join("capture-model-store");
    let t = Instant::now();
    let summary = capture(
        model.as_ref(),
        &data,
        &store,
        &params,
        &dev,
        &mut NoProgress,
    )
    .expect("capture");
    let secs = t.elapsed().as_secs_f64();
    let padded: usize = batches
        .iter()
        .map(|b| b.len() * b.iter().map(Vec::len).max().unwrap_or(0))
        .sum();
    format!(
        "{{\"seconds\": {secs}, \"load_seconds\": {load_s}, \"tokens\": {}, \"padded_tokens\": {padded}, \"sequences\": {}, \"tokens_per_second\": {}}}",
        summary.tokens,
        seqs.len(),
        summary.tokens as f64 / secs
    )
}

fn store_paths(dir: &std::path::Path, n: usize, students: usize) -> Vec<PathBuf> {
    (0..=students)
        .map(|s| dir.join(format!("n{n}_{s}")))
        .collect()
}

fn write_stores(dir: &std::path::Path, n: usize, students: usize) -> String {
    let t = Instant::now();
    let drift = [0.0f32, 0.5, 2.0, 1.0];
    for (s, p) in store_paths(dir, n, students).iter().enumerate() {
        if !p.join("manifest.json").exists() {
            stores::write_store(p, n, stores::LAYERS, 1 + s as u64, drift[s.min(3)]);
        }
    }
    format!("{{\"seconds\": {}}}", t.elapsed().as_secs_f64())
}

fn run_compare(
    dir: &std::path::Path,
    n: usize,
    students: usize,
    precision: repdrift::metrics::Precision,
) -> String {
    let paths = store_paths(dir, n, students);
    let base = Store::open(&paths[0]).unwrap();
    let studs: Vec<(String, Store)> = paths[1..]
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("s{}", i + 1), Store::open(p).unwrap()))
        .collect();
    let params = CompareParams {
        knn_max_n: 0,
        precision,
        ..Default::default()
    }
    .check()
    .unwrap();
    let t = Instant::now();
    let out = compare(&base, &studs, &params, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.report.rows.len(), students * (stores::LAYERS + 1));
    format!(
        "{{\"seconds\": {secs}, \"n\": {n}, \"students\": {students}, \"layers\": {}, \"precision\": \"{}\"}}",
        stores::LAYERS + 1,
        precision.name()
    )
}

// The closure returns the library's `Result`, whose error carries paths and shapes by design.
#[allow(clippy::result_large_err)]
fn probe() -> String {
    let mats: Vec<Array2<f64>> = (0..P_LAYERS).map(probe_layer).collect();
    save_probe_data(&mats);
    let data: Vec<ProbeData> = mats.into_iter().map(ProbeData::Pairs).collect();
    let cs = [0.001, 0.01, 0.1, 1.0];
    let t = Instant::now();
    let accs = repdrift::parallel::map_indexed(data.len(), |l| {
        let cv = cross_validate(&data[l], &cs, 5, 0, Solver::default())?;
        data[l].fit(cv.c, Solver::default())?;
        Ok(cv.accuracy)
    })
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let acc = accs.iter().sum::<f64>() / accs.len() as f64;
    format!("{{\"seconds\": {secs}, \"accuracy\": {acc}}}")
}

fn main() {
    // As the `repdrift` binary does (src/main.rs): freed memory stays in the heap, and one
    // BLAS thread per worker.
    repdrift::parallel::keep_freed_memory();
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; the workload is the first other argument.
    let Some(work) = args.iter().find(|a| !a.starts_with("--")).cloned() else {
        eprintln!("usage: side_by_side capture|stores|compare|probe|capture-model [options]");
        return;
    };
    let n: usize = arg(&args, "--n", "4096").parse().unwrap();
    let students: usize = arg(&args, "--students", "2").parse().unwrap();
    let dir = PathBuf::from(arg(
        &args,
        "--dir",
        &stores::bench_dir().join("sxs").to_string_lossy(),
    ));
    let line = match work.as_str() {
        "capture" => capture(arg(&args, "--reps", "5").parse().unwrap()),
        "stores" => write_stores(&dir, n, students),
        "compare" => run_compare(
            &dir,
            n,
            students,
            arg(&args, "--precision", "f64").parse().unwrap(),
        ),
        "probe" => probe(),
        "capture-model" => capture_model(
            &arg(&args, "--model", ""),
            &arg(&args, "--data", ""),
            &arg(&args, "--ids-out", ""),
            &dir,
        ),
        other => panic!("unknown workload {other}"),
    };
    println!("{line}");
}
