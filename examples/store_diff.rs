//! The largest relative difference between two stores of the same examples, per layer and
//! field: ‖a − b‖ / ‖b‖ over each example's row, the worst row. Used by `scripts/gpu-check.sh`
//! to hold a GPU capture to the CPU's; exits 1 when any layer exceeds the tolerance.
//!
//! ```text
//! cargo run --release --example store_diff -- STORE_A STORE_B [TOLERANCE=1e-4]
//! ```

use repdrift::capture::Store;
use repdrift::model::HookPoint;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (a, b) = match args.as_slice() {
        [a, b] | [a, b, _] => (Store::open(a.as_ref())?, Store::open(b.as_ref())?),
        _ => return Err("usage: store_diff STORE_A STORE_B [TOLERANCE]".into()),
    };
    let tol: f64 = args.get(2).map_or(Ok(1e-4), |t| t.parse())?;
    let hook = HookPoint::ResidPost;
    let mut worst_all = 0f64;
    for &layer in a.manifest().layers_of(hook) {
        for field in &a.manifest().fields {
            let (x, y) = (a.read(hook, layer, field)?, b.read(hook, layer, field)?);
            if x.dim() != y.dim() {
                return Err(
                    format!("layer {layer} {field}: {:?} vs {:?}", x.dim(), y.dim()).into(),
                );
            }
            let worst = x
                .outer_iter()
                .zip(y.outer_iter())
                .map(|(p, q)| {
                    let d: f64 = p.iter().zip(q).map(|(u, v)| ((u - v) as f64).powi(2)).sum();
                    let n: f64 = q.iter().map(|v| (*v as f64).powi(2)).sum();
                    (d / n.max(1e-30)).sqrt()
                })
                .fold(0f64, f64::max);
            println!("layer {layer:>3} {field:<9} worst relative difference {worst:.2e}");
            worst_all = worst_all.max(worst);
        }
    }
    println!("store_diff: worst {worst_all:.2e} (tolerance {tol:.0e})");
    if worst_all > tol {
        std::process::exit(1);
    }
    Ok(())
}
