//! Text formatting shared by every renderer (report, recommend, study): HTML and Markdown
//! escaping and number cells. Below all of them, so none imports another for it.

/// `s` with each character that `entity` maps replaced by its escape.
fn escape(s: &str, entity: impl Fn(char) -> Option<&'static str>) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match entity(c) {
            Some(e) => o.push_str(e),
            None => o.push(c),
        }
    }
    o
}

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    escape(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

/// Escape text for Markdown tables and prose: no raw HTML passes through (`&`, `<`, `>` become
/// entities) and `|` cannot end a table cell. Quotes, apostrophes and backticks stay as they
/// are (an apostrophe written as `&#39;` or a code span as "\`diff\`" reads badly in the raw
/// file, and neither can inject markup).
pub fn md(s: &str) -> String {
    escape(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '|' => Some("\\|"),
        _ => None,
    })
}

/// A number with 3 decimals, or an em dash for none.
pub fn f3(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 20): report.md showed "repdrift&#39;s" and "\`diff\`".
    #[test]
    fn markdown_title_apostrophe_and_code_spans_stay_readable() {
        assert_eq!(md("repdrift's `diff`"), "repdrift's `diff`");
        assert_eq!(
            md("<script>x</script> | a & b"),
            "&lt;script&gt;x&lt;/script&gt; \\| a &amp; b"
        );
        assert_eq!(esc("it's"), "it&#39;s");
    }
}
