//! Check 5, layer matching: in the base's own cross-layer matrix, similarity falling with
//! layer distance; and two students trained from the base with different seeds (Llama family
//! only): Kornblith's accuracy (each layer's most similar layer in the other student is
//! itself).

use std::path::Path;

use ndarray::Array2;

use super::checks;
use super::context::{Checklist, Ctx};
use super::types::{LayerMatching, Status};
use crate::error::Result;
use crate::model::llama::Llama;

pub(super) fn layer_matching(
    ctx: &Ctx<'_>,
    base: &[Array2<f32>],
    work: &Path,
    list: &mut Checklist,
    progress: &mut dyn FnMut(&str),
) -> Result<LayerMatching> {
    let mut matching = base_decay(base, list);
    match trainer(ctx) {
        Err(why) => {
            list.push(
                "layer matching",
                "two students from different seeds: layer-matching accuracy".into(),
                format!("skipped: {why}"),
                Status::Skipped,
            );
            matching.skipped = Some(why);
        }
        Ok(llama) => {
            let students = train_students(ctx, &llama, work, progress)?;
            students_match(ctx, &students, &mut matching, list);
        }
    }
    Ok(matching)
}

/// The base's cross-layer CKA: neighbours most similar, similarity falling with distance.
fn base_decay(base: &[Array2<f32>], list: &mut Checklist) -> LayerMatching {
    let base_cross = checks::cross_cka(base, base);
    let (mono, near, order) = checks::decay_with_distance(&base_cross);
    list.push(
        "layer matching",
        "base cross-layer CKA: each layer's most similar other layer is a neighbour (≥ 90 % of layers)".into(),
        near.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v)),
        Status::of(near.is_some_and(|v| v >= 0.9)),
    );
    list.push(
        "layer matching",
        "base cross-layer CKA falls with layer distance: ordering agreement (strictly monotone rows)".into(),
        format!(
            "{} ({})",
            order.map_or("n/a".into(), |v| format!("{:.1} %", 100.0 * v)),
            mono.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v))
        ),
        Status::Info,
    );
    LayerMatching {
        skipped: None,
        accuracy_all: None,
        accuracy_trained: None,
        trained_layers: Vec::new(),
        base_monotone_share: mono,
        base_neighbour_share: near,
        base_order_agreement: order,
    }
}

/// The trainer's base, loaded once: its absence is the reason the students are skipped.
fn trainer(ctx: &Ctx<'_>) -> std::result::Result<Llama, String> {
    let params = ctx.params;
    if !params.students {
        Err("not asked (--no-students)".to_string())
    } else if ctx.data.format.fields().len() != 2 {
        Err("training needs preference pairs".to_string())
    } else if params.student_blocks > ctx.n_layers {
        Err(format!(
            "--student-blocks {} exceeds the model's {} blocks",
            params.student_blocks, ctx.n_layers
        ))
    } else {
        crate::model::load_llama(ctx.model_path, ctx.device)
            .map_err(|e| format!("the trainer supports Llama-family models only ({e})"))
    }
}

/// Two gold students (seeds `seed`, `seed + 1`; top `student_blocks` blocks), each written to
/// `work` as a delta and captured.
fn train_students(
    ctx: &Ctx<'_>,
    llama: &Llama,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Vec<Array2<f32>>>> {
    let params = ctx.params;
    let mut students = Vec::new();
    for seed in [params.seed, params.seed + 1] {
        progress(&format!(
            "training student seed {seed} (top {} blocks)",
            params.student_blocks
        ));
        let out = work.join(format!("student-seed{seed}"));
        let tp = crate::train::TrainParams {
            method: crate::train::Method::Gold,
            trainable: crate::train::Trainable::Top(params.student_blocks),
            epochs: 2,
            lr: 3e-4,
            max_tokens: params.max_tokens,
            seed,
            checkpoint_every: 0,
            ..Default::default()
        }
        .check()?;
        let job = crate::train::TrainJob {
            labels: None,
            out: &out,
            resume: false,
            force: true,
            stop_after: None,
            save: crate::train::SaveAs::Delta,
        };
        crate::train::train(
            llama,
            ctx.data,
            &[],
            &tp,
            &job,
            ctx.device,
            &mut crate::train::NoTrainProgress,
        )?;
        let m = crate::model::load(&out, ctx.device)?;
        students.push(ctx.capture(m.as_ref())?);
    }
    Ok(students)
}

/// Kornblith's layer-matching accuracy between the two students, on every layer and on the
/// layers training changed.
fn students_match(
    ctx: &Ctx<'_>,
    students: &[Vec<Array2<f32>>],
    matching: &mut LayerMatching,
    list: &mut Checklist,
) {
    let (n_layers, params) = (ctx.n_layers, ctx.params);
    let cross = checks::cross_cka(&students[0], &students[1]);
    let all: Vec<usize> = (0..=n_layers).collect();
    let trained: Vec<usize> = ((n_layers + 1 - params.student_blocks)..=n_layers).collect();
    matching.accuracy_all = checks::matching_accuracy(&cross, &all);
    matching.accuracy_trained = checks::matching_accuracy(&cross, &trained);
    matching.trained_layers = trained.clone();
    let pct = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.0} %", 100.0 * v));
    list.push(
        "layer matching",
        format!(
            "two students (seeds {}, {}): layer-matching accuracy ≥ 90 % on the layers training changed ({}–{})",
            params.seed,
            params.seed + 1,
            trained[0],
            n_layers
        ),
        format!(
            "changed layers {}; all layers {}",
            pct(matching.accuracy_trained),
            pct(matching.accuracy_all)
        ),
        Status::of(matching.accuracy_trained.is_some_and(|v| v >= 0.9)),
    );
}
