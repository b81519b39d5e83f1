"""Block UTF-8 validation kernel against Python's strict decoder."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nebula.kernels.parse import first_invalid_utf8


def expected(data: bytes) -> int:
    try:
        data.decode("utf-8")
        return -1
    except UnicodeDecodeError as e:
        return e.start


def check(data: bytes, start: int = 0) -> None:
    buf = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, np.uint8)
    exp = expected(data[start:])
    got = first_invalid_utf8(buf, start, len(data))
    assert got == (exp if exp < 0 else exp + start), (data, got, exp)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(data):
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.binary(max_size=3), st.text(max_size=20))
def test_text_with_junk(a, junk, b):
    check(a.encode() + junk + b.encode())
    check(a.encode())


def test_cases():
    for data in [b"", b"abc", b"abcdefgh" * 3 + b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                 b"\xe2\x82", b"x\xe2\x82\xac", "é€😀".encode(), b"12345678\xc3\xa9", b"\xf0\x9f\x98"]:
        check(data)
    check(b"\xff" + b"abc", start=1)
