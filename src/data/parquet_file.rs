//! Parquet rows as JSON objects, decoded by the `parquet` crate only after its footer schema and
//! every page header in the file have been checked.
//!
//! The file is read into memory once; [`check_footer`] checks the schema's declared child
//! counts; parquet parses the footer (its footer reader bounds every list by the bytes left);
//! then [`check_pages`] walks each column chunk's page headers with
//! [`Thrift`], a bounded reader that interprets a header exactly as
//! parquet 60's `PageHeader::read_thrift_without_stats` does (known fields by their schema type
//! whatever the wire says, unknown fields skipped by wire type, 64 levels deep); only a file
//! that passes is handed to parquet's row reader, on the very same bytes.
//!
//! Why (found by the fuzz smoke and its rerun; the inputs are regression fixtures in
//! `tests/fixtures/fuzz/`): parquet 60 reads page headers through `std::io::Read`, and its
//! skip of an unknown field neither stops at the end of the file (a short read of a `double`
//! returns success) nor bounds a collection's length (a list of booleans is skipped at zero
//! bytes an element), so a 2 KB file declaring a list of millions of elements kept it busy for
//! minutes; and it zero-fills a page's declared uncompressed size before the Snappy decoder
//! looks at the input, so a page declaring 1.9 GB made a 1.5 KB file take 1.9 GB (the path we
//! found that allocates that much from a small file; an out-of-memory abort failed CI without
//! keeping its input, and no `catch_unwind` can turn an abort into an error). The
//! walk refuses, naming the row group, column, page and byte offset:
//! - a header that runs past the end of the file or of its column chunk, nests deeper than
//!   parquet allows, or holds more collection elements than there are bytes left (every
//!   element of a well-formed header takes at least one byte);
//! - a page whose sizes are negative or larger than its chunk;
//! - a Snappy page whose uncompressed size is more than Snappy can expand its bytes to
//!   ([`SNAPPY_MAX_RATIO`] × compressed + [`SNAPPY_SLACK`]);
//! - more rows (footer) or values (pages of one column chunk) than the file has bytes — no
//!   preference data set stores more than one row or value per byte, a decompression bomb does.

use std::path::Path;

use super::thrift::Thrift;
use crate::error::{Error, Result};

/// The largest factor by which Snappy expands its input: a 3-byte copy element writes at most
/// 64 bytes (format description, "2.2. Copies"), 21.3×; literals expand less.
pub const SNAPPY_MAX_RATIO: u64 = 22;
/// Added to the Snappy bound for the stream's length preamble and tiny pages.
pub const SNAPPY_SLACK: u64 = 64;

/// Call `row(i, json)` for each row of the Parquet file `bytes` (read from `path`, which errors
/// name; 0-based `i`), in order, up to `limit` rows; stops at the first error `row` returns.
/// Rows are JSON objects (Parquet lists and structs become JSON arrays and objects, so
/// `messages` columns read as message lists).
pub fn for_each_row(
    path: &Path,
    bytes: bytes::Bytes,
    limit: Option<usize>,
    mut row: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    // A Parquet file ends with its footer, its length and the magic `PAR1`.
    if bytes.len() < 12 || !bytes.ends_with(b"PAR1") {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "not a readable Parquet file: its {} bytes do not end with the footer magic `PAR1` \
                 (a partial download or copy?)",
                bytes.len()
            ),
        });
    }
    let bad = |detail: String| Error::MalformedFile {
        path: path.to_path_buf(),
        detail: format!("not a readable Parquet file ({detail})"),
    };
    // Rows reach the caller inside the guard only as strings; the caller's errors pass through.
    let mut rows_err = None;
    let guarded = crate::io::guarded(|| -> std::result::Result<(), String> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        check_footer(&bytes)?;
        let reader = SerializedFileReader::new(bytes.clone()).map_err(|e| e.to_string())?;
        check_pages(&bytes, reader.metadata())?;
        let rows = reader.get_row_iter(None).map_err(|e| e.to_string())?;
        for (i, r) in rows.enumerate() {
            if limit.is_some_and(|l| i >= l) {
                break;
            }
            let json = r.map_err(|e| e.to_string())?.to_json_value().to_string();
            if let Err(e) = row(i, &json) {
                rows_err = Some(e);
                break;
            }
        }
        Ok(())
    });
    if let Some(e) = rows_err {
        return Err(e);
    }
    match guarded {
        Ok(Ok(())) => Ok(()),
        Ok(Err(detail)) => Err(bad(detail)),
        Err(panic) => Err(bad(format!("the parquet reader failed: {panic}"))),
    }
}

/// Check the footer's schema before parquet builds it: parquet 60 reserves room for each group's
/// declared `num_children` before it counts the elements there are (a 2 KB footer declaring
/// 1.4 billion children asked for 11 GB; found by the fuzz smoke's rerun). Reads the footer's
/// `FileMetaData` up to its schema (field 1, then field 2, the order every writer uses) and
/// each `SchemaElement` with the wire types its schema gives (1–3 and 5–9 i32, 4 binary, 10 a
/// struct, skipped whole, as are unknown fields); refuses a group with more children than the
/// schema has elements, a known field sent with another wire type, and a footer whose first
/// fields are not 1 and 2. A footer this check cannot locate is left to parquet to report.
pub fn check_footer(file: &[u8]) -> std::result::Result<(), String> {
    let n = file.len();
    if n < 12 {
        return Ok(());
    }
    let len = u32::from_le_bytes([file[n - 8], file[n - 7], file[n - 6], file[n - 5]]) as usize;
    if len > n - 12 {
        return Ok(());
    }
    let footer = &file[n - 8 - len..n - 8];
    let mut t = Thrift::new(footer, len as u64);
    let wire = |ty: u8, want: u8, what: &str| {
        if ty == want {
            Ok(())
        } else {
            Err(format!(
                "the footer's {what} has wire type {ty}, not {want}"
            ))
        }
    };
    let mut last = 0i16;
    while let Some((ty, id)) = t.field(last).map_err(|e| format!("footer: {e}"))? {
        match id {
            1 => {
                wire(ty, 5, "version")?;
                t.vlq()?;
            }
            2 => {
                wire(ty, 9, "schema")?;
                let children = t.schema().map_err(|e| format!("footer schema: {e}"))?;
                let elements = children.len();
                if let Some((i, c)) = children.iter().enumerate().find(|(_, &c)| c > elements as i64)
                {
                    return Err(format!(
                        "footer schema element {i} declares {c} children; the schema has {elements} elements"
                    ));
                }
                return Ok(());
            }
            _ => {
                return Err(format!(
                    "the footer's field {id} comes before its schema (writers put version, then schema, first)"
                ))
            }
        }
        last = id;
    }
    Ok(())
}

/// Walk every page header of every column chunk in `file` (the whole file's bytes) as parquet
/// 60 will read it, and refuse what would make parquet loop or allocate beyond the file's
/// size. The error names the row group, column, page and byte offset.
pub fn check_pages(
    file: &[u8],
    meta: &parquet::file::metadata::ParquetMetaData,
) -> std::result::Result<(), String> {
    let len = file.len() as u64;
    let rows: i64 = meta.row_groups().iter().map(|g| g.num_rows().max(0)).sum();
    if rows as u64 > len {
        return Err(format!(
            "the footer declares {rows} rows in a file of {len} bytes (more rows than bytes)"
        ));
    }
    for (g, group) in meta.row_groups().iter().enumerate() {
        for (c, col) in group.columns().iter().enumerate() {
            let at =
                |what: String| format!("row group {g}, column {c} ({}): {what}", col.column_path());
            let start = col
                .dictionary_page_offset()
                .unwrap_or(col.data_page_offset());
            let size = col.compressed_size();
            if start < 0 || size < 0 || (start as u64).saturating_add(size as u64) > len {
                return Err(at(format!(
                    "the column chunk spans bytes {start}..{start}+{size}, outside the file's {len}"
                )));
            }
            let snappy = col.compression() == parquet::basic::Compression::SNAPPY;
            let (mut offset, mut remaining) = (start as u64, size as u64);
            let (mut page, mut values) = (0usize, 0u64);
            while remaining > 0 {
                let on_page = |what: String| at(format!("page {page} at byte {offset}: {what}"));
                let mut t = Thrift::new(&file[offset as usize..], len);
                let h = t.page_header().map_err(on_page)?;
                let header_len = t.pos as u64;
                if header_len > remaining {
                    return Err(on_page(format!(
                        "the header ({header_len} bytes) runs past its column chunk ({remaining} bytes left)"
                    )));
                }
                let data = remaining - header_len;
                if h.compressed < 0 || h.compressed as u64 > data || h.uncompressed < 0 {
                    return Err(on_page(format!(
                        "page sizes {} compressed / {} uncompressed with {data} bytes left in the chunk",
                        h.compressed, h.uncompressed
                    )));
                }
                let bound = SNAPPY_MAX_RATIO * h.compressed as u64 + SNAPPY_SLACK;
                if snappy && h.decompressed && h.uncompressed as u64 > bound {
                    return Err(on_page(format!(
                        "a Snappy page of {} bytes declares {} uncompressed (Snappy expands at most {SNAPPY_MAX_RATIO}× + {SNAPPY_SLACK}: {bound})",
                        h.compressed, h.uncompressed
                    )));
                }
                values += h.num_values.max(0) as u64;
                if values > len {
                    return Err(on_page(format!(
                        "the chunk's pages declare {values} values in a file of {len} bytes (more values than bytes)"
                    )));
                }
                offset += header_len + h.compressed as u64;
                remaining = data - h.compressed as u64;
                page += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footers pyarrow writes pass [`check_footer`]; the generator's file whose root
    /// declares 1.4 billion children does not (tests/reference/make_parquet_header_fixtures.py).
    #[test]
    fn footer_child_counts_are_bounded_by_the_schema() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for name in ["data/pairs.parquet", "data/trl_pairs.parquet"] {
            check_footer(&std::fs::read(root.join(name)).unwrap()).unwrap();
        }
        let bad = std::fs::read(root.join("fuzz/parquet_schema_children.parquet")).unwrap();
        let e = check_footer(&bad).unwrap_err();
        assert!(e.contains("element 0 declares 1400000000 children"), "{e}");
        // Another field before the schema is refused.
        let mut t = bad.clone();
        let n = t.len();
        let len = u32::from_le_bytes(t[n - 8..n - 4].try_into().unwrap()) as usize;
        t[n - 8 - len] = 0x36; // field 3 (i64) where field 1 (i32) was
        let e = check_footer(&t).unwrap_err();
        assert!(e.contains("field 3 comes before"), "{e}");
    }

    /// Files written by pyarrow (tests/reference/make_parquet_fixtures.py) pass the walk, and
    /// the values their pages declare add up to each column chunk's `num_values` in the footer
    /// pyarrow wrote — the walk reads every header whole.
    #[test]
    fn pyarrow_files_pass_and_their_page_values_add_up_to_the_footer() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data");
        for name in ["pairs.parquet", "trl_pairs.parquet"] {
            let bytes = bytes::Bytes::from(std::fs::read(dir.join(name)).unwrap());
            let reader = SerializedFileReader::new(bytes.clone()).unwrap();
            let meta = reader.metadata();
            check_pages(&bytes, meta).unwrap();
            for col in meta.row_groups().iter().flat_map(|g| g.columns()) {
                let start = col
                    .dictionary_page_offset()
                    .unwrap_or(col.data_page_offset());
                let (mut offset, end) = (start as usize, (start + col.compressed_size()) as usize);
                let mut values = 0;
                while offset < end {
                    let mut t = Thrift::new(&bytes[offset..], bytes.len() as u64);
                    let h = t.page_header().unwrap();
                    offset += t.pos + h.compressed as usize;
                    // Dictionary pages count dictionary entries, not the column's values.
                    let dictionary = Some(offset as i64 - t.pos as i64 - h.compressed)
                        == col.dictionary_page_offset();
                    if !dictionary {
                        values += h.num_values;
                    }
                }
                assert_eq!(offset, end, "{name}");
                assert_eq!(values, col.num_values(), "{name} {}", col.column_path());
            }
        }
    }
}
