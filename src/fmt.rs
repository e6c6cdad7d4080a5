//! Text formatting shared by every renderer (report, recommend, study): HTML and Markdown
//! escaping and number cells. Below all of them, so none imports another for it.

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escape text for Markdown tables and prose (no raw HTML passes through).
pub fn md(s: &str) -> String {
    esc(s).replace('|', "\\|").replace('`', "\\`")
}

/// A number with 3 decimals, or an em dash for none.
pub fn f3(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into())
}
