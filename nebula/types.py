"""Logical types: what a column means, independent of where it is stored.

A :class:`LogicalType` knows its numpy storage dtype inside a :class:`~nebula.batch.Batch`, its Arrow
type, and its place in the widening lattice used by schema evolution.

Storage inside a batch (per row):

=============  ==================  ==========================================
type           numpy storage        Arrow
=============  ==================  ==========================================
int8..int64    int8..int64          int8..int64
float32/64     float32/float64      float32/float64
bool           bit-packed uint8     bool
decimal(p,s)   (n, 2) int64 lo/hi   decimal128(p, s)
string, json   int32 offsets+bytes  string (json: field metadata nebula.type)
binary         int32 offsets+bytes  binary (any bytes: never UTF-8 validated)
date           int32 days           date32
timestamp      int64 µs             timestamp('us', tz)
struct, list   a pre-built Arrow    struct<...> / list<...>
               array per batch
=============  ==================  ==========================================

``struct`` and ``list`` (the JSON source's ``nested="keep"``) carry their children in ``fields``:
``((name, LogicalType), ...)`` for a struct, ``(("item", element type),)`` for a list. Their values
are assembled into an Arrow array once per batch (no fixed-width storage); destinations that store
text (CSV, JSON lines, SQL) receive them as ``json`` (see :mod:`nebula.nested`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_NUMPY = {
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "float32": np.float32, "float64": np.float64, "bool": np.uint8, "date": np.int32,
    "timestamp": np.int64, "decimal": np.int64, "string": np.uint8, "json": np.uint8, "binary": np.uint8,
}
KINDS = tuple(_NUMPY)
NESTED_KINDS = ("struct", "list")
_ALIASES = {
    "int": "int64", "integer": "int64", "bigint": "int64", "long": "int64", "smallint": "int16",
    "tinyint": "int8", "short": "int16", "float": "float64", "double": "float64", "real": "float32",
    "boolean": "bool", "str": "string", "text": "string", "varchar": "string", "utf8": "string",
    "datetime": "timestamp", "numeric": "decimal", "jsonb": "json", "bytes": "binary", "bytea": "binary",
}


@dataclass(frozen=True, slots=True)
class LogicalType:
    """A column's logical type.

    Parameters
    ----------
    kind : str
        One of ``KINDS``.
    precision, scale : int
        For ``decimal`` only (1 <= precision <= 38, 0 <= scale <= precision).
    tz : str or None
        For ``timestamp`` only: ``None`` for a naive timestamp, else a zone name (values are UTC µs).
    fields : tuple
        For ``struct``: ``((name, LogicalType), ...)``; for ``list``: ``(("item", element type),)``.
    """

    kind: str
    precision: int = 0
    scale: int = 0
    tz: str | None = None
    fields: tuple = ()

    def __post_init__(self) -> None:
        if self.kind in NESTED_KINDS:
            if self.kind == "list" and len(self.fields) != 1:
                raise ConfigError("a list type has exactly one element type")
            names = [n for n, _ in self.fields]
            if len(set(names)) != len(names):
                raise ConfigError(f"duplicate field name in struct<{', '.join(names)}>")
            return
        if self.kind not in _NUMPY:
            raise ConfigError(f"unknown type {self.kind!r}; expected one of {', '.join(KINDS + NESTED_KINDS)}")
        if self.kind == "decimal" and not (1 <= self.precision <= 38 and 0 <= self.scale <= self.precision):
            raise ConfigError(f"invalid decimal({self.precision},{self.scale}): need 1<=p<=38, 0<=s<=p")

    # -- classification -------------------------------------------------------------------------
    @property
    def is_integer(self) -> bool:
        return self.kind in _INT_BITS

    @property
    def is_float(self) -> bool:
        return self.kind in ("float32", "float64")

    @property
    def is_varlen(self) -> bool:
        """Stored as offsets + data bytes (text, or raw bytes for ``binary``)."""
        return self.kind in ("string", "json", "binary")

    @property
    def is_text(self) -> bool:
        """Offsets + UTF-8 text (``string``, ``json``); ``binary`` is varlen but not text."""
        return self.kind in ("string", "json")

    @property
    def is_fixed(self) -> bool:
        return not self.is_varlen and self.kind != "bool" and self.kind not in NESTED_KINDS

    @property
    def is_nested(self) -> bool:
        """A struct or list (values held as one Arrow array per batch)."""
        return self.kind in NESTED_KINDS

    @property
    def element(self) -> LogicalType:
        """A list's element type."""
        return self.fields[0][1]

    def child(self, name: str) -> LogicalType | None:
        """A struct's field type by name (None when it has no such field)."""
        for n, t in self.fields:
            if n == name:
                return t
        return None

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.kind in NESTED_KINDS:
            raise TypeError(f"{self} has no numpy storage (its values are an Arrow array)")
        return np.dtype(_NUMPY[self.kind])

    @property
    def bits(self) -> int:
        return _INT_BITS.get(self.kind, 0)

    # -- conversion -----------------------------------------------------------------------------
    def to_arrow(self):
        import pyarrow as pa

        k = self.kind
        if k in _INT_BITS or k in ("float32", "float64"):
            return getattr(pa, k)()
        if k == "bool":
            return pa.bool_()
        if k in ("string", "json"):
            return pa.string()
        if k == "binary":
            return pa.binary()
        if k == "date":
            return pa.date32()
        if k == "timestamp":
            return pa.timestamp("us", tz=self.tz)
        if k == "decimal":
            return pa.decimal128(self.precision, self.scale)
        if k == "struct":
            return pa.struct([_arrow_child(n, t) for n, t in self.fields])
        if k == "list":
            return pa.list_(_arrow_child("item", self.element))
        raise AssertionError(k)

    @classmethod
    def from_arrow(cls, t) -> LogicalType:
        import pyarrow as pa
        import pyarrow.types as pt

        if pt.is_dictionary(t):
            t = t.value_type
        for name in ("int8", "int16", "int32", "int64", "float32", "float64"):
            if t == getattr(pa, name)():
                return cls(name)
        if pt.is_unsigned_integer(t):
            return cls({8: "int16", 16: "int32", 32: "int64"}.get(t.bit_width, "decimal"),
                       *((20, 0) if t.bit_width == 64 else ()))
        if pt.is_float16(t):
            return cls("float32")
        if pt.is_boolean(t):
            return cls("bool")
        if pt.is_string(t) or pt.is_large_string(t):
            return cls("string")
        if pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t):
            return cls("binary")
        if pt.is_date(t):
            return cls("date")
        if pt.is_timestamp(t):
            return cls("timestamp", tz=t.tz)
        if pt.is_decimal(t):
            return cls("decimal", t.precision, t.scale)
        if str(t) in ("extension<arrow.json>", "json"):
            return cls("json")
        if pt.is_struct(t):
            return cls("struct", fields=tuple((t.field(i).name, _from_arrow_child(t.field(i)))
                                              for i in range(t.num_fields)))
        if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
            return cls("list", fields=(("item", _from_arrow_child(t.value_field)),))
        raise ConfigError(f"no Nebula type for Arrow type {t}")

    def __str__(self) -> str:
        if self.kind == "struct":
            return "struct<" + ", ".join(f"{_type_name(n)}: {t}" for n, t in self.fields) + ">"
        if self.kind == "list":
            return f"list<{self.element}>"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "timestamp" and self.tz:
            return "timestamptz" if self.tz == "UTC" else f"timestamp[{self.tz}]"
        return self.kind


def struct_of(fields) -> LogicalType:
    """A struct type of ``(name, LogicalType)`` pairs (in order)."""
    return LogicalType("struct", fields=tuple((str(n), t) for n, t in fields))


def list_of(element: LogicalType) -> LogicalType:
    return LogicalType("list", fields=(("item", element),))


def _arrow_child(name: str, t: LogicalType):
    import pyarrow as pa

    return pa.field(name, t.to_arrow(), nullable=True, metadata={"nebula.type": "json"} if t.kind == "json" else None)


def _from_arrow_child(f) -> LogicalType:
    if (f.metadata or {}).get(b"nebula.type") == b"json":
        return LogicalType("json")
    return LogicalType.from_arrow(f.type)


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _type_name(name: str) -> str:
    """A struct field name as written in a type: bare when an identifier, else a JSON string."""
    import json

    return name if _NAME_RE.match(name) else json.dumps(name, ensure_ascii=False)


_DECIMAL_RE = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")
_TS_RE = re.compile(r"^timestamp\s*\[\s*([^\]]+)\s*\]$")


def parse_type(text: str) -> LogicalType:
    """Parse a type name as written in configs and ``--column name:type``.

    Accepts the kinds, common SQL aliases (``bytes``/``bytea`` for ``binary``), ``decimal(p,s)``,
    ``timestamptz`` (UTC) and ``timestamp[Europe/Paris]``.
    """
    t = text.strip().lower()
    if t.startswith(("struct<", "list<")):
        typ, rest = _parse_nested(text.strip(), 0, text)
        if text.strip()[rest:].strip():
            raise ConfigError(f"unexpected text after the type in {text!r}")
        return typ
    if m := _DECIMAL_RE.match(t):
        return LogicalType("decimal", int(m.group(1)), int(m.group(2) or 0))
    if t in ("timestamptz", "timestamp with time zone", "timestamp_tz"):
        return LogicalType("timestamp", tz="UTC")
    if m := _TS_RE.match(text.strip()):
        return LogicalType("timestamp", tz=m.group(1).strip())
    if t in ("decimal", "numeric"):
        return LogicalType("decimal", 38, 9)
    t = _ALIASES.get(t, t)
    if t not in _NUMPY or t == "decimal":
        raise ConfigError(f"unknown type {text!r}; expected one of {', '.join(KINDS)}, decimal(p,s), "
                          "timestamptz")
    return LogicalType(t)


def _parse_nested(s: str, p: int, whole: str) -> tuple[LogicalType, int]:
    """``struct<name: type, ...>`` / ``list<type>`` at ``s[p:]``: (type, position after it)."""
    import json

    def bad(why):
        return ConfigError(f"invalid type {whole!r}: {why}")

    def ws(q):
        while q < len(s) and s[q].isspace():
            q += 1
        return q

    def one(q):  # any type at q: nested, or plain text up to the next ',' or '>' at this level
        q = ws(q)
        if s[q:q + 7].lower() == "struct<" or s[q:q + 5].lower() == "list<":
            return _parse_nested(s, q, whole)
        r, depth = q, 0
        while r < len(s) and (depth or s[r] not in ",>"):
            depth += (s[r] in "([") - (s[r] in ")]")
            r += 1
        if r == q:
            raise bad(f"a type is missing at position {q}")
        return parse_type(s[q:r]), r

    if s[p:p + 5].lower() == "list<":
        elem, q = one(p + 5)
        q = ws(q)
        if q >= len(s) or s[q] != ">":
            raise bad("expected '>' after the list element type")
        return list_of(elem), q + 1
    q = ws(p + 7)
    fields = []
    while True:
        q = ws(q)
        if q < len(s) and s[q] == ">" and not fields:
            return struct_of(fields), q + 1
        if q < len(s) and s[q] == '"':
            try:
                name, r = json.JSONDecoder().raw_decode(s, q)
            except ValueError as e:
                raise bad(f"bad quoted field name at position {q}") from e
            q = r
        else:
            r = q
            while r < len(s) and s[r] not in ":,<>":
                r += 1
            name = s[q:r].strip()
            q = r
        q = ws(q)
        if not name or q >= len(s) or s[q] != ":":
            raise bad("struct fields are written name: type")
        t, q = one(q + 1)
        fields.append((name, t))
        q = ws(q)
        if q < len(s) and s[q] == ",":
            q += 1
            continue
        if q < len(s) and s[q] == ">":
            return struct_of(fields), q + 1
        raise bad("expected ',' or '>' in a struct type")


INT8, INT16, INT32, INT64 = (LogicalType(k) for k in ("int8", "int16", "int32", "int64"))
FLOAT32, FLOAT64 = LogicalType("float32"), LogicalType("float64")
BOOL, STRING, JSON, DATE = LogicalType("bool"), LogicalType("string"), LogicalType("json"), LogicalType("date")
BINARY = LogicalType("binary")
TIMESTAMP, TIMESTAMPTZ = LogicalType("timestamp"), LogicalType("timestamp", tz="UTC")
