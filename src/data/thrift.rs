//! A bounded Thrift compact-protocol reader for Parquet's page headers and footer schema,
//! used by [`super::parquet_file`] to check a file before the `parquet` crate reads it.
//!
//! It reads a `PageHeader` exactly as parquet 60's `PageHeader::read_thrift_without_stats`
//! does — known fields by their schema type whatever the wire type says, unknown fields skipped
//! by wire type as its `skip_till_depth` does (boolean list elements at zero bytes, 64 levels)
//! — so a header it accepts is one parquet reads the same bytes of; and it refuses every read
//! past the end of its slice and every collection with more elements than there are bytes
//! left (every element of a well-formed header takes at least one byte), the two things
//! parquet's `io::Read`-based header reader does not bound.

/// parquet 60's skip depth (`DEFAULT_SKIP_DEPTH`).
const SKIP_DEPTH: u32 = 64;

/// What [`Thrift::page_header`] keeps of a page header.
#[derive(Debug, Default, PartialEq)]
pub struct PageSizes {
    /// Field 2.
    pub uncompressed: i64,
    /// Field 3.
    pub compressed: i64,
    /// `num_values` of the data (v1, v2) or dictionary page header; 0 when absent.
    pub num_values: i64,
    /// Whether parquet decompresses the page (`false` only for a v2 page with
    /// `is_compressed = false`).
    pub decompressed: bool,
}

/// A bounded Thrift compact-protocol reader over a page header's bytes (a slice from the
/// header's first byte to the end of the file). Reads the header the way parquet 60 does;
/// every read past the slice, and every collection with more elements than the bytes in the
/// file, is an error.
pub struct Thrift<'a> {
    buf: &'a [u8],
    /// Bytes consumed so far.
    pub pos: usize,
    /// Collection elements skipped so far, and the most allowed (the file's length).
    elements: u64,
    max_elements: u64,
}

impl<'a> Thrift<'a> {
    /// A reader of `buf`, allowing at most `max_elements` collection elements in all.
    pub fn new(buf: &'a [u8], max_elements: u64) -> Self {
        Thrift {
            buf,
            pos: 0,
            elements: 0,
            max_elements,
        }
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| "the header runs past the end of the file".to_string())?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint, decoded as parquet does (bits past 64 wrap).
    pub fn vlq(&mut self) -> std::result::Result<u64, String> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift = shift.wrapping_add(7);
        }
    }

    /// A zigzag varint as parquet's `read_i32` (truncating) reads it.
    fn i32(&mut self) -> std::result::Result<i64, String> {
        let v = self.vlq()?;
        Ok(i64::from(((v >> 1) as i64 ^ -((v & 1) as i64)) as i32))
    }

    fn skip_bytes(&mut self, n: u64) -> std::result::Result<(), String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "a {n}-byte field runs past the end of the file ({left} bytes left)"
            ));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn count(&mut self, n: u64) -> std::result::Result<(), String> {
        self.elements = self.elements.saturating_add(n);
        let left = (self.buf.len() - self.pos) as u64;
        if n > left || self.elements > self.max_elements {
            return Err(format!(
                "a collection of {n} elements with {left} bytes left in the file"
            ));
        }
        Ok(())
    }

    /// A field header: `None` at the struct's stop byte, else (wire type, field id).
    pub fn field(&mut self, last: i16) -> std::result::Result<Option<(u8, i16)>, String> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == 0 {
            return Ok(None);
        }
        if ty > 13 {
            return Err(format!("invalid field type {ty}"));
        }
        let delta = b >> 4;
        let id = if delta != 0 {
            last.checked_add(i16::from(delta))
                .ok_or_else(|| format!("field id overflows ({last} + {delta})"))?
        } else {
            self.i32()? as i16
        };
        Ok(Some((ty, id)))
    }

    /// A list or set element type as parquet's `ElementType`, mapped to its field type.
    fn element(nibble: u8) -> std::result::Result<u8, String> {
        match nibble {
            1 | 2 => Ok(1),
            3..=13 => Ok(nibble),
            _ => Err(format!("invalid element type {nibble}")),
        }
    }

    /// Skip a value of wire type `ty` as parquet's `skip_till_depth` does.
    fn skip(&mut self, ty: u8, depth: u32) -> std::result::Result<(), String> {
        if depth == 0 {
            return Err("the header nests deeper than 64 levels".into());
        }
        match ty {
            1 | 2 => Ok(()),
            3 => self.byte().map(|_| ()),
            4..=6 => self.vlq().map(|_| ()),
            7 => self.skip_bytes(8),
            8 => {
                let n = self.vlq()?;
                self.skip_bytes(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                if h == 0 {
                    return Ok(());
                }
                let ty = Self::element(h & 0x0f)?;
                let n = match h >> 4 {
                    15 => self.vlq()?,
                    n => u64::from(n),
                };
                if n > i32::MAX as u64 {
                    return Err(format!("a list of {n} elements"));
                }
                self.count(n)?;
                for _ in 0..n {
                    self.skip(ty, depth - 1)?;
                }
                Ok(())
            }
            11 => {
                let n = self.vlq()?;
                if n > i32::MAX as u64 {
                    return Err(format!("a map of {n} entries"));
                }
                if n > 0 {
                    let kv = self.byte()?;
                    let (k, v) = (Self::element(kv >> 4)?, Self::element(kv & 0x0f)?);
                    self.count(n.saturating_mul(2))?;
                    for _ in 0..n {
                        self.skip(k, depth - 1)?;
                        self.skip(v, depth - 1)?;
                    }
                }
                Ok(())
            }
            12 => {
                while let Some((ty, _)) = self.field(0)? {
                    self.skip(ty, depth - 1)?;
                }
                Ok(())
            }
            13 => self.skip_bytes(16),
            _ => Err(format!("cannot skip a field of type {ty}")),
        }
    }

    /// A struct whose field `id` is read by `known` when it returns `true` for that id (with
    /// the wire type, for booleans); other fields are skipped by wire type.
    fn fields(
        &mut self,
        mut known: impl FnMut(&mut Self, i16, u8) -> std::result::Result<bool, String>,
    ) -> std::result::Result<(), String> {
        let mut last = 0i16;
        while let Some((ty, id)) = self.field(last)? {
            if !known(self, id, ty)? {
                self.skip(ty, SKIP_DEPTH)?;
            }
            last = id;
        }
        Ok(())
    }

    /// A boolean struct field: its value is its wire type.
    fn bool_field(ty: u8) -> std::result::Result<bool, String> {
        match ty {
            1 => Ok(true),
            2 => Ok(false),
            _ => Err(format!("a boolean field of wire type {ty}")),
        }
    }

    /// A `list<SchemaElement>` (after its field header): each element's `num_children`
    /// (0 when absent), known fields required to carry their schema's wire type.
    pub fn schema(&mut self) -> std::result::Result<Vec<i64>, String> {
        let h = self.byte()?;
        if h == 0 {
            return Ok(Vec::new());
        }
        if h & 0x0f != 12 {
            return Err(format!("a list of element type {}, not structs", h & 0x0f));
        }
        let n = match h >> 4 {
            15 => self.vlq()?,
            n => u64::from(n),
        };
        self.count(n)?;
        let mut children = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut c = 0;
            self.fields(|t, id, ty| {
                let want = match id {
                    1..=3 | 5..=9 => 5,
                    4 => 8,
                    10 => 12,
                    _ => return Ok(false),
                };
                if ty != want {
                    return Err(format!(
                        "element {i} field {id} has wire type {ty}, not {want}"
                    ));
                }
                if id == 5 {
                    c = t.i32()?;
                    return Ok(true);
                }
                Ok(false)
            })?;
            children.push(c);
        }
        Ok(children)
    }

    /// `PageHeader` as parquet 60 reads it without statistics: 1 type, 2 uncompressed size,
    /// 3 compressed size, 4 crc (i32s); 5 `DataPageHeader`, 6 `IndexPageHeader`, 7
    /// `DictionaryPageHeader`, 8 `DataPageHeaderV2` (structs, whatever the wire type says).
    pub fn page_header(&mut self) -> std::result::Result<PageSizes, String> {
        let mut h = PageSizes {
            decompressed: true,
            ..Default::default()
        };
        let (mut has_uncompressed, mut has_compressed) = (false, false);
        self.fields(|t, id, _| {
            match id {
                1 | 4 => {
                    t.i32()?;
                }
                2 => {
                    h.uncompressed = t.i32()?;
                    has_uncompressed = true;
                }
                3 => {
                    h.compressed = t.i32()?;
                    has_compressed = true;
                }
                // DataPageHeader: 1 num_values, 2–4 encodings (i32s).
                5 => t.fields(|t, id, _| match id {
                    1 => {
                        h.num_values = t.i32()?;
                        Ok(true)
                    }
                    2..=4 => t.i32().map(|_| true),
                    _ => Ok(false),
                })?,
                // DictionaryPageHeader: 1 num_values, 2 encoding (i32s), 3 is_sorted (bool).
                7 => t.fields(|t, id, ty| match id {
                    1 => {
                        h.num_values = t.i32()?;
                        Ok(true)
                    }
                    2 => t.i32().map(|_| true),
                    3 => Self::bool_field(ty).map(|_| true),
                    _ => Ok(false),
                })?,
                6 => t.fields(|_, _, _| Ok(false))?,
                // DataPageHeaderV2: 1 num_values, 2 num_nulls, 3 num_rows, 4 encoding, 5–6 level
                // lengths (i32), 7 is_compressed (bool).
                8 => t.fields(|t, id, ty| match id {
                    1 => {
                        h.num_values = t.i32()?;
                        Ok(true)
                    }
                    2..=6 => t.i32().map(|_| true),
                    7 => {
                        h.decompressed = Self::bool_field(ty)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !(has_uncompressed && has_compressed) {
            return Err("the page header lacks its sizes".into());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact-protocol bytes of a page header: type DATA_PAGE, uncompressed 100, compressed
    /// 50, then `extra` (fields after id 3), then a DataPageHeader with num_values 7.
    fn header(extra: &[u8]) -> Vec<u8> {
        let mut h = vec![0x15, 0x00, 0x15, 0xC8, 0x01, 0x15, 0x64];
        h.extend_from_slice(extra);
        // field 5 by its long form (delta 0), a struct: num_values 7, encoding 0, stop.
        h.extend_from_slice(&[0x0C, 0x0A, 0x15, 0x0E, 0x15, 0x00, 0x00, 0x00]);
        h
    }

    #[test]
    fn a_hand_built_header_reads_to_its_stop_byte() {
        let h = header(&[]);
        let mut t = Thrift::new(&h, 1 << 20);
        let s = t.page_header().unwrap();
        assert_eq!(
            s,
            PageSizes {
                uncompressed: 100,
                compressed: 50,
                num_values: 7,
                decompressed: true
            }
        );
        assert_eq!(t.pos, h.len());
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        // Field 4 (crc) then long-form fields 9..: binary "ab", double, list<i32> [1, 2],
        // map<i32, binary> {1: "x"}, struct {1: i64 3}, uuid, byte, bool.
        let mut extra = vec![0x15, 0x02]; // crc = 1
        extra.extend_from_slice(&[0x08, 0x12, 0x02, b'a', b'b']);
        extra.extend_from_slice(&[0x07, 0x14, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F]);
        extra.extend_from_slice(&[0x09, 0x16, 0x25, 0x02, 0x04]);
        extra.extend_from_slice(&[0x0B, 0x18, 0x01, 0x58, 0x02, 0x01, b'x']);
        extra.extend_from_slice(&[0x0C, 0x1A, 0x16, 0x06, 0x00]);
        extra.extend_from_slice(&[0x0D, 0x1C]);
        extra.extend_from_slice(&[0u8; 16]);
        extra.extend_from_slice(&[0x03, 0x1E, 0x7F, 0x01, 0x20]);
        let h = header(&extra);
        let mut t = Thrift::new(&h, 1 << 20);
        assert_eq!(t.page_header().unwrap().num_values, 7);
        assert_eq!(t.pos, h.len());
    }

    #[test]
    fn a_known_field_is_read_by_its_schema_type_whatever_its_wire_type() {
        // Field 2 sent with wire type double (7) but read, as parquet 60 reads it, as an i32
        // varint: the header still ends at its stop byte and the size is the varint's.
        let mut h = header(&[]);
        h[2] = 0x17;
        let mut t = Thrift::new(&h, 1 << 20);
        assert_eq!(t.page_header().unwrap().uncompressed, 100);
        assert_eq!(t.pos, h.len());
    }

    #[test]
    fn collections_longer_than_the_bytes_left_are_refused() {
        for elem in [0x01, 0x07, 0x0C] {
            // Field 9: list of 2^31 - 1 elements (bools, doubles, structs).
            let extra = [0x09, 0x12, 0xF0 | elem, 0xFF, 0xFF, 0xFF, 0xFF, 0x07];
            let e = Thrift::new(&header(&extra), 1 << 20)
                .page_header()
                .unwrap_err();
            assert!(e.contains("2147483647 elements"), "{e}");
        }
        // A map of 2^31 - 1 bool → bool entries.
        let extra = [0x0B, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x11];
        let e = Thrift::new(&header(&extra), 1 << 20)
            .page_header()
            .unwrap_err();
        assert!(e.contains("elements"), "{e}");
        // Nested lists of bools, each short, but more elements in all than the cap allows.
        let mut extra = vec![0x09, 0x12, 0x39];
        extra.extend_from_slice(&[0x31; 3]);
        assert!(Thrift::new(&header(&extra), 1 << 20).page_header().is_ok());
        let e = Thrift::new(&header(&extra), 5).page_header().unwrap_err();
        assert!(e.contains("elements"), "{e}");
    }

    #[test]
    fn truncation_and_depth_are_refused() {
        let h = header(&[]);
        for cut in 0..h.len() {
            assert!(
                Thrift::new(&h[..cut], 1 << 20).page_header().is_err(),
                "{cut}"
            );
        }
        // A binary field whose length runs past the end.
        let e = Thrift::new(&header(&[0x08, 0x12, 0x7F]), 1 << 20)
            .page_header()
            .unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
        // 70 nested structs in an unknown field.
        let mut extra = vec![0x0C, 0x12];
        extra.extend(std::iter::repeat_n(0x1C, 69));
        extra.extend(std::iter::repeat_n(0x00, 70));
        let e = Thrift::new(&header(&extra), 1 << 20)
            .page_header()
            .unwrap_err();
        assert!(e.contains("deeper than 64"), "{e}");
    }

    #[test]
    fn a_v2_page_stored_uncompressed_is_not_decompressed() {
        // Field 8 (DataPageHeaderV2) by delta 5 from field 3: num_values 4, is_compressed false.
        let h = [
            0x15, 0x06, 0x15, 0xC8, 0x01, 0x15, 0x64, 0x5C, 0x15, 0x08, 0x62, 0x00, 0x00,
        ];
        let mut t = Thrift::new(&h, 1 << 20);
        let s = t.page_header().unwrap();
        assert_eq!((s.num_values, s.decompressed), (4, false));
        assert_eq!(t.pos, h.len());
    }
}
