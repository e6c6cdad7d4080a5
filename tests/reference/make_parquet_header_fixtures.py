"""Hand-edited Parquet files for the page-header walk (src/data/parquet_file.rs), made from
tests/fixtures/data/pairs.parquet (pyarrow, Snappy) by editing its first page header. Python
standard library only:

    python3 tests/reference/make_parquet_header_fixtures.py

tests/fixtures/fuzz/parquet_header_bool_list.parquet: the header gains an unknown field 200, a
  list of 2**31 - 1 booleans (parquet 60 skips boolean elements at zero bytes each: 108 s in the
  fuzz build); the walk refuses it (more elements than bytes left).
tests/fixtures/fuzz/parquet_header_double_list.parquet: the same with doubles (parquet 60's skip
  of a double at the end of the file reads nothing and succeeds: > 200 s).
tests/fixtures/fuzz/parquet_snappy_bomb.parquet: the page's uncompressed size set to
  1,900,000,000 (parquet 60 zero-fills that much before Snappy reads its 69 bytes: 1.9 GB RSS).
tests/fixtures/fuzz/parquet_schema_children.parquet: the footer's root schema element declares
  1,400,000,000 children (parquet 60 reserves 8 bytes for each before counting: 11 GB); the
  footer length is rewritten to match.
A rerun of the CI fuzz smoke's settings found the second kind as
tests/fixtures/fuzz/parquet_header_skip_timeout.parquet (kept as found); the third is the code
path behind the out-of-memory abort that failed CI (whose input CI did not keep).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "fixtures", "data", "pairs.parquet")
OUT = os.path.join(HERE, "..", "fixtures", "fuzz")


def varint(n):
    out = bytearray()
    while True:
        x, n = n & 0x7F, n >> 7
        out.append(x | 0x80 if n else x)
        if not n:
            return bytes(out)


def read_varint(b, p):
    shift = value = 0
    while True:
        x = b[p]
        p += 1
        value |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return value, p


def struct_end(b, p):
    """Position of the stop byte of the compact-protocol struct starting at p (ints only,
    nested structs allowed: what a page header holds)."""
    while True:
        h = b[p]
        p += 1
        if h & 0x0F == 0:
            return p - 1
        if h >> 4 == 0:
            _, p = read_varint(b, p)
        t = h & 0x0F
        if t in (4, 5, 6):
            _, p = read_varint(b, p)
        elif t == 12:
            p = struct_end(b, p) + 1
        elif t not in (1, 2):
            raise ValueError(f"unexpected field type {t}")


b = open(SRC, "rb").read()
first = 4  # the first page header follows the leading magic `PAR1`
stop = struct_end(b, first)
for name, elem in [("bool", 1), ("double", 7)]:
    # field 200 (long form: type nibble 9 = list, zigzag id), list header 0xF? + varint size
    field = bytes([0x09]) + varint(400) + bytes([0xF0 | elem]) + varint(2**31 - 1)
    with open(os.path.join(OUT, f"parquet_header_{name}_list.parquet"), "wb") as f:
        f.write(b[:stop] + field + b[stop:])
# field 1 (page type, i32) then field 2 (uncompressed size, i32 zigzag varint)
assert b[first] & 0x0F == 5
_, p = read_varint(b, first + 1)
assert b[p] == 0x15, b[p]
_, end = read_varint(b, p + 1)
with open(os.path.join(OUT, "parquet_snappy_bomb.parquet"), "wb") as f:
    f.write(b[: p + 1] + varint(2 * 1_900_000_000) + b[end:])
# The footer: FileMetaData field 1 (version), field 2 (list<SchemaElement>); in the root
# element, field 5 (num_children, i32) gets a new varint and the footer length follows.
n = len(b)
flen = int.from_bytes(b[n - 8 : n - 4], "little")
f0 = n - 8 - flen
assert b[f0] == 0x15
_, p = read_varint(b, f0 + 1)
assert b[p] == 0x19 and b[p + 1] & 0x0F == 12, (b[p], b[p + 1])
assert b[p + 1] >> 4 != 15  # a short list header (pyarrow: 5 elements)
p += 2
last = 0
while True:  # fields of the root element
    h = b[p]
    assert h & 0x0F and h >> 4, h  # short-form fields only (pyarrow writes them)
    fid, t = last + (h >> 4), h & 0x0F
    last = fid
    if fid == 5:
        assert t == 5
        _, end = read_varint(b, p + 1)
        new = b[: p + 1] + varint(2 * 1_400_000_000) + b[end:f0 + flen]
        new += (flen + len(new) - (f0 + flen)).to_bytes(4, "little") + b"PAR1"
        break
    if t == 8:
        m, p = read_varint(b, p + 1)
        p += m
    elif t in (4, 5, 6):
        _, p = read_varint(b, p + 1)
    else:
        raise ValueError(f"unexpected field type {t} in the root element")
with open(os.path.join(OUT, "parquet_schema_children.parquet"), "wb") as f:
    f.write(new)
print(sorted(os.listdir(OUT)))
