//! The renderers of `repdrift compare`'s outputs (bytes; the CLI writes them): `metrics.json`,
//! `metrics.csv` and `cross_layer_cka.json`.

use super::output::MetricsReport;

/// `metrics.json`.
pub fn render_json(r: &MetricsReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

/// `cross_layer_cka.json`.
pub fn render_cross_layer(r: &MetricsReport) -> Vec<u8> {
    crate::io::json_bytes(&r.cross_layer)
}

/// `metrics.csv`: one line per row; null values are empty cells; with bootstrap, `_lo`/`_hi`
/// columns follow; with permutations, `_null_lo`/`_null_hi`/`_p` columns after those.
pub fn render_csv(r: &MetricsReport) -> Vec<u8> {
    let num = crate::io::csv_num;
    let mut out = String::from(
        "student,hook,layer,field,n,linear_cka,debiased_cka,cosine_distance,cosine_distance_std,procrustes_distance,norm_ratio,knn_overlap",
    );
    let ci = r.bootstrap > 0;
    let ci_names = [
        "linear_cka",
        "debiased_cka",
        "cosine_distance",
        "procrustes_distance",
        "norm_ratio",
    ];
    if ci {
        for n in ci_names {
            out.push_str(&format!(",{n}_lo,{n}_hi"));
        }
    }
    if r.permutations > 0 {
        for n in ci_names {
            out.push_str(&format!(",{n}_null_lo,{n}_null_hi,{n}_p"));
        }
    }
    out.push('\n');
    for row in &r.rows {
        let esc = crate::io::csv_field;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            esc(&row.student),
            row.hook,
            row.layer,
            esc(&row.field),
            row.n,
            num(row.linear_cka),
            num(row.debiased_cka),
            num(row.cosine_distance),
            num(row.cosine_distance_std),
            num(row.procrustes_distance),
            num(row.norm_ratio),
            num(row.knn_overlap)
        ));
        if ci {
            for iv in row.ci.clone().unwrap_or_default().measures() {
                out.push_str(&format!(
                    ",{},{}",
                    num(iv.map(|i| i.lo)),
                    num(iv.map(|i| i.hi))
                ));
            }
        }
        if r.permutations > 0 {
            for b in row.null.clone().unwrap_or_default().measures() {
                out.push_str(&format!(
                    ",{},{},{}",
                    num(b.map(|i| i.lo)),
                    num(b.map(|i| i.hi)),
                    num(b.and_then(|i| i.p))
                ));
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}
