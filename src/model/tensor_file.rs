//! A safetensors file read tensor by tensor with positional reads, not memory-mapped.
//!
//! A memory map counts every page it touches in the process's resident set until it is
//! unmapped, so a checkpoint read through one peaks at its stored size in mapped pages on top
//! of the tensors built from them. Reading each tensor into its own buffer leaves the file in
//! the page cache (which the kernel may drop) and holds only the tensors: a checkpoint is held
//! at its stored size. The header is parsed and checked once, at open: every entry's dtype,
//! its byte range against its shape, and the ranges against the file's length.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// One tensor's place in the file.
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte offsets in the file.
    start: u64,
    end: u64,
}

/// An open safetensors file and its checked header.
pub struct TensorFile {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F64" => DType::F64,
        "BF16" => DType::BF16,
        "F16" => DType::F16,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

impl TensorFile {
    /// Open `path` and check its header: complete, JSON, every entry a known dtype with a byte
    /// range that fits its shape and lies inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let truncated = |detail: String| Error::Truncated {
            path: path.to_path_buf(),
            detail,
        };
        if file_len < 8 {
            return Err(truncated(format!(
                "{file_len} bytes, shorter than the 8-byte header length"
            )));
        }
        let mut len = [0u8; 8];
        file.read_exact_at(&mut len, 0)
            .map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(len);
        if 8 + n > file_len {
            return Err(truncated(format!(
                "header says {n} bytes of metadata but the file has {file_len} bytes"
            )));
        }
        if n > 100_000_000 {
            return Err(Error::model(
                path,
                format!("implausible safetensors header length {n}"),
            ));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact_at(&mut header, 8)
            .map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| Error::model(path, format!("safetensors header is not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::model(path, "safetensors header is not a JSON object"))?;
        let mut entries = HashMap::new();
        let mut need = 8 + n;
        for (name, v) in obj.iter().filter(|(k, _)| *k != "__metadata__") {
            let e = entry(path, name, v, 8 + n)?;
            need = need.max(e.end);
            entries.insert(name.clone(), e);
        }
        if need > file_len {
            return Err(truncated(format!(
                "tensor data needs {need} bytes but the file has {file_len}"
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// The tensor names in the file.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Tensor `name` read from the file into its stored dtype on `device`; `None` when absent.
    pub fn load(&self, name: &str, device: &Device) -> Result<Option<Tensor>> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; (e.end - e.start) as usize];
        self.file
            .read_exact_at(&mut bytes, e.start)
            .map_err(|err| Error::io(&self.path, err))?;
        Ok(Some(Tensor::from_raw_buffer(
            &bytes, e.dtype, &e.shape, device,
        )?))
    }
}

/// One header entry, checked: dtype, shape, and a byte range of exactly the shape's size.
fn entry(path: &Path, name: &str, v: &serde_json::Value, data_start: u64) -> Result<Entry> {
    let bad = |what: String| Error::model(path, format!("tensor `{name}`: {what}"));
    let dtype_name = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
    let dtype = dtype_of(dtype_name).ok_or_else(|| {
        bad(format!(
            "dtype `{dtype_name}` is not one repdrift reads (F32, F64, BF16, F16, I64, U32, U8)"
        ))
    })?;
    let shape: Vec<usize> = v
        .get("shape")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or_else(|| bad("no `shape` list of sizes".into()))?;
    let offsets: [u64; 2] = v
        .get("data_offsets")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or_else(|| bad("no `data_offsets` pair".into()))?;
    // Every partial product must fit (strides are products of the trailing sizes), also when
    // a zero size makes the element count 0.
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d.max(1) as u64))
        .filter(|&p| p <= isize::MAX as u64)
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let numel: u64 = shape.iter().map(|&d| d as u64).product();
    let size = numel
        .checked_mul(dtype.size_in_bytes() as u64)
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if offsets[1] < offsets[0] || offsets[1] - offsets[0] != size {
        return Err(bad(format!(
            "data_offsets {offsets:?} hold {} bytes, but shape {shape:?} in {dtype_name} needs {size}",
            offsets[1].saturating_sub(offsets[0])
        )));
    }
    Ok(Entry {
        dtype,
        shape,
        start: data_start + offsets[0],
        end: data_start + offsets[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let h = header.as_bytes();
        std::io::Write::write_all(&mut f, &(h.len() as u64).to_le_bytes()).unwrap();
        std::io::Write::write_all(&mut f, h).unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
        f
    }

    /// Truth: the safetensors format (little-endian header length, JSON header, data offsets
    /// relative to the end of the header) and the bytes written here.
    #[test]
    fn a_tensor_reads_back_its_bytes_in_its_dtype() {
        let data: Vec<u8> = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = file(
            r#"{"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#,
            &data,
        );
        let t = TensorFile::open(f.path()).unwrap();
        let w = t.load("w", &Device::Cpu).unwrap().unwrap();
        assert_eq!(w.to_vec1::<f32>().unwrap(), vec![1.5, -2.0, 0.25]);
        assert!(t.load("absent", &Device::Cpu).unwrap().is_none());
    }

    /// Regression (found reading the format): a zero size let a shape whose partial products
    /// overflow pass an element-count check (0 elements) and overflow in the strides.
    #[test]
    fn shapes_that_overflow_or_disagree_with_their_bytes_are_named() {
        let big = 1u64 << 40;
        let f = file(
            &format!(r#"{{"w":{{"dtype":"F32","shape":[0,{big},{big}],"data_offsets":[0,0]}}}}"#),
            &[],
        );
        let e = TensorFile::open(f.path()).err().unwrap().to_string();
        assert!(e.contains("`w`") && e.contains("overflows"), "{e}");
        let f = file(
            r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        let e = TensorFile::open(f.path()).err().unwrap().to_string();
        assert!(e.contains("hold 8 bytes") && e.contains("needs 12"), "{e}");
        let f = file(
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0; 8],
        );
        let e = TensorFile::open(f.path()).err().unwrap().to_string();
        assert!(
            e.contains("needs") && e.contains("bytes but the file has"),
            "{e}"
        );
        let f = file(
            r#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
            &[0],
        );
        let e = TensorFile::open(f.path()).err().unwrap().to_string();
        assert!(e.contains("dtype `Q4`"), "{e}");
    }
}
