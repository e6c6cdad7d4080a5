//! Chat rendering: message lists (`[{"role", "content"}, …]`) → one text, with the byte offset
//! where the last message's content starts (the response, for `response-mean` pooling).
//!
//! Templates (`--template`):
//! - `hh`: Anthropic HH-RLHF transcripts, `"\n\nHuman: {user}\n\nAssistant: {assistant}"` (a
//!   system message becomes a leading `"{system}"` paragraph);
//! - `plain`: `"{Role}: {content}\n"` per message;
//! - `model`: the model's own chat template (Jinja, from `tokenizer_config.json` or the GGUF
//!   metadata `tokenizer.chat_template`), rendered with minijinja plus Python string methods
//!   (`minijinja-contrib`'s pycompat), `raise_exception`, `bos_token` / `eos_token`, and
//!   `add_generation_prompt = false` — what transformers' `apply_chat_template(…,
//!   tokenize=False)` returns. The response starts where the rendering of the messages before
//!   the last one with `add_generation_prompt = true` ends, when that is a prefix; else at the
//!   last message's content found from the end.

use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// How message lists become text.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatTemplate {
    Hh,
    Plain,
    /// A Jinja chat template with the special tokens it may use.
    Jinja {
        source: String,
        bos_token: String,
        eos_token: String,
    },
}

impl ChatTemplate {
    /// `hh` or `plain` (`model` needs the model: its tokenizer's `chat_template`, [`crate::model::ModelTokenizer`]).
    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::Hh => "hh",
            ChatTemplate::Plain => "plain",
            ChatTemplate::Jinja { .. } => "model",
        }
    }

    /// Render `messages`; returns the text and the byte offset where the last message's
    /// content starts. Errors are messages for the caller to place (file, line).
    pub fn render(&self, messages: &[Message]) -> Result<(String, usize), String> {
        let last = messages.last().ok_or("an empty message list")?;
        for m in messages {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(format!(
                    "role `{}` is not one of system, user, assistant",
                    m.role
                ));
            }
        }
        match self {
            ChatTemplate::Hh | ChatTemplate::Plain => {
                let mut out = String::new();
                let mut start = 0;
                for m in messages {
                    let head = match (self, m.role.as_str()) {
                        (ChatTemplate::Hh, "user") => "\n\nHuman: ",
                        (ChatTemplate::Hh, "assistant") => "\n\nAssistant: ",
                        (ChatTemplate::Hh, _) => "",
                        (_, "user") => "User: ",
                        (_, "assistant") => "Assistant: ",
                        _ => "System: ",
                    };
                    out.push_str(head);
                    start = out.len();
                    out.push_str(&m.content);
                    if matches!(self, ChatTemplate::Plain) {
                        out.push('\n');
                    }
                }
                Ok((out, start))
            }
            ChatTemplate::Jinja { .. } => {
                let full = self.jinja(messages, false)?;
                let prefix = self.jinja(&messages[..messages.len() - 1], true)?;
                let start =
                    if full.starts_with(&prefix) && full[prefix.len()..].contains(&last.content) {
                        prefix.len()
                            + full[prefix.len()..]
                                .find(&last.content)
                                .expect("checked above")
                    } else {
                        full.rfind(&last.content)
                            .ok_or("the template does not reproduce the last message's content")?
                    };
                Ok((full, start))
            }
        }
    }

    fn jinja(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let ChatTemplate::Jinja {
            source,
            bos_token,
            eos_token,
        } = self
        else {
            unreachable!("only called for Jinja templates")
        };
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        // A template comes with the data or the model: bound what it may do. Fuel caps the
        // instructions one rendering executes, the recursion limit its depth, the writer its
        // output; minijinja has no file or network access to begin with.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(64);
        env.add_template("chat", source)
            .map_err(|e| format!("the chat template does not parse: {e}"))?;
        let t = env.get_template("chat").expect("just added");
        let mut out = Capped(Vec::new(), false);
        t.render_captured_to(
            minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            },
            &mut out,
        )
        .map_err(|e| {
            if out.1 {
                format!(
                    "the chat template failed: its output exceeds {} MiB",
                    TEMPLATE_MAX_OUTPUT >> 20
                )
            } else {
                format!("the chat template failed: {e}")
            }
        })?;
        String::from_utf8(out.0).map_err(|_| "the chat template produced invalid UTF-8".into())
    }
}

/// Instructions one chat-template rendering may execute (a real template over a long
/// conversation uses a few thousand).
pub const TEMPLATE_FUEL: u64 = 2_000_000;
/// The most bytes one rendering may produce.
pub const TEMPLATE_MAX_OUTPUT: usize = 16 << 20;

/// The rendering, and whether it hit [`TEMPLATE_MAX_OUTPUT`].
struct Capped(Vec<u8>, bool);

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + b.len() > TEMPLATE_MAX_OUTPUT {
            self.1 = true;
            return Err(std::io::Error::other(format!(
                "the rendering exceeds {} MiB",
                TEMPLATE_MAX_OUTPUT >> 20
            )));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parse `hh` or `plain` (`model` is resolved by the caller, who has the model).
pub fn parse_builtin(s: &str) -> Option<ChatTemplate> {
    match s {
        "hh" => Some(ChatTemplate::Hh),
        "plain" => Some(ChatTemplate::Plain),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(v: &[(&str, &str)]) -> Vec<Message> {
        v.iter()
            .map(|(r, c)| Message {
                role: r.to_string(),
                content: c.to_string(),
            })
            .collect()
    }

    fn jinja(source: &str) -> ChatTemplate {
        ChatTemplate::Jinja {
            source: source.into(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
        }
    }

    /// Issue 16: a hostile template ends with an error instead of running for hours, filling
    /// memory or reading files.
    #[test]
    fn hostile_templates_are_bounded() {
        let m = msgs(&[("user", "q"), ("assistant", "a")]);
        let loops =
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
        let e = jinja(loops).render(&m).unwrap_err();
        assert!(e.contains("fuel"), "{e}");
        let big = "{% for i in range(40) %}{{ 'x' * 1000000 }}{% endfor %}";
        let e = jinja(big).render(&m).unwrap_err();
        assert!(e.contains("exceeds 16 MiB"), "{e}");
        let rec = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        assert!(jinja(rec).render(&m).is_err());
        let file = "{% include '/etc/passwd' %}";
        let e = jinja(file).render(&m).unwrap_err();
        assert!(e.contains("not found") || e.contains("template"), "{e}");
        // A normal template still renders.
        let ok = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}";
        assert_eq!(jinja(ok).render(&m).unwrap().0, "<user>q<assistant>a");
    }

    #[test]
    fn hh_and_plain_render_and_locate_the_response() {
        let m = msgs(&[
            ("user", "Hi?"),
            ("assistant", "Hello."),
            ("user", "Bye?"),
            ("assistant", "Bye."),
        ]);
        let (t, s) = ChatTemplate::Hh.render(&m).unwrap();
        assert_eq!(
            t,
            "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Bye?\n\nAssistant: Bye."
        );
        assert_eq!(&t[s..], "Bye.");
        let (t, s) = ChatTemplate::Plain.render(&m).unwrap();
        assert_eq!(&t[s..], "Bye.\n");
        assert!(ChatTemplate::Hh.render(&msgs(&[("robot", "x")])).is_err());
    }

    #[test]
    fn jinja_chatml_renders_like_transformers() {
        // SmolLM2's ChatML template (abridged to its message loop).
        let t = ChatTemplate::Jinja {
            source: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".into(),
            bos_token: "<|im_start|>".into(),
            eos_token: "<|im_end|>".into(),
        };
        let (text, s) = t
            .render(&msgs(&[("user", "Hi"), ("assistant", "Yo")]))
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
        );
        assert_eq!(&text[s..s + 2], "Yo");
        let bad = ChatTemplate::Jinja {
            source: "{{ raise_exception('no system role') }}".into(),
            bos_token: String::new(),
            eos_token: String::new(),
        };
        assert!(bad
            .render(&msgs(&[("user", "x")]))
            .unwrap_err()
            .contains("no system role"));
    }
}
