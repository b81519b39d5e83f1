"""Slow, obviously right reference of the JSON kernels: a recursive-descent parser over bytes.

``parse_record(line)`` returns the record's leaves flattened like the kernels do -- ``{name: (kind,
start, end)}`` with nested objects joined by ``sep``, strings spanning their body (no quotes),
arrays their exact text, empty objects dropped, a later duplicate overwriting an earlier one -- or
raises :class:`Invalid` with the kernel's error code. Stricter than Python's json module where
the kernels are: lone surrogates, NaN/Infinity and nesting deeper than ``max_depth`` are errors.
"""

from __future__ import annotations

from nebula.kernels import json as kj

WS = b" \t\r\n"


class Invalid(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(kj.ERROR_TEXT.get(code, str(code)))
        self.code = code


class _P:
    def __init__(self, b: bytes, max_depth: int) -> None:
        self.b = b
        self.max_depth = max_depth

    def ws(self, p: int) -> int:
        while p < len(self.b) and self.b[p] in WS:
            p += 1
        return p

    def need(self, p: int) -> int:
        if p >= len(self.b):
            raise Invalid(kj.E_TRUNCATED)
        return self.b[p]

    def string(self, p: int) -> tuple[int, str, bool]:
        """``p`` at the opening quote: (end after the closing quote, decoded text, escaped)."""
        b = self.b
        q = p + 1
        out = []
        esc = False
        while True:
            c = self.need(q)
            if c == 0x22:
                break
            if c == 0x5C:
                esc = True
                d = self.need(q + 1)
                simple = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r",
                          0x74: "\t"}
                if d in simple:
                    out.append(simple[d])
                    q += 2
                    continue
                if d != 0x75:
                    raise Invalid(kj.E_ESCAPE)
                cp = self.hex4(q + 2)
                if 0xDC00 <= cp <= 0xDFFF:
                    raise Invalid(kj.E_SURROGATE)
                if 0xD800 <= cp <= 0xDBFF:
                    if b[q + 6:q + 8] != b"\\u":
                        raise Invalid(kj.E_TRUNCATED if q + 6 >= len(b) else kj.E_SURROGATE)
                    lo = self.hex4(q + 8)
                    if not 0xDC00 <= lo <= 0xDFFF:
                        raise Invalid(kj.E_SURROGATE)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    q += 6
                out.append(chr(cp))
                q += 6
                continue
            if c < 0x20:
                raise Invalid(kj.E_CONTROL)
            r = q
            while r < len(b) and b[r] not in (0x22, 0x5C) and b[r] >= 0x20:
                r += 1
            try:
                out.append(b[q:r].decode("utf-8"))
            except UnicodeDecodeError:
                raise Invalid(kj.E_UTF8) from None
            q = r
        return q + 1, "".join(out), esc

    def hex4(self, p: int) -> int:
        h = self.b[p:p + 4]
        if len(h) < 4 and all(chr(x) in "0123456789abcdefABCDEF" for x in h):
            raise Invalid(kj.E_TRUNCATED)
        try:
            if len(h) != 4 or not all(chr(x) in "0123456789abcdefABCDEF" for x in h):
                raise ValueError
            return int(h.decode(), 16)
        except ValueError:
            raise Invalid(kj.E_ESCAPE) from None

    def number(self, p: int) -> tuple[int, int]:
        import re

        m = re.compile(rb"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?").match(self.b, p)
        if not m or m.end() == p:
            raise Invalid(kj.E_NAN_INF if self.b[p:p + 2] == b"-I" else kj.E_NUMBER)
        q = m.end()
        if q < len(self.b) and self.b[q] not in b" \t\r\n,]}":
            raise Invalid(kj.E_NUMBER)
        text = self.b[p:q]
        if m.group(2) or m.group(3):
            return q, kj.K_FLOAT
        digits = len(text.lstrip(b"-"))
        if -(2**63) <= int(text) < 2**63:
            return q, kj.K_INT
        return q, kj.K_BIGINT if digits <= 38 else kj.K_HUGEINT

    def value(self, p: int, depth: int, path: tuple | None, out: dict, sep: str) -> int:
        """Parse the value at ``p``; leaves go to ``out`` under the keys ``path`` (None: not flattened)."""
        c = self.need(p)
        if c in (0x7B, 0x5B):
            if depth >= self.max_depth:
                raise Invalid(kj.E_DEPTH)
            start = p
            obj = c == 0x7B
            p = self.ws(p + 1)
            first = True
            while True:
                c = self.need(p)
                if c == (0x7D if obj else 0x5D):
                    if not first:
                        raise Invalid(kj.E_TRAILING_COMMA)
                    break
                if obj:
                    if c != 0x22:
                        raise Invalid(kj.E_SINGLE_QUOTE if c == 0x27 else kj.E_EXPECTED_KEY)
                    p, key, _ = self.string(p)
                    p = self.ws(p)
                    if self.need(p) != 0x3A:
                        raise Invalid(kj.E_EXPECTED_COLON)
                    p = self.ws(p + 1)
                    child = None if path is None else path + (key,)
                    p = self.value(p, depth + 1, child, out, sep)
                else:
                    p = self.value(p, depth + 1, None, out, sep)
                p = self.ws(p)
                c = self.need(p)
                if c == 0x2C:
                    p = self.ws(p + 1)
                    first = False
                    if self.need(p) == (0x7D if obj else 0x5D):
                        raise Invalid(kj.E_TRAILING_COMMA)
                    continue
                if c != (0x7D if obj else 0x5D):
                    raise Invalid(kj.E_EXPECTED_COMMA_OBJ if obj else kj.E_EXPECTED_COMMA_ARR)
                break
            p += 1
            if not obj and path is not None:
                out[sep.join(path)] = (kj.K_ARRAY, start, p)
            return p
        if c == 0x22:
            q, _, esc = self.string(p)
            if path is not None:
                out[sep.join(path)] = (kj.K_STRESC if esc else kj.K_STR, p + 1, q - 1)
            return q
        if c == 0x2D or 0x30 <= c <= 0x39:
            q, kind = self.number(p)
        elif self.b.startswith(b"true", p) or self.b.startswith(b"false", p) or self.b.startswith(b"null", p):
            word = next(w for w in (b"true", b"false", b"null") if self.b.startswith(w, p))
            q = p + len(word)
            if q < len(self.b) and self.b[q] not in b" \t\r\n,]}":
                raise Invalid(kj.E_LITERAL)
            kind = {b"true": kj.K_TRUE, b"false": kj.K_FALSE, b"null": kj.K_NULL}[word]
        elif c in b"tfn":
            raise Invalid(kj.E_LITERAL)
        elif c == 0x27:
            raise Invalid(kj.E_SINGLE_QUOTE)
        elif c in b"NI":
            raise Invalid(kj.E_NAN_INF)
        else:
            raise Invalid(kj.E_UNEXPECTED)
        if path is not None:
            out[sep.join(path)] = (kind, p, q)
        return q


def parse_record(line: bytes, *, sep: str = "__", max_depth: int = 512) -> dict:
    """The flattened leaves of the JSON-lines record ``line`` (without its newline); raises Invalid."""
    P = _P(line, max_depth)
    p = P.ws(0)
    out: dict = {}
    is_obj = p < len(line) and line[p] == 0x7B
    q = P.value(p, 0, () if is_obj else None, out, sep)
    q = P.ws(q)
    if q != len(line):
        raise Invalid(kj.E_GARBAGE)
    if not is_obj:
        raise Invalid(kj.E_NOT_OBJECT)
    return out


def decoded(line: bytes, kind: int, s: int, e: int):
    """The Python value of a leaf as json.loads gives it (strings decoded, arrays as lists)."""
    import json

    if kind in (kj.K_STR, kj.K_STRESC):
        return json.loads(line[s - 1:e + 1])
    return json.loads(line[s:e])
