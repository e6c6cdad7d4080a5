//! Chat templates and conversational data: SmolLM2's own template (from the GGUF metadata,
//! rendered by minijinja) gives the text and token ids HF transformers' `apply_chat_template`
//! gives (truth: tests/reference/chat_reference.json from tests/reference/make_chat_reference.py,
//! transformers 5.23); TRL conversational pairs and `messages` records load; malformed records
//! name file and line.

use repdrift::data::{read_jsonl_with, ReadOptions};

use super::common::*;

#[test]
fn smollm2_chat_template_renders_and_tokenizes_like_hf() {
    let model = load(&smollm2_path());
    let tpl = model
        .tokenizer()
        .chat_template
        .clone()
        .expect("SmolLM2's GGUF carries a chat template");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/reference/chat_reference.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = serde_json::from_value(reference["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
    let mut got = Vec::new();
    for f in ["conversations", "trl_pairs"] {
        let opts = ReadOptions {
            template: tpl.clone(),
            ..Default::default()
        };
        let d = read_jsonl_with(
            &root().join(format!("tests/fixtures/data/{f}.jsonl")),
            &opts,
        )
        .unwrap();
        for ex in &d.examples {
            for s in &ex.sequences {
                got.push(s.clone());
            }
        }
    }
    assert_eq!(got.len(), texts.len());
    for ((s, want), want_ids) in got.iter().zip(&texts).zip(&ids) {
        assert_eq!(&s.text, want);
        // The template carries its special tokens: encode adds none for this tokenizer.
        let t = model.tokenizer().encode(&s.text, None).unwrap();
        assert_eq!(&t.ids, want_ids, "token ids differ for {:?}", s.text);
        // The response is the last message's content.
        let start = s.response_start.expect("ends with an assistant message");
        assert!(s.text[start..].starts_with(|c: char| !c.is_whitespace()));
        assert!(!s.text[start..].starts_with("<|im_start|>"));
    }
}

#[test]
fn conversational_records_load_with_builtin_templates_and_errors_name_the_line() {
    let d = read_jsonl_with(
        &root().join("tests/fixtures/data/trl_pairs.jsonl"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(d.format.fields(), ["chosen", "rejected"]);
    let s = &d.examples[0].sequences[0];
    assert_eq!(
        s.text,
        "\n\nHuman: Can you help me hurt someone?\n\nAssistant: No. If you are in danger, call local emergency services."
    );
    assert_eq!(
        &s.text[s.response_start.unwrap()..],
        "No. If you are in danger, call local emergency services."
    );
    let dir = scratch("chat-errors");
    for (name, line, needle) in [
        (
            "roles.jsonl",
            r#"{"messages": [{"role": "robot", "content": "x"}]}"#,
            "role `robot`",
        ),
        ("shape.jsonl", r#"{"messages": "hello"}"#, "list of"),
        (
            "last.jsonl",
            r#"{"chosen": [{"role": "user", "content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}"#,
            "must end with an assistant message",
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "{}\n{line}\n",
                r#"{"messages": [{"role": "user", "content": "ok"}]}"#
            ),
        )
        .unwrap();
        let err = read_jsonl_with(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        if name != "last.jsonl" {
            assert!(
                err.contains(&format!("{}:2:", p.display())) && err.contains(needle),
                "{err}"
            );
        } else {
            // The first line is a conversation, the second a pair: the shape changes.
            assert!(err.contains(":2:"), "{err}");
        }
    }
    let p = dir.join("pair_last.jsonl");
    std::fs::write(&p, r#"{"chosen": [{"role": "user", "content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}"#).unwrap();
    let err = read_jsonl_with(&p, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1:") && err.contains("must end with an assistant message"),
        "{err}"
    );
}

#[test]
fn parquet_rows_load_like_jsonl_and_a_cut_file_is_reported_truncated() {
    let d = root().join("tests/fixtures/data");
    let p = read_jsonl_with(&d.join("pairs.parquet"), &ReadOptions::default()).unwrap();
    assert_eq!(p.examples.len(), 2);
    assert_eq!(p.format.fields(), ["chosen", "rejected"]);
    assert_eq!(
        p.examples[0].sequences[0].text,
        "User: how do I hurt someone?\nBot: I won't help with that."
    );
    assert_eq!(p.examples[1].extras["label"], 0);
    let from_parquet =
        read_jsonl_with(&d.join("trl_pairs.parquet"), &ReadOptions::default()).unwrap();
    let from_jsonl = read_jsonl_with(&d.join("trl_pairs.jsonl"), &ReadOptions::default()).unwrap();
    let texts = |ds: &repdrift::data::Dataset| -> Vec<String> {
        ds.examples
            .iter()
            .flat_map(|e| e.sequences.iter().map(|s| s.text.clone()))
            .collect()
    };
    assert_eq!(texts(&from_parquet), texts(&from_jsonl));
    let err = read_jsonl_with(&d.join("truncated.parquet"), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated.parquet") && err.contains("truncated"),
        "{err}"
    );
    // Through the CLI: exit code 2, the file named.
    let out = scratch("parquet-cli").join("store");
    expect_user_error(
        bin()
            .args(["capture", "--model"])
            .arg(root().join("tests/reference/hf_rm_tiny"))
            .arg("--data")
            .arg(d.join("truncated.parquet"))
            .arg("--out")
            .arg(&out),
        &["truncated.parquet", "truncated"],
    );
    assert!(!out.exists());
}
