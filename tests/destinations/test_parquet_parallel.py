"""Parallel row-group encoding: the Thrift footer codec and the stitched file read by pyarrow and duckdb."""

from __future__ import annotations

import io
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.connectors.destinations import _thrift as th
from nebula.connectors.destinations._parquet_parallel import ParallelParquetWriter

from . import fill_batch


def _footer(blob: bytes) -> bytes:
    (n,) = struct.unpack("<i", blob[-8:-4])
    return blob[-8 - n:-8]


def _table(n: int, seed: int = 0) -> pa.Table:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "x": pa.array(rng.random(n)),
        "s": pa.array([None if i % 7 == 0 else f"v{i % 13}" for i in range(n)]),
        "d": pa.array([f"k{i % 3}" for i in range(n)]).dictionary_encode(),
        "ts": pa.array(np.arange(n, dtype=np.int64) * 1_000_000, type=pa.timestamp("us")),
    })


@pytest.mark.parametrize("kwargs", [{}, {"compression": "zstd"}, {"use_dictionary": ["d"]},
                                    {"write_statistics": False}, {"write_page_index": True}])
def test_thrift_round_trip_of_real_footers(kwargs):
    buf = io.BytesIO()
    pq.write_table(_table(3000), buf, row_group_size=1000, **kwargs)
    footer = _footer(buf.getvalue())
    tree, end = th.decode_struct(footer)
    assert end == len(footer)
    assert th.encode_struct(tree) == footer


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.one_of(st.tuples(st.just(th.I64), st.integers(-2**63, 2**63 - 1)),
              st.tuples(st.just(th.I32), st.integers(-2**31, 2**31 - 1)),
              st.tuples(st.just(th.BINARY), st.binary(max_size=20)),
              st.tuples(st.just(th.TRUE), st.booleans())),
    lambda inner: st.tuples(st.just(th.STRUCT), st.dictionaries(st.integers(1, 40), inner, max_size=5)),
    max_leaves=15).filter(lambda v: v[0] == th.STRUCT))
def test_thrift_round_trip_generated(value):
    data = th.encode_struct(value[1])
    tree, end = th.decode_struct(data)
    assert end == len(data) and th.encode_struct(tree) == data


def test_truncated_footer_is_an_error():
    buf = io.BytesIO()
    pq.write_table(_table(10), buf)
    footer = _footer(buf.getvalue())
    with pytest.raises(th.ThriftError):
        th.decode_struct(footer[: len(footer) // 2])


@pytest.mark.parametrize("encoders", [1, 2, 3])
def test_stitched_file_equals_serial_write(tmp_path, encoders):
    t = _table(25_000).unify_dictionaries()
    out = tmp_path / "p.parquet"
    w = ParallelParquetWriter(str(out), t.schema, encoders=encoders, compression="zstd", use_dictionary=["d"])
    for off in range(0, t.num_rows, 4000):
        w.write_table(t.slice(off, 4000))
    w.close()
    got = pq.read_table(out)
    assert got.equals(t)
    md = pq.ParquetFile(out).metadata
    assert md.num_rows == 25_000 and md.num_row_groups == 7
    assert [md.row_group(i).num_rows for i in range(7)] == [4000] * 6 + [1000]
    # statistics survive, so readers can skip row groups
    assert pq.read_table(out, filters=[("id", ">=", 24_999)]).num_rows == 1
    import duckdb  # a second, independent reader (the dev extra brings it)

    assert duckdb.sql(f"select count(*), sum(id) from '{out}'").fetchall() == [(25_000, sum(range(25_000)))]


def test_empty_and_split(tmp_path):
    t = _table(10)
    out = tmp_path / "e.parquet"
    w = ParallelParquetWriter(str(out), t.schema)
    w.close()
    assert pq.read_table(out).num_rows == 0 and pq.read_table(out).schema.names == t.schema.names
    out2 = tmp_path / "s.parquet"
    w = ParallelParquetWriter(str(out2), t.schema)
    w.write_table(_table(2500), row_group_size=1000)
    w.close()
    assert pq.ParquetFile(out2).metadata.num_row_groups == 3


def test_encoder_error_surfaces(tmp_path):
    t = _table(100)
    w = ParallelParquetWriter(str(tmp_path / "x.parquet"), t.schema, compression="no-such-codec")
    with pytest.raises(Exception, match="(?i)codec|compression|unsupported"):
        w.write_table(t)
        w.close()
    w.abort()


def test_small_range_integer_and_date_columns_get_dictionary_pages(tmp_path):
    """A quantity-like column (and a date within a year) is written with a Parquet dictionary, an
    id-like column plainly; values and types read back unchanged; an explicit use_dictionary wins."""
    import datetime

    import numpy as np

    n = 40_000
    rng = np.random.default_rng(1)
    qty = rng.integers(1, 100, n)
    day = [datetime.date(2025, 1, 1) + datetime.timedelta(days=int(d)) for d in rng.integers(0, 365, n)]
    src = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "qty": pa.array(qty),
                    "day": pa.array(day, type=pa.date32()),
                    "wide": pa.array(rng.integers(-2**40, 2**40, n)),
                    "opt": pa.array([None if i % 3 else int(i % 5) for i in range(n)], type=pa.int16())})
    pf = _write_in_batches(tmp_path / "auto.parquet", src)
    assert "RLE_DICTIONARY" in _encodings(pf, "qty")
    assert "RLE_DICTIONARY" in _encodings(pf, "day")
    assert "RLE_DICTIONARY" in _encodings(pf, "opt")
    assert "RLE_DICTIONARY" not in _encodings(pf, "id")
    assert "RLE_DICTIONARY" not in _encodings(pf, "wide")
    assert pf.read().equals(src)
    pf = _write_in_batches(tmp_path / "plain.parquet", src, use_dictionary=False)
    assert "RLE_DICTIONARY" not in _encodings(pf, "qty")
    assert pf.read().equals(src)


def _write_in_batches(path, src: pa.Table, **options) -> pq.ParquetFile:
    """``src`` through a ParquetDestination in batches of 10,000 rows; the file written."""
    from nebula.batch import Batch
    from nebula.connectors.destinations.files import ParquetDestination
    from nebula.schema import Schema

    schema = Schema.from_arrow(src.schema)
    d = ParquetDestination(str(path), options=options or None)
    d.open(schema)
    for off in range(0, src.num_rows, 10_000):
        part = src.slice(off, 10_000)
        d.write(fill_batch(Batch(schema, 10_000), [c.to_pylist() for c in part.columns]))
    d.commit()
    return pq.ParquetFile(str(path))


def _encodings(pf: pq.ParquetFile, name: str) -> set[str]:
    """Every encoding column ``name`` uses in any row group of ``pf``."""
    md = pf.metadata
    col = pf.schema_arrow.names.index(name)
    return {e for r in range(md.num_row_groups) for e in md.row_group(r).column(col).encodings}


def test_integer_columns_without_a_dictionary_are_delta_encoded(tmp_path):
    """Integer and date columns that get no dictionary page are DELTA_BINARY_PACKED (an id column
    becomes tiny); extremes of every width, nulls and negative steps read back unchanged in pyarrow
    and in DuckDB (its own Parquet reader); timestamps, floats and dictionary columns keep their encodings;
    ``integer_encoding=plain`` and an explicit ``use_dictionary`` turn it off; a bad value is refused."""
    import datetime

    import duckdb
    import numpy as np

    from nebula.connectors.destinations.files import ParquetDestination
    from nebula.errors import ConfigError

    n = 30_000
    rng = np.random.default_rng(7)
    i64 = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64, endpoint=True)
    i64[:4] = [-2**63, 2**63 - 1, 0, -1]
    i16 = rng.integers(-2**15, 2**15 - 1, n, dtype=np.int16, endpoint=True)
    day = [datetime.date(1, 1, 1) if i % 2 else datetime.date(9999, 12, 31) for i in range(n)]
    src = pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64) * 3 + 10**12),
        "down": pa.array(np.arange(n, 0, -1, dtype=np.int32) * -7),
        "i64": pa.array(i64), "i16": pa.array(i16),
        "opt": pa.array([None if i % 4 else i * 1000 for i in range(n)], type=pa.int64()),
        "day": pa.array(day, type=pa.date32()),
        "qty": pa.array(rng.integers(1, 50, n)),
        "ts": pa.array(rng.integers(0, 10**15, n), type=pa.timestamp("us")),
        "x": pa.array(rng.random(n)),
    })

    path = tmp_path / "delta.parquet"
    pf = _write_in_batches(path, src)
    for name in ("id", "down", "i64", "i16", "opt", "day"):
        assert "DELTA_BINARY_PACKED" in _encodings(pf, name), name
    assert "RLE_DICTIONARY" in _encodings(pf, "qty")
    for name in ("ts", "x", "qty"):
        assert "DELTA_BINARY_PACKED" not in _encodings(pf, name), name
    assert pf.read().equals(src)
    got = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").arrow()
    got = got.read_all() if hasattr(got, "read_all") else got
    assert got.select(["id", "down", "i64", "i16", "opt", "day"]).cast(
        src.select(["id", "down", "i64", "i16", "opt", "day"]).schema).equals(
        src.select(["id", "down", "i64", "i16", "opt", "day"]))
    md = pf.metadata
    id_col = pf.schema_arrow.names.index("id")
    assert sum(md.row_group(r).column(id_col).total_compressed_size for r in range(md.num_row_groups)) < n // 10

    pf = _write_in_batches(tmp_path / "plain.parquet", src, integer_encoding="plain")
    assert all("DELTA_BINARY_PACKED" not in _encodings(pf, c) for c in src.column_names)
    assert pf.read().equals(src)
    pf = _write_in_batches(tmp_path / "nodict.parquet", src, use_dictionary=False)
    assert all("DELTA_BINARY_PACKED" not in _encodings(pf, c) for c in src.column_names)
    with pytest.raises(ConfigError, match="integer_encoding"):
        ParquetDestination(str(tmp_path / "x.parquet"), options={"integer_encoding": "zigzag"})



def test_pooled_batches_are_kept_until_their_row_group_is_encoded(tmp_path):
    """The runner lends its batches to the Parquet destination instead of it copying them: with tiny
    batches and row groups every pooled batch is refilled many times while earlier row groups are
    still being encoded; a batch given back too early would show up as wrong values in the file.
    Every batch comes back exactly once, and the pool was enlarged as the destination asked."""
    import random

    import nebula
    from nebula.connectors.destinations.files import ParquetDestination

    rnd = random.Random(5)
    lines = ["id,qty,name,country,amount"]
    for i in range(30_000):
        name = "" if i % 11 == 0 else "".join(rnd.choice("abcdefgh ") for _ in range(rnd.randint(1, 40)))
        lines.append(f"{i},{rnd.randint(1, 50)},\"{name}\",{rnd.choice(['US', 'DE', 'FR'])},{rnd.random() * 100:.2f}")
    src = tmp_path / "in.csv"
    src.write_text("\n".join(lines) + "\n")
    expected = nebula.read_csv(str(src))

    dest = ParquetDestination(str(tmp_path / "out.parquet"), options={"row_group_rows": 2_000, "encoders": 2})
    given, returned = [], []
    bind = dest.bind_release

    def counting(release):
        def back(batch):
            returned.append(id(batch))
            release(batch)
        bind(back)

    dest.bind_release = counting
    write = dest.write
    dest.write = lambda b: (given.append(id(b)), write(b))[1]
    assert dest.holds_batches(509) == (-(-2_000 // 509) + 1) * 3
    r = nebula.copy(str(src), dest, batch_rows=509, threads=2, progress="none")
    assert r.rows_written == 30_000
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.num_rows == expected.num_rows
    for name in expected.column_names:
        assert got[name].cast(pa.string()).equals(expected[name].cast(pa.string())), name
    assert len(given) == len(returned) and sorted(given) == sorted(returned)
    assert len(set(given)) < len(given)  # batches really were reused


def test_abort_gives_back_every_kept_batch(tmp_path):
    from nebula.batch import Batch
    from nebula.connectors.destinations.files import ParquetDestination
    from nebula.schema import Schema

    schema = Schema.from_dict({"a": "int64", "s": "string"})
    dest = ParquetDestination(str(tmp_path / "x.parquet"), options={"row_group_rows": 250})
    back = []
    assert dest.holds_batches(100) == 4 * 3  # 250-row groups of 100-row batches, two encoders
    dest.bind_release(back.append)
    dest.open(schema, mode="replace")
    batches = [fill_batch(Batch(schema, 100), [list(range(100)), [f"v{i}" for i in range(100)]]) for _ in range(7)]
    for b in batches:
        dest.write(b)
    dest.abort()  # the 7th batch is still pending, earlier ones in flight or encoded
    assert sorted(map(id, back)) == sorted(map(id, batches))
    assert not (tmp_path / "x.parquet").exists()


def test_partly_filled_batches_never_exceed_the_declared_hold(tmp_path):
    """Small chunks make small batches: the destination keeps at most what it declared and copies
    the rest (else the runner's workers would wait for batches forever)."""
    from nebula.batch import Batch
    from nebula.connectors.destinations.files import ParquetDestination
    from nebula.schema import Schema

    schema = Schema.from_dict({"a": "int64"})
    dest = ParquetDestination(str(tmp_path / "x.parquet"), options={"row_group_rows": 1000, "encoders": 1})
    budget = dest.holds_batches(500)
    back = []
    dest.bind_release(back.append)
    dest.open(schema, mode="replace")
    batches = [fill_batch(Batch(schema, 500), [[i] * 10]) for i in range(40)]  # 10 rows each: 400 < a row group
    for b in batches:
        dest.write(b)
        assert len(batches[:batches.index(b) + 1]) - len(back) <= budget
    dest.commit()
    assert sorted(map(id, back)) == sorted(map(id, batches))
    assert pq.read_table(tmp_path / "x.parquet")["a"].to_pylist() == [i for i in range(40) for _ in range(10)]


def test_small_range_columns_reads_offsets_and_nulls():
    """min/max come from the value buffers: slices (offsets), nulls (their slots hold anything) and
    unsigned/narrow types must not fool it."""
    import numpy as np

    from nebula.connectors.destinations.files import small_range_columns

    n = 4000
    big = pa.array(np.arange(n, dtype=np.int64) * 1000)  # wide range
    narrow = pa.array([None if i % 5 == 0 else i % 7 for i in range(n)], type=pa.int8())
    # nulls over huge values: masked out, the column is still small-range
    masked = pa.Array.from_buffers(pa.int64(), n, [pa.array([i % 2 == 0 for i in range(n)]).buffers()[1],
                                                    pa.py_buffer(np.where(np.arange(n) % 2 == 0, 3, 10**12))],
                                   null_count=n // 2)
    unsigned = pa.array(np.full(n, 2**63 + 5, dtype=np.uint64))
    t = pa.table({"big": big, "narrow": narrow, "masked": masked, "unsigned": unsigned,
                  "s": pa.array(["x"] * n), "allnull": pa.nulls(n, pa.int32())})
    assert small_range_columns(t) == ["narrow", "masked", "unsigned"]
    sliced = pa.table({"big": big}).slice(10, 40)  # 40 rows: limit 5 (an eighth), range 39000
    assert small_range_columns(sliced) == []
    tiny_range = pa.table({"v": pa.array(np.arange(n, dtype=np.int64))}).slice(100, 3000)
    assert small_range_columns(tiny_range) == []  # 3000 values over 3000 rows: not few distinct
    assert small_range_columns(pa.table({"v": pa.chunked_array([pa.array([1] * 2000), pa.array([10**9] * 2000)])})) == []
