"""JSON source: JSON lines, a top-level array of objects, or the array under ``records_path``.

Like the CSV source, the reader thread reads blocks into pooled buffers (an incomplete record is
carried into the next block) and runs the structural kernel (``kernels.json.tokenize``) over each
block: it validates the JSON, splits records, flattens nested objects along a key tree and writes
each record's value spans into a :class:`_Spans` chunk. Worker threads turn a chunk's spans into
typed batch columns (``_json_parse``). Nothing on the hot path decodes a record in Python.

Input shapes: a file whose first byte (after blanks and a BOM) is ``[`` is one array of records,
streamed element by element; with ``records_path="data.items"`` the file is one object and the
records are the array at that path (what precedes and follows the array is validated; it must fit
in memory); anything else is JSON lines (one object per line; blank lines skipped).

Columns: nested objects flatten to ``parent__child``; arrays become ``json`` columns holding their
exact text; empty objects add nothing. With ``nested="keep"`` the record's members are the columns
and objects/arrays stay Arrow structs/lists (see :mod:`._json_nested`: types, evolution inside
them, and the json fallback for values whose types do not widen to one).
Types: see :func:`type_of_kinds` and :func:`merge_type`
(big integers: beyond int64 -> decimal(38,0); more than 38 digits -> float64, with a warning).
Strings in the sample that all read as ISO dates/timestamps become date/timestamp columns.

Schema evolution (``contract="evolve"``, the default): the schema is decided in input order by the
reader, so chunk ``k`` carries the schema holding every change of chunks ``<= k`` (its
:meth:`chunk_schema`); a new field adds a nullable column, int then float widens to float64, int
then string becomes string. ``freeze`` raises :class:`~nebula.errors.SchemaEvolutionError` naming
the field and line; ``discard-row`` / ``discard-value`` reject the row / null the value, with a
reject record for each. Columns with a type given by the user (``schema``, ``columns``,
``infer_schema=False``) never change: a value that does not fit is a coercion error.

Errors: a syntax error in JSON lines rejects its line under ``on_error`` skip/dead-letter; in an
array document the rest cannot be resynchronised, so a syntax error there always fails the run (a
valid element that is not an object is still rejected alone).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ...errors import ConfigError, ParseError, SchemaEvolutionError, SourceError
from ...schema import Field, Schema
from ...types import BOOL, DATE, FLOAT64, INT64, JSON, STRING, TIMESTAMP, TIMESTAMPTZ, LogicalType
from ..base import Capabilities, ParseStats, RejectSink, Source
from ._io import chosen_dict_columns, input_size, open_input
from .csv import _Block, _pool, _stem, expand_paths, fill_block

DECIMAL_BIG = LogicalType("decimal", 38, 0)
MAX_COLUMNS = 10_000
CONTRACTS = ("evolve", "freeze", "discard-row", "discard-value")


# Rows per chunk/batch, and the schema sample (the first chunk; DuckDB samples 20,480 records): a
# chunk's value spans (kinds/starts/ends, ~17 bytes per value) are written by the structural kernel,
# then read once per column; at 16,384 rows of `orders` they stay in cache, at 65,536 (the CSV default)
# they do not: jsonl->parquet 5M measured 1.94 -> 1.81 s, CPU 3.3 -> 3.1 s, peak RSS 492 -> 397 MiB
# (8 interleaved runs each).
JSON_BATCH_ROWS = 16384


@dataclass
class JsonOptions:
    """Options of the JSON reader (names as on the CLI / in YAML ``source.options``)."""

    records_path: str | None = None
    nested: str = "flatten"
    separator: str = "__"
    contract: str = "evolve"
    max_depth: int = 512
    block_size: int = 8 << 20
    batch_rows: int = JSON_BATCH_ROWS
    infer_schema: bool = True
    columns: dict[str, LogicalType] = field(default_factory=dict)
    schema: Schema | None = None
    on_error: str = "fail"
    threads: int = 2
    encoding: str = "utf-8"
    dictionary: str | list[str] = "auto"
    dictionary_max: int = 4096

    @classmethod
    def from_dict(cls, opts: dict) -> JsonOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"unknown JSON option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        o = cls(**opts)
        o.validate()
        return o

    def validate(self) -> None:
        if self.nested not in ("flatten", "keep"):
            raise ConfigError(f"nested must be flatten (parent__child columns) or keep (Arrow structs and "
                              f"lists), got {self.nested!r}")
        if self.contract not in CONTRACTS:
            raise ConfigError(f"contract must be one of {', '.join(CONTRACTS)}, got {self.contract!r}")
        if self.on_error not in ("fail", "skip", "dead-letter"):
            raise ConfigError(f"on_error must be fail, skip or dead-letter, got {self.on_error!r}")
        if self.contract.startswith("discard") and self.on_error == "fail":
            raise ConfigError(f"contract {self.contract} sends what it discards to the rejects: use it with "
                              "--on-error skip or --on-error dead-letter")
        if not 1 <= self.max_depth <= 100_000:
            raise ConfigError("max_depth must be between 1 and 100000")
        if self.dictionary_max < 1:
            raise ConfigError("dictionary_max must be >= 1")
        if self.batch_rows < 1 or self.block_size < 1024:
            raise ConfigError("batch_rows must be >= 1 and block_size >= 1024")
        if self.encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig", "ascii"):
            raise ConfigError(f"encoding {self.encoding!r} is not supported; JSON is read as UTF-8")
        if self.records_path is not None and (not self.records_path or "" in self.records_path.split(".")):
            raise ConfigError(f"records_path must be dot-separated keys like data.items, got {self.records_path!r}")


# -- types ------------------------------------------------------------------------------------------
def _bits(*kinds) -> int:
    return sum(1 << k for k in kinds)


def type_of_kinds(mask: int) -> LogicalType | None:
    """The column type for a set of value kinds (``1 << K_*`` bits); None when only nulls."""
    from ...kernels import json as kj

    m = mask & ~_bits(kj.K_MISSING, kj.K_NULL)
    if not m:
        return None
    if not m & ~_bits(kj.K_TRUE, kj.K_FALSE):
        return BOOL
    if not m & ~_bits(kj.K_INT):
        return INT64
    if not m & ~_bits(kj.K_INT, kj.K_BIGINT):
        return DECIMAL_BIG
    if not m & ~_bits(kj.K_INT, kj.K_BIGINT, kj.K_HUGEINT, kj.K_FLOAT):
        return FLOAT64
    if not m & ~_bits(kj.K_STR, kj.K_STRESC):
        return STRING
    if m & _bits(kj.K_STR, kj.K_STRESC):
        return STRING  # strings mixed with anything: string (numbers, arrays as their JSON text)
    if m & _bits(kj.K_ARRAY, kj.K_OBJECT):
        return JSON  # arrays mixed with numbers/bools: every value as JSON text
    return STRING  # bools mixed with numbers


def accepts(t: LogicalType, mask: int) -> bool:
    """Whether every kind in ``mask`` can be stored in a column of type ``t`` without evolving."""
    from ...kernels import json as kj

    m = mask & ~_bits(kj.K_MISSING, kj.K_NULL)
    k = t.kind
    if k in ("string", "json"):
        return True
    if t.is_integer:
        return not m & ~_bits(kj.K_INT)
    if k == "decimal":
        return not m & ~_bits(kj.K_INT, kj.K_BIGINT, kj.K_FLOAT)
    if t.is_float:
        return not m & ~_bits(kj.K_INT, kj.K_BIGINT, kj.K_HUGEINT, kj.K_FLOAT)
    if k == "bool":
        return not m & ~_bits(kj.K_TRUE, kj.K_FALSE)
    if k in ("date", "timestamp"):
        return not m & ~_bits(kj.K_STR)
    return False


def merge_type(cur: LogicalType, new: LogicalType) -> LogicalType:
    """The type after ``cur`` met values of type ``new`` (JSON's widening lattice)."""
    if cur == new:
        return cur
    if cur.kind == "json" or new.kind == "json" and cur.kind != "string":
        return JSON
    nums = ("int64", "decimal", "float64")
    if cur.kind in nums and new.kind in nums:
        if "float64" in (cur.kind, new.kind):
            return FLOAT64
        return DECIMAL_BIG
    if cur.is_integer and new.kind in nums:
        return merge_type(INT64, new)
    if cur.is_float and new.kind in nums:
        return FLOAT64
    return STRING


# -- chunks and the key tree ----------------------------------------------------------------------
class _Spans:
    """Value spans of up to ``rows`` records cut from one block (``ns`` columns per row)."""

    REJ_CAP = 4096

    def __init__(self, rows: int, ns: int) -> None:
        self.rows = rows
        self.ns = 0
        self.ensure(max(ns, 1))
        self.row_start = np.empty(rows, dtype=np.int64)
        self.row_end = np.empty(rows, dtype=np.int64)
        self.row_line = np.empty(rows, dtype=np.int64)
        self.rej_start = np.empty(self.REJ_CAP, dtype=np.int64)
        self.rej_end = np.empty(self.REJ_CAP, dtype=np.int64)
        self.rej_code = np.empty(self.REJ_CAP, dtype=np.int64)
        self.rej_pos = np.empty(self.REJ_CAP, dtype=np.int64)
        self.rej_line = np.empty(self.REJ_CAP, dtype=np.int64)
        self.n_rows = 0
        self.n_rej = 0
        self.block: _Block | None = None
        self.path = ""
        self.schema: Schema | None = None
        self.extra_rejects: list[dict] = []
        self.raw = False
        self.seq = -1
        self.pos = self.end = 0
        self.line0 = 1
        self.ev = np.zeros((1, 5), dtype=np.int64)  # nested="keep": the events (see kernels.json.tokenize)
        self.evk = np.zeros(1, dtype=np.uint8)
        self.evn = np.zeros(3, dtype=np.int64)
        self.evmask = np.zeros(1, dtype=np.int64)

    def ensure_events(self, nodes: int, cap: int) -> None:
        """Room for ``cap`` events and the kinds of ``nodes`` deep nodes (nested="keep")."""
        if self.evk.shape[0] < cap:
            self.ev = np.zeros((cap, 5), dtype=np.int64)
            self.evk = np.zeros(cap, dtype=np.uint8)
        if self.evmask.shape[0] < nodes:
            self.evmask = np.zeros(max(nodes, 2 * self.evmask.shape[0]), dtype=np.int64)

    def events_needed(self, done: int) -> int:
        """After EVENTS_FULL with ``done`` rows tokenized: the events a whole chunk of them needs."""
        per_row = int(self.evn[0]) / max(done, 1)
        return max(2 * self.evk.shape[0], int(per_row * self.rows * 1.25) + 4096)

    def grow_rejects(self) -> None:
        cap = self.rej_start.shape[0] * 2
        for name in ("rej_start", "rej_end", "rej_code", "rej_pos", "rej_line"):
            setattr(self, name, np.empty(cap, dtype=np.int64))

    def ensure(self, ns: int) -> None:
        """Room for ``ns`` columns per row (reallocates when the column count grew)."""
        if ns > self.ns or not hasattr(self, "kinds"):
            cap = max(ns, 1)
            self.kinds = np.zeros(self.rows * cap, dtype=np.uint8)
            self.starts = np.zeros(self.rows * cap, dtype=np.int64)
            self.ends = np.zeros(self.rows * cap, dtype=np.int64)
            self.colmask = np.zeros(cap, dtype=np.int64)
        self.ns = max(ns, self.ns)


class _KeyTree:
    """Nodes (parent, key bytes) -> column, in the flat arrays :func:`kernels.json.tokenize` uses."""

    def __init__(self, cap: int = 256) -> None:
        from ...kernels import json as kj

        self.kj = kj
        self.cap = 0
        self.meta = np.zeros(4, dtype=np.int64)
        self.meta[kj.M_NODES] = 1  # node 0: the record itself
        self.kdata = np.empty(4096, dtype=np.uint8)
        self.koff = np.zeros(1, dtype=np.int64)
        self.kscratch = np.empty(4096, dtype=np.uint8)
        self._resize(cap)

    def _resize(self, cap: int) -> None:
        def grow(a, fill, dtype, size):
            out = np.full(size, fill, dtype=dtype)
            if a is not None:
                out[:a.shape[0]] = a
            return out

        self.parent = grow(getattr(self, "parent", None), -1, np.int32, cap)
        self.col = grow(getattr(self, "col", None), self.kj.COL_NONE, np.int32, cap)
        self.first = grow(getattr(self, "first", None), -1, np.int32, cap)
        self.next = grow(getattr(self, "next", None), -1, np.int32, cap)
        self.seen = grow(getattr(self, "seen", None), 0, np.uint8, cap)
        koff = np.zeros(cap + 1, dtype=np.int64)
        koff[:self.koff.shape[0]] = self.koff
        self.koff = koff
        self.htab = np.full(4 * cap, -1, dtype=np.int32)
        self.kj.rebuild_hash(self.parent, self.koff, self.kdata, int(self.meta[self.kj.M_NODES]), self.htab)
        self.cap = cap

    def grow(self) -> None:
        kj = self.kj
        need = int(self.meta[kj.M_KEYLEN])
        if need > self.kscratch.shape[0]:
            self.kscratch = np.empty(need * 2, dtype=np.uint8)
        used = int(self.meta[kj.M_KDATA])
        if used + need + 1 > self.kdata.shape[0] // 2:
            kd = np.empty(max(self.kdata.shape[0] * 2, (used + need) * 2), dtype=np.uint8)
            kd[:used] = self.kdata[:used]
            self.kdata = kd
        if int(self.meta[kj.M_NODES]) * 2 + 4 >= self.cap:
            self._resize(self.cap * 2)
        self.meta[kj.M_KEYLEN] = 0

    @property
    def n(self) -> int:
        return int(self.meta[self.kj.M_NODES])

    def key(self, k: int) -> str:
        return bytes(self.kdata[self.koff[k]:self.koff[k + 1]]).decode("utf-8")

    def name(self, k: int, sep: str) -> str:
        parts = []
        while k > 0:
            parts.append(self.key(k))
            k = int(self.parent[k])
        return sep.join(reversed(parts))

    def args(self) -> tuple:
        return (self.parent, self.koff, self.kdata, self.col, self.first, self.next, self.seen, self.htab, self.meta)


@dataclass
class _ThreadState:
    """A thread's own key tree and kernel stacks (trees are not shared: lookups write into them)."""

    tree: _KeyTree
    stacks: tuple
    estk: np.ndarray  # nested="keep": the event of the container open at each depth


class _Stop(Exception):
    """The reader hit a fatal syntax error (raised as ParseError by the caller)."""


def _ws(buf: np.ndarray, p: int, end: int) -> int:
    while p < end and buf[p] in (32, 9, 10, 13):
        p += 1
    return p


class JsonSource(Source):
    """JSON lines / JSON array files (local, optionally .gz/.zst/.lz4), one schema for all files."""

    default_batch_rows = JSON_BATCH_ROWS

    capabilities = Capabilities(formats=("jsonl", "ndjson", "json"), schemes=("file",), schema_evolution=True,
                                notes="Numba-parsed; nested objects flattened, or kept as structs/lists (--nested keep); "
                                      "schema evolution and contracts")

    def __init__(self, path, *, options: JsonOptions | dict | None = None, name: str | None = None) -> None:
        if isinstance(options, dict) or options is None:
            options = JsonOptions.from_dict(options or {})
        self.opts = options
        self.spec = path
        self.paths: list[str] = []
        self.name = name or _stem(path)
        self._schema: Schema | None = None
        self._bytes_total: int | None = None
        self.warnings: list[str] = []
        self.bytes_read = 0
        self.dict_columns: frozenset[str] = frozenset()
        self._deep = None  # nested="keep": the nodes below the members (_json_nested.DeepTree)
        self._path_keys = [k.encode() for k in options.records_path.split(".")] if options.records_path else []

    # -- discovery ------------------------------------------------------------------------------------
    def open(self) -> None:
        from ...kernels import json as kj

        o = self.opts
        self.paths = expand_paths(self.spec)
        try:
            self._bytes_total = sum(input_size(p) for p in self.paths)
        except OSError:
            self._bytes_total = None
        self._local = threading.local()
        self._turn_cv = threading.Condition()
        self._seq = self._turn = 0
        self._broken: BaseException | None = None
        self._slots: list[str] = []
        self._slot_index: dict[str, int] = {}
        self._pinned: set[str] = set()
        self._huge_warned: set[str] = set()
        if o.nested == "keep":
            from ._json_nested import DeepTree

            self._deep = DeepTree()
            self._ev_cap = 4096  # events a chunk has room for; grows to what chunks need (flat data: none)
            self._placeholders: set[str] = set()  # paths typed string for lack of values (see _json_nested.Types)
        d = o.max_depth + 1
        self._stk = np.zeros(d, dtype=np.uint8)
        self._nstk = np.zeros(d, dtype=np.int32)
        self._pstk = np.zeros(d, dtype=np.int32)
        self._astk = np.zeros(d, dtype=np.int64)
        self._pending = np.zeros(4096, dtype=np.int64)
        nthreads = max(1, o.threads)
        self._blocks = _pool(lambda: _Block(o.block_size, None), nthreads + 3)
        for b in self._blocks._free:
            b.pool = self._blocks
        self._chunks = _pool(lambda: _Spans(o.batch_rows, 16), nthreads + 3)
        if o.schema is not None:
            for f in o.schema:
                self._add_slot(f.name)
            self._pinned.update(o.schema.names)
        self._pinned.update(o.columns)
        self._sampling = True
        try:
            sample = self._sample()
        finally:
            self._sampling = False
        self._schema = self._infer(sample)
        try:
            self.dict_columns = self._choose_dict_columns(sample, self._schema)
        finally:
            if sample is not None:
                self.release(sample)
        _ = kj

    def _sample(self) -> _Spans | None:
        """The first chunk with records (every key it holds gets a column)."""
        for path in self.paths:
            gen = self._read_file(path)
            try:
                for tok in gen:
                    self._prepare(tok)
                    if tok.n_rows:
                        return tok
                    self.release(tok)
            finally:
                gen.close()
        return None

    def _infer(self, tok: _Spans | None) -> Schema:
        from ...kernels import json as kj

        o = self.opts
        fields = []
        for j, nm in enumerate(self._slots):
            if o.schema is not None and nm in o.schema:
                fields.append(o.schema[nm])
                continue
            mask = int(tok.colmask[j]) if tok is not None and j < tok.ns else 0
            if self._deep is not None and o.infer_schema and tok is not None:
                from ._json_nested import Types

                t = Types(self._deep, self._slots, tok.evmask, self._placeholders,
                          strings=lambda s: self._deep_strings(tok, s)).observed(-(j + 1), mask)
                if t is None:
                    self._placeholders.add(nm)
            else:
                t = type_of_kinds(mask) if o.infer_schema else STRING
            if t is None:
                t = STRING
            if t == STRING and o.infer_schema and tok is not None:
                m, cnt = kj.infer_strings(tok.block.buf, tok.kinds, tok.starts, tok.ends, tok.ns, j, tok.n_rows)
                if cnt:
                    t = DATE if m & 8 else TIMESTAMP if m & 16 else TIMESTAMPTZ if m & 32 else STRING
            self._warn_huge(nm, mask)
            fields.append(Field(nm, t))
        if tok is not None:
            self._warn_huge_deep(tok)
        if not fields:
            where = self.paths[0] if self.paths else str(self.spec)
            raise ParseError("no JSON object with fields to take the columns from (the input is empty, or "
                             "every record was rejected)", path=where, line=1, offset=0)
        schema = Schema(fields)
        if o.columns:
            schema = schema.with_types(o.columns)
        if not o.infer_schema:
            self._pinned.update(schema.names)
        return schema

    def _choose_dict_columns(self, tok: _Spans | None, schema: Schema) -> frozenset[str]:
        """String columns to dictionary-encode: named ones, or (auto) those repetitive in the sample."""
        o = self.opts
        named = chosen_dict_columns(o.dictionary, schema)
        if named is not None:
            return named
        text = [f.name for f in schema if f.type.kind == "string"]
        if tok is None or tok.n_rows < 64:
            return frozenset()
        from ...kernels import json as kj

        m = tok.n_rows
        limit = min(o.dictionary_max, m // 8)
        table = np.empty(1 << max(4, int(2 * limit - 1).bit_length()), dtype=np.int32)
        doff = np.empty(limit + 1, dtype=np.int32)
        ddata = np.empty(max(1 << 16, limit * 64), dtype=np.uint8)
        codes = np.empty(m, dtype=np.int32)
        valid = np.zeros(m // 8 + 9, dtype=np.uint8)
        chosen = []
        for name in text:
            j = schema.index(name)
            if j >= tok.ns:
                continue
            r = kj.extract_dict(tok.block.buf, tok.kinds, tok.starts, tok.ends, tok.ns, j, m, table, doff, ddata,
                                limit, codes, valid)
            if int(r[2]) == 0 and int(r[1]) > 0:
                chosen.append(name)
        return frozenset(chosen)

    def _deep_strings(self, tok: _Spans, s: int) -> LogicalType:
        """The sample's type for node ``s`` whose values are strings: date/timestamp when all read so."""
        from ...kernels import json as kj

        ne = int(tok.evn[0])
        e = np.flatnonzero(tok.ev[:ne, kj.EV_SLOT] == s)
        m, cnt = kj.infer_strings(tok.block.buf, np.ascontiguousarray(tok.evk[e]),
                                  np.ascontiguousarray(tok.ev[e, kj.EV_START]),
                                  np.ascontiguousarray(tok.ev[e, kj.EV_END]), 1, 0, e.shape[0])
        if not cnt:
            return STRING
        return DATE if m & 8 else TIMESTAMP if m & 16 else TIMESTAMPTZ if m & 32 else STRING

    def _warn_huge_deep(self, tok: _Spans) -> None:
        from ...kernels import json as kj

        if self._deep is None:
            return
        nd = len(self._deep)
        for s in np.flatnonzero(tok.evmask[:nd] & (1 << kj.K_HUGEINT)):
            self._warn_huge(self._deep.path(int(s), self._slots), 1 << kj.K_HUGEINT)

    def _warn_huge(self, name: str, mask: int) -> None:
        from ...kernels import json as kj

        if mask & (1 << kj.K_HUGEINT) and name not in self._huge_warned:
            self._huge_warned.add(name)
            self.warnings.append(f"column {name!r}: integers of more than 38 digits do not fit decimal(38,0); "
                                 "the column is float64 (rounded values)")

    @property
    def schema(self) -> Schema:
        if self._schema is None:
            raise RuntimeError("open() the source first")
        return self._schema

    def chunk_schema(self, chunk) -> Schema:
        self._prepare(chunk)  # JSON lines: the structural pass runs here, on the worker thread
        return chunk.schema or self.schema

    @property
    def total_bytes(self) -> int | None:
        return self._bytes_total

    # -- columns ------------------------------------------------------------------------------------
    def _add_slot(self, name: str) -> int:
        j = self._slot_index.get(name)
        if j is None:
            if len(self._slots) >= MAX_COLUMNS:
                raise ParseError(f"more than {MAX_COLUMNS} distinct fields: this does not look like tabular "
                                 "records (use records_path, or fewer distinct keys)")
            j = len(self._slots)
            self._slots.append(name)
            self._slot_index[name] = j
        return j

    def _assign_columns(self, t: _KeyTree, ordered: bool) -> tuple[bool, bool]:
        """Give columns to the nodes of ``t`` that got values: ``(a node got a column, a node waits)``.

        A name that already has a column takes it on any thread; a new name gets one only in input
        order (``ordered``: the sample, the reader of an array, or a worker's turn).
        """
        from ...kernels import json as kj

        n = t.n
        col, seen = t.col[:n], t.seen[:n]
        new = np.flatnonzero(((col == kj.COL_NONE) & (seen != 0)) | ((col == kj.COL_NULLS) & (seen & 1 != 0)))
        added = waits = False
        for k in new:
            k = int(k)
            if k == 0:
                continue
            if self._deep is not None and t.parent[k] != 0:
                a, w = self._assign_deep(t, k, ordered)
                added, waits = added or a, waits or w
                continue
            name = t.name(k, self.opts.separator)
            j = self._slot_index.get(name)
            if j is None and not ordered:
                waits = True
                continue
            if j is not None or t.seen[k] & 1 or self._sampling:
                t.col[k] = j if j is not None else self._add_slot(name)
                added = True
            else:
                t.col[k] = kj.COL_NULLS
        return added, waits

    def _assign_deep(self, t: _KeyTree, k: int, ordered: bool) -> tuple[bool, bool]:
        """nested="keep": number node ``k`` (below a member) by its path in the shared DeepTree."""
        from ...kernels import json as kj

        if t.col[k] >= 0:
            return False, False
        p = int(t.parent[k])
        if t.col[p] < 0:  # its container has no number yet (the pending list overflowed): next pass
            return False, True
        ref = -(int(t.col[p]) + 1) if t.parent[p] == 0 else int(t.col[p])
        kb = bytes(t.kdata[t.koff[k]:t.koff[k + 1]])
        key = None if kb == b"\xff" else kb.decode("utf-8")
        s = self._deep.get(ref, key)
        if s is None and not ordered:
            return False, True
        if s is not None or t.seen[k] & 1 or self._sampling or key is None:  # a null element still counts
            if s is None:
                if len(self._deep) >= MAX_COLUMNS:
                    raise ParseError(f"more than {MAX_COLUMNS} distinct nested fields: this does not look like "
                                     "records with a schema (use nested='flatten' with records_path, or fewer keys)")
                s = self._deep.add(ref, key)
            t.col[k] = s
            return True, False
        t.col[k] = kj.COL_NULLS
        return False, False

    # -- reading ----------------------------------------------------------------------------------------
    def read(self) -> Iterator[_Spans]:
        self.bytes_read = 0
        with self._turn_cv:
            self._seq = self._turn = 0
            self._broken = None
        for path in self.paths:
            yield from self._read_file(path)

    def _fill(self, f, block: _Block, carry: np.ndarray, base: int) -> bool:
        return fill_block(f, block, carry, base)

    def _refill(self, f, block: _Block, pos: int) -> tuple[_Block, bool]:
        """Carry ``block.buf[pos:]`` into a fresh block and read more after it."""
        carry = block.buf[pos:block.n].copy()
        base = block.base + pos
        block.drop()
        nb = self._blocks.acquire()
        nb.retain()
        return nb, self._fill(f, nb, carry, base)

    def _read_file(self, path: str) -> Iterator[_Spans]:
        from ...kernels import json as kj

        try:
            f = open_input(path)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        with f:
            block = self._blocks.acquire()
            block.retain()
            try:
                eof = self._fill(f, block, np.empty(0, dtype=np.uint8), 0)
                pos = 3 if block.n >= 3 and bytes(block.buf[:3]) == b"\xef\xbb\xbf" else 0
                line = 1
                # the shape of the document
                while True:
                    p = _ws(block.buf, pos, block.n)
                    if p < block.n or eof:
                        break
                    line += int(np.count_nonzero(block.buf[pos:p] == 10))
                    block, eof = self._refill(f, block, p)
                    pos = 0
                first = block.buf[p] if p < block.n else -1
                levels = 0
                if self._path_keys:
                    while True:
                        r = self._navigate(block.buf, pos, block.n, eof, path, line)
                        if r is not None:
                            break
                        block, eof = self._refill(f, block, pos)
                        pos = 0
                    pos, levels, line = r
                    mode = kj.ARRAY
                elif first == 91:
                    line += int(np.count_nonzero(block.buf[pos:p] == 10))
                    pos, mode = p + 1, kj.ARRAY
                else:
                    mode = kj.LINES
                if mode == kj.LINES:
                    b, block = block, None
                    yield from self._cut_lines(f, b, pos, eof, line, path)
                    return
                state = 0
                ts = self._thread_state()
                while True:
                    tok = self._chunks.acquire()
                    tok.ensure(max(len(self._slots), 1))
                    while True:
                        r = kj.tokenize(block.buf, pos, block.n, eof, mode, state, line, tok.rows,
                                        self.opts.max_depth, self.opts.on_error != "fail", *ts.tree.args(),
                                        tok.ns, tok.kinds, tok.starts, tok.ends, tok.colmask, tok.row_start,
                                        tok.row_end, tok.row_line, tok.rej_start, tok.rej_end, tok.rej_code,
                                        tok.rej_pos, tok.rej_line, *ts.stacks, ts.tree.kscratch,
                                        *self._keep_args(ts, tok))
                        n, nrej, nxt, nline, nstate, status, code, epos, eline, rec = (int(x) for x in r)
                        if ts.tree.meta[kj.M_NEED]:
                            ts.tree.meta[kj.M_NEED] = 0
                            if self._assign_columns(ts.tree, True)[0]:
                                tok.ensure(len(self._slots))
                                continue
                        if status == kj.TABLE_FULL and n == 0 and nrej == 0:
                            ts.tree.grow()
                            continue
                        if status == kj.EVENTS_FULL:
                            self._ev_cap = max(self._ev_cap, tok.events_needed(n))
                            if n == 0 and nrej == 0:
                                continue
                        break
                    if status == kj.ERROR:
                        self._chunks.release(tok)
                        raise self._syntax_error(path, block, code, epos, eline)
                    if n or nrej:
                        tok.n_rows, tok.n_rej = n, nrej
                        tok.block, tok.path = block, path
                        tok.extra_rejects = []
                        tok.raw = False
                        block.retain()
                        self.bytes_read += nxt - pos
                        if self._sampling:
                            tok.schema = self._schema
                        else:  # decided here, in input order (also after the chunks of earlier JSON lines files)
                            seq = self._next_seq()
                            self._wait_turn(seq)
                            try:
                                self._check_schema(tok)
                                tok.schema = self._schema
                            except BaseException as e:
                                self._end_turn(seq, e)
                                block.drop()
                                tok.block = None
                                self._chunks.release(tok)
                                raise
                            self._end_turn(seq)
                        yield tok
                    else:
                        self._chunks.release(tok)
                    pos, line, state = nxt, nline, nstate
                    if status in (kj.FULL, kj.TABLE_FULL, kj.EVENTS_FULL):
                        continue
                    if status == kj.DONE and (mode == kj.ARRAY or eof):
                        break
                    block, eof = self._refill(f, block, pos)
                    pos = 0
                if mode == kj.ARRAY:
                    self._finish_document(f, block, pos, eof, levels, line, path)
            finally:
                if block is not None:
                    block.drop()

    def _cut_lines(self, f, block, pos, eof, line, path) -> Iterator[_Spans]:
        """JSON lines: chunks of whole lines (at most ``batch_rows``), tokenized later by the workers."""
        from ...kernels import json as kj

        maxl = self.opts.batch_rows
        try:
            while True:
                if pos >= block.n:
                    if eof:
                        return
                    block, eof = self._refill(f, block, pos)
                    pos = 0
                    continue
                cut, nl = (int(x) for x in kj.cut_lines(block.buf, pos, block.n, maxl))
                if eof and nl < maxl:
                    cut = block.n
                if cut == pos:  # no whole line here: read more (the block grows for a long line)
                    block, eof = self._refill(f, block, pos)
                    pos = 0
                    continue
                tok = self._chunks.acquire()
                tok.raw = True
                tok.block, tok.path = block, path
                tok.pos, tok.end, tok.line0 = pos, cut, line
                tok.n_rows = tok.n_rej = 0
                tok.extra_rejects = []
                tok.schema = None
                tok.seq = -1 if self._sampling else self._next_seq()
                block.retain()
                self.bytes_read += cut - pos
                yield tok
                pos, line = cut, line + nl
        finally:
            block.drop()

    # -- the ordered schema decision of chunks tokenized in parallel ---------------------------------
    def _thread_state(self):
        ts = getattr(self._local, "ts", None)
        if ts is None:
            d = self.opts.max_depth + 1
            ts = _ThreadState(_KeyTree(), (np.zeros(d, dtype=np.uint8), np.zeros(d, dtype=np.int32),
                                           np.zeros(d, dtype=np.int32), np.zeros(d, dtype=np.int64),
                                           np.zeros(4096, dtype=np.int64)), np.zeros(d, dtype=np.int64))
            self._local.ts = ts
        return ts

    def _keep_args(self, ts, tok) -> tuple:
        """The nested="keep" arguments of ``kernels.json.tokenize`` (unused placeholders in flatten mode)."""
        if self._deep is None:
            return (), ts.estk, tok.ev, tok.evk, tok.evn, tok.evmask
        tok.ensure_events(len(self._deep), self._ev_cap)
        return (True,), ts.estk, tok.ev, tok.evk, tok.evn, tok.evmask

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _wait_turn(self, seq: int) -> None:
        with self._turn_cv:
            while self._turn != seq and self._broken is None:
                self._turn_cv.wait(0.1)
            if self._broken is not None:
                raise self._broken

    def _end_turn(self, seq: int, exc: BaseException | None = None) -> None:
        with self._turn_cv:
            if exc is not None:
                if self._broken is None:
                    self._broken = exc
            elif self._turn == seq:
                self._turn = seq + 1
            self._turn_cv.notify_all()

    def _tokenize_lines(self, tok: _Spans, ts, ordered: bool) -> tuple:
        """Run the structural kernel over a raw chunk of whole lines with this thread's key tree."""
        from ...kernels import json as kj

        tree = ts.tree
        while True:
            tok.ensure(max(len(self._slots), 1))
            r = kj.tokenize(tok.block.buf, tok.pos, tok.end, True, kj.LINES, 0, tok.line0, tok.rows,
                            self.opts.max_depth, self.opts.on_error != "fail", *tree.args(), tok.ns, tok.kinds,
                            tok.starts, tok.ends, tok.colmask, tok.row_start, tok.row_end, tok.row_line,
                            tok.rej_start, tok.rej_end, tok.rej_code, tok.rej_pos, tok.rej_line, *ts.stacks,
                            tree.kscratch, *self._keep_args(ts, tok))
            n, nrej, nxt, nline, nstate, status, code, epos, eline, rec = (int(x) for x in r)
            unresolved = False
            if tree.meta[kj.M_NEED]:
                tree.meta[kj.M_NEED] = 0
                added, unresolved = self._assign_columns(tree, ordered)
                if added:
                    continue
            if status == kj.TABLE_FULL:
                tree.grow()
                continue
            if status == kj.EVENTS_FULL:
                self._ev_cap = max(self._ev_cap, tok.events_needed(n))
                continue
            if status == kj.FULL:  # more rejected lines than the list holds
                if nrej < tok.rej_start.shape[0]:  # pragma: no cover - a chunk never has more lines than rows
                    raise AssertionError("a chunk of JSON lines holds more records than its rows")
                tok.grow_rejects()
                continue
            tok.n_rows, tok.n_rej = n, nrej
            return status, code, epos, eline, unresolved

    def _prepare(self, tok: _Spans) -> None:
        """Tokenize a raw chunk (in parallel), then decide its schema in input order."""
        from ...kernels import json as kj

        if not tok.raw:
            return
        ts = self._thread_state()
        seq = tok.seq
        if seq < 0:  # the sample: on the opening thread, nothing to wait for
            status, code, epos, eline, _ = self._tokenize_lines(tok, ts, True)
            tok.raw = False
            if status == kj.ERROR:
                raise self._syntax_error(tok.path, tok.block, code, epos, eline)
            tok.schema = self._schema
            return
        try:
            status, code, epos, eline, unresolved = self._tokenize_lines(tok, ts, False)
            self._wait_turn(seq)
        except BaseException as e:
            self._end_turn(seq, e)
            raise
        try:
            if unresolved or self._unassigned(ts.tree):
                status, code, epos, eline, _ = self._tokenize_lines(tok, ts, True)
            if status == kj.ERROR:
                raise self._syntax_error(tok.path, tok.block, code, epos, eline)
            tok.raw = False
            self._check_schema(tok)
            tok.schema = self._schema
        except BaseException as e:
            self._end_turn(seq, e)
            raise
        self._end_turn(seq)

    def _unassigned(self, tree) -> bool:
        """Whether a node of ``tree`` that got values waits for a column (a name new to every tree)."""
        from ...kernels import json as kj

        n = tree.n
        return bool(np.any((tree.col[:n] == kj.COL_NONE) & (tree.seen[:n] != 0)))

    def _finish_document(self, f, block, pos, eof, levels, line, path) -> None:
        """After the records array: the enclosing objects' other members, then only blanks."""
        while True:
            r = self._close_levels(block.buf, pos, block.n, eof, levels, line, path)
            if r is not None:
                return
            block2, eof = self._refill(f, block, pos)
            block = block2
            pos = 0

    # -- the parts of a document around the records (rare path, small) --------------------------------
    def _skip(self, buf, p, end, eof, line, path):
        from ...kernels import json as kj

        st, q, code, ep, nl = kj.skip_value(buf, p, end, eof, self.opts.max_depth, self._stk, self._nstk,
                                            self._pstk, self._astk)
        if st == 1:
            return None
        if st == 2:
            raise self._syntax_error(path, None, int(code), int(ep), line + int(nl), buf=buf)
        return int(q)

    def _navigate(self, buf, pos, end, eof, path, line):
        """``(pos inside the records array, open objects, line)`` or None when more bytes are needed."""
        import json

        keys = self._path_keys
        p = _ws(buf, pos, end)
        if p >= end:
            if eof:
                raise ParseError(f"records_path {self.opts.records_path!r}: the file is empty", path=path,
                                 line=line, offset=p)
            return None
        for depth, want in enumerate(keys):
            if buf[p] != 123:
                raise ParseError(f"records_path {self.opts.records_path!r}: expected an object at "
                                 f"{'.'.join(k.decode() for k in keys[:depth]) or 'the top level'}",
                                 path=path, line=line + int(np.count_nonzero(buf[pos:p] == 10)), offset=p)
            p += 1
            first = True
            while True:
                p = _ws(buf, p, end)
                if p >= end:
                    return None
                if buf[p] == 125:
                    raise ParseError(f"records_path {self.opts.records_path!r}: key {want.decode()!r} not found",
                                     path=path, line=line + int(np.count_nonzero(buf[pos:p] == 10)), offset=p)
                if not first:
                    if buf[p] != 44:
                        raise self._syntax_error(path, None, 18, p, line + int(np.count_nonzero(buf[pos:p] == 10)),
                                                 buf=buf)
                    p = _ws(buf, p + 1, end)
                    if p >= end:
                        return None
                first = False
                if buf[p] != 34:
                    raise self._syntax_error(path, None, 16, p, line + int(np.count_nonzero(buf[pos:p] == 10)),
                                             buf=buf)
                q = self._skip(buf, p, end, eof, line, path)
                if q is None:
                    return None
                key = json.loads(bytes(buf[p:q]))
                p = _ws(buf, q, end)
                if p >= end:
                    return None
                if buf[p] != 58:
                    raise self._syntax_error(path, None, 17, p, line + int(np.count_nonzero(buf[pos:p] == 10)),
                                             buf=buf)
                p = _ws(buf, p + 1, end)
                if p >= end:
                    return None
                if key.encode() == want:
                    break
                q = self._skip(buf, p, end, eof, line, path)
                if q is None:
                    return None
                p = q
        if buf[p] != 91:
            raise ParseError(f"records_path {self.opts.records_path!r} is not an array", path=path,
                             line=line + int(np.count_nonzero(buf[pos:p] == 10)), offset=p)
        return p + 1, len(keys), line + int(np.count_nonzero(buf[pos:p] == 10))

    def _close_levels(self, buf, pos, end, eof, levels, line, path):
        p = pos
        while levels:
            p = _ws(buf, p, end)
            if p >= end:
                if eof:
                    raise self._syntax_error(path, None, 2, p, line + int(np.count_nonzero(buf[pos:p] == 10)),
                                             buf=buf)
                return None
            c = buf[p]
            if c == 125:
                levels -= 1
                p += 1
                continue
            if c != 44:
                raise self._syntax_error(path, None, 18, p, line + int(np.count_nonzero(buf[pos:p] == 10)), buf=buf)
            p = _ws(buf, p + 1, end)
            if p < end and buf[p] != 34:
                code = 3 if buf[p] == 125 else 16
                raise self._syntax_error(path, None, code, p, line + int(np.count_nonzero(buf[pos:p] == 10)),
                                         buf=buf)
            q = self._skip(buf, p, end, eof, line, path) if p < end else None
            if q is None:
                return None
            p = _ws(buf, q, end)
            if p >= end:
                return None
            if buf[p] != 58:
                raise self._syntax_error(path, None, 17, p, line + int(np.count_nonzero(buf[pos:p] == 10)), buf=buf)
            p = _ws(buf, p + 1, end)
            q = self._skip(buf, p, end, eof, line, path) if p < end else None
            if q is None:
                return None
            p = q
        p = _ws(buf, p, end)
        if p < end:
            raise self._syntax_error(path, None, 11, p, line + int(np.count_nonzero(buf[pos:p] == 10)), buf=buf)
        if not eof:
            return None
        return True

    def _syntax_error(self, path, block, code, pos, line, buf=None) -> ParseError:
        from ...kernels import json as kj

        reason = kj.ERROR_TEXT.get(code, "JSON syntax error")
        if code == kj.E_DEPTH:
            reason = f"nesting deeper than {self.opts.max_depth} levels (max_depth)"
        base = block.base if block is not None else 0
        return ParseError(reason, path=path, line=line, offset=base + pos)

    # -- schema evolution and contracts (reader thread, per chunk) -------------------------------------
    def _check_schema(self, tok: _Spans) -> None:
        schema = self._schema
        names = schema.names
        nsch = len(names)
        o = self.opts
        changes: dict[int, LogicalType] = {}
        deep = self._deep
        if deep is not None:
            from ._json_nested import Types

            types = Types(deep, self._slots, tok.evmask, self._placeholders if o.contract == "evolve" else None)
            self._warn_huge_deep(tok)
        for j in range(len(self._slots)):
            mask = int(tok.colmask[j]) if j < tok.ns else 0
            if j < nsch:
                f = schema[j]
                if f.name in self._pinned:
                    continue
                if deep is not None:
                    t = types.evolve(f.type, -(j + 1), mask)
                    if t != f.type:
                        self._warn_huge(f.name, mask)
                        changes[j] = t
                    continue
                if accepts(f.type, mask):
                    continue
                self._warn_huge(f.name, mask)
                changes[j] = merge_type(f.type, type_of_kinds(mask))
            else:
                t = type_of_kinds(mask) if deep is None else types.observed(-(j + 1), mask)
                if t is not None:
                    self._warn_huge(self._slots[j], mask)
                    changes[j] = t
        if not changes:
            return
        if o.contract == "evolve":
            fields = list(schema.fields)
            for j, t in sorted(changes.items()):
                if j < nsch:
                    fields[j] = replace(fields[j], type=t)
                else:
                    while len(fields) < j:  # null-only slots before j (not expected: slots follow values)
                        fields.append(Field(self._slots[len(fields)], STRING))
                    fields.append(Field(self._slots[j], t))
            self._schema = Schema(fields)
            return
        self._apply_contract(tok, changes, nsch)

    def _violations(self, tok: _Spans, j: int, nsch: int) -> np.ndarray:
        """Rows of ``tok`` whose value in slot ``j`` breaks the schema."""
        from ...kernels import json as kj

        n = tok.n_rows
        k = tok.kinds[:n * tok.ns].reshape(n, tok.ns)[:, j]
        if j >= nsch:
            return np.flatnonzero(k > kj.K_NULL)
        t = self._schema[j].type
        ok = np.array([k2 <= kj.K_NULL or accepts(t, 1 << k2) for k2 in range(16)])
        return np.flatnonzero(~ok[k])

    def _apply_contract(self, tok: _Spans, changes: dict, nsch: int) -> None:
        from ...kernels import json as kj

        if self._deep is not None:
            from ._json_contract import apply_contract_keep

            apply_contract_keep(self, tok, changes, nsch)
            return
        o = self.opts
        n = tok.n_rows
        buf = tok.block.buf
        base = tok.block.base
        bad: dict[int, list[int]] = {}
        for j in changes:
            for r in self._violations(tok, j, nsch):
                bad.setdefault(int(r), []).append(j)
        if not bad:
            return
        kinds2d = tok.kinds[:n * tok.ns].reshape(n, tok.ns)

        def what(r, j):
            kind = kj.KIND_NAMES[int(kinds2d[r, j])]
            nm = self._slots[j]
            if j >= nsch:
                return nm, f"field {nm!r} is not in the schema (a new {kind} field)"
            return nm, f"field {nm!r}: a {kind} value does not fit the column type {self._schema[j].type}"

        if o.contract == "freeze":
            r = min(bad)
            nm, text = what(r, bad[r][0])
            i = r * tok.ns + bad[r][0]
            err = SchemaEvolutionError(f"{tok.path}, line {int(tok.row_line[r])}, byte "
                                       f"{base + int(tok.starts[i])}: {text} (contract freeze)")
            err.path, err.line, err.column = tok.path, int(tok.row_line[r]), nm
            err.offset = base + int(tok.starts[i])
            raise err
        rows = sorted(bad)
        for r in rows:
            raw = bytes(buf[tok.row_start[r]:tok.row_end[r]])
            for j in bad[r]:
                nm, text = what(r, j)
                tok.extra_rejects.append(dict(reason=f"{text} (contract {o.contract})", line=int(tok.row_line[r]),
                                              column=nm, offset=base + int(tok.starts[r * tok.ns + j]), raw=raw))
                if o.contract == "discard-value":
                    kinds2d[r, j] = kj.K_NULL
                if o.contract == "discard-row":
                    break
        if o.contract == "discard-row":
            keep = np.setdiff1d(np.arange(n), np.array(rows, dtype=np.int64))
            _compact(tok, keep)


    # -- parsing (worker threads) -------------------------------------------------------------------
    def parse(self, tok: _Spans, batch, rejects: RejectSink) -> ParseStats:
        from ._json_parse import parse_spans

        self._prepare(tok)
        return parse_spans(self, tok, batch, rejects)

    def release(self, chunk) -> None:
        b = chunk.block
        chunk.block = None
        chunk.schema = None
        if b is not None:
            b.drop()
        self._chunks.release(chunk)

    def close(self) -> None:
        cv = getattr(self, "_turn_cv", None)
        if cv is not None:
            self._end_turn(-1, SourceError("the JSON source was closed"))
        for p in (getattr(self, "_blocks", None), getattr(self, "_chunks", None)):
            if p is not None:
                p.close()


def _compact(tok: _Spans, keep: np.ndarray) -> None:
    """Keep only rows ``keep`` of ``tok`` (in place; rare path). Events of dropped rows get row -1."""
    n, ns = tok.n_rows, tok.ns
    ne = int(tok.evn[0])
    if ne:  # nested="keep": the events' rows (and a member's parent, its row) follow
        from ...kernels.json import EV_PARENT, EV_ROW, EV_SLOT

        rowmap = np.full(n, -1, dtype=np.int64)
        rowmap[keep] = np.arange(keep.shape[0])
        ev = tok.ev[:ne]
        ev[:, EV_ROW] = rowmap[ev[:, EV_ROW]]
        top = ev[:, EV_SLOT] < 0
        ev[top, EV_PARENT] = rowmap[ev[top, EV_PARENT]]
    m = keep.shape[0]
    for name in ("kinds", "starts", "ends"):
        a = getattr(tok, name)
        a[:m * ns] = a[:n * ns].reshape(n, ns)[keep].ravel()
    for name in ("row_start", "row_end", "row_line"):
        a = getattr(tok, name)
        a[:m] = a[:n][keep]
    tok.n_rows = m


__all__ = ["JsonSource", "JsonOptions", "type_of_kinds", "merge_type", "accepts"]
