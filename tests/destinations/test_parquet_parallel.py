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
    try:  # a second, independent reader when it is installed (the bench extra brings it)
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
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

    from nebula.connectors.destinations.files import ParquetDestination
    from nebula.schema import Schema

    n = 40_000
    rng = np.random.default_rng(1)
    qty = rng.integers(1, 100, n)
    day = [datetime.date(2025, 1, 1) + datetime.timedelta(days=int(d)) for d in rng.integers(0, 365, n)]
    src = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "qty": pa.array(qty),
                    "day": pa.array(day, type=pa.date32()),
                    "wide": pa.array(rng.integers(-2**40, 2**40, n)),
                    "opt": pa.array([None if i % 3 else int(i % 5) for i in range(n)], type=pa.int16())})
    from nebula.batch import Batch

    schema = Schema.from_arrow(src.schema)

    def write(path, **options):
        d = ParquetDestination(str(path), options=options or None)
        d.open(schema)
        for off in range(0, n, 10_000):
            part = src.slice(off, 10_000)
            b = Batch(schema, 10_000)
            _fill(b, part)
            d.write(b)
        d.commit()
        return pq.ParquetFile(str(path))

    def encodings(pf, col):
        md = pf.metadata
        return {e for r in range(md.num_row_groups) for e in md.row_group(r).column(col).encodings}

    pf = write(tmp_path / "auto.parquet")
    names = pf.schema_arrow.names
    assert "RLE_DICTIONARY" in encodings(pf, names.index("qty"))
    assert "RLE_DICTIONARY" in encodings(pf, names.index("day"))
    assert "RLE_DICTIONARY" in encodings(pf, names.index("opt"))
    assert "RLE_DICTIONARY" not in encodings(pf, names.index("id"))
    assert "RLE_DICTIONARY" not in encodings(pf, names.index("wide"))
    assert pf.read().equals(src)
    pf = write(tmp_path / "plain.parquet", use_dictionary=False)
    assert "RLE_DICTIONARY" not in encodings(pf, pf.schema_arrow.names.index("qty"))
    assert pf.read().equals(src)


def _fill(batch, table) -> None:
    """Copy an Arrow table's fixed-width columns into a Batch (a test helper, not a hot path)."""
    import numpy as np

    for col, arr in zip(batch.columns, table.columns, strict=True):
        a = arr.combine_chunks()
        valid = a.is_valid().to_numpy(zero_copy_only=False)
        bits = np.packbits(valid, bitorder="little")
        col.validity[:len(bits)] = bits
        col.null_count = a.null_count
        vals = a.fill_null(0).to_numpy(zero_copy_only=False)
        if pa.types.is_date32(a.type):
            vals = vals.astype("datetime64[D]").astype(np.int32)
        col.values[:len(vals)] = vals
    batch.length = table.num_rows
