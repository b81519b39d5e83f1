"""Schema and Field, evolution rules and merging of inferred types.

Evolution never drops a column: a column missing from an incoming schema stays (and must be
nullable); a new column is added as nullable; a type may only widen along

    int8 -> int16 -> int32 -> int64 -> decimal(>=19,0) / float64
    float32 -> float64,  date -> timestamp,  anything -> string (only when ``allow_string``)

except ``binary``, which only meets itself: bytes never become text nor text bytes without saying how
(hex, base64, an encoding), so binary against any other type is an error even with ``allow_string``.

Structs widen field by field (a field new to one side is added, nullable) and lists by their
element type; a struct or list meeting any other type becomes ``json`` (its JSON text).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .errors import ConfigError, SchemaEvolutionError
from .types import FLOAT64, STRING, LogicalType, parse_type


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: LogicalType
    nullable: bool = True
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def to_arrow(self):
        import pyarrow as pa

        md = dict(self.metadata)
        if self.type.kind == "json":
            md["nebula.type"] = "json"
        return pa.field(self.name, self.type.to_arrow(), nullable=self.nullable, metadata=md or None)

    def __str__(self) -> str:
        return f"{self.name}: {self.type}{'' if self.nullable else ' not null'}"


class Schema:
    """An ordered list of uniquely named fields."""

    __slots__ = ("fields", "_index")

    def __init__(self, fields: Iterable[Field]) -> None:
        self.fields: tuple[Field, ...] = tuple(fields)
        self._index = {f.name: i for i, f in enumerate(self.fields)}
        if len(self._index) != len(self.fields):
            seen: set[str] = set()
            dup = next(f.name for f in self.fields if f.name in seen or seen.add(f.name))
            raise ConfigError(f"duplicate column name {dup!r}")

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __getitem__(self, key: int | str) -> Field:
        return self.fields[self._index[key] if isinstance(key, str) else key]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return "Schema(" + ", ".join(str(f) for f in self.fields) + ")"

    def index(self, name: str) -> int:
        return self._index[name]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    # -- conversion -----------------------------------------------------------------------------
    def to_arrow(self):
        import pyarrow as pa

        return pa.schema([f.to_arrow() for f in self.fields])

    @classmethod
    def from_arrow(cls, schema) -> Schema:
        out = []
        for f in schema:
            t = LogicalType.from_arrow(f.type)
            md = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if md.pop("nebula.type", None) == "json":
                t = LogicalType("json")
            out.append(Field(f.name, t, f.nullable, md))
        return cls(out)

    def to_dict(self) -> list[dict]:
        return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in self.fields]

    @classmethod
    def from_dict(cls, items: Iterable[dict] | dict[str, str]) -> Schema:
        if isinstance(items, dict):
            items = [{"name": k, "type": v} for k, v in items.items()]
        return cls(Field(d["name"], parse_type(d["type"]), bool(d.get("nullable", True))) for d in items)

    def with_types(self, overrides: dict[str, LogicalType]) -> Schema:
        """Replace the type of the named columns; naming an unknown column is an error."""
        unknown = [n for n in overrides if n not in self._index]
        if unknown:
            raise ConfigError(f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are "
                              f"{', '.join(self.names)}")
        return Schema(replace(f, type=overrides.get(f.name, f.type)) for f in self.fields)

    # -- evolution ------------------------------------------------------------------------------
    def evolve(self, incoming: Schema, *, allow_string: bool = False) -> Schema:
        """The schema that holds both ``self`` and ``incoming`` under the evolution rules.

        Raises :class:`SchemaEvolutionError` naming the column when a type cannot widen.
        """
        out: list[Field] = []
        for f in self.fields:
            if f.name in incoming:
                g = incoming[f.name]
                t = widen(f.type, g.type, allow_string=allow_string)
                if t is None:
                    binary = "binary" in (f.type.kind, g.type.kind)
                    raise SchemaEvolutionError(
                        f"column {f.name!r}: cannot change type {f.type} to {g.type}"
                        + (" (binary columns only take binary values)" if binary else
                           "" if allow_string else " (widening to string is not allowed)"))
                out.append(replace(f, type=t, nullable=f.nullable or g.nullable))
            else:
                out.append(replace(f, nullable=True))
        out.extend(replace(g, nullable=True) for g in incoming.fields if g.name not in self._index)
        return Schema(out)


_INT_ORDER = ("int8", "int16", "int32", "int64")


def widen(a: LogicalType, b: LogicalType, *, allow_string: bool = False) -> LogicalType | None:
    """The narrowest type holding every value of ``a`` and ``b``, or None if there is none."""
    if a == b:
        return a
    if a.kind == "binary" or b.kind == "binary":
        return None
    if a.is_integer and b.is_integer:
        return a if _INT_ORDER.index(a.kind) >= _INT_ORDER.index(b.kind) else b
    if a.is_integer and b.is_float or b.is_integer and a.is_float or a.is_float and b.is_float:
        return FLOAT64
    for x, y in ((a, b), (b, a)):
        if x.is_integer and y.kind == "decimal":
            need = {"int8": 3, "int16": 5, "int32": 10, "int64": 19}[x.kind] + y.scale
            if need <= 38:
                return LogicalType("decimal", max(y.precision, need), y.scale)
        if x.kind == "date" and y.kind == "timestamp":
            return y
    if a.kind == "decimal" and b.kind == "decimal":
        s = max(a.scale, b.scale)
        p = max(a.precision - a.scale, b.precision - b.scale) + s
        if p <= 38:
            return LogicalType("decimal", p, s)
    if a.kind == "json" and b.kind == "string" or a.kind == "string" and b.kind == "json":
        return STRING if allow_string else None
    if a.is_nested or b.is_nested:
        return _widen_nested(a, b, allow_string)
    if allow_string:
        return STRING
    return None


def _widen_nested(a: LogicalType, b: LogicalType, allow_string: bool) -> LogicalType | None:
    from .types import JSON, list_of, struct_of

    if a.kind == b.kind == "list":
        t = widen(a.element, b.element, allow_string=allow_string)
        return None if t is None else list_of(t)
    if a.kind == b.kind == "struct":
        out = []
        for name, ta in a.fields:
            tb = b.child(name)
            t = ta if tb is None else widen(ta, tb, allow_string=allow_string)
            if t is None:
                return None
            out.append((name, t))
        out += [(name, tb) for name, tb in b.fields if a.child(name) is None]
        return struct_of(out)
    if a.kind == "string" or b.kind == "string":
        return STRING if allow_string else None
    return JSON
