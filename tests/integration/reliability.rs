//! Issue 16: nothing lost, nothing crashes. Seeded `kill -9` trials at random moments of
//! `capture` and `train`, each resumed with `--resume` to outputs byte-identical to an
//! uninterrupted run, with every state a kill leaves behind checked to be readable or refused
//! (never half-valid); and the advisory lock that stops a second writer.
//! Truth: the uninterrupted run of the same command (same bytes), and the store format's
//! definition (a manifest lists only parts whose files are complete).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::common::*;

/// Every file under `dir` (relative path, bytes), sorted; temp files of killed writers
/// (`.NAME.PID.tmp`) are left out: no reader ever opens them.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Run `cmd` and SIGKILL it after `after`; true when it was killed (false: it had finished).
fn kill_after(cmd: &mut Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// What a kill may leave in a store: no manifest, or a manifest that parses and lists only
/// parts whose files are complete safetensors with the rows it says.
fn check_store_state(dir: &Path) {
    let Ok(bytes) = std::fs::read(dir.join("manifest.json")) else {
        return;
    };
    let m: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest always parses");
    for p in m["parts"].as_array().unwrap() {
        let idx = p["index"].as_u64().unwrap();
        let f = dir.join(format!("resid_post/layer_003/part_{idx:05}.safetensors"));
        let b = std::fs::read(&f).unwrap_or_else(|_| panic!("listed part {} missing", f.display()));
        let st = safetensors::SafeTensors::deserialize(&b).expect("listed part is complete");
        assert_eq!(
            st.tensor("chosen").unwrap().shape()[0] as u64,
            p["rows"].as_u64().unwrap()
        );
    }
}

fn write_pairs(dir: &Path, n: usize) -> PathBuf {
    let mut s = String::new();
    for i in 0..n {
        s += &serde_json::json!({
            "prompt": format!("Question {i}: what should I do about case {i}?"),
            "chosen": format!(" Calmly, step {i}."),
            "rejected": format!(" Recklessly{}", "!".repeat(i % 5)),
        })
        .to_string();
        s.push('\n');
    }
    let p = dir.join("pairs.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn capture_survives_twenty_seeded_kills_and_resumes_to_the_same_bytes() {
    let dir = scratch("reliability-capture");
    let data = write_pairs(&dir, 48);
    let cmd = |out: &Path, resume: bool| {
        let mut c = bin();
        c.args(["capture", "--model"])
            .arg(minilm_path())
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args(["--part-size", "4", "--batch-size", "4"]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    // The manifest records the --out path, so every run writes to the same path.
    let out = dir.join("store");
    let t0 = Instant::now();
    assert!(cmd(&out, false).output().unwrap().status.success());
    let clean_secs = t0.elapsed().as_secs_f64();
    let want = tree(&out);
    let mut rng = StdRng::seed_from_u64(16);
    let (mut killed, mut trials) = (0, 0);
    // Twenty kills mid-run (a trial whose process finished before its kill time counts as a
    // plain resume and does not count toward the twenty).
    while killed < 20 {
        assert!(
            trials < 60,
            "only {killed} of {trials} trials were killed mid-run"
        );
        std::fs::remove_dir_all(&out).unwrap();
        trials += 1;
        let at = Duration::from_secs_f64(rng.random_range(0.0..0.9 * clean_secs));
        if kill_after(&mut cmd(&out, true), at) {
            killed += 1;
            check_store_state(&out);
            // A killed store never opens as complete.
            if out.join("manifest.json").exists() {
                let m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap())
                        .unwrap();
                if m["complete"] == false {
                    assert!(repdrift::capture::Store::open(&out).is_err());
                }
            }
        }
        assert!(
            cmd(&out, true).output().unwrap().status.success(),
            "trial {trials}: resume failed"
        );
        assert!(
            tree(&out) == want,
            "trial {trials} (kill at {at:?}): store differs from the clean run"
        );
    }
}

/// Regression: this test found that a kill between the checkpoint's two writes (tensors, then
/// `state.json`) paired step k's weights with step k − 1's state, so the resumed run differed
/// from an uninterrupted one (fixed in `src/train/checkpoint.rs`: tensors named by step,
/// `state.json` the commit point).
#[test]
fn train_survives_seeded_kills_and_resumes_to_the_same_weights() {
    let dir = scratch("reliability-train");
    let model = dir.join("base");
    std::fs::create_dir_all(&model).unwrap();
    write_checkpoint(&model, true);
    let data = write_pairs(&dir, 48);
    let cmd = |out: &Path, resume: bool| {
        let mut c = bin();
        c.args(["train", "--base"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args([
                "--method",
                "gold",
                "--trainable",
                "top:2",
                "--epochs",
                "4",
                "--lr",
                "3e-3",
                "--batch-size",
                "2",
                "--checkpoint-every",
                "1",
                "--template",
                "plain",
            ]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let clean = dir.join("clean");
    let t0 = Instant::now();
    let o = cmd(&clean, false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let clean_secs = t0.elapsed().as_secs_f64();
    let want = std::fs::read(clean.join("delta.safetensors")).unwrap();
    let mut rng = StdRng::seed_from_u64(61);
    let (mut killed, mut trial) = (0, 0);
    while killed < 20 {
        trial += 1;
        assert!(
            trial <= 60,
            "only {killed} of {} trials were killed mid-run",
            trial - 1
        );
        let out = dir.join("killed");
        let _ = std::fs::remove_dir_all(&out);
        let at = Duration::from_secs_f64(rng.random_range(0.0..0.9 * clean_secs));
        if kill_after(&mut cmd(&out, true), at) {
            killed += 1;
            // A killed run never leaves a model that loads as finished.
            assert!(
                !out.join("repdrift_delta.json").exists() || out.join("delta.safetensors").exists(),
                "trial {trial}: delta record without its tensors"
            );
        }
        let o = cmd(&out, true).output().unwrap();
        assert!(
            o.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            std::fs::read(out.join("delta.safetensors")).unwrap() == want,
            "trial {trial} (kill at {at:?}): weights differ from the clean run"
        );
    }
}

#[test]
fn a_second_writer_gets_a_named_error_and_writes_nothing() {
    let dir = scratch("reliability-lock");
    let data = write_pairs(&dir, 8);
    let out = dir.join("store");
    // This test holds the store's lock, as a running capture would.
    let lock = repdrift::io::lock_dir(&out).unwrap();
    let e = repdrift::io::lock_dir(&out).unwrap_err().to_string();
    assert!(e.contains("another repdrift process"), "{e}");
    let mut c = bin();
    c.args(["capture", "--model"])
        .arg(minilm_path())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out);
    expect_user_error(&mut c, &["another repdrift process is writing here"]);
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "the second writer wrote"
    );
    // The same for a training run's directory.
    let model = dir.join("base");
    std::fs::create_dir_all(&model).unwrap();
    write_checkpoint(&model, true);
    let run = dir.join("run");
    let held = repdrift::io::lock_dir(&run).unwrap();
    let mut t = bin();
    t.args(["train", "--base"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .args(["--method", "gold", "--trainable", "top:1", "--epochs", "1"]);
    expect_user_error(&mut t, &["another repdrift process is writing here"]);
    // Released (a process that dies releases it too): the capture now runs.
    drop((lock, held));
    assert!(c.output().unwrap().status.success());
}

/// Run `args`; expect exit 2, every needle in stderr, and `out` absent or empty afterwards.
fn refused(args: &[&std::ffi::OsStr], needles: &[&str], out: &Path) -> String {
    let o = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let empty = !out.exists() || std::fs::read_dir(out).unwrap().next().is_none();
    assert!(empty, "{}: output left behind", out.display());
    err
}

fn os(v: &[&str]) -> Vec<std::ffi::OsString> {
    v.iter().map(std::ffi::OsString::from).collect()
}

/// The catalogue of corrupted inputs the README lists (the cases not already covered in
/// `store.rs`, `chat.rs`, `archs.rs` and `metrics.rs`): each gets a named error naming the
/// file (and line, tensor or layer), exit 2, no output and no panic.
#[test]
fn corrupted_inputs_get_named_errors_and_leave_nothing_behind() {
    let dir = scratch("reliability-corrupt");
    let data = write_pairs(&dir, 8);
    let minilm = minilm_path();
    let cap = |model: &Path, data: &Path, out: &Path, extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut v = os(&["capture", "--model"]);
        v.push(model.into());
        v.extend(os(&["--data"]));
        v.push(data.into());
        v.extend(os(&["--out"]));
        v.push(out.into());
        v.extend(os(extra));
        v
    };
    let run = |v: &[std::ffi::OsString], needles: &[&str], out: &Path| {
        let r: Vec<&std::ffi::OsStr> = v.iter().map(|s| s.as_os_str()).collect();
        refused(&r, needles, out)
    };
    let out = dir.join("out");

    // A bit flipped in a safetensors header.
    let flipped = dir.join("flipped");
    std::fs::create_dir_all(&flipped).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(minilm.join(f), flipped.join(f)).unwrap();
    }
    let mut st = std::fs::read(minilm.join("model.safetensors")).unwrap();
    st[12] ^= 0x20; // inside the JSON header
    std::fs::write(flipped.join("model.safetensors"), &st).unwrap();
    run(
        &cap(&flipped, &data, &out, &[]),
        &["model.safetensors"],
        &out,
    );

    // A gzip stream cut in half.
    let gz = dir.join("cut.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &std::fs::read(&data).unwrap()).unwrap();
    let bytes = enc.finish().unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    run(&cap(&minilm, &gz, &out, &[]), &["cut.jsonl.gz"], &out);

    // An empty data file.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    run(
        &cap(&minilm, &empty, &out, &[]),
        &["empty.jsonl", "no examples"],
        &out,
    );

    // A pair whose reply is empty, pooled over the response.
    let noreply = dir.join("noreply.jsonl");
    std::fs::write(
        &noreply,
        "{\"prompt\": \"Q?\", \"chosen\": \"\", \"rejected\": \" no\"}\n",
    )
    .unwrap();
    run(
        &cap(&minilm, &noreply, &out, &["--pool", "response-mean"]),
        &["noreply.jsonl:1", "empty reply"],
        &out,
    );

    // A 1,000,000-character text is truncated to --max-tokens, not a crash.
    let long = dir.join("long.jsonl");
    std::fs::write(
        &long,
        format!("{{\"text\": \"{}\"}}\n", "word ".repeat(200_000)),
    )
    .unwrap();
    let ok = bin()
        .args(cap(
            &minilm,
            &long,
            &dir.join("long-store"),
            &["--max-tokens", "64"],
        ))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Stores: a good one, then corrupted copies compared against it.
    let good = dir.join("good");
    let o = bin()
        .args(cap(&minilm, &data, &good, &["--part-size", "4"]))
        .output()
        .unwrap();
    assert!(o.status.success());
    let copy = |name: &str| {
        let d = dir.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for e in files_under(&good) {
            let rel = e.strip_prefix(&good).unwrap();
            std::fs::create_dir_all(d.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&e, d.join(rel)).unwrap();
        }
        d
    };
    let cmp = |student: &Path, out: &Path| {
        let mut v = os(&["compare", "--base"]);
        v.push(good.clone().into());
        v.push("--student".into());
        v.push(format!("s={}", student.display()).into());
        v.extend(os(&["--out"]));
        v.push(out.into());
        v
    };
    // A manifest whose width does not match its parts.
    let wide = copy("wide");
    let mp = wide.join("manifest.json");
    let m = std::fs::read_to_string(&mp)
        .unwrap()
        .replace("\"hidden_size\": 384", "\"hidden_size\": 385");
    std::fs::write(&mp, m).unwrap();
    run(&cmp(&wide, &out), &["wide", "384"], &out);
    // A listed part that is gone.
    let holed = copy("holed");
    std::fs::remove_file(holed.join("resid_post/layer_002/part_00001.safetensors")).unwrap();
    run(
        &cmp(&holed, &out),
        &["layer_002/part_00001.safetensors"],
        &out,
    );
    // NaN activations: the error names layer, field and rows.
    let nan = copy("nan");
    let p = nan.join("resid_post/layer_003/part_00000.safetensors");
    let mut b = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    for k in 0..4 {
        b[8 + n + 4 * k..8 + n + 4 * k + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&p, b).unwrap();
    run(&cmp(&nan, &out), &["layer 3", "NaN or Inf"], &out);
    // Stores of different data.
    let other_data = write_pairs(&scratch("reliability-corrupt-other"), 9);
    let other = dir.join("other");
    assert!(bin()
        .args(cap(&minilm, &other_data, &other, &[]))
        .output()
        .unwrap()
        .status
        .success());
    run(&cmp(&other, &out), &["different data sets"], &out);
}

/// `cmd` pinned to one core (`taskset -c 0`): `available_parallelism` is then 1, so every
/// parallel stage runs on one worker.
fn one_core(cmd: Command) -> Command {
    let mut t = Command::new("taskset");
    t.args(["-c", "0"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    t
}

fn ok(mut c: Command) {
    let o = c.output().expect("run (taskset is part of util-linux)");
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The determinism guarantee the README states: the same inputs and seed give byte-identical
/// stores, metrics, probe results, weak labels and trained weights at the same thread count;
/// across 1 and 2 threads, the metrics, probe results, weak labels and weights are still
/// byte-identical and the activations agree to the numerical floor (|Δ| ≤ 1e-5; a batch split
/// differently can round the last bit of a matrix product differently).
#[test]
fn same_inputs_and_seed_give_the_same_bytes_at_one_and_two_threads() {
    let dir = scratch("reliability-determinism");
    let data = write_pairs(&dir, 24);
    let cap = |out: &Path| {
        let mut c = bin();
        c.args(["capture", "--model"])
            .arg(minilm_path())
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args(["--part-size", "8"]);
        c
    };
    let (a, b, one) = (dir.join("a"), dir.join("b"), dir.join("one"));
    ok(cap(&a));
    ok(cap(&b));
    ok(one_core(cap(&one)));
    assert!(tree(&a) == tree(&b), "two captures at two threads differ");
    // One thread against two: the same files; activations within the floor.
    let (sa, so) = (
        repdrift::capture::Store::open(&a).unwrap(),
        repdrift::capture::Store::open(&one).unwrap(),
    );
    let hook = repdrift::model::HookPoint::ResidPost;
    for l in 0..=6 {
        for f in ["chosen", "rejected"] {
            let (x, y) = (sa.read(hook, l, f).unwrap(), so.read(hook, l, f).unwrap());
            let worst = x
                .iter()
                .zip(y.iter())
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "layer {l} {f}: |Δ| {worst}");
        }
    }
    // compare and probe on the same stores: byte-identical at one and two threads.
    let cmp = |out: &Path| {
        let mut c = bin();
        c.args(["compare", "--base"])
            .arg(&a)
            .arg("--student")
            .arg(format!("s={}", b.display()))
            .arg("--out")
            .arg(out)
            .args(["--bootstrap", "20", "--permutations", "20"]);
        c
    };
    ok(cmp(&dir.join("m2")));
    ok(one_core(cmp(&dir.join("m1"))));
    ok(cmp(&dir.join("m2b")));
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert!(read(dir.join("m2/metrics.json")) == read(dir.join("m2b/metrics.json")));
    assert!(read(dir.join("m2/metrics.json")) == read(dir.join("m1/metrics.json")));
    let probe = |out: &Path| {
        let mut c = bin();
        c.args(["probe", "--train"])
            .arg(format!("src={}", a.display()))
            .arg("--out")
            .arg(out)
            .args(["--control", "--folds", "3"]);
        c
    };
    ok(probe(&dir.join("p2")));
    ok(one_core(probe(&dir.join("p1"))));
    ok(probe(&dir.join("p2b")));
    assert!(read(dir.join("p2/probe.json")) == read(dir.join("p2b/probe.json")));
    assert!(read(dir.join("p2/probe.json")) == read(dir.join("p1/probe.json")));
    // Weak labels and trained weights.
    let teacher = |out: &Path| {
        let mut c = bin();
        c.args(["teacher", "--model"])
            .arg(minilm_path())
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out);
        c
    };
    ok(teacher(&dir.join("w2.json")));
    ok(one_core(teacher(&dir.join("w1.json"))));
    ok(teacher(&dir.join("w2b.json")));
    assert!(read(dir.join("w2.json")) == read(dir.join("w2b.json")));
    assert!(read(dir.join("w2.json")) == read(dir.join("w1.json")));
    let model = dir.join("base");
    std::fs::create_dir_all(&model).unwrap();
    write_checkpoint(&model, true);
    let train = |out: &Path| {
        let mut c = bin();
        c.args(["train", "--base"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args([
                "--method",
                "gold",
                "--trainable",
                "top:2",
                "--epochs",
                "2",
                "--lr",
                "3e-3",
            ])
            .args(["--batch-size", "4"]);
        c
    };
    ok(train(&dir.join("t2")));
    ok(one_core(train(&dir.join("t1"))));
    ok(train(&dir.join("t2b")));
    assert!(read(dir.join("t2/delta.safetensors")) == read(dir.join("t2b/delta.safetensors")));
    assert!(read(dir.join("t2/delta.safetensors")) == read(dir.join("t1/delta.safetensors")));
}

/// Regression (fuzzing, issue 16): inputs on which a third-party parser panicked — parquet
/// 57.3's RLE decoder indexing past a dictionary, candle 0.11's GGUF reader dividing by a zero
/// `general.alignment` — now give a named error naming the file (exit 2), and no panic
/// message reaches the user.
#[test]
fn fuzz_crashes_in_third_party_parsers_become_named_errors() {
    let dir = scratch("reliability-fuzz-regressions");
    let fx = root().join("tests/fixtures/fuzz");
    let out = dir.join("out");
    let o = bin()
        .args(["capture", "--model"])
        .arg(minilm_path())
        .arg("--data")
        .arg(fx.join("parquet_rle_dictionary_panic.parquet"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("parquet_rle_dictionary_panic.parquet")
            && err.contains("not a readable Parquet file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let data = write_pairs(&dir, 2);
    let o = bin()
        .args(["capture", "--model"])
        .arg(fx.join("gguf_zero_alignment.gguf"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gguf_zero_alignment.gguf") && err.contains("not a readable GGUF file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists());
    // The library returns the same errors (no process-wide hook needed).
    let e = repdrift::data::read_jsonl(&fx.join("parquet_rle_dictionary_panic.parquet"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable Parquet file"), "{e}");
}
