"""Key hashing and last-change-per-key kernels against a plain Python reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.kernels import hash as kh
from nebula.pipeline.cdc import compact_last_by_key


def naive_last_per_key(keys: list) -> list[int]:
    """Rows kept: the last row of every distinct key, in row order."""
    last = {}
    for i, k in enumerate(keys):
        last[k] = i
    return sorted(last.values())


def kept(rb, key):
    out = compact_last_by_key(rb, key)
    return list(zip(*(out.column(k).to_pylist() for k in [*key, "row"]), strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-3, 3)), st.one_of(st.none(), st.text(max_size=3))),
                max_size=60))
def test_compaction_matches_reference(rows):
    ids = [r[0] for r in rows]
    names = [r[1] for r in rows]
    rb = pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), pa.array(names, pa.string()),
                                     pa.array(range(len(rows)), pa.int64())], names=["id", "name", "row"])
    want = naive_last_per_key(list(zip(ids, names, strict=True)))
    assert [r[-1] for r in kept(rb, ["id", "name"])] == want
    want1 = naive_last_per_key(ids)
    assert [r[-1] for r in kept(rb, ["id"])] == want1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=40), st.integers(0, 5))
def test_sliced_binary_and_decimal_keys(values, cut):
    from decimal import Decimal

    arr = pa.array(values, pa.binary()).slice(min(cut, len(values)))
    dec = pa.array([Decimal(len(v)) / 4 for v in values], pa.decimal128(10, 2)).slice(min(cut, len(values)))
    n = len(arr)
    rb = pa.RecordBatch.from_arrays([arr, dec, pa.array(range(n), pa.int64())], names=["b", "d", "row"])
    keys = list(zip(arr.to_pylist(), dec.to_pylist(), strict=True))
    assert [r[-1] for r in kept(rb, ["b", "d"])] == naive_last_per_key(keys)


def test_kernel_groups_and_collision_fallback():
    h = np.array([5, 7, 5, 9, 7, 5], np.uint64)
    group = np.empty(6, np.int64)
    keep = np.empty(6, np.uint8)
    n = kh.last_per_key(h, 6, np.empty(kh.table_size(6), np.int64), group, keep)
    assert n == 3 and group.tolist() == [0, 1, 0, 3, 1, 0] and np.flatnonzero(keep).tolist() == [3, 4, 5]
    # same hash, different keys (forced): the exact path keeps both
    rb = pa.RecordBatch.from_arrays([pa.array([1, 2, 1]), pa.array([0, 1, 2])], names=["id", "row"])
    orig = kh.last_per_key

    def colliding(hashes, n, table, group, keep):
        return orig(np.zeros_like(hashes), n, table, group, keep)

    kh.last_per_key = colliding
    try:
        assert [r[-1] for r in kept(rb, ["id"])] == [1, 2]
    finally:
        kh.last_per_key = orig


def test_every_fixed_type_hashes():
    import datetime as dt

    cols = [pa.array([1.5, 1.5, None]), pa.array([True, True, False]),
            pa.array([dt.date(2024, 1, 1)] * 3), pa.array([dt.datetime(2024, 1, 1)] * 3, pa.timestamp("us")),
            pa.array([1, 1, 1], pa.int8())]
    for c in cols:
        rb = pa.RecordBatch.from_arrays([c, pa.array([0, 1, 2])], names=["k", "row"])
        assert [r[-1] for r in kept(rb, ["k"])] == naive_last_per_key(c.to_pylist())
