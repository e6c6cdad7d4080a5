//! Preference and text data sets: JSONL readers that turn each line into an [`Example`].
//!
//! Three line shapes are accepted, and one file must use one of them throughout:
//! - `{"text": …}` → one sequence per example ([`DataFormat::Text`]);
//! - `{"prompt": …, "chosen": …, "rejected": …}` → two sequences, `prompt + chosen` and
//!   `prompt + rejected`, concatenated as they are ([`DataFormat::PromptPair`]);
//! - `{"chosen": …, "rejected": …}` → HH-RLHF full transcripts ([`DataFormat::Transcript`]); the
//!   response is the text after the last `"\n\nAssistant:"`.
//! - PKU-SafeRLHF rows `{"prompt", "response_0", "response_1", "safer_response_id",
//!   "better_response_id", …}` ([`DataFormat::PkuPair`]): the chosen reply is the one the
//!   [`PairLabel`] names; prompt and reply are rendered as a user and an assistant message with
//!   the [`chat::ChatTemplate`] of the [`ReadOptions`] (default `hh`:
//!   `"\n\nHuman: {prompt}\n\nAssistant: {response}"`);
//! - conversations `{"messages": [{"role", "content"}, …]}` → one sequence
//!   ([`DataFormat::Conversation`]), rendered with the chat template;
//! - conversational pairs as TRL writes them: `{"chosen": [messages], "rejected": [messages]}`,
//!   optionally with `"prompt": [messages]` before both ([`DataFormat::ConversationPair`]).
//!
//! Other fields (`label`, `id`, …) are kept per example in [`Example::extras`].
//! Files ending in `.gz` are read through gzip (a truncated archive is reported as such).
//! Errors name the file and the 1-based line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use repdrift_core::store::DataFormat;

/// The neutral sentence of the `length` cue (`repdrift cues`) and of the shortcut teacher
/// ([`crate::train::WeakRule::Padding`]): a reply made longer, nothing said.
pub const CUE_PADDING: &str = "That is my reply to your message.";

pub mod chat;
pub mod parquet_file;
pub mod thrift;
use chat::{ChatTemplate, Message};

/// Which PKU-SafeRLHF label picks the chosen reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairLabel {
    /// `safer_response_id`
    #[default]
    Safer,
    /// `better_response_id`
    Better,
}

impl PairLabel {
    /// Parse `safer` or `better`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "safer" => Ok(PairLabel::Safer),
            "better" => Ok(PairLabel::Better),
            _ => Err(Error::param(
                "label",
                format!("`{s}`: expected `safer` or `better`"),
            )),
        }
    }

    fn field(self) -> &'static str {
        match self {
            PairLabel::Safer => "safer_response_id",
            PairLabel::Better => "better_response_id",
        }
    }
}

/// How to read a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Keep only the first N examples.
    pub limit: Option<usize>,
    /// The label that picks the chosen reply of PKU-SafeRLHF rows.
    pub label: PairLabel,
    /// How message lists (conversations, PKU prompt + reply) become text.
    pub template: ChatTemplate,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            limit: None,
            label: PairLabel::Safer,
            template: ChatTemplate::Hh,
        }
    }
}

/// One sequence to feed to a model: its text and the byte offset where the response starts
/// (`None` for plain texts).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub text: String,
    pub response_start: Option<usize>,
}

/// One example: one sequence per field of its [`DataFormat`], plus its extra fields.
#[derive(Debug, Clone)]
pub struct Example {
    /// 1-based line in the source file.
    pub line: usize,
    /// One sequence per field, in [`DataFormat::fields`] order.
    pub sequences: Vec<Sequence>,
    /// Fields of the line other than the text fields.
    pub extras: serde_json::Map<String, serde_json::Value>,
}

/// A loaded data file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub sha256: String,
    pub format: DataFormat,
    pub examples: Vec<Example>,
}

/// The marker that starts the assistant's turn in HH-RLHF transcripts.
pub const ASSISTANT_MARKER: &str = "\n\nAssistant:";

fn text_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<String> {
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("field `{key}` must be a string, found {}", json_kind(other)),
        }),
        None => Err(Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("missing field `{key}`"),
        }),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Byte offset where the last assistant reply of an HH-RLHF transcript starts (after the
/// marker and the space that follows it, which belongs to the prompt side).
pub fn transcript_response_start(text: &str) -> Option<usize> {
    text.rfind(ASSISTANT_MARKER).map(|i| {
        let mut start = i + ASSISTANT_MARKER.len();
        if text[start..].starts_with(' ') {
            start += 1;
        }
        start
    })
}

fn detect_format(obj: &serde_json::Map<String, serde_json::Value>) -> Option<DataFormat> {
    if obj.contains_key("response_0") && obj.contains_key("response_1") {
        Some(DataFormat::PkuPair)
    } else if obj.contains_key("messages") {
        Some(DataFormat::Conversation)
    } else if obj.get("chosen").is_some_and(|v| v.is_array())
        || obj.get("rejected").is_some_and(|v| v.is_array())
    {
        Some(DataFormat::ConversationPair)
    } else if obj.contains_key("chosen") || obj.contains_key("rejected") {
        if obj.contains_key("prompt") {
            Some(DataFormat::PromptPair)
        } else {
            Some(DataFormat::Transcript)
        }
    } else if obj.contains_key("text") {
        Some(DataFormat::Text)
    } else {
        None
    }
}

/// Parse one non-blank JSONL line into an example of `format` (detected from the first line
/// when `None`).
fn parse_line(
    raw: &str,
    path: &Path,
    line: usize,
    format: Option<DataFormat>,
    label: PairLabel,
    template: &ChatTemplate,
) -> Result<(DataFormat, Example)> {
    let mut obj = json_object(raw, path, line)?;
    let format = line_format(&obj, format, path, line)?;
    let sequences = match format {
        DataFormat::Text => vec![Sequence {
            text: text_field(&obj, "text", path, line)?,
            response_start: None,
        }],
        DataFormat::PromptPair => prompt_pair(&obj, path, line)?,
        DataFormat::Transcript => transcript_pair(&obj, path, line)?,
        DataFormat::PkuPair => pku_pair(&obj, label, template, path, line)?,
        DataFormat::Conversation => {
            let msgs = messages_field(&obj, "messages", path, line)?;
            let mut seq = rendered(template, &msgs, path, line)?;
            if msgs.last().is_some_and(|m| m.role != "assistant") {
                seq.response_start = None;
            }
            vec![seq]
        }
        DataFormat::ConversationPair => conversation_pair(&obj, template, path, line)?,
    };
    for key in [
        "text",
        "prompt",
        "chosen",
        "rejected",
        "response_0",
        "response_1",
        "messages",
    ] {
        obj.remove(key);
    }
    Ok((
        format,
        Example {
            line,
            sequences,
            extras: obj,
        },
    ))
}

/// The line as a JSON object.
fn json_object(
    raw: &str,
    path: &Path,
    line: usize,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| Error::MalformedLine {
        path: path.to_path_buf(),
        line,
        reason: format!("not valid JSON ({e})"),
    })?;
    let serde_json::Value::Object(obj) = value else {
        return Err(Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("expected a JSON object, found {}", json_kind(&value)),
        });
    };
    Ok(obj)
}

/// The line's shape, which must be the file's (`format`, from the first line) when known.
fn line_format(
    obj: &serde_json::Map<String, serde_json::Value>,
    format: Option<DataFormat>,
    path: &Path,
    line: usize,
) -> Result<DataFormat> {
    let detected = detect_format(obj).ok_or_else(|| Error::MalformedLine {
        path: path.to_path_buf(),
        line,
        reason:
            "no text field: expected `text`, `messages`, or `chosen` and `rejected` (with optional `prompt`)"
                .into(),
    })?;
    match format {
        Some(f) if f != detected => Err(Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!(
                "line has the {detected:?} shape but earlier lines have the {f:?} shape; one file holds one shape"
            ),
        }),
        Some(f) => Ok(f),
        None => Ok(detected),
    }
}

/// `prompt` + `chosen` / `rejected` strings: the response starts after the prompt.
fn prompt_pair(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
    line: usize,
) -> Result<Vec<Sequence>> {
    let prompt = text_field(obj, "prompt", path, line)?;
    let mut seqs = Vec::with_capacity(2);
    for key in ["chosen", "rejected"] {
        let resp = text_field(obj, key, path, line)?;
        seqs.push(Sequence {
            text: format!("{prompt}{resp}"),
            response_start: Some(prompt.len()),
        });
    }
    Ok(seqs)
}

/// HH-style transcripts in `chosen` / `rejected`: the response starts at the last assistant
/// turn.
fn transcript_pair(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
    line: usize,
) -> Result<Vec<Sequence>> {
    let mut seqs = Vec::with_capacity(2);
    for key in ["chosen", "rejected"] {
        let text = text_field(obj, key, path, line)?;
        let start = transcript_response_start(&text).ok_or_else(|| Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("field `{key}` has no {ASSISTANT_MARKER:?} turn"),
        })?;
        seqs.push(Sequence {
            text,
            response_start: Some(start),
        });
    }
    Ok(seqs)
}

/// PKU-SafeRLHF: `prompt`, `response_0`, `response_1` and a 0/1 label field (`--label`), chosen
/// first.
fn pku_pair(
    obj: &serde_json::Map<String, serde_json::Value>,
    label: PairLabel,
    template: &ChatTemplate,
    path: &Path,
    line: usize,
) -> Result<Vec<Sequence>> {
    let prompt = text_field(obj, "prompt", path, line)?;
    let key = label.field();
    let id = match obj.get(key) {
        Some(v) if v.as_u64() == Some(0) || v.as_u64() == Some(1) => v.as_u64().expect("checked"),
        Some(v) => {
            return Err(Error::MalformedLine {
                path: path.to_path_buf(),
                line,
                reason: format!("field `{key}` must be 0 or 1, found {v}"),
            })
        }
        None => {
            return Err(Error::MalformedLine {
                path: path.to_path_buf(),
                line,
                reason: format!("missing field `{key}` (the label chosen with --label)"),
            })
        }
    };
    let mut seqs = Vec::with_capacity(2);
    for k in [id, 1 - id] {
        let resp = text_field(obj, &format!("response_{k}"), path, line)?;
        let msgs = [
            Message {
                role: "user".into(),
                content: prompt.clone(),
            },
            Message {
                role: "assistant".into(),
                content: resp,
            },
        ];
        seqs.push(rendered(template, &msgs, path, line)?);
    }
    Ok(seqs)
}

/// Message-list pairs (`chosen` / `rejected`, with an optional `prompt` list), each ending with
/// an assistant message.
fn conversation_pair(
    obj: &serde_json::Map<String, serde_json::Value>,
    template: &ChatTemplate,
    path: &Path,
    line: usize,
) -> Result<Vec<Sequence>> {
    // An absent or empty `prompt` list: the prompt is inside chosen/rejected (TRL's
    // implicit-prompt form).
    let prompt = match obj.get("prompt") {
        Some(serde_json::Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(_) => messages_field(obj, "prompt", path, line)?,
        None => Vec::new(),
    };
    let mut seqs = Vec::with_capacity(2);
    for key in ["chosen", "rejected"] {
        let mut msgs = prompt.clone();
        msgs.extend(messages_field(obj, key, path, line)?);
        if msgs.last().is_none_or(|m| m.role != "assistant") {
            return Err(Error::MalformedLine {
                path: path.to_path_buf(),
                line,
                reason: format!("`{key}` must end with an assistant message"),
            });
        }
        seqs.push(rendered(template, &msgs, path, line)?);
    }
    Ok(seqs)
}

/// A message list field: an array of `{"role", "content"}` objects.
fn messages_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<Vec<Message>> {
    let bad = |reason: String| Error::MalformedLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let v = obj
        .get(key)
        .ok_or_else(|| bad(format!("missing field `{key}`")))?;
    let msgs: Vec<Message> = serde_json::from_value(v.clone()).map_err(|e| {
        bad(format!(
            "field `{key}` must be a list of {{\"role\", \"content\"}} messages ({e})"
        ))
    })?;
    if msgs.is_empty() {
        return Err(bad(format!("field `{key}` is an empty message list")));
    }
    Ok(msgs)
}

/// Render messages into a sequence, placing template errors at the file and line.
fn rendered(
    template: &ChatTemplate,
    msgs: &[Message],
    path: &Path,
    line: usize,
) -> Result<Sequence> {
    let (text, start) = template
        .render(msgs)
        .map_err(|reason| Error::MalformedLine {
            path: path.to_path_buf(),
            line,
            reason: format!("chat template `{}`: {reason}", template.name()),
        })?;
    Ok(Sequence {
        text,
        response_start: Some(start),
    })
}

/// Read a JSONL data file. `limit` keeps the first N examples.
///
/// ```no_run
/// let ds = repdrift::data::read_jsonl("probes/data/source.jsonl".as_ref(), Some(10)).unwrap();
/// println!("{} examples of shape {:?}", ds.examples.len(), ds.format);
/// ```
pub fn read_jsonl(path: &Path, limit: Option<usize>) -> Result<Dataset> {
    read_jsonl_with(
        path,
        &ReadOptions {
            limit,
            ..Default::default()
        },
    )
}

/// A buffered reader of `path`, through gzip when the name ends in `.gz`.
pub fn open_lines(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

/// Read a data file with explicit [`ReadOptions`]: JSONL (gzip when the name ends in `.gz`),
/// or Parquet when it ends in `.parquet` (errors then name the 1-based row as the line).
pub fn read_jsonl_with(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    let limit = opts.limit;
    if path.extension().is_some_and(|e| e == "parquet") {
        // Read once: the digest and the rows come from the same bytes.
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha256 = crate::io::sha256_bytes(&bytes);
        let mut format = None;
        let mut examples = Vec::new();
        parquet_file::for_each_row(path, bytes.into(), limit, |i, row| {
            let (f, ex) = parse_line(row, path, i + 1, format, opts.label, &opts.template)?;
            format = Some(f);
            examples.push(ex);
            Ok(())
        })?;
        let format = format.ok_or_else(|| Error::EmptyData {
            path: path.to_path_buf(),
        })?;
        return Ok(Dataset {
            path: path.to_path_buf(),
            sha256,
            format,
            examples,
        });
    }
    let sha256 = crate::io::sha256_file(path)?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let reader = open_lines(path)?;
    let mut format = None;
    let mut examples = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof if gz => Error::Truncated {
                path: path.to_path_buf(),
                detail: format!("the gzip stream ends early (after line {})", lineno - 1),
            },
            std::io::ErrorKind::InvalidData if !gz => Error::MalformedLine {
                path: path.to_path_buf(),
                line: lineno,
                reason: "not valid UTF-8".into(),
            },
            _ => Error::io(path, e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|l| examples.len() >= l) {
            break;
        }
        let (f, ex) = parse_line(&line, path, lineno, format, opts.label, &opts.template)?;
        format = Some(f);
        examples.push(ex);
    }
    let format = format.ok_or_else(|| Error::EmptyData {
        path: path.to_path_buf(),
    })?;
    Ok(Dataset {
        path: path.to_path_buf(),
        sha256,
        format,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(DataFormat, Example)> {
        parse_line(
            s,
            Path::new("x.jsonl"),
            7,
            None,
            PairLabel::Safer,
            &ChatTemplate::Hh,
        )
    }

    #[test]
    fn pku_rows_pick_the_labelled_reply() {
        let row = r#"{"prompt":"How do I hurt him?","response_0":"Like this.","response_1":"Please don't.","safer_response_id":1,"better_response_id":0,"is_response_0_safe":false}"#;
        let (f, ex) = parse(row).unwrap();
        assert_eq!(f, DataFormat::PkuPair);
        let c = &ex.sequences[0];
        assert_eq!(
            c.text,
            "\n\nHuman: How do I hurt him?\n\nAssistant: Please don't."
        );
        assert_eq!(&c.text[c.response_start.unwrap()..], "Please don't.");
        assert!(ex.sequences[1].text.ends_with("Like this."));
        assert!(
            ex.extras.contains_key("is_response_0_safe") && !ex.extras.contains_key("response_0")
        );
        let (_, ex) = parse_line(
            row,
            Path::new("x.jsonl"),
            2,
            None,
            PairLabel::Better,
            &ChatTemplate::Hh,
        )
        .unwrap();
        assert!(ex.sequences[0].text.ends_with("Like this."));
        let bad = r#"{"prompt":"p","response_0":"a","response_1":"b","safer_response_id":2}"#;
        let e = parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("x.jsonl:7") && e.contains("safer_response_id"),
            "{e}"
        );
        let missing = r#"{"prompt":"p","response_0":"a","response_1":"b"}"#;
        assert!(parse(missing)
            .unwrap_err()
            .to_string()
            .contains("missing field `safer_response_id`"));
    }

    #[test]
    fn prompt_pair_keeps_extras_and_offsets() {
        let (f, ex) =
            parse(r#"{"prompt":"Q: hi","chosen":" yes","rejected":" no","label":1,"id":"a"}"#)
                .unwrap();
        assert_eq!(f, DataFormat::PromptPair);
        assert_eq!(ex.sequences[0].text, "Q: hi yes");
        assert_eq!(ex.sequences[0].response_start, Some(5));
        assert_eq!(ex.sequences[1].text, "Q: hi no");
        assert_eq!(ex.extras.len(), 2);
    }

    #[test]
    fn transcript_response_is_last_assistant_turn() {
        let t = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d";
        let s = transcript_response_start(t).unwrap();
        assert_eq!(&t[s..], "d");
    }

    #[test]
    fn wrong_type_names_field_and_line() {
        let e = parse(r#"{"text": 3}"#).unwrap_err().to_string();
        assert!(e.contains("x.jsonl:7") && e.contains("`text`"), "{e}");
    }

    #[test]
    fn gzip_files_are_read_and_truncation_is_named() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("repdrift-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pairs.jsonl.gz");
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("{{\"chosen\": \"\\n\\nHuman: q{i}\\n\\nAssistant: good\", \"rejected\": \"\\n\\nHuman: q{i}\\n\\nAssistant: bad\"}}\n"));
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&p, &bytes).unwrap();
        let ds = read_jsonl(&p, None).unwrap();
        assert_eq!(
            (ds.format, ds.examples.len()),
            (DataFormat::Transcript, 200)
        );
        assert_eq!(
            &ds.examples[7].sequences[0].text
                [ds.examples[7].sequences[0].response_start.unwrap()..],
            "good"
        );
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_jsonl(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("pairs.jsonl.gz") && e.contains("truncated"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mixed_shapes_are_rejected() {
        let e = parse_line(
            r#"{"text":"a"}"#,
            Path::new("x.jsonl"),
            3,
            Some(DataFormat::Transcript),
            PairLabel::Safer,
            &ChatTemplate::Hh,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.jsonl:3"), "{e}");
    }
}
