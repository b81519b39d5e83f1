"""Partition kernels (factorize, combine, stable counting sort, days) against naive Python references,
and the whole split (``partition_rows``) against a Python groupby. Runs under NUMBA_DISABLE_JIT=1 too."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.kernels import partition as kp

I64 = st.integers(-(2**63), 2**63 - 1)


def naive_factorize(values, valid):
    seen: dict = {}
    codes = []
    for v, ok in zip(values, valid, strict=True):
        key = None if not ok else ("v", v)
        if key not in seen:
            seen[key] = len(seen)
        codes.append(seen[key])
    return codes, len(seen)


def naive_counting_sort(codes, nparts):
    perm = [i for p in range(nparts) for i, c in enumerate(codes) if c == p]
    starts = [0]
    for p in range(nparts):
        starts.append(starts[-1] + sum(1 for c in codes if c == p))
    return perm, starts


def run_factorize(values, valid):
    n = len(values)
    v = np.array(values, dtype=np.int64)
    ok = np.array(valid, dtype=np.uint8)
    codes = np.empty(n, np.int64)
    uniq = np.empty(max(n, 1), np.int64)
    nc = np.empty(1, np.int64)
    k = kp.factorize_int64(v, ok, n, not all(valid), codes, uniq, nc)
    return codes, uniq, int(nc[0]), int(k)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(I64, st.integers(-3, 3)), st.booleans()), max_size=200))
def test_factorize_matches_naive(rows):
    values = [v for v, _ in rows]
    valid = [ok for _, ok in rows]
    codes, uniq, null_code, k = run_factorize(values, valid)
    want, kw = naive_factorize(values, valid)
    assert k == kw
    assert codes.tolist() == want
    for i, (v, ok) in enumerate(rows):
        if ok:
            assert uniq[codes[i]] == v
        else:
            assert codes[i] == null_code
    if all(valid):
        assert null_code == -1


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=300))))
def test_stable_counting_sort_matches_naive(case):
    nparts, codes = case
    n = len(codes)
    perm = np.empty(n, np.int64)
    starts = np.empty(nparts + 1, np.int64)
    assert kp.stable_counting_sort(np.array(codes, np.int64), n, nparts, perm, starts) == n
    want_perm, want_starts = naive_counting_sort(codes, nparts)
    assert perm.tolist() == want_perm
    assert starts.tolist() == want_starts


def test_counting_sort_rejects_out_of_range_codes():
    perm = np.empty(3, np.int64)
    starts = np.empty(3, np.int64)
    assert kp.stable_counting_sort(np.array([0, 2, 1], np.int64), 3, 2, perm, starts) == -1
    assert kp.stable_counting_sort(np.array([0, -1, 1], np.int64), 3, 2, perm, starts) == -1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), max_size=100))
def test_days_from_micros_floor(ts):
    out = np.empty(len(ts), np.int64)
    kp.days_from_micros(np.array(ts, np.int64), len(ts), out)
    assert out.tolist() == [t // 86_400_000_000 for t in ts]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7)), max_size=100))
def test_combine_then_factorize_is_a_tuple_code(pairs):
    n = len(pairs)
    a = np.array([p[0] for p in pairs], np.int64)
    b = np.array([p[1] for p in pairs], np.int64)
    out = np.empty(n, np.int64)
    kp.combine_codes(a, b, 8, n, out)
    codes, _, _, k = run_factorize(out.tolist(), [True] * n)
    want, kw = naive_factorize(pairs, [True] * n)
    assert k == kw and codes.tolist() == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["de", "fr", "", "a/b", None]), st.one_of(st.none(), st.integers(-3, 3)),
                          st.one_of(st.none(), st.integers(-10**12, 10**12))), max_size=120))
def test_partition_rows_groups_like_python(rows):
    from nebula.connectors.destinations.partitioned import _Key, partition_rows

    rb = pa.RecordBatch.from_pydict({
        "country": pa.array([r[0] for r in rows], pa.string()),
        "n": pa.array([r[1] for r in rows], pa.int64()),
        "ts": pa.array([r[2] for r in rows], pa.int64()).cast(pa.timestamp("us")),
    })
    keys = [_Key("country", "country", "value"), _Key("n", "n", "value"), _Key("ts_date", "ts", "date")]
    perm, starts, first = partition_rows(rb, keys)

    def key_of(r):
        return (r[0], r[1], None if r[2] is None else r[2] // 86_400_000_000)

    order: dict = {}
    for i, r in enumerate(rows):
        order.setdefault(key_of(r), []).append(i)
    groups = [perm[starts[p]:starts[p + 1]].tolist() for p in range(len(starts) - 1)]
    assert groups == list(order.values())  # first-appearance order, rows stable within a group
    assert first.tolist() == [g[0] for g in order.values()]


def test_partition_rows_dictionary_column():
    from nebula.connectors.destinations.partitioned import _Key, partition_rows

    arr = pa.array(["x", "y", None, "x", "z", None]).dictionary_encode()
    rb = pa.RecordBatch.from_arrays([arr], names=["c"])
    perm, starts, _ = partition_rows(rb, [_Key("c", "c", "value")])
    assert [perm[starts[p]:starts[p + 1]].tolist() for p in range(len(starts) - 1)] == [[0, 3], [1], [2, 5], [4]]
