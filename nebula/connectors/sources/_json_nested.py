"""``nested="keep"`` for the JSON source: the nodes below the records' members, their types, and the
Arrow struct/list columns assembled from a chunk's events.

With ``keep`` the structural kernel (:func:`nebula.kernels.json.tokenize`) writes the members of
each record to the dense per-row spans as in flatten mode (objects and arrays included, as their
exact text), and appends every value below a member -- and every member that is an object or an
array -- to a list of *events* ``(slot, parent event, kind, span, row)`` in document order. A slot
is a node of the :class:`DeepTree` (a path such as ``order.items[].sku``); a value's parent is the
event of its container. Columns are then found from the top down with numpy, per batch:

- a member's events sit at their row;
- a struct field's events sit at the position of their parent's event (of a key repeated in one
  object the last value wins, as with Python's json module -- an object too, with all its fields);
- a list's elements are numbered in document order and counted per list (``bincount``) into the
  list's offsets, so null, ``[]`` and a list of nulls stay distinct (likewise null vs ``{}``).

Leaves go through the flat columns' extraction kernels (over the gathered spans), and each struct
or list is put together with ``pyarrow.Array.from_buffers``: no Python step per record.

Types (:class:`Types`): an object is a struct of its fields, an array a list of its elements'
type (``list<string>`` while only empty arrays or nulls were seen), scalars as in flatten mode. A
value whose kinds mix containers with anything else, an array whose elements mix types that do not
widen to one, and a field holding only ``{}`` become ``json`` (each value's exact JSON text).
Evolution (:meth:`Types.evolve`) adds a new field to its struct, widens scalars inside (int ->
float, int -> string, ...) and turns a struct/list that meets a scalar into ``json``.
"""

from __future__ import annotations

import numpy as np

from ...errors import TypeCoercionError
from ...kernels import json as kj
from ...schema import Field
from ...types import JSON, STRING, LogicalType, list_of, struct_of

NULLS = (1 << kj.K_MISSING) | (1 << kj.K_NULL)
OBJ = 1 << kj.K_OBJECT
ARR = 1 << kj.K_ARRAY
_ANY = object()  # below a value already reported (or held as text): every kind is fine


class DeepTree:
    """The nodes below the records' members, numbered as the events' slots (shared by all threads).

    ``parent[s]`` is a node number, or ``-(c + 1)`` for the member in column ``c``; ``key[s]`` the
    field name, or None for an array's elements.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.key: list[str | None] = []
        self.index: dict[tuple[int, str | None], int] = {}
        self.kids: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def get(self, parent: int, key: str | None) -> int | None:
        return self.index.get((parent, key))

    def add(self, parent: int, key: str | None) -> int:
        s = self.index.get((parent, key))
        if s is None:
            s = len(self.parent)
            self.parent.append(parent)
            self.key.append(key)
            self.kids.setdefault(parent, []).append(s)
            self.index[(parent, key)] = s
        return s

    def children(self, ref: int) -> list[int]:
        return self.kids.get(ref, [])

    def member(self, s: int) -> int:
        """The column of the member ``s`` lies under."""
        while s >= 0:
            s = self.parent[s]
        return -s - 1

    def path(self, ref: int, slots: list[str]) -> str:
        """``order.items[].sku``: the member's name, then ``.field`` and ``[]`` (elements) steps."""
        steps = []
        while ref >= 0:
            k = self.key[ref]
            steps.append("[]" if k is None else "." + k)
            ref = self.parent[ref]
        return slots[-ref - 1] + "".join(reversed(steps))


def _mask(evmask: np.ndarray, s: int | None) -> int:
    return int(evmask[s]) if s is not None and s < evmask.shape[0] else 0


# -- types --------------------------------------------------------------------------------------------
class Types:
    """The type decisions of one chunk: the kinds ``evmask[s]`` seen at each node ``s`` of ``deep``.

    ``placeholders`` (a set of paths, kept by the source): fields typed ``string`` only because no
    value was seen yet (null-only in the sample, or a list with no element so far). Under evolution
    the first values of such a field give it its real type (a struct, a list, ...) instead of being
    stored as text; ``None`` (contracts freeze/discard) keeps them strings, as in flatten mode.
    ``strings`` (the sample only): called with a node whose values are all strings, returns its type
    (date/timestamp when every string reads as one); null-only fields are then placeholders.
    """

    def __init__(self, deep: DeepTree, slots: list[str], evmask: np.ndarray, placeholders: set | None = None,
                 strings=None) -> None:
        self.deep, self.slots, self.evmask = deep, slots, evmask
        self.placeholders, self.strings = placeholders, strings

    def mask(self, s: int | None) -> int:
        return _mask(self.evmask, s)

    def path(self, ref: int) -> str:
        return self.deep.path(ref, self.slots)

    def _placeholder(self, path: str) -> LogicalType:
        if self.placeholders is not None:
            self.placeholders.add(path)
        return STRING

    def observed(self, ref: int, mask: int) -> LogicalType | None:
        """The type of the values seen at ``ref`` (kinds ``mask``); None when only nulls."""
        from .json import type_of_kinds

        deep = self.deep
        m = mask & ~NULLS
        if not m:
            return None
        if m & (OBJ | ARR):
            if m == OBJ:
                kids = []
                for c in deep.children(ref):
                    key = deep.key[c]
                    if key is None:
                        continue
                    cm = self.mask(c)
                    t = self.observed(c, cm)
                    if t is None:
                        if self.strings is None or not cm:
                            continue
                        t = self._placeholder(self.path(c))
                    kids.append((key, t))
                return struct_of(kids) if kids else JSON
            if m == ARR:
                e = deep.get(ref, None)
                t = self.observed(e, self.mask(e)) if e is not None else None
                return list_of(t or self._placeholder(self.path(ref) + "[]"))
            return JSON
        t = type_of_kinds(m)
        if t == STRING and self.strings is not None and ref >= 0:
            t = self.strings(ref)
        return t

    def _waiting(self, t: LogicalType, ref: int, m: int) -> bool:
        """A placeholder string that now has values (it takes their type, see the class docstring)."""
        return bool(m) and t == STRING and self.placeholders is not None and self.path(ref) in self.placeholders

    def fits(self, t: LogicalType, ref: int | None, mask: int) -> bool:
        """Whether every value seen at ``ref`` can be stored as ``t`` without evolving."""
        from .json import accepts

        deep = self.deep
        m = mask & ~NULLS
        k = t.kind
        if not m:
            return True
        if k in ("string", "json"):
            return not self._waiting(t, ref, m)
        if k == "struct":
            if m & ~OBJ:
                return False
            for c in deep.children(ref):
                cm = self.mask(c)
                if not cm & ~NULLS:
                    continue
                ct = t.child(deep.key[c]) if deep.key[c] is not None else None
                if ct is None or not self.fits(ct, c, cm):
                    return False
            return True
        if k == "list":
            if m & ~ARR:
                return False
            e = deep.get(ref, None)
            return e is None or self.fits(t.element, e, self.mask(e))
        return not m & (OBJ | ARR) and accepts(t, m)

    def evolve(self, t: LogicalType, ref: int, mask: int) -> LogicalType:
        """The type after ``t`` met the values seen at ``ref`` (unchanged when they fit)."""
        if self.fits(t, ref, mask):
            return t
        deep = self.deep
        m = mask & ~NULLS
        if self._waiting(t, ref, m):
            self.placeholders.discard(self.path(ref))
            return self.observed(ref, mask) or t
        if t.kind == "struct" and not m & ~OBJ:
            out = []
            for n, ct in t.fields:
                c = deep.get(ref, n)
                cm = self.mask(c)
                out.append((n, self.evolve(ct, c, cm) if cm & ~NULLS else ct))
            for c in deep.children(ref):
                key = deep.key[c]
                if key is not None and t.child(key) is None:
                    ot = self.observed(c, self.mask(c))
                    if ot is not None:
                        out.append((key, ot))
            return struct_of(out)
        if t.kind == "list" and not m & ~ARR:
            e = deep.get(ref, None)
            return list_of(self.evolve(t.element, e, self.mask(e)))
        ot = self.observed(ref, mask)
        return t if ot is None else merge_types(t, ot)


def merge_types(a: LogicalType, b: LogicalType) -> LogicalType:
    """``a`` widened to hold values of type ``b`` (structs field by field, lists by element)."""
    from .json import merge_type

    if a == b:
        return a
    if a.kind == b.kind == "struct":
        out = [(n, merge_types(ta, b.child(n)) if b.child(n) is not None else ta) for n, ta in a.fields]
        out += [(n, tb) for n, tb in b.fields if a.child(n) is None]
        return struct_of(out)
    if a.kind == b.kind == "list":
        return list_of(merge_types(a.element, b.element))
    if a.is_nested or b.is_nested:
        return STRING if a.kind == "string" else JSON
    return merge_type(a, b)


def kinds_ok(t) -> np.ndarray:
    """bool[16]: which value kinds a node of type ``t`` takes (``None``: not in the schema; ``_ANY``)."""
    from .json import accepts

    if t is _ANY:
        return np.ones(16, dtype=bool)
    ok = np.zeros(16, dtype=bool)
    ok[kj.K_MISSING] = ok[kj.K_NULL] = True
    if t is None:
        return ok
    if t.kind in ("string", "json"):
        ok[:] = True
    elif t.kind == "struct":
        ok[kj.K_OBJECT] = True
    elif t.kind == "list":
        ok[kj.K_ARRAY] = True
    else:
        for k in range(kj.K_FALSE, kj.K_OBJECT + 1):
            ok[k] = k < kj.K_ARRAY and accepts(t, 1 << k)
    return ok


def deep_kinds_ok(t, ref: int, deep: DeepTree, ok: dict) -> None:
    """``ok[s]`` = (:func:`kinds_ok`, type) for every node ``s`` below ``ref`` (of type ``t``). Below a node
    that is not in the schema, or below a scalar, anything goes: that node is the one reported."""
    for c in deep.children(ref):
        key = deep.key[c]
        if t is _ANY or t is None or not t.is_nested:
            ct = _ANY
        elif t.kind == "struct":
            ct = t.child(key) if key is not None else None
        else:
            ct = t.element if key is None else None
        ok[c] = (kinds_ok(ct), ct)
        deep_kinds_ok(ct, c, deep, ok)


# -- assembly (worker threads) ----------------------------------------------------------------------------
def _bitmap(valid: np.ndarray):
    import pyarrow as pa

    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _last_per_position(e: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of events at non-decreasing positions, the last at each position (a repeated key: the last wins)."""
    if e.shape[0] < 2:
        return e, pos
    last = np.empty(pos.shape[0], dtype=bool)
    np.not_equal(pos[1:], pos[:-1], out=last[:-1])
    last[-1] = True
    return e[last], pos[last]


class Assembler:
    """Builds the struct/list columns of one chunk from its events (see the module docstring).

    ``rowmap[r]``: the batch row of the chunk's row ``r`` (-1 when dropped). Values that do not fit
    their type are collected in :attr:`errors` as ``{row: TypeCoercionError}`` (first per row).
    """

    def __init__(self, src, tok, rowmap: np.ndarray, stop: bool) -> None:
        ne = int(tok.evn[0])
        ev = tok.ev[:ne]
        self.src, self.tok, self.rowmap, self.stop = src, tok, rowmap, stop
        self.deep = src._deep
        self.slot, self.parent = ev[:, kj.EV_SLOT], ev[:, kj.EV_PARENT]
        self.start, self.end, self.row = ev[:, kj.EV_START], ev[:, kj.EV_END], ev[:, kj.EV_ROW]
        self.kind = tok.evk[:ne]
        key, self._lo = self.slot, 0
        if ne:  # slots span a small range: as uint16 the stable sort is a radix sort
            lo = int(key.min())
            if int(key.max()) - lo < 1 << 16:
                key, self._lo = (key - lo).astype(np.uint16), lo
        self.order = np.argsort(key, kind="stable")
        self.sorted = key[self.order]
        self.pos = np.full(ne, -1, dtype=np.int64)
        self.errors: dict[int, TypeCoercionError] = {}

    def _of(self, s: int) -> np.ndarray:
        s -= self._lo
        if self.sorted.dtype == np.uint16 and not 0 <= s < 1 << 16:
            return self.order[:0]
        v = self.sorted.dtype.type(s)
        return self.order[np.searchsorted(self.sorted, v, "left"):np.searchsorted(self.sorted, v, "right")]

    def _batch_row(self, rows: np.ndarray) -> np.ndarray:
        return np.where(rows >= 0, self.rowmap[np.maximum(rows, 0)], -1)

    def member(self, j: int, f: Field, dense: np.ndarray):
        """The column of member ``j`` (a struct or list) over the batch rows (``dense``: their kinds)."""
        t = f.type
        m = dense.shape[0]
        want = kj.K_OBJECT if t.kind == "struct" else kj.K_ARRAY
        e = self._of(-(j + 1))
        rows = self._batch_row(self.parent[e])
        live = rows >= 0
        e, rows = _last_per_position(e[live], rows[live])
        valid = dense == want
        sel = valid[rows] & (self.kind[e] == want)
        bad = np.flatnonzero((dense > kj.K_NULL) & ~valid)
        if bad.shape[0]:
            self._dense_errors(j, f, bad)
        return self._container(t, -(j + 1), f.name, m, valid, e[sel], rows[sel])

    def _container(self, t: LogicalType, ref: int, path: str, n: int, valid: np.ndarray, occ: np.ndarray,
                   pos: np.ndarray):
        import pyarrow as pa

        self.pos[occ] = pos
        nulls = int(n - np.count_nonzero(valid))
        vbuf = _bitmap(valid) if nulls else None
        deep = self.deep
        if t.kind == "struct":
            kids = []
            for name, ct in t.fields:
                c = deep.get(ref, name)
                kids.append(pa.nulls(n, ct.to_arrow()) if c is None else self._field(ct, c, f"{path}.{name}", n))
            for c in deep.children(ref):
                key = deep.key[c]
                if key is None or t.child(key) is None:
                    self._unexpected(c, f"{path}[]" if key is None else f"{path}.{key}", t)
            return pa.Array.from_buffers(t.to_arrow(), n, [vbuf], nulls, children=kids)
        c = deep.get(ref, None)
        offsets = np.zeros(n + 1, dtype=np.int32)
        if c is None:
            values = pa.nulls(0, t.element.to_arrow())
        else:
            e = self._of(c)
            pp = self.pos[self.parent[e]]
            live = pp >= 0
            e, pp = e[live], pp[live]
            if e.shape[0] > 2**31 - 1:
                from ...errors import DataError

                raise DataError(f"field {path!r}: more than 2**31 list elements in one batch (use smaller batch_rows)")
            np.cumsum(np.bincount(pp, minlength=n), out=offsets[1:])
            values = self._values(t.element, c, f"{path}[]", e.shape[0], e, np.arange(e.shape[0]))
        for s in deep.children(ref):
            if deep.key[s] is not None:
                self._unexpected(s, f"{path}.{deep.key[s]}", t)
        return pa.Array.from_buffers(t.to_arrow(), n, [vbuf, pa.py_buffer(offsets)], nulls, children=[values])

    def _field(self, t: LogicalType, c: int, path: str, n: int):
        e = self._of(c)
        pp = self.pos[self.parent[e]]
        live = pp >= 0
        e, pp = _last_per_position(e[live], pp[live])
        return self._values(t, c, path, n, e, pp)

    def _values(self, t: LogicalType, c: int, path: str, n: int, e: np.ndarray, pos: np.ndarray):
        """An array of ``n`` values of type ``t``: events ``e`` at positions ``pos``, the rest null."""
        from ...batch import Column
        from ._json_parse import _parse_column

        kinds = np.zeros(max(n, 1), dtype=np.uint8)
        kinds[pos] = self.kind[e]
        if t.is_nested:
            want = kj.K_OBJECT if t.kind == "struct" else kj.K_ARRAY
            k = self.kind[e]
            bad = (k > kj.K_NULL) & (k != want)
            if bad.any():
                self._event_errors(e[bad], path, t)
            sel = k == want
            return self._container(t, c, path, n, kinds[:n] == want, e[sel], pos[sel])
        starts = np.zeros(max(n, 1), dtype=np.int64)
        ends = np.zeros(max(n, 1), dtype=np.int64)
        starts[pos] = self.start[e]
        ends[pos] = self.end[e]
        col = Column(Field(path, t), max(n, 1), string_bytes=0)
        row_err = np.zeros(max(n, 1), dtype=np.uint8)
        slow = np.empty(max(n, 1), dtype=np.int64)
        first = _parse_column(self.tok.block.buf, kinds, starts, ends, 1, 0, col.field, col, n, row_err, slow,
                              self.stop, 0)
        if first >= 0:
            at = np.full(max(n, 1), -1, dtype=np.int64)
            at[pos] = e
            self._event_errors(at[np.flatnonzero(row_err[:n])], path, t)
        return col.to_arrow(n)

    def _unexpected(self, c: int, path: str, parent_type: LogicalType) -> None:
        """Values of a node the (given) type has no place for: errors, not silently dropped."""
        e = self._of(c)
        e = e[(self.kind[e] > kj.K_NULL) & (self.pos[self.parent[e]] >= 0)]
        if e.shape[0]:
            self._event_errors(e, path, None, parent_type)

    def _event_errors(self, e: np.ndarray, path: str, t, parent_type=None) -> None:
        from ._csv_parse import _text

        tok = self.tok
        rows = self._batch_row(self.row[e])
        for i in np.flatnonzero(rows >= 0)[:1] if self.stop else np.flatnonzero(rows >= 0):
            r = int(rows[i])
            if r in self.errors:
                continue
            ev = int(e[i])
            k = int(self.kind[ev])
            s, q = int(self.start[ev]), int(self.end[ev])
            if k in (kj.K_STR, kj.K_STRESC):
                s, q = s - 1, q + 1
            raw = bytes(tok.block.buf[s:q])
            if t is None:
                reason = f"field {path!r} is not in the type {parent_type} (a {kj.KIND_NAMES[k]} value)"
            else:
                reason = f"cannot read {kj.KIND_NAMES[k]} {_text(raw)!r} as {t} (field {path!r})"
            self.errors[r] = TypeCoercionError(reason, path=tok.path, line=int(tok.row_line[int(self.row[ev])]),
                                               column=path, offset=tok.block.base + s, raw=raw)

    def _dense_errors(self, j: int, f: Field, rows: np.ndarray) -> None:
        from ._json_parse import _coercion_error

        tok = self.tok
        back = np.full(self.rowmap.shape[0], -1, dtype=np.int64)
        live = np.flatnonzero(self.rowmap >= 0)
        back[self.rowmap[live]] = live
        for r in rows[:1] if self.stop else rows:
            r = int(r)
            if r not in self.errors:
                self.errors[r] = _coercion_error(self.src, tok, tok.block.buf, tok.block.base, tok.kinds, tok.starts,
                                                 tok.ends, tok.ns, tok.row_line, int(back[r]), j, f)


__all__ = ["DeepTree", "Assembler", "Types", "merge_types", "kinds_ok", "deep_kinds_ok"]
