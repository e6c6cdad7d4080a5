//! A measure's value, or null with the reason it is undefined (kept in every output row).

use serde::{Deserialize, Serialize};

/// A measured value, or null with the reason it is undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nullable {
    pub value: Option<f64>,
    pub reason: Option<String>,
}

impl Nullable {
    pub fn value(v: f64) -> Self {
        debug_assert!(v.is_finite());
        Self {
            value: Some(v),
            reason: None,
        }
    }
    pub fn null(reason: &str) -> Self {
        Self {
            value: None,
            reason: Some(reason.to_string()),
        }
    }
}
