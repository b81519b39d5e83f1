"""Slow, obviously right references for ``nebula.kernels.parse``: regexes for the grammar, then
Python's own ``int``, ``float``, ``Fraction``, ``Decimal``, ``datetime`` and ``bytes.decode``.

Each ``naive_*`` takes one field's raw bytes and returns the parsed value, or ``None`` when the value
is invalid for the type.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

INT_RE = re.compile(rb"[+-]?[0-9]+")
FLOAT_RE = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
SPECIAL_RE = re.compile(rb"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
DATE_RE = re.compile(rb"([0-9]{4})-([0-9]{2})-([0-9]{2})")
TS_RE = re.compile(rb"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})"
                   rb"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?")
EPOCH = dt.datetime(1970, 1, 1)


def naive_is_null(raw: bytes, quoted: bool, markers: list[bytes], quoted_null: bool) -> bool:
    return (not quoted or quoted_null) and raw in markers


def naive_int(raw: bytes, lo: int = -(2**63), hi: int = 2**63 - 1) -> int | None:
    if not INT_RE.fullmatch(raw):
        return None
    v = int(raw)
    return v if lo <= v <= hi else None


def naive_float(raw: bytes) -> float | None:
    if FLOAT_RE.fullmatch(raw) or SPECIAL_RE.fullmatch(raw):
        return float(raw)
    return None


F32_MAX = Fraction(float(np.finfo(np.float32).max))
F32_OVERFLOW = Fraction(2) ** 128 - Fraction(2) ** 103  # halfway between float32 max and 2**128


def naive_float32(raw: bytes) -> np.float32 | None:
    """Nearest float32 (ties to even) of the exact decimal value, never rounding twice."""
    d = naive_float(raw)
    if d is None:
        return None
    if not math.isfinite(d) or d == 0.0:
        return np.float32(d)
    x = Fraction(raw.decode())
    if abs(x) >= F32_OVERFLOW:
        return np.float32(math.copysign(math.inf, d))
    with np.errstate(over="ignore"):
        base = np.float32(d)
        cands = [base, np.nextafter(base, np.float32(-np.inf)), np.nextafter(base, np.float32(np.inf))]
    cands = [c for c in cands if np.isfinite(c)]

    def key(c):
        return abs(x - Fraction(float(c))), int(np.array(c).view(np.uint32)) & 1

    return min(cands, key=key)


def naive_bool(raw: bytes) -> bool | None:
    low = raw.lower()
    if low in (b"true", b"t", b"yes", b"y", b"1"):
        return True
    if low in (b"false", b"f", b"no", b"n", b"0"):
        return False
    return None


def naive_date(raw: bytes) -> int | None:
    m = DATE_RE.fullmatch(raw)
    if not m:
        return None
    try:
        return (dt.date(*map(int, m.groups())) - dt.date(1970, 1, 1)).days
    except ValueError:
        return None


def naive_timestamp(raw: bytes) -> tuple[int, bool] | None:
    """``(µs since epoch UTC, has_offset)``."""
    m = TS_RE.fullmatch(raw)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    if frac and len(frac) > 6 and frac[6:].strip(b"0"):
        return None
    try:
        t = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0),
                        int((frac or b"").ljust(6, b"0")[:6]))
    except ValueError:
        return None
    off = 0
    if tz and tz != b"Z":
        oh, om = int(tz[1:3]), int(tz[-2:]) if len(tz) > 3 else 0
        if oh > 23 or om > 59:
            return None
        off = (oh * 60 + om) * 60 * (-1 if tz[:1] == b"-" else 1)
    delta = t - EPOCH
    us = (delta.days * 86400 + delta.seconds - off) * 1_000_000 + delta.microseconds
    return us, tz is not None


def naive_decimal(raw: bytes, precision: int, scale: int) -> int | None:
    """The unscaled integer of ``raw`` in ``decimal(precision, scale)``."""
    if not FLOAT_RE.fullmatch(raw):
        return None
    exp = re.search(rb"[eE]([+-]?[0-9]+)$", raw)
    if exp and abs(int(exp.group(1))) > 10_000:
        # the value is 0 (fits) or needs more than 38 digits; decide without a huge power of ten
        mant = raw[: exp.start()]
        return 0 if Decimal(mant.decode()) == 0 else None
    with localcontext() as ctx:
        ctx.prec = 100_000
        v = Decimal(raw.decode()).scaleb(scale)
    if v != v.to_integral_value():
        return None
    u = int(v)
    return u if abs(u) < 10**precision else None


def naive_string(raw: bytes, escaped: bool, quote: int = 34, escape: int = -1) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if escaped and i + 1 < len(raw) and ((c == quote and raw[i + 1] == quote) or c == escape):
            i += 1
            c = raw[i]
        out.append(c)
        i += 1
    try:
        bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return bytes(out)


def naive_candidates(raw: bytes) -> int:
    from nebula.kernels.parse import T_BOOL, T_DATE, T_FLOAT, T_INT, T_TS, T_TSTZ

    m = 0
    if naive_int(raw) is not None:
        m |= T_INT
    if naive_float(raw) is not None:
        m |= T_FLOAT
    if raw.lower() in (b"true", b"false"):
        m |= T_BOOL
    if naive_date(raw) is not None:
        m |= T_DATE
    ts = naive_timestamp(raw)
    if ts is not None:
        m |= T_TSTZ if ts[1] else T_TS
    return m
