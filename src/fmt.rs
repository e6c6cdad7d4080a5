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

/// A Markdown table (header, separator, one line per row), every cell escaped with [`md`].
pub fn md_table<S: AsRef<str>>(head: &[S], rows: &[Vec<String>]) -> String {
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        format!("| {} |\n", cells.map(md).collect::<Vec<_>>().join(" | "))
    };
    let mut o = line(&mut head.iter().map(|h| h.as_ref()));
    o.push_str(&format!("|{}\n", "---|".repeat(head.len())));
    for r in rows {
        o.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    o
}

/// An HTML table (a header row, then one row per entry), every cell escaped with [`esc`].
pub fn html_table<S: AsRef<str>>(head: &[S], rows: &[Vec<String>]) -> String {
    let th: String = head
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h.as_ref())))
        .collect();
    let mut o = format!("<table><tr>{th}</tr>\n");
    for r in rows {
        let td: String = r.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
        o.push_str(&format!("<tr>{td}</tr>\n"));
    }
    o.push_str("</table>\n");
    o
}

/// A signed number with one decimal (`{:+.1}`), a value rounding to zero as "+0.0", never
/// "-0.0".
pub fn signed1(v: f64) -> String {
    let s = format!("{v:+.1}");
    if s == "-0.0" {
        "+0.0".into()
    } else {
        s
    }
}

/// A p-value: three decimals, or one significant digit in scientific form below 0.001 (so a
/// tiny p never reads "0.000").
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

/// A magnitude such as a drift: three decimals, or two significant digits in scientific form
/// when it is nonzero below 0.001 (so a small drift never reads "0.000").
pub fn small(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

/// A number with 3 decimals, or an em dash for none.
pub fn f3(v: Option<f64>) -> String {
    v.map(|x| {
        let s = format!("{x:.3}");
        // A negative value that rounds to zero is written as zero, never "-0.000".
        if s == "-0.000" {
            "0.000".into()
        } else {
            s
        }
    })
    .unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the study's paired table printed p = 1e-12 as "0.000".
    #[test]
    fn tiny_p_values_are_not_printed_as_zero_and_signs_never_show_minus_zero() {
        assert_eq!(p_value(1e-12), "1.0e-12");
        assert_eq!(p_value(0.0011), "0.001");
        assert_eq!(p_value(0.754), "0.754");
        assert_eq!(signed1(-0.04), "+0.0");
        assert_eq!(signed1(-0.05001), "-0.1");
        assert_eq!(signed1(3.0), "+3.0");
    }

    /// Regression (issue 34): report tables printed a cosine distance of −1e-9 as "-0.000".
    #[test]
    fn three_decimals_never_show_minus_zero() {
        assert_eq!(f3(Some(-1e-9)), "0.000");
        assert_eq!(f3(Some(-0.0)), "0.000");
        assert_eq!(f3(Some(-0.0006)), "-0.001");
        assert_eq!(f3(Some(0.25)), "0.250");
        assert_eq!(f3(None), "—");
    }

    /// Regression: the quick demo's report said "largest drift 0.000" for a drift of 1e-4.
    #[test]
    fn small_drifts_are_not_printed_as_zero() {
        assert_eq!(small(1.23e-4), "1.2e-4");
        assert_eq!(small(0.0), "0.000");
        assert_eq!(small(0.5401), "0.540");
        assert_eq!(small(0.001), "0.001");
    }

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

    #[test]
    fn tables_escape_every_cell_and_keep_their_shape() {
        let rows = vec![vec!["a|b".to_string(), "<i>".to_string()]];
        assert_eq!(
            md_table(&["x", "y"], &rows),
            "| x | y |\n|---|---|\n| a\\|b | &lt;i&gt; |\n"
        );
        assert_eq!(
            html_table(&["x", "y"], &rows),
            "<table><tr><th>x</th><th>y</th></tr>\n<tr><td>a|b</td><td>&lt;i&gt;</td></tr>\n</table>\n"
        );
    }
}
