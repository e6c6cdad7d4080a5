//! What a training step reports: the record of one step (`loss_log.jsonl`) and the progress
//! handle that receives it. Below the trainer and its checkpoints.

use serde::{Deserialize, Serialize};

/// Reports training progress (the library never prints).
pub trait TrainProgress {
    /// A phase begins (`"caching"`, `"training"`, `"evaluating"`, `"saving"`).
    fn phase(&mut self, _name: &str) {}
    /// `total` steps, `done` of them restored from a checkpoint.
    fn start(&mut self, _total: usize, _done: usize) {}
    /// One step finished.
    fn step(&mut self, _rec: &StepRecord) {}
    fn finish(&mut self) {}
}

/// A [`TrainProgress`] that ignores everything.
pub struct NoTrainProgress;
impl TrainProgress for NoTrainProgress {}

/// One line of `loss_log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    /// The Bradley–Terry (cross-entropy) part.
    pub bt: f64,
    /// The anchor distance before λ (mean over anchor layers), for `anchor`.
    pub anchor: Option<f64>,
    /// α of the confidence loss, for `confidence`.
    pub alpha: Option<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    /// Share of the batch's pairs with r(chosen) > r(rejected).
    pub batch_accuracy: f64,
    pub seconds: f64,
}

/// What a training run measured of itself: steps, size, speed and final loss. Shared by
/// `train_summary.json` and the study's run files (flattened: the files keep their layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    pub steps: usize,
    pub trainable_parameters: usize,
    /// Training seconds and steps per second (this process's steps only, after a resume).
    pub train_seconds: f64,
    pub steps_per_second: f64,
    /// Mean BT loss over the last epoch's steps.
    pub final_bt_loss: f64,
}
