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
