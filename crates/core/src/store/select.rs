//! Which layers a command reads: `all` or a list, checked against the layers available.

use crate::error::{Error, Result};

/// Which layers to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelection {
    All,
    List(Vec<usize>),
}

impl LayerSelection {
    /// Parse `all` or a comma-separated list such as `0,4,8`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(LayerSelection::All);
        }
        let mut v = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            v.push(p.parse::<usize>().map_err(|_| {
                Error::param(
                    "layers",
                    format!("`{p}` is not a layer number (use `all` or e.g. `0,4,8`)"),
                )
            })?);
        }
        v.sort_unstable();
        v.dedup();
        Ok(LayerSelection::List(v))
    }
}

impl LayerSelection {
    /// The layers to use out of `available` (sorted): all of them, or the listed ones, each of
    /// which must be available (else an error naming `what` and the available layers).
    pub fn resolve(&self, available: &[usize], what: &str) -> Result<Vec<usize>> {
        match self {
            LayerSelection::All => Ok(available.to_vec()),
            LayerSelection::List(want) => {
                if let Some(&l) = want.iter().find(|l| !available.contains(l)) {
                    return Err(Error::LayerOutOfRange {
                        layer: l,
                        min: available.first().copied().unwrap_or(0),
                        max: available.last().copied().unwrap_or(0),
                        what: format!("{what} ({available:?})"),
                    });
                }
                Ok(want.clone())
            }
        }
    }
}
