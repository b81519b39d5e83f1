"""CSV source: blocks read into pooled buffers, tokenized by a kernel, parsed into batches by kernels.

The reader thread reads a block, tokenizes it (``kernels.csv.tokenize``: field spans only, fast)
and yields :class:`_Tokens` chunks that reference the block; worker threads turn a chunk's spans into
typed batch columns (``kernels.parse``) with the GIL released. A block returns to its pool when the
reader and every chunk cut from it are done with it, so memory is bounded by the pools.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, DataError, ParseError, SourceError, TypeCoercionError
from ...schema import Field, Schema
from ...types import BOOL, DATE, FLOAT64, INT64, STRING, TIMESTAMP, TIMESTAMPTZ, LogicalType
from ..base import Capabilities, ParseStats, RejectSink, Source
from ._io import chosen_dict_columns, input_size, open_input

_SAMPLE_MAX = 256 << 20  # how far type inference reads to find the first whole data row

PYARROW_NULLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                 "1.#QNAN", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null")


@dataclass
class CsvOptions:
    """Options of the CSV reader (names as on the CLI / in YAML ``source.options``).

    ``null_values``: markers read as null. By default pyarrow's list applies to typed columns, while
    string columns treat only the empty unquoted field as null (so a country code ``NA`` survives).
    Giving ``null_values`` applies that list to every column. A quoted field is never null unless
    ``quoted_null`` is set.
    """

    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    header: bool = True
    names: list[str] | None = None
    skip_rows: int = 0
    comment: str | None = None
    null_values: list[str] | None = None
    quoted_null: bool = False
    encoding: str = "utf-8"
    block_size: int = 4 << 20
    batch_rows: int = 65536
    sample_bytes: int = 4 << 20
    infer_schema: bool = True
    columns: dict[str, LogicalType] = field(default_factory=dict)
    schema: Schema | None = None
    on_error: str = "fail"
    threads: int = 2
    dictionary: str | list[str] = "auto"
    dictionary_max: int = 4096

    @classmethod
    def from_dict(cls, opts: dict) -> CsvOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"unknown CSV option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        o = cls(**opts)
        o.validate()
        return o

    def validate(self) -> None:
        for name in ("delimiter", "quote", "escape", "comment"):
            v = getattr(self, name)
            if v is None and name != "delimiter":
                continue
            if v is None or len(v.encode()) != 1:
                raise ConfigError(f"CSV option {name} must be a single ASCII character, got {v!r}")
            if v in ("\n", "\r"):
                raise ConfigError(f"CSV option {name} cannot be a line break")
        chars = [c for c in (self.delimiter, self.quote, self.escape, self.comment) if c is not None]
        if len(set(chars)) != len(chars):
            raise ConfigError("CSV delimiter, quote, escape and comment characters must differ")
        if self.encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig", "ascii"):
            raise ConfigError(f"encoding {self.encoding!r} is not supported; Nebula reads UTF-8 (and ASCII)")
        if self.on_error not in ("fail", "skip", "dead-letter"):
            raise ConfigError(f"on_error must be fail, skip or dead-letter, got {self.on_error!r}")
        if self.batch_rows < 1 or self.block_size < 1024 or self.skip_rows < 0:
            raise ConfigError("batch_rows must be >= 1, block_size >= 1024, skip_rows >= 0")


def _byte(c: str | None) -> int:
    return -1 if c is None else c.encode()[0]


def _marker_table(values) -> tuple[np.ndarray, np.ndarray]:
    enc = [v.encode() for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in enc]) if enc else []
    return np.frombuffer(b"".join(enc) or b"\0", dtype=np.uint8).copy(), offsets


class _Block:
    """A read buffer shared by the token chunks cut from it (reference counted)."""

    __slots__ = ("buf", "n", "base", "refs", "lock", "pool")

    def __init__(self, size: int, pool) -> None:
        self.buf = np.empty(size, dtype=np.uint8)
        self.n = 0
        self.base = 0
        self.refs = 0
        self.lock = threading.Lock()
        self.pool = pool

    def retain(self) -> None:
        with self.lock:
            self.refs += 1

    def drop(self) -> None:
        with self.lock:
            self.refs -= 1
            free = self.refs == 0
        if free:
            self.pool.release(self)


@dataclass
class _Rejected:
    """A record the tokenizer could not split (on_error skip/dead-letter): sent on as a reject."""

    reason: str
    line: int
    offset: int
    raw: bytes
    path: str
    column: str | int | None = None


class _Tokens:
    """Field spans of up to ``capacity`` rows, cut from one block."""

    __slots__ = ("starts", "ends", "flags", "row_first", "row_offset", "row_line", "n_rows", "block", "path")

    def __init__(self, rows: int, fields: int) -> None:
        self.starts = np.empty(fields, dtype=np.int64)
        self.ends = np.empty(fields, dtype=np.int64)
        self.flags = np.empty(fields, dtype=np.uint8)
        self.row_first = np.empty(rows + 1, dtype=np.int64)
        self.row_offset = np.empty(rows, dtype=np.int64)
        self.row_line = np.empty(rows, dtype=np.int64)
        self.n_rows = 0
        self.block: _Block | None = None
        self.path = ""

    def grow_fields(self) -> None:
        n = self.starts.shape[0] * 2
        self.starts = np.empty(n, dtype=np.int64)
        self.ends = np.empty(n, dtype=np.int64)
        self.flags = np.empty(n, dtype=np.uint8)


def fill_block(f, block: _Block, carry: np.ndarray, base: int) -> bool:
    """Put ``carry`` (an incomplete record) then fresh bytes from ``f`` into ``block``, growing its buffer
    when the carry would fill half of it; True at end of input. ``base`` is the input offset of ``carry``."""
    m = carry.shape[0]
    if m * 2 > block.buf.shape[0]:
        block.buf = np.empty(max(block.buf.shape[0] * 2, m * 2), dtype=np.uint8)
    block.buf[:m] = carry
    block.base = base
    view = memoryview(block.buf)[m:]
    got = 0
    eof = False
    try:
        while got < len(view):
            k = f.readinto(view[got:])
            if not k:
                eof = True
                break
            got += k
    except OSError as e:
        raise SourceError(f"{getattr(f, 'name', '?')}: read failed: {e}") from e
    except EOFError as e:
        raise ParseError(str(e), path=getattr(f, "name", None), offset=block.base + m + got) from None
    block.n = m + got
    return eof


def expand_paths(spec: str | os.PathLike | list) -> list[str]:
    """Local paths of a path, glob or list; errors name what is missing."""
    specs = list(spec) if isinstance(spec, list | tuple) else [spec]
    out: list[str] = []
    remote: list[str] = []
    for s in specs:
        s = os.fspath(s)
        if s[:5].lower() in ("s3://", "gs://") or s[:6].lower() == "gcs://":
            from .._fs import expand

            remote.extend(u for u, _ in expand(s))
            continue
        if s.startswith("file://"):
            s = s[7:]
        if any(ch in s for ch in "*?["):
            hits = sorted(p for p in glob.glob(s, recursive=True) if os.path.isfile(p))
            if not hits:
                raise SourceError(f"{s}: no file matches this pattern")
            out.extend(hits)
        else:
            out.append(s)
    for p in out:
        try:
            os.stat(p)
        except FileNotFoundError:
            raise SourceError(f"{p}: no such file") from None
        except PermissionError:
            raise SourceError(f"{p}: permission denied") from None
        except OSError as e:
            raise SourceError(f"{p}: {e.strerror or e}") from None
        if os.path.isdir(p):
            raise SourceError(f"{p}: is a directory, not a file (use a glob like {p.rstrip('/')}/*.csv)")
        if not os.access(p, os.R_OK):
            raise SourceError(f"{p}: permission denied")
    return out + remote


class CsvSource(Source):
    """CSV/TSV files (local, optionally .gz/.zst/.lz4), one schema for all files of a glob."""

    capabilities = Capabilities(formats=("csv", "tsv"), schemes=("file",),
                                notes="RFC 4180; type inference; dead-letter rows")

    def __init__(self, path, *, options: CsvOptions | dict | None = None, name: str | None = None) -> None:
        if isinstance(options, dict) or options is None:
            options = CsvOptions.from_dict(options or {})
        self.opts = options
        self.spec = path
        self.paths: list[str] = []
        self._schema: Schema | None = None
        self.name = name or _stem(path)
        self._bytes_total: int | None = None
        self._header_names: list[str] | None = None
        self.warnings: list[str] = []
        self.bytes_read = 0
        self._q = _byte(options.quote)
        self._esc = _byte(options.escape)
        self._com = _byte(options.comment)
        self._delim = _byte(options.delimiter)

    # -- discovery --------------------------------------------------------------------------------
    def open(self) -> None:
        self.paths = expand_paths(self.spec)
        try:
            self._bytes_total = sum(input_size(p) for p in self.paths)
        except OSError:
            self._bytes_total = None
        from ...kernels import csv as k

        o = self.opts
        size = o.sample_bytes
        while True:  # the sample must hold a whole data row (a first field of 10 MB may not fit in 4 MB)
            sample, eof = self._read_sample(self.paths[0], size)
            pos = self._skip_prefix(sample, self.paths[0])
            tok, n, pos, line, status = self._tokenize_sample(sample, pos, eof, self.paths[0])
            if eof or n > int(o.header) or status == k.ERROR or size >= _SAMPLE_MAX:
                break
            size = min(size * 4, _SAMPLE_MAX)
        names, first_data = self._names_from(sample, tok, n, self.paths[0])
        self._header_names = names
        ncol = len(names)
        if o.schema is not None:
            schema = o.schema
            if len(schema) != ncol:
                raise ConfigError(f"{self.paths[0]}: the schema has {len(schema)} columns, the file has {ncol}")
            if o.header and [f.name for f in schema] != names:
                self.warnings.append("schema column names differ from the header; the schema's names are used")
        elif o.infer_schema:
            schema = self._infer(sample, tok, first_data, n, names)
        else:
            schema = Schema(Field(nm, STRING) for nm in names)
        if o.columns:
            schema = schema.with_types(o.columns)
        self._schema = schema
        self._has_text = any(f.type.is_varlen for f in schema)
        self.dict_columns = self._choose_dict_columns(sample, tok, first_data, n, schema)
        self._nulls_typed = _marker_table(o.null_values if o.null_values is not None else PYARROW_NULLS)
        self._nulls_string = _marker_table(o.null_values if o.null_values is not None else ("",))
        ncap = max(1, o.batch_rows)
        nthreads = max(1, o.threads)
        self._blocks = _pool(lambda: _Block(o.block_size, None), nthreads + 3)
        for b in self._blocks._free:
            b.pool = self._blocks
        self._tokens = _pool(lambda: _Tokens(ncap, ncap * max(ncol, 1) + 16), nthreads + 3)

    @property
    def schema(self) -> Schema:
        if self._schema is None:
            raise RuntimeError("open() the source first")
        return self._schema

    @property
    def total_bytes(self) -> int | None:
        return self._bytes_total

    def _read_sample(self, path: str, size: int) -> tuple[np.ndarray, bool]:
        try:
            with open_input(path) as f:
                data = f.read(size + 1)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        except EOFError as e:
            raise ParseError(str(e), path=path) from None
        eof = len(data) <= size
        return np.frombuffer(data[:size], dtype=np.uint8), eof

    def _skip_prefix(self, buf: np.ndarray, path: str) -> int:
        from ...kernels.csv import find_line_starts

        pos = 3 if buf.shape[0] >= 3 and bytes(buf[:3]) == b"\xef\xbb\xbf" else 0
        if self.opts.skip_rows:
            p = find_line_starts(buf, pos, buf.shape[0], self.opts.skip_rows)
            pos = buf.shape[0] if p < 0 else p
        return pos

    def _tokenize_sample(self, buf, pos, eof, path):
        from ...kernels import csv as k

        rows = max(1024, min(self.opts.batch_rows, 1 << 16))
        tok = _Tokens(rows, rows * 8)
        while True:
            r = k.tokenize(buf, pos, buf.shape[0], eof, self._delim, self._q, self._esc, self._com,
                           tok.starts, tok.ends, tok.flags, tok.row_first, tok.row_offset, tok.row_line,
                           1 + self.opts.skip_rows)
            n, _, nxt, line, status = r[:5]
            if status == k.FULL and n == 0:
                tok.grow_fields()
                continue
            break
        if status == k.ERROR and n == 0 and self.opts.on_error == "fail":
            raise self._syntax_error(path, r, buf, 0)
        return tok, n, nxt, line, status

    def _names_from(self, buf, tok, n, path) -> tuple[list[str], int]:
        o = self.opts
        if o.names is not None:
            names = list(o.names)
            if o.header and n == 0:
                raise ParseError("the file is empty: no header row", path=path, line=1, column=1, offset=0)
            return _dedupe(names, self.warnings), (1 if o.header else 0)
        if n == 0:
            if o.header:
                raise ParseError("the file is empty: no header row", path=path, line=1, column=1, offset=0)
            raise ParseError("the file is empty: no row to take the column count from", path=path, line=1,
                             column=1, offset=0)
        f0, f1 = tok.row_first[0], tok.row_first[1]
        if not o.header:
            return [f"column_{i + 1}" for i in range(f1 - f0)], 0
        names = []
        for i in range(f0, f1):
            raw = bytes(buf[tok.starts[i]:tok.ends[i]])
            if tok.flags[i] & 2:
                q = (o.quote or '"').encode()
                raw = raw.replace(q + q, q)
                if o.escape:
                    raw = _unescape(raw, o.escape.encode())
            try:
                names.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ParseError(f"header column {i - f0 + 1} is not valid UTF-8", path=path, line=int(tok.row_line[0]),
                                 column=i - f0 + 1, offset=int(tok.starts[i]) + e.start) from None
        return _dedupe(names, self.warnings), 1

    def _infer(self, buf, tok, first, n, names) -> Schema:
        from ...kernels import parse as kp

        nd_t, no_t = _marker_table(self.opts.null_values if self.opts.null_values is not None else PYARROW_NULLS)
        ncol = len(names)
        rows = np.arange(first, n, dtype=np.int64)
        counts = tok.row_first[first + 1:n + 1] - tok.row_first[first:n]
        good = rows[counts == ncol]
        rf = tok.row_first[good] if good.shape[0] != n - first else tok.row_first[first:n]
        m = rf.shape[0]
        fields = []
        for j, nm in enumerate(names):
            mask, nonnull = kp.infer_column(buf, tok.starts, tok.ends, tok.flags, rf, j, m, nd_t, no_t,
                                            self.opts.quoted_null)
            fields.append(Field(nm, _type_from_mask(int(mask), int(nonnull))))
        return Schema(fields)

    def _choose_dict_columns(self, buf, tok, first, n, schema) -> frozenset[str]:
        """Text columns to dictionary-encode: named ones, or (auto) those repetitive in the sample."""
        o = self.opts
        named = chosen_dict_columns(o.dictionary, schema)
        if named is not None:
            return named
        text = [f.name for f in schema if f.type.kind == "string"]
        from ...kernels import dictionary as kd

        ncol = len(schema)
        counts = tok.row_first[first + 1:n + 1] - tok.row_first[first:n]
        rows = tok.row_first[first:n][counts == ncol]
        m = rows.shape[0]
        if m < 64:
            return frozenset()
        limit = min(o.dictionary_max, m // 8)
        size = 1 << max(4, int(2 * limit - 1).bit_length())
        table = np.empty(size, dtype=np.int32)
        doff = np.empty(limit + 1, dtype=np.int32)
        ddata = np.empty(max(1 << 16, limit * 64), dtype=np.uint8)
        codes = np.empty(m, dtype=np.int32)
        valid = np.zeros(m // 8 + 9, dtype=np.uint8)
        err = np.zeros(m, dtype=np.uint8)
        nd, no = _marker_table(o.null_values if o.null_values is not None else ("",))
        chosen = []
        for name in text:
            j = schema.index(name)
            valid[:] = 0
            err[:] = 0
            r = kd.dict_encode_column(buf, tok.starts, tok.ends, tok.flags, rows, j, m, nd, no, o.quoted_null,
                                      self._q, self._esc, table, doff, ddata, limit, codes, valid, err, False, True)
            if r[4] == kd.OK and r[1] == 0:
                chosen.append(name)
        return frozenset(chosen)

    # -- reading ----------------------------------------------------------------------------------
    def read(self) -> Iterator[_Tokens]:
        for path in self.paths:
            yield from self._read_file(path)

    def _read_file(self, path: str) -> Iterator[_Tokens]:
        from ...kernels import csv as k

        o = self.opts
        try:
            f = open_input(path)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror or e}") from e
        with f:
            block = self._blocks.acquire()
            block.retain()
            carry = np.empty(0, dtype=np.uint8)
            base = 0
            eof = self._fill(f, block, carry, base)
            pos = self._skip_prefix(block.buf[:block.n], path)
            self.bytes_read += pos  # the BOM and skipped rows were read too
            line = 1 + o.skip_rows
            header_pending = o.header
            try:
                while True:
                    tok = self._tokens.acquire()
                    while True:
                        r = k.tokenize(block.buf, pos, block.n, eof, self._delim, self._q, self._esc, self._com,
                                       tok.starts, tok.ends, tok.flags, tok.row_first, tok.row_offset,
                                       tok.row_line, line)
                        n, _, nxt, nline, status = (int(x) for x in r[:5])
                        if status == k.FULL and n == 0:
                            tok.grow_fields()
                            continue
                        break
                    if header_pending and n > 0:
                        self._check_header(block, tok, path)
                        header_pending = False
                        n_skip = 1
                    else:
                        n_skip = 0
                    if n - n_skip > 0:
                        if n_skip:
                            tok.row_first[:n] = tok.row_first[1:n + 1]
                            tok.row_offset[:n - 1] = tok.row_offset[1:n]
                            tok.row_line[:n - 1] = tok.row_line[1:n]
                        tok.n_rows = n - n_skip
                        tok.block = block
                        tok.path = path
                        block.retain()
                        self.bytes_read += nxt - pos
                        yield tok
                    else:
                        self._tokens.release(tok)
                        self.bytes_read += nxt - pos  # a header, blank or comment lines
                    pos, line = nxt, nline
                    if status == k.ERROR:
                        pos, line = self._on_syntax_error(path, r, block, eof)
                        yield self._rejected
                        continue
                    if status == k.FULL:
                        continue
                    if eof and pos >= block.n:
                        break
                    # NEED_MORE or DONE with more input: carry the tail into a fresh block
                    carry = block.buf[pos:block.n].copy()
                    base = block.base + pos
                    block.drop()
                    block = self._blocks.acquire()
                    block.retain()
                    eof = self._fill(f, block, carry, base)
                    pos = 0
            finally:
                block.drop()

    def _fill(self, f, block: _Block, carry: np.ndarray, base: int) -> bool:
        return fill_block(f, block, carry, base)

    def _check_header(self, block, tok, path) -> None:
        if path == self.paths[0]:
            return
        names, _ = self._names_from(block.buf, tok, 1, path)
        if names != self._header_names:
            raise ParseError(f"header differs from {self.paths[0]}'s: {names} vs {self._header_names}",
                             path=path, line=int(tok.row_line[0]), offset=block.base + int(tok.row_offset[0]))

    def _syntax_error(self, path, r, buf_or_block, base) -> ParseError:
        from ...kernels import csv as k

        code, pos, line = int(r[5]), int(r[6]), int(r[7])
        reason = {k.E_UNTERMINATED_QUOTE: "unterminated quoted field (no closing quote before end of input)",
                  k.E_AFTER_QUOTE: "unexpected character after a closing quote"}.get(code, "CSV syntax error")
        buf = buf_or_block.buf if isinstance(buf_or_block, _Block) else buf_or_block
        return ParseError(reason, path=path, line=line, column=self._column_at(buf, int(r[2]), pos),
                          offset=base + pos)

    def _column_at(self, buf: np.ndarray, rec_start: int, pos: int) -> str | int:
        """The column of the field holding ``buf[pos]`` in the record starting at ``rec_start`` (error path only).

        The record's bytes before ``pos`` tokenize cleanly; their field count (a prefix ending in a delimiter
        counts the empty field after it) is the 1-based column. Named from the schema when known.
        """
        from ...kernels import csv as k

        seg = np.ascontiguousarray(buf[rec_start:pos])
        cap = int(np.count_nonzero(seg == self._delim)) + 2
        r = k.tokenize(seg, 0, seg.shape[0], True, self._delim, self._q, self._esc, -1,
                       np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.uint8),
                       np.zeros(3, np.int64), np.empty(2, np.int64), np.empty(2, np.int64), 1)
        col = max(int(r[1]), 1)
        names = self._schema.names if self._schema is not None else None
        return names[col - 1] if names is not None and col <= len(names) else col

    def _on_syntax_error(self, path, r, block: _Block, eof: bool) -> tuple[int, int]:
        """Raise, or reject the broken record and return where to resume."""
        err = self._syntax_error(path, r, block, block.base)
        if self.opts.on_error == "fail":
            raise err
        rec_start = int(r[2])
        from ...kernels import csv as k

        if int(r[5]) == k.E_UNTERMINATED_QUOTE:
            stop = block.n
        else:
            stop = int(k.find_line_starts(block.buf, int(r[6]), block.n, 1))
            if stop < 0:
                stop = block.n
        raw = block.buf[rec_start:stop]
        self._rejected = _Rejected(reason=err.reason, line=int(r[3]), offset=block.base + rec_start,
                                   raw=bytes(raw), path=path, column=err.column)
        self.bytes_read += stop - rec_start
        lines = int(np.count_nonzero(raw == 10)) or 1
        return stop, int(r[3]) + lines

    def release(self, chunk) -> None:
        if isinstance(chunk, _Rejected):
            return
        b = chunk.block
        chunk.block = None
        if b is not None:
            b.drop()
        self._tokens.release(chunk)

    def close(self) -> None:
        for p in (getattr(self, "_blocks", None), getattr(self, "_tokens", None)):
            if p is not None:
                p.close()

    # -- parsing (worker threads) ---------------------------------------------------------------------
    def parse(self, tok: _Tokens, batch, rejects: RejectSink) -> ParseStats:
        from ._csv_parse import parse_tokens

        if isinstance(tok, _Rejected):
            rejects.reject(reason=tok.reason, line=tok.line, column=tok.column, offset=tok.offset, raw=tok.raw,
                           path=tok.path)
            batch.length = 0
            return ParseStats(rows=0, rejected=1, bytes=len(tok.raw))
        return parse_tokens(self, tok, batch, rejects)


def _pool(factory, size):
    from ...pool import Pool

    return Pool(factory, size)


def _stem(path) -> str:
    p = path[0] if isinstance(path, list | tuple) else path
    base = os.path.basename(os.fspath(p))
    for ext in (".gz", ".zst", ".zstd", ".lz4", ".bz2"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return stem.replace("*", "").replace("?", "") or "data"


def _dedupe(names: list[str], warnings: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i, nm in enumerate(names):
        base = nm.strip() or f"column_{i + 1}"
        if base != nm:
            warnings.append(f"column {i + 1} has an empty name; named it {base!r}")
        cand, k = base, 2
        while cand in seen:
            cand = f"{base}_{k}"
            k += 1
        if cand != base:
            warnings.append(f"duplicate column name {base!r} at position {i + 1}; renamed to {cand!r}")
        seen.add(cand)
        out.append(cand)
    return out


def _unescape(raw: bytes, esc: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i:i + 1] == esc and i + 1 < len(raw):
            out += raw[i + 1:i + 2]
            i += 2
        else:
            out += raw[i:i + 1]
            i += 1
    return bytes(out)


def _type_from_mask(mask: int, nonnull: int) -> LogicalType:
    from ...kernels import parse as kp

    if nonnull == 0:
        return STRING
    if mask & kp.T_INT:
        return INT64
    if mask & kp.T_BOOL:
        return BOOL
    if mask & kp.T_FLOAT:
        return FLOAT64
    if mask & kp.T_DATE:
        return DATE
    if mask & kp.T_TS:
        return TIMESTAMP
    if mask & kp.T_TSTZ:
        return TIMESTAMPTZ
    return STRING


__all__ = ["CsvSource", "CsvOptions", "DataError", "TypeCoercionError", "expand_paths"]
