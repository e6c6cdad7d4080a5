//! Hostile Jinja chat templates: the first line of the input is split off as the last
//! message's content, the rest is the template. Rendering must end (fuel and recursion
//! limits) with text or an error; templates have no file access.
#![no_main]
include!("common.rs");
use libfuzzer_sys::fuzz_target;
use repdrift::data::chat::{ChatTemplate, Message};

fuzz_target!(|data: &[u8]| {
    quiet_guarded_panics();
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (content, source) = s.split_once('\n').unwrap_or(("hi", s));
    let t = ChatTemplate::Jinja {
        source: source.to_string(),
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
    };
    let msgs = [
        Message {
            role: "user".into(),
            content: "question".into(),
        },
        Message {
            role: "assistant".into(),
            content: content.to_string(),
        },
    ];
    let _ = t.render(&msgs);
});
