//! The library's error type. Every variant carries what a user needs to fix the input:
//! the path, the line, the shapes or the valid range involved.

use std::path::PathBuf;

/// Errors returned by the repdrift library.
///
/// `#[non_exhaustive]`: the `Candle` variant exists only with the `candle` feature (the
/// `repdrift` crate turns it on; the Python binding builds without it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Shown in the message, not exposed as `source()`, so that an error chain prints it
        /// once (the same for `Metric` and `Json`).
        cause: std::io::Error,
    },

    /// A data file line that is not what the format requires.
    #[error("{path}:{line}: {reason}")]
    MalformedLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A data file with no usable example.
    #[error("{path}: no examples (empty file or all lines blank)")]
    EmptyData { path: PathBuf },

    /// A file that ends before its own header says it should (a partial download or copy).
    #[error("{path}: truncated file: {detail}")]
    Truncated { path: PathBuf, detail: String },

    /// A data file whose structure cannot be read (named by the reader of its format).
    #[error("{path}: {detail}")]
    MalformedFile { path: PathBuf, detail: String },

    /// A model file or directory that cannot be used.
    #[error("{path}: {reason}")]
    InvalidModel { path: PathBuf, reason: String },

    /// A weight whose shape is not the one the configuration implies.
    #[error("{path}: weight `{name}` has shape {actual:?}, expected {expected:?}")]
    WeightShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A requested layer outside the model's range.
    #[error("layer {layer} is out of range for {what}: valid layers are {min}..={max}")]
    LayerOutOfRange {
        layer: usize,
        min: usize,
        max: usize,
        what: String,
    },

    /// Two inputs that must agree in shape do not.
    #[error("shape mismatch: {what}: {left_name} has {left:?}, {right_name} has {right:?}")]
    ShapeMismatch {
        what: String,
        left_name: String,
        left: Vec<usize>,
        right_name: String,
        right: Vec<usize>,
    },

    /// An output store that already holds data.
    #[error("{path}: store exists and is not empty; pass --resume to continue it or --force to overwrite it")]
    StoreExists { path: PathBuf },

    /// An output directory another process is writing (its advisory lock is held).
    #[error("{path}: another repdrift process is writing here (advisory lock held); wait for it to finish or stop it, then run again")]
    Locked { path: PathBuf },

    /// A store that cannot be read or resumed.
    #[error("{path}: {reason}")]
    InvalidStore { path: PathBuf, reason: String },

    /// An invalid parameter (CLI flag or library parameter).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam { name: String, reason: String },

    /// A metric computation failed on named data.
    #[error("{what}: {cause}")]
    Metric { what: String, cause: MetricError },

    /// Two stores (or shard states) that must describe the same examples do not.
    #[error("{left} and {right} cannot be compared: {reason}")]
    Incompatible {
        left: PathBuf,
        right: PathBuf,
        reason: String,
    },

    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// An error from candle (boxed: candle's error would make every `Result` larger).
    #[cfg(feature = "candle")]
    #[error(transparent)]
    Candle(Box<candle_core::Error>),

    /// A JSON (de)serialisation error on a named file.
    #[error("{path}: {cause}")]
    Json {
        path: PathBuf,
        cause: serde_json::Error,
    },
}

impl Error {
    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    /// Build an [`Error::InvalidParam`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Build an [`Error::InvalidModel`].
    pub fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error comes from the user's input (exit code 2) rather than from the
    /// machine or a bug.
    pub fn is_user_error(&self) -> bool {
        #[cfg(feature = "candle")]
        if matches!(self, Error::Candle(_)) {
            return false;
        }
        true
    }
}

#[cfg(feature = "candle")]
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(Box::new(e))
    }
}

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors of the pure metric functions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("row {row} of {side} holds NaN or Inf")]
    NonFinite { side: &'static str, row: usize },
    #[error("x has shape {x:?} and y has shape {y:?}; expected (n, {}) and (n, {}) with the same n", expected.0, expected.1)]
    Shape {
        x: Vec<usize>,
        y: Vec<usize>,
        expected: (usize, usize),
    },
    #[error("accumulators of different widths or shifts cannot be merged")]
    Merge,
    #[error("rows prepared with another shift or precision than the accumulator's")]
    Prepared,
    #[error("linear algebra: {0}")]
    Linalg(String),
}
