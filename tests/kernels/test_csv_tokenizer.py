"""The tokenizer kernel against the naive reference and Python's csv module (hypothesis)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nebula.kernels import csv as k
from tests.naive_csv import naive_split


def tokenize(data: bytes, *, final=True, delim=b",", quote=b'"', escape=-1, comment=-1, cap=None):
    buf = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, dtype=np.uint8)
    cap = cap or (len(data) + 2)
    st_, en, fl = np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.uint8)
    rf, ro, rl = np.zeros(cap + 1, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64)
    r = k.tokenize(buf, 0, len(data), final, delim[0], quote[0] if quote else -1, escape, comment,
                   st_, en, fl, rf, ro, rl, 1)
    nr = int(r[0])
    rows = [[data[st_[i]:en[i]] for i in range(rf[j], rf[j + 1])] for j in range(nr)]
    return rows, r, rl[:nr].tolist(), ro[:nr].tolist(), fl


def unq(rows):
    return [[f.replace(b'""', b'"') for f in row] for row in rows]


field_text = st.text(alphabet=st.sampled_from(list('ab,"\n\r é€😀 ;\t')), max_size=8)


def encode_csv(rows, delim=",", lineterm="\n", quote_all=False):
    """RFC 4180 writer: quote fields holding delimiter, quote, CR or LF (csv.writer misses a lone CR); with
    ``quote_all`` every field is quoted."""
    def field(v):
        if quote_all or any(c in v for c in (delim, '"', "\r", "\n")) or (len(rows[0]) == 1 and v == ""):
            return '"' + v.replace('"', '""') + '"'
        return v
    return "".join(delim.join(field(v) for v in r) + lineterm for r in rows).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(field_text, min_size=2, max_size=5), min_size=1, max_size=8),
       st.sampled_from(["\n", "\r\n", "\r"]), st.sampled_from([",", ";", "\t"]), st.booleans())
def test_matches_python_csv(rows, lineterm, delim, quote_all):
    # rows where every field is empty look like blank lines; csv writes them as '""' for 1 field only
    data = encode_csv(rows, delim, lineterm, quote_all)
    got, r, _, _, _ = tokenize(data, delim=delim.encode())
    assert r[4] == k.DONE
    expect = list(csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delim))
    assert [[f.decode() for f in row] for row in unq(got)] == expect


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"")))
def test_random_bytes_match_naive_or_error(data):
    try:
        expect = naive_split(data)
    except ValueError:
        expect = None
    got, r, _, _, _ = tokenize(data)
    if expect is None:
        assert r[4] == k.ERROR
    else:
        assert r[4] == k.DONE
        assert got == expect


_SPECIAL = st.sampled_from([b",", b'"', b"\\", b"\n", b"\r", b";"])
_PLAIN = st.binary(min_size=1, max_size=20).map(lambda b: bytes(c for c in b if c not in b',"\\\n\r;\x00'))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_SPECIAL, _PLAIN), max_size=30).map(b"".join), st.sampled_from([b",", b";"]),
       st.booleans())
@example(b'"abcdefghij\\"x",y\n', b",", True)  # an escaped quote after a run of plain bytes
@example(b"abcdefghij\\,x,y\n", b",", True)  # an escaped delimiter after a run
@example(b'"abcdefghij,klmnopqr"\n', b",", False)  # a delimiter inside quotes is plain
def test_long_plain_runs_and_escapes_match_naive_or_error(data, delim, with_escape):
    """Runs of plain bytes long enough for the 8-byte scans, cut by delimiters, quotes, escapes and
    line ends at every offset: the same fields as the byte-at-a-time reference, or an error where
    it has one."""
    esc = b"\\" if with_escape else b""
    try:
        expect = naive_split(data, delim=delim, escape=esc)
    except ValueError:
        expect = None
    got, r, _, _, _ = tokenize(data, delim=delim, escape=esc[0] if esc else -1)
    if expect is None:
        assert r[4] == k.ERROR
    else:
        assert r[4] == k.DONE, r
        assert got == expect


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(field_text, min_size=1, max_size=4), min_size=1, max_size=10), st.data())
def test_resumable_at_any_split(rows, data):
    """Tokenizing in two calls (not final, then final from next_pos) gives the same records."""
    blob = encode_csv(rows)
    whole, r, _, _, _ = tokenize(blob)
    cut = data.draw(st.integers(0, len(blob)))
    first, r1, _, _, _ = tokenize(blob[:cut], final=False)
    assert r1[4] in (k.DONE, k.NEED_MORE)
    rest = blob[int(r1[2]):]
    second, r2, _, _, _ = tokenize(rest)
    assert first + second == whole


@pytest.mark.parametrize("data,rows", [
    (b"a,b\n1,2\n", [[b"a", b"b"], [b"1", b"2"]]),
    (b"a,b\r\n1,2\r\n", [[b"a", b"b"], [b"1", b"2"]]),
    (b"a,b\r1,2\r", [[b"a", b"b"], [b"1", b"2"]]),
    (b"a,b\n1,2", [[b"a", b"b"], [b"1", b"2"]]),
    (b'"x,y","say ""hi"""\n', [[b"x,y", b'say ""hi""']]),
    (b'"multi\nline",2\n', [[b"multi\nline", b"2"]]),
    (b"a,b,\n", [[b"a", b"b", b""]]),
    (b"a,b,", [[b"a", b"b", b""]]),
    (b"\n\n\na\n\n", [[b"a"]]),
    (b'ab"c,d\n', [[b'ab"c', b"d"]]),
    (b"", []),
])
def test_cases(data, rows):
    got, r, _, _, _ = tokenize(data)
    assert r[4] == k.DONE
    assert got == rows


def test_line_numbers_and_offsets():
    data = b'h1,h2\n"a\nb",1\r\n\r\nx,2\ry,3'
    rows, r, lines, offs, _ = tokenize(data)
    assert lines == [1, 2, 5, 6]
    assert offs == [0, 6, 17, 21]


def test_flags():
    _, _, _, _, fl = tokenize(b'a,"b","c""d"\n')
    assert list(fl[:3]) == [0, k.QUOTED, k.QUOTED | k.ESCAPED]


def test_unterminated_quote_is_error_with_position():
    rows, r, *_ = tokenize(b'a,b\n1,"open\n2,3\n')
    assert rows == [[b"a", b"b"]]
    assert r[4] == k.ERROR and r[5] == k.E_UNTERMINATED_QUOTE and r[6] == 6 and r[7] == 2


def test_text_after_closing_quote_is_error():
    _, r, *_ = tokenize(b'"ab"c,d\n')
    assert r[4] == k.ERROR and r[5] == k.E_AFTER_QUOTE and r[6] == 4


def test_not_final_stops_before_incomplete_record():
    rows, r, *_ = tokenize(b'a,b\n1,"op', final=False)
    assert rows == [[b"a", b"b"]] and r[4] == k.NEED_MORE and r[2] == 4
    rows, r, *_ = tokenize(b"a,b\r", final=False)  # CR may be followed by LF in the next block
    assert rows == [] and r[4] == k.NEED_MORE


def test_capacity_full_resumes():
    data = b"1\n2\n3\n4\n"
    rows, r, *_ = tokenize(data, cap=2)
    assert rows == [[b"1"], [b"2"]] and r[4] == k.FULL and r[2] == 4


def test_comment_lines_and_escape():
    rows, r, *_ = tokenize(b"#c1\na,b\n#c2\n1,x\\,y\n", comment=ord("#"), escape=ord("\\"))
    assert rows == [[b"a", b"b"], [b"1", b"x\\,y"]]


def test_nul_bytes_are_data():
    rows, r, *_ = tokenize(b"a\x00b,c\n")
    assert rows == [[b"a\x00b", b"c"]]
