"""Slow, obviously right CSV / JSON-lines renderings of Python values (the encode kernels' reference).

Values are what ``pyarrow.Array.to_pylist`` gives: int, float, bool, date, datetime (aware ones
in UTC), Decimal, str (json-typed columns: the JSON text), or None.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal


def _iso(kind: str, tz: str | None, v) -> str:
    if kind == "date":
        return v.isoformat()
    if tz is not None:
        return v.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"
    return v.isoformat()


def csv_field(kind: str, v, *, tz: str | None = None, delimiter: str = ",") -> str:
    if v is None:
        return ""
    if kind in ("string", "json"):
        if v == "" or any(c in v for c in (delimiter, '"', "\r", "\n")):
            return '"' + v.replace('"', '""') + '"'
        return v
    if kind == "bool":
        return "true" if v else "false"
    if kind in ("float32", "float64"):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(float(v))
    if kind == "decimal":
        return format(Decimal(v), "f")
    if kind in ("date", "timestamp"):
        return _iso(kind, tz, v)
    return str(int(v))


def json_value(kind: str, v, *, tz: str | None = None) -> str:
    if v is None:
        return "null"
    if kind == "json":
        return v if v != "" else "null"
    if kind == "string":
        return json.dumps(v, ensure_ascii=False)
    if kind == "bool":
        return "true" if v else "false"
    if kind in ("float32", "float64"):
        return repr(float(v)) if math.isfinite(v) else "null"
    if kind == "decimal":
        return '"' + format(Decimal(v), "f") + '"'
    if kind in ("date", "timestamp"):
        return '"' + _iso(kind, tz, v) + '"'
    return str(int(v))


def naive_csv(schema, rows, *, delimiter: str = ",", header: bool = True) -> bytes:
    """RFC 4180 CSV of ``rows`` (sequences in schema order), ``\\n`` line ends."""
    lines = []
    if header:
        lines.append(delimiter.join(csv_field("string", f.name, delimiter=delimiter) if f.name else '""'
                                    for f in schema))
    for r in rows:
        if len(schema) == 1 and r[0] is None:
            lines.append('""')  # an empty line would be skipped by readers
            continue
        lines.append(delimiter.join(csv_field(f.type.kind, v, tz=f.type.tz, delimiter=delimiter)
                                    for f, v in zip(schema, r, strict=True)))
    return "".join(line + "\n" for line in lines).encode()


def naive_jsonl(schema, rows) -> bytes:
    out = []
    for r in rows:
        parts = [json.dumps(f.name, ensure_ascii=False) + ":" + json_value(f.type.kind, v, tz=f.type.tz)
                 for f, v in zip(schema, r, strict=True)]
        out.append("{" + ",".join(parts) + "}\n")
    return "".join(out).encode()
