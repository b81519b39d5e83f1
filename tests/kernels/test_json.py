"""JSON kernels against ``tests/naive_json.py`` and Python's json module (hypothesis + hostile cases).

Run also with ``NUMBA_DISABLE_JIT=1`` so coverage sees inside the kernels (examples are fewer then).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nebula.connectors.sources.json import _KeyTree, _Spans
from nebula.kernels import json as kj

try:
    from tests import naive_json as N
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import naive_json as N

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
SETTINGS = settings(max_examples=25 if NOJIT else 150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def arr(data: bytes) -> np.ndarray:
    return np.frombuffer(data + b"\0", dtype=np.uint8)[:-1].copy()


def tokenize(data: bytes, *, mode=kj.LINES, skip=True, rows=16, max_depth=64):
    """Drive the structural kernel like the source does: ``(rows, rejects, error)``.

    ``rows``: one ``{name: (kind, start, end)}`` per record; ``rejects``: ``(line, code, raw)``.
    """
    buf = arr(data)
    tree = _KeyTree(8)
    slots: dict[str, int] = {}
    names: list[str] = []
    tok = _Spans(rows, 2)
    d = max_depth + 1
    stacks = (np.zeros(d, np.uint8), np.zeros(d, np.int32), np.zeros(d, np.int32), np.zeros(d, np.int64))
    pending = np.zeros(64, np.int64)
    out, rej = [], []
    pos, line, state = (1, 1, 0) if mode == kj.ARRAY else (0, 1, 0)
    while True:
        tok.ensure(max(len(names), 1))
        r = kj.tokenize(buf, pos, buf.shape[0], True, mode, state, line, rows, max_depth, skip, *tree.args(), tok.ns,
                        tok.kinds, tok.starts, tok.ends, tok.colmask, tok.row_start, tok.row_end, tok.row_line,
                        tok.rej_start, tok.rej_end, tok.rej_code, tok.rej_pos, tok.rej_line, *stacks, pending,
                        tree.kscratch, (), np.zeros(d, np.int64), tok.ev, tok.evk, tok.evn, tok.evmask)
        n, nrej, nxt, nline, nstate, status, code, epos, eline, _ = (int(x) for x in r)
        if tree.meta[kj.M_NEED]:
            tree.meta[kj.M_NEED] = 0
            added = False
            for k in range(1, tree.n):
                if tree.col[k] == kj.COL_NONE and tree.seen[k]:
                    nm = tree.name(k, "__")
                    if nm not in slots:
                        slots[nm] = len(names)
                        names.append(nm)
                    tree.col[k] = slots[nm]
                    added = True
            if added:
                continue
        if status == kj.TABLE_FULL and n == 0 and nrej == 0:
            tree.grow()
            continue
        for i in range(n):
            row = {}
            for c in range(len(names)):
                k = int(tok.kinds[i * tok.ns + c])
                if k:
                    row[names[c]] = (k, int(tok.starts[i * tok.ns + c]), int(tok.ends[i * tok.ns + c]))
            out.append(row)
            assert tok.colmask[:len(names)].tolist() is not None
        rej += [(int(tok.rej_line[i]), int(tok.rej_code[i]), bytes(buf[tok.rej_start[i]:tok.rej_end[i]]))
                for i in range(nrej)]
        if status == kj.ERROR:
            return out, rej, (code, eline, epos)
        pos, line, state = nxt, nline, nstate
        if status == kj.DONE:
            return out, rej, None


def naive(lines: list[bytes]):
    """Expected ``(rows, rejected line numbers)`` of JSON lines, from the reference."""
    rows, bad = [], []
    for i, ln in enumerate(lines):
        if not ln.strip(b" \t\r"):
            continue
        try:
            rec = N.parse_record(ln, max_depth=64)
        except N.Invalid:
            bad.append(i + 1)
            continue
        base = sum(len(x) + 1 for x in lines[:i])
        rows.append({k: (v[0], v[1] + base, v[2] + base) for k, v in rec.items()})
    return rows, bad


def decode(buf: np.ndarray, kind: int, s: int, e: int):
    if kind in (kj.K_STR, kj.K_STRESC):
        out = np.empty(max(e - s, 1), np.uint8)
        w = kj.decode_string_into(buf, s, e, out, 0)
        return bytes(out[:w]).decode("utf-8")
    return json.loads(bytes(buf[s:e]))


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        name = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, name + "__"))
        else:
            out[name] = v
    return out


# -- strategies ------------------------------------------------------------------------------------
keys = st.text(st.characters(blacklist_characters="_", blacklist_categories=("Cs",)), max_size=6)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(blacklist_categories=("Cs",)),
                                                                        max_size=12))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4), max_leaves=12)
records = st.dictionaries(keys, values, max_size=6)


def dumps(rec, ascii_: bool, spaced: bool) -> bytes:
    return json.dumps(rec, ensure_ascii=ascii_, separators=(", ", ": ") if spaced else (",", ":")).encode()


@SETTINGS
@given(st.lists(st.tuples(records, st.booleans(), st.booleans()), min_size=1, max_size=8))
def test_valid_records_match_reference_and_json_module(recs):
    lines = [dumps(r, a, s) for r, a, s in recs]
    data = b"\n".join(lines) + b"\n"
    rows, rej, err = tokenize(data)
    assert err is None and rej == []
    exp, bad = naive(lines)
    assert bad == []
    buf = arr(data)
    # null-only keys of earlier rows are columns too; compare the non-missing leaves
    assert rows == exp
    for row, (rec, _, _) in zip(rows, recs, strict=True):
        want = {k: v for k, v in flatten(rec).items() if v != {}}
        got = {k: decode(buf, *v) for k, v in row.items()}
        assert got == want


@SETTINGS
@given(records, st.integers(0, 10_000), st.sampled_from([b"", b",", b"'", b"\\", b"\"", b"\x01", b"\xff", b"}", b"]",
                                                          b"[", b"{", b"NaN", b"-", b"0", b"e", b"\\ud800", b" "]),
       st.booleans())
def test_mutated_lines_match_reference(rec, where, insert, delete):
    line = dumps(rec, False, True)
    i = where % (len(line) + 1)
    bad = line[:i] + insert + line[i + (1 if delete else 0):]
    bad = bad.replace(b"\n", b" ")
    data = b'{"ok": 1}\n' + bad + b'\n{"ok": 2}\n'
    rows, rej, err = tokenize(data)
    assert err is None
    exp, bad_lines = naive([b'{"ok": 1}', bad, b'{"ok": 2}'])
    assert [r[0] for r in rej] == bad_lines
    assert rows == exp
    # the reference is at least as strict as Python's json module, and accepts what it accepts otherwise
    try:
        ref = json.loads(bad)
        ok_py = True
    except (ValueError, RecursionError):
        ok_py = False
    if 2 not in bad_lines:
        assert ok_py and isinstance(ref, dict)


@SETTINGS
@given(st.lists(records, max_size=6), st.integers(1, 5))
def test_array_mode_matches_json_module(recs, rows):
    data = json.dumps(recs, indent=1).encode()
    out, rej, err = tokenize(data, mode=kj.ARRAY, rows=rows)
    assert err is None and rej == []
    buf = arr(data)
    got = [{k: decode(buf, *v) for k, v in row.items()} for row in out]
    assert got == [{k: v for k, v in flatten(r).items() if v != {}} for r in recs]


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), st.booleans())
def test_string_decoding(s, ascii_):
    enc = json.dumps(s, ensure_ascii=ascii_).encode()
    buf = arr(enc)
    r, q, esc, code, _ = kj.scan_string(buf, 1, buf.shape[0], True)
    assert r == 0 and q == len(enc) - 1
    assert decode(buf, kj.K_STRESC, 1, q) == s


@SETTINGS
@given(st.integers(min_value=-(10**45), max_value=10**45) | st.floats(allow_nan=False, allow_infinity=False))
def test_number_extraction(v):
    text = json.dumps(v).encode()
    data = b'{"n": ' + text + b"}\n"
    (row,), _, _ = tokenize(data)
    kind, s, e = row["n"]
    buf = arr(data)
    kinds = np.array([kind], np.uint8)
    starts, ends = np.array([s], np.int64), np.array([e], np.int64)
    out, valid, slow, err = np.zeros(1), np.zeros(9, np.uint8), np.zeros(1, np.int64), np.zeros(1, np.uint8)
    nulls, nerr, first, nslow = kj.extract_float(buf, kinds, starts, ends, 1, 0, 1, out, valid, slow, err, True)
    assert nerr == 0
    if not nslow:
        assert out[0] == float(v)
    if isinstance(v, int):
        exp = kj.K_INT if -(2**63) <= v < 2**63 else (kj.K_BIGINT if len(str(abs(v))) <= 38 else kj.K_HUGEINT)
        assert kind == exp
        if kind == kj.K_INT:
            iv = np.zeros(1, np.int64)
            assert kj.extract_int(buf, kinds, starts, ends, 1, 0, 1, -(2**63), 2**63 - 1, iv, valid, err, True)[1] == 0
            assert iv[0] == v


# -- hand-written hostile cases -----------------------------------------------------------------------
HOSTILE = [
    (b'{"a": 1,}', kj.E_TRAILING_COMMA), (b"{'a': 1}", kj.E_SINGLE_QUOTE), (b'{"a": "x\x01"}', kj.E_CONTROL),
    (b'{"a": "\\ud800"}', kj.E_SURROGATE), (b'{"a": "\\ud800\\u0041"}', kj.E_SURROGATE),
    (b'{"a": "\\udfff"}', kj.E_SURROGATE), (b'{"a": NaN}', kj.E_NAN_INF), (b'{"a": Infinity}', kj.E_NAN_INF),
    (b'{"a": -Infinity}', kj.E_NAN_INF), (b'{"a": [1, 2', kj.E_TRUNCATED), (b'{"a": 1} x', kj.E_GARBAGE),
    (b'{"a": "\xc3"}', kj.E_UTF8), (b'{"a": "\xed\xa0\x80"}', kj.E_UTF8), (b"[1]", kj.E_NOT_OBJECT),
    (b'"s"', kj.E_NOT_OBJECT), (b"[" * 100 + b"]" * 100, kj.E_DEPTH), (b'{"a": 01}', kj.E_NUMBER),
    (b'{"a": 1.}', kj.E_NUMBER), (b'{"a": .5}', kj.E_UNEXPECTED), (b'{"a": 1e}', kj.E_NUMBER),
    (b'{"a": tru}', kj.E_LITERAL), (b'{"a": nulls}', kj.E_LITERAL), (b'{"a" 1}', kj.E_EXPECTED_COLON),
    (b'{"a": 1 "b": 2}', kj.E_EXPECTED_COMMA_OBJ), (b'{"a": [1 2]}', kj.E_EXPECTED_COMMA_ARR),
    (b'{"a": "\\x"}', kj.E_ESCAPE), (b'{"a": "\\u12G4"}', kj.E_ESCAPE), (b"{1: 2}", kj.E_EXPECTED_KEY),
    (b'{"a": [1,]}', kj.E_TRAILING_COMMA), (b'{"a": "abc', kj.E_TRUNCATED), (b"{", kj.E_TRUNCATED),
]


@pytest.mark.parametrize("line,code", HOSTILE)
def test_hostile_cases(line, code):
    data = b'{"ok": 1}\n' + line + b'\n{"ok": 2}\n'
    rows, rej, err = tokenize(data)
    assert err is None and len(rows) == 2
    assert rej == [(2, code if code != kj.E_TRUNCATED else kj.E_LINE_ENDS, line)]
    with pytest.raises(N.Invalid) as e:
        N.parse_record(line, max_depth=64)
    assert e.value.code == code
    _, _, err = tokenize(line, skip=False)
    assert err is not None and err[0] == code and err[1] == 1


def test_newline_in_array_mode_is_whitespace_and_depth_is_iterative():
    data = b'[\n{"a":\n[1,\n2]},\n{"a": {"b": null}}\n]'
    rows, _, err = tokenize(data, mode=kj.ARRAY)
    assert err is None and len(rows) == 2
    deep = b"[" + b'{"a":' * 60 + b"1" + b"}" * 60 + b"]"
    rows, _, err = tokenize(deep, mode=kj.ARRAY)
    assert err is None and list(rows[0]) == ["__".join(["a"] * 60)]
    rows, _, err = tokenize(b"[" + b"[" * 10_000 + b"]", mode=kj.ARRAY, max_depth=64)
    assert err[0] == kj.E_DEPTH


def test_key_table_grows_and_escaped_keys():
    recs = [{f"k{i}": i} for i in range(300)] + [{"\u00e9\\": 1, "a\nb": 2}]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in recs)
    rows, rej, err = tokenize(data, rows=7)
    assert err is None and rej == [] and len(rows) == 301
    assert set(rows[-1]) == {"\u00e9\\", "a\nb"}


def test_text_extraction_as_string_and_json():
    data = b'{"s": "a\\"b", "n": 12, "x": [1, "q"], "z": null}\n'
    (row,), _, _ = tokenize(data)
    buf = arr(data)
    names = list(row)
    kinds = np.array([row[k][0] for k in names], np.uint8)
    starts = np.array([row[k][1] for k in names], np.int64)
    ends = np.array([row[k][2] for k in names], np.int64)
    ns = len(names)
    for as_json, want in ((False, ['a"b', "12", '[1, "q"]', None]), (True, ['"a\\"b"', "12", '[1, "q"]', None])):
        got = []
        for c in range(ns):
            offs, valid = np.zeros(2, np.int32), np.zeros(9, np.uint8)
            size = kj.text_column_size(kinds, starts, ends, ns, c, 1)
            data_out = np.zeros(max(size, 1), np.uint8)
            nulls, w = kj.extract_text(buf, kinds, starts, ends, ns, c, 1, as_json, offs, data_out, valid)
            got.append(None if nulls else bytes(data_out[:w]).decode())
        assert got == want


# -- the 8-bytes-at-a-time string scan: a special byte at every position of long strings ---------------
SPECIAL = [b'\\"', b"\\\\", b"\\n", b"\\u00e9", b"\xc3\xa9", b"\xe2\x82\xac", b"\t", b"\x01", b"\xc3", b"\xff",
           b"\xed\xa0\x80", b"\n", b"\x7f", b"~"]


@pytest.mark.parametrize("special", SPECIAL)
def test_long_strings_special_byte_at_every_position(special):
    lines = [b'{"k%d": "%s%s%s"}' % (i, b"a" * i, special, b"b" * (19 - i % 20)) for i in range(24)]
    data = b"\n".join(lines) + b"\n"
    rows, rej, err = tokenize(data, rows=64)
    buf = arr(data)
    want_rows, want_bad = naive(data.split(b"\n")[:-1])
    assert [ln for ln, _, _ in rej] == want_bad
    assert rows == want_rows
    for line, row in zip((x for i, x in enumerate(lines) if i + 1 not in want_bad), rows, strict=True):
        ((name, (k, s, e)),) = row.items()
        assert decode(buf, k, s, e) == json.loads(line)[name]


# -- nested="keep": the events rebuild every record exactly ----------------------------------------------------
def tokenize_keep(data: bytes, *, mode=kj.LINES, rows=64, max_depth=64):
    """The structural kernel with ``keep``: records rebuilt from the members' spans and the events (a slow,
    obviously right walk over them), as the json module would return them."""
    buf = arr(data)
    tree = _KeyTree(8)
    tok = _Spans(rows, 2)
    d = max_depth + 1
    stacks = (np.zeros(d, np.uint8), np.zeros(d, np.int32), np.zeros(d, np.int32), np.zeros(d, np.int64))
    pending, estk = np.zeros(64, np.int64), np.zeros(d, np.int64)
    cols: dict[str, int] = {}
    deep: dict[tuple, int] = {}
    deep_key: list = []
    pos, line, state = (1, 1, 0) if mode == kj.ARRAY else (0, 1, 0)
    out = []
    cap = 4
    while True:
        tok.ensure(max(len(cols), 1))
        tok.ensure_events(len(deep_key) + 1, cap)
        r = kj.tokenize(buf, pos, buf.shape[0], True, mode, state, line, rows, max_depth, False, *tree.args(), tok.ns,
                        tok.kinds, tok.starts, tok.ends, tok.colmask, tok.row_start, tok.row_end, tok.row_line,
                        tok.rej_start, tok.rej_end, tok.rej_code, tok.rej_pos, tok.rej_line, *stacks, pending,
                        tree.kscratch, (True,), estk, tok.ev, tok.evk, tok.evn, tok.evmask)
        n, _, nxt, nline, nstate, status, code, _, _, _ = (int(x) for x in r)
        if tree.meta[kj.M_NEED]:
            tree.meta[kj.M_NEED] = 0
            for k in range(1, tree.n):
                if tree.col[k] != kj.COL_NONE or not tree.seen[k]:
                    continue
                p = int(tree.parent[k])
                kb = bytes(tree.kdata[tree.koff[k]:tree.koff[k + 1]])
                key = None if kb == b"\xff" else kb.decode()
                if p == 0:
                    tree.col[k] = cols.setdefault(key, len(cols))
                else:
                    ref = -(int(tree.col[p]) + 1) if tree.parent[p] == 0 else int(tree.col[p])
                    if (ref, key) not in deep:
                        deep[(ref, key)] = len(deep_key)
                        deep_key.append(key)
                    tree.col[k] = deep[(ref, key)]
            continue
        if status == kj.TABLE_FULL and n == 0:
            tree.grow()
            continue
        if status == kj.EVENTS_FULL and n == 0:
            cap *= 2
            continue
        assert status != kj.ERROR, code
        ne = int(tok.evn[0])
        ev, evk = tok.ev[:ne], tok.evk[:ne]
        kids: dict[int, list[int]] = {}
        top: dict[tuple, int] = {}
        for i in range(ne):
            if ev[i, kj.EV_SLOT] >= 0:
                kids.setdefault(int(ev[i, kj.EV_PARENT]), []).append(i)
            else:
                top[(int(ev[i, kj.EV_PARENT]), -int(ev[i, kj.EV_SLOT]) - 1)] = i
            assert ev[i, kj.EV_ROW] < n

        def value(i, ev=ev, evk=evk, kids=kids):
            k = int(evk[i])
            if k == kj.K_OBJECT:
                return {deep_key[int(ev[c, kj.EV_SLOT])]: value(c) for c in kids.get(i, [])}
            if k == kj.K_ARRAY:
                return [value(c) for c in kids.get(i, [])]
            return decode(buf, k, int(ev[i, kj.EV_START]), int(ev[i, kj.EV_END]))

        names = {c: nm for nm, c in cols.items()}
        for row in range(n):
            rec = {}
            for c in range(len(cols)):
                i = row * tok.ns + c
                k = int(tok.kinds[i]) if c < tok.ns else 0
                if k in (kj.K_OBJECT, kj.K_ARRAY):
                    rec[names[c]] = value(top[(row, c)])
                    assert bytes(buf[tok.starts[i]:tok.ends[i]]) == bytes(buf[ev[top[(row, c)], kj.EV_START]:
                                                                              ev[top[(row, c)], kj.EV_END]])
                elif k:
                    rec[names[c]] = decode(buf, k, int(tok.starts[i]), int(tok.ends[i]))
            out.append(rec)
        pos, line, state = nxt, nline, nstate
        if status == kj.DONE:
            return out


@SETTINGS
@given(st.lists(st.tuples(records, st.booleans(), st.booleans()), min_size=1, max_size=8), st.integers(1, 5))
def test_keep_events_rebuild_records(recs, rows):
    data = b"\n".join(dumps(r, a, s) for r, a, s in recs) + b"\n"
    assert tokenize_keep(data, rows=rows) == [json.loads(dumps(r, True, False)) for r, _, _ in recs]
    arr_doc = json.dumps([r for r, _, _ in recs], indent=1).encode()
    assert tokenize_keep(arr_doc, mode=kj.ARRAY, rows=rows) == [r for r, _, _ in recs]


# -- rendering nested Arrow values as JSON text (nebula.nested over render_struct / render_list) --------------
def _arrow_values():
    leaf = st.none() | st.integers(-(2**63), 2**63 - 1)
    texts = st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
    return st.recursive(st.sampled_from([("i", leaf), ("s", texts), ("b", st.none() | st.booleans())]),
                        lambda c: st.tuples(st.just("l"), c) | st.tuples(st.just("o"), st.lists(c, min_size=1,
                                                                                                  max_size=3)),
                        max_leaves=6)


def _strategy(shape):
    if shape[0] in ("i", "s", "b"):
        return shape[1]
    if shape[0] == "l":
        return st.none() | st.lists(_strategy(shape[1]), max_size=3)
    return st.none() | st.tuples(*[_strategy(c) for c in shape[1]]).map(
        lambda vs: {f"f{i}\u00e9\"": v for i, v in enumerate(vs)})


def _arrow_type(shape):
    import pyarrow as pa

    if shape[0] in ("i", "s", "b"):
        return {"i": pa.int64(), "s": pa.string(), "b": pa.bool_()}[shape[0]]
    if shape[0] == "l":
        return pa.list_(_arrow_type(shape[1]))
    return pa.struct([(f"f{i}\u00e9\"", _arrow_type(c)) for i, c in enumerate(shape[1])])


@SETTINGS
@given(_arrow_values().flatmap(lambda shape: st.tuples(st.just(shape), st.lists(_strategy(shape), max_size=6))),
       st.integers(0, 2))
def test_json_text_of_nested_arrays(case, cut):
    import pyarrow as pa

    from nebula.nested import json_text

    shape, values = case
    a = pa.array(values, type=_arrow_type(shape))
    a = a.slice(min(cut, len(a)))
    got = json_text(a).to_pylist()
    assert [None if g is None else json.loads(g) for g in got] == a.to_pylist()
