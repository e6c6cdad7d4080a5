//! `repdrift probe`: per-layer probes trained on a source store and tested in-distribution
//! (cross-validation), on target stores of the same model (transfer), on another model's store
//! of the same source examples (cross-model), and against a control task.

use serde::{Deserialize, Serialize};

use super::{cross_validate, CvResult, ProbeData, Solver};
use crate::capture::{LayerSelection, Store};
use crate::error::{Error, Result};
use crate::metrics::compare::StoreRecord;
use crate::model::HookPoint;

/// A store with the name it goes by in the outputs.
pub struct NamedStore {
    pub name: String,
    pub store: Store,
}

/// Probe parameters as given.
#[derive(Debug, Clone)]
pub struct ProbeParams {
    /// The name of the model whose stores `--train` and `--eval` are.
    pub model: String,
    pub hook: HookPoint,
    pub layers: LayerSelection,
    pub folds: usize,
    pub cs: Vec<f64>,
    pub control: bool,
    pub seed: u64,
    pub solver: Solver,
}

impl Default for ProbeParams {
    fn default() -> Self {
        Self {
            model: "model".into(),
            hook: HookPoint::ResidPost,
            layers: LayerSelection::All,
            folds: 5,
            cs: vec![0.001, 0.01, 0.1, 1.0],
            control: false,
            seed: 0,
            solver: Solver::default(),
        }
    }
}

/// Checked probe parameters.
#[derive(Debug, Clone)]
pub struct ValidProbeParams(ProbeParams);

impl std::ops::Deref for ValidProbeParams {
    type Target = ProbeParams;
    fn deref(&self) -> &ProbeParams {
        &self.0
    }
}

impl ProbeParams {
    pub fn check(self) -> Result<ValidProbeParams> {
        if self.folds < 2 {
            return Err(Error::param(
                "folds",
                format!("need at least 2 folds, got {}", self.folds),
            ));
        }
        if self.cs.is_empty() {
            return Err(Error::param("c", "give at least one C"));
        }
        if let Some(c) = self.cs.iter().find(|c| !(**c > 0.0 && c.is_finite())) {
            return Err(Error::param(
                "c",
                format!("C must be positive and finite, got {c}"),
            ));
        }
        Ok(ValidProbeParams(self))
    }
}

/// One output row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// The model whose activations were scored.
    pub model: String,
    pub layer: usize,
    pub hook: HookPoint,
    /// `MODEL:DATASET` the probe was trained on.
    pub train: String,
    /// The dataset scored.
    pub eval: String,
    /// `in_dist`, `transfer`, `cross_model` or `control`.
    pub kind: String,
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub n: usize,
    /// The L2 strength used (selected by cross-validation on the training store).
    pub c: f64,
    /// Control rows: in-distribution accuracy − control accuracy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub selectivity: Option<f64>,
    /// Every scored pair has identical chosen and rejected features (the accuracy is
    /// meaningless: reports show "n/a (tied)" and leave the row out of summaries).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub tied: bool,
}

/// A reward model's own pairwise accuracy on one store (stores captured from an RM checkpoint
/// carry one reward per sequence): the share of pairs with r(chosen) > r(rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardAccuracy {
    pub dataset: String,
    pub accuracy: f64,
    /// AUC of r(chosen) − r(rejected) over the flipped pair set.
    pub auc: Option<f64>,
    pub n: usize,
}

/// The reward model's own accuracy on a pair store, or `None` for stores without rewards.
pub fn reward_accuracy(n: &NamedStore) -> Result<Option<RewardAccuracy>> {
    let Some(r) = n.store.rewards()? else {
        return Ok(None);
    };
    if r.ncols() != 2 {
        return Ok(None);
    }
    let d = ndarray::Array1::from_iter(r.rows().into_iter().map(|row| row[0] - row[1]));
    Ok(Some(RewardAccuracy {
        dataset: n.name.clone(),
        accuracy: super::pair_accuracy(d.view()),
        auc: super::pair_auc(d.view()),
        n: d.len(),
    }))
}

/// `probe.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub format: String,
    pub version: u32,
    pub repdrift_version: String,
    pub model: String,
    pub train: StoreRecord,
    pub evals: Vec<StoreRecord>,
    pub apply_to: Vec<StoreRecord>,
    pub hook: HookPoint,
    pub folds: usize,
    pub cs: Vec<f64>,
    pub seed: u64,
    pub rows: Vec<ProbeRow>,
    /// The model's own reward-head accuracy on the training and eval stores (RM checkpoints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reward_model: Vec<RewardAccuracy>,
}

fn record(n: &NamedStore) -> StoreRecord {
    StoreRecord::of(&n.name, &n.store)
}

/// The probe data of one layer of a store: Δh for pairs, (h, label) for labelled texts.
pub fn load_layer(store: &Store, hook: HookPoint, layer: usize) -> Result<ProbeData> {
    let m = store.manifest();
    if m.fields == ["chosen", "rejected"] {
        let c = store.read(hook, layer, "chosen")?.mapv(|v| v as f64);
        let r = store.read(hook, layer, "rejected")?.mapv(|v| v as f64);
        return Ok(ProbeData::Pairs(c - r));
    }
    if !m.example_fields.iter().any(|f| f == "label") {
        return Err(Error::InvalidStore {
            path: store.dir().to_path_buf(),
            reason: "a text store needs a numeric `label` field per example to be probed".into(),
        });
    }
    let x = store.read(hook, layer, "text")?.mapv(|v| v as f64);
    let mut y = Vec::with_capacity(x.nrows());
    for p in &m.parts {
        y.extend(
            store.examples(p.index)?.numeric["label"]
                .iter()
                .map(|&l| l > 0.5),
        );
    }
    Ok(ProbeData::Labels(x, y))
}

fn layers_in_all(stores: &[&Store], p: &ProbeParams) -> Result<Vec<usize>> {
    let mut common: Vec<usize> = stores[0].manifest().layers_of(p.hook).to_vec();
    for s in &stores[1..] {
        let l = s.manifest().layers_of(p.hook);
        common.retain(|x| l.contains(x));
    }
    p.layers
        .resolve(&common, "the layers captured in every store")
}

fn check_same_kind(train: &NamedStore, other: &NamedStore, same_data: bool) -> Result<()> {
    let (a, b) = (train.store.manifest(), other.store.manifest());
    let inc = |reason: String| Error::Incompatible {
        left: train.store.dir().to_path_buf(),
        right: other.store.dir().to_path_buf(),
        reason,
    };
    if a.fields != b.fields {
        return Err(inc(format!("fields {:?} vs {:?}", a.fields, b.fields)));
    }
    if a.model.hidden_size != b.model.hidden_size {
        return Err(inc(format!(
            "widths differ ({} vs {}): a probe applies to features of its own width",
            a.model.hidden_size, b.model.hidden_size
        )));
    }
    if same_data && (a.dataset.sha256 != b.dataset.sha256 || a.n_examples() != b.n_examples()) {
        return Err(inc(
            "--apply-to needs a store of the training examples (same data-set sha256)".into(),
        ));
    }
    Ok(())
}

/// What every row of one probe shares.
struct RowKey<'a> {
    model: &'a str,
    layer: usize,
    hook: HookPoint,
    train: String,
}

fn row(
    k: RowKey<'_>,
    eval: &str,
    kind: &str,
    acc: (f64, Option<f64>),
    scored: &ProbeData,
    c: f64,
) -> ProbeRow {
    ProbeRow {
        model: k.model.to_string(),
        layer: k.layer,
        hook: k.hook,
        train: k.train,
        eval: eval.to_string(),
        kind: kind.to_string(),
        accuracy: acc.0,
        auc: acc.1,
        n: scored.len(),
        c,
        selectivity: None,
        tied: scored.all_tied(),
    }
}

/// Run every probe at every layer.
pub fn probe(
    train: &NamedStore,
    evals: &[NamedStore],
    apply_to: &[NamedStore],
    params: &ValidProbeParams,
) -> Result<ProbeReport> {
    for e in evals {
        check_same_kind(train, e, false)?;
    }
    for a in apply_to {
        check_same_kind(train, a, true)?;
    }
    let mut all: Vec<&Store> = vec![&train.store];
    all.extend(evals.iter().map(|e| &e.store));
    all.extend(apply_to.iter().map(|e| &e.store));
    let layers = layers_in_all(&all, params)?;
    let hook = params.hook;
    let model = params.model.as_str();
    let per_layer = crate::parallel::map_indexed(layers.len(), |li| -> Result<Vec<ProbeRow>> {
        let layer = layers[li];
        let mut rows = Vec::new();
        let data = load_layer(&train.store, hook, layer)?;
        let seed = params.seed.wrapping_add(layer as u64);
        let cv: CvResult = cross_validate(&data, &params.cs, params.folds, seed, params.solver)?;
        let tname = format!("{model}:{}", train.name);
        let key = |model, train| RowKey {
            model,
            layer,
            hook,
            train,
        };
        rows.push(row(
            key(model, tname.clone()),
            &train.name,
            "in_dist",
            (cv.accuracy, cv.auc),
            &data,
            cv.c,
        ));
        let probe = data.fit(cv.c, params.solver)?;
        for e in evals {
            let d = load_layer(&e.store, hook, layer)?;
            rows.push(row(
                key(model, tname.clone()),
                &e.name,
                "transfer",
                d.evaluate(&probe),
                &d,
                cv.c,
            ));
        }
        for a in apply_to {
            let d = load_layer(&a.store, hook, layer)?;
            rows.push(row(
                key(&a.name, tname.clone()),
                &train.name,
                "cross_model",
                d.evaluate(&probe),
                &d,
                cv.c,
            ));
            // The reverse direction: trained in the other model, applied to this one.
            let rcv = cross_validate(&d, &params.cs, params.folds, seed, params.solver)?;
            let rprobe = d.fit(rcv.c, params.solver)?;
            rows.push(row(
                key(model, format!("{}:{}", a.name, train.name)),
                &train.name,
                "cross_model",
                data.evaluate(&rprobe),
                &data,
                rcv.c,
            ));
        }
        if params.control {
            let ctl = data.control(seed);
            let ccv = cross_validate(&ctl, &params.cs, params.folds, seed, params.solver)?;
            let mut r = row(
                key(model, tname),
                &train.name,
                "control",
                (ccv.accuracy, ccv.auc),
                &data,
                ccv.c,
            );
            r.selectivity = Some(cv.accuracy - ccv.accuracy);
            rows.push(r);
        }
        Ok(rows)
    })?;
    let mut reward_model = Vec::new();
    for s in std::iter::once(train).chain(evals) {
        if let Some(r) = reward_accuracy(s)? {
            reward_model.push(r);
        }
    }
    Ok(ProbeReport {
        format: "repdrift-probe".into(),
        version: 1,
        repdrift_version: env!("CARGO_PKG_VERSION").into(),
        model: model.to_string(),
        train: record(train),
        evals: evals.iter().map(record).collect(),
        apply_to: apply_to.iter().map(record).collect(),
        hook,
        folds: params.folds,
        cs: params.cs.clone(),
        seed: params.seed,
        rows: per_layer.into_iter().flatten().collect(),
        reward_model,
    })
}

/// `probe.json` bytes.
pub fn render_json(r: &ProbeReport) -> Vec<u8> {
    crate::io::json_bytes(r)
}

/// `probe.csv` bytes (empty cells for null).
pub fn render_csv(r: &ProbeReport) -> Vec<u8> {
    let mut out = String::from("model,layer,hook,train,eval,kind,accuracy,auc,n,c,selectivity\n");
    let num = crate::io::csv_num;
    let esc = crate::io::csv_field;
    for x in &r.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            esc(&x.model),
            x.layer,
            x.hook,
            esc(&x.train),
            esc(&x.eval),
            x.kind,
            num(Some(x.accuracy)),
            num(x.auc),
            x.n,
            num(Some(x.c)),
            num(x.selectivity)
        ));
    }
    out.into_bytes()
}
