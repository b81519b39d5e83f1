"""File destinations: CSV, JSON lines and Parquet on the local filesystem.

Every destination writes to a dot-temp file beside the target and renames it onto the target at
:meth:`commit` (see ``_atomic``), so readers see the old file or the new one, never a partial one.

Text encoding (CSV, JSON lines) runs in the kernels of ``nebula.kernels.encode``, on row chunks of
``CHUNK_ROWS`` so the scratch buffers stay small and cache-resident. What the text looks like:

- null: empty field in CSV (an empty string is ``""``), ``null`` in JSON.
- bool ``true``/``false``; date ``YYYY-MM-DD``; timestamp ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with a
  ``Z`` when the column has a time zone (values are UTC); dates and timestamps are JSON strings.
- float: shortest round-trip text (integral values keep a ``.0``); CSV writes ``nan``/``inf``/
  ``-inf``, JSON has no such numbers and writes ``null``.
- decimal: exact text (``-12.50``); a JSON *string*, so consumers do not round it through a double.
- json-typed columns: their text as is in JSON lines (it already is JSON), a string field in CSV.
- binary: ``\\x`` + lower-case hex in CSV (PostgreSQL's bytea text form; ``\\x`` alone is an empty value),
  a base64 string (RFC 4648, padded) in JSON lines; Parquet stores the bytes (BYTE_ARRAY, no UTF8
  annotation). See :mod:`nebula.kernels.binary`.
- struct/list columns (JSON ``nested="keep"``): written as json columns, their JSON text
  (:mod:`nebula.nested`); Parquet keeps them nested.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import numpy as np

from ...errors import ConfigError, DestinationError, SchemaEvolutionError
from ..base import Capabilities, Destination
from ._atomic import (
    COMPRESSIONS,
    AtomicFile,
    atomic_file,
    check_target,
    compression_from_path,
    destination_error,
    is_remote,
    strip_compression_suffix,
    target_path,
)

CHUNK_ROWS = 65536  # a multiple of 8 so chunks start on validity-bitmap byte boundaries
_NULL_JSON = np.frombuffer(b"null", dtype=np.uint8)
_EMPTY = np.zeros(0, dtype=np.uint8)
_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_INT_WIDTH = {"int8": 4, "int16": 6, "int32": 11, "int64": 20}


def _tok(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8)


def _string_buffers(arr):
    """(offsets int32, data uint8, validity uint8, has_nulls) of a pyarrow string array."""
    import pyarrow as pa

    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    if arr.offset:
        arr = pa.concat_arrays([arr])
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(arr) + 1)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else _EMPTY
    has_nulls = arr.null_count > 0
    validity = np.frombuffer(bufs[0], dtype=np.uint8) if has_nulls else _EMPTY
    return offsets, data, validity, has_nulls


class _Scratch:
    """A growable uint8 buffer plus int64 offsets for one column's rendered fields."""

    __slots__ = ("out", "offs")

    def __init__(self) -> None:
        self.out = np.empty(0, dtype=np.uint8)
        self.offs = np.empty(0, dtype=np.int64)

    def reserve(self, nbytes: int, nvalues: int) -> None:
        if self.out.shape[0] < nbytes:
            self.out = np.empty(max(nbytes, self.out.shape[0] * 3 // 2), dtype=np.uint8)
        if self.offs.shape[0] < nvalues + 2:
            self.offs = np.empty(nvalues + 2, dtype=np.int64)


class TextEncoder:
    """Renders batches of one schema as CSV (``fmt='csv'``) or JSON lines (``fmt='jsonl'``).

    :meth:`encode` yields uint8 arrays (views of reused buffers: consume each before the next).
    """

    def __init__(self, schema, fmt: str, *, delimiter: str = ",") -> None:
        from ... import kernels  # noqa: F401  (numba import is deferred to first use)

        if fmt not in ("csv", "jsonl"):
            raise ConfigError(f"unknown text format {fmt!r}")
        if len(delimiter.encode()) != 1 or delimiter in '"\r\n':
            raise ConfigError(f"delimiter must be one byte other than a quote or line end, got {delimiter!r}")
        from ...nested import json_schema

        schema = json_schema(schema)  # struct/list columns are written as their JSON text
        self.schema = schema
        self.fmt = fmt
        self.delim = delimiter.encode()[0]
        # a lone empty field would be a blank line, which readers skip: one-column CSV writes "" for null
        self.null_tok = (_tok(b'""') if len(schema) == 1 else _EMPTY) if fmt == "csv" else _NULL_JSON
        if fmt == "csv":
            self.prefixes = [_EMPTY] + [_tok(delimiter.encode())] * (len(schema) - 1)
            self.suffix = _tok(b"\n")
        else:
            keys = [json.dumps(f.name, ensure_ascii=False).encode() + b":" for f in schema]
            self.prefixes = [_tok((b"{" if i == 0 else b",") + k) for i, k in enumerate(keys)]
            self.suffix = _tok(b"}\n" if keys else b"{}\n")
        self._fixed = sum(p.shape[0] for p in self.prefixes) + self.suffix.shape[0]
        self._scratch = [_Scratch() for _ in schema]
        self._out = np.empty(0, dtype=np.uint8)
        self._lens = np.empty(0, dtype=np.int64)

    def header(self) -> bytes:
        """The CSV header row (names quoted when needed); empty for JSON lines."""
        if self.fmt != "csv":
            return b""
        d = chr(self.delim)
        names = ['"' + n.replace('"', '""') + '"' if (not n or any(c in n for c in d + '"\r\n')) else n
                 for n in self.schema.names]
        return (d.join(names) + "\n").encode()

    def encode(self, batch) -> Iterator[np.ndarray]:
        from ...kernels import encode as k
        from ...nested import json_batch

        batch = json_batch(batch)
        n = batch.length
        for a in range(0, n, CHUNK_ROWS):
            b = min(n, a + CHUNK_ROWS)
            m = b - a
            spans = [self._render(i, col, a, b) for i, col in enumerate(batch.columns)]
            if self._lens.shape[0] < m:
                self._lens = np.empty(m, dtype=np.int64)
            lens = self._lens[:m]
            lens[:] = self._fixed
            for s in spans:
                if len(s) == 2:
                    k.add_span_lengths(s[1], m, lens)
                else:
                    k.add_span_lengths_take(s[1], s[2], m, s[3], s[4], s[5], lens)
            total = int(lens.sum())
            cursor = np.empty(m, dtype=np.int64)
            cursor[0] = 0
            np.cumsum(lens[:-1], out=cursor[1:])
            if self._out.shape[0] < total:
                self._out = np.empty(max(total, self._out.shape[0] * 3 // 2), dtype=np.uint8)
            out = self._out
            for s, prefix in zip(spans, self.prefixes, strict=True):
                if len(s) == 2:
                    k.scatter_spans(s[0], s[1], m, prefix, out, cursor)
                else:
                    k.scatter_spans_take(s[0], s[1], s[2], m, s[3], s[4], s[5], prefix, out, cursor)
            k.finish_rows(m, self.suffix, out, cursor)
            yield out[:total]

    def encode_bytes(self, batch) -> bytes:
        return b"".join(bytes(c) for c in self.encode(batch))

    # -- one column, rows a:b ---------------------------------------------------------------------
    def _render(self, i, col, a, b):
        """(buf, offs) of the rendered fields, or (buf, offs, codes, validity, has_nulls, null_entry)."""
        from ...kernels import encode as k

        t = col.field.type
        kind = t.kind
        m = b - a
        has_nulls = col.null_count > 0
        valid = col.validity[a >> 3:] if has_nulls else _EMPTY
        s = self._scratch[i]
        json_out = self.fmt == "jsonl"
        quote = 34 if json_out else k.NO_QUOTE
        null_tok = self.null_tok
        if kind == "binary":
            return self._render_binary(s, col.offsets[a:b + 1], col.data, m, valid, has_nulls)
        if t.is_varlen and col.dictionary is not None:
            doffs, ddata, dvalid, dnulls = _string_buffers(col.dictionary)
            nd = len(col.dictionary)
            rendered = self._render_text(s, kind, doffs, ddata, nd, dvalid, dnulls)
            buf, offs = rendered
            end = int(offs[nd])
            if buf is not s.out:  # the raw dictionary bytes came back: copy them to append the null entry
                s.reserve(end + 8, nd)
                s.out[:end] = buf[:end]
                s.offs[:nd + 1] = offs[:nd + 1]
                buf, offs = s.out, s.offs
            buf[end:end + null_tok.shape[0]] = null_tok  # every render reserves 8 spare bytes
            offs[nd + 1] = end + null_tok.shape[0]
            return buf, offs, col.values[a:b], valid, has_nulls, nd
        if t.is_varlen:
            return self._render_text(s, kind, col.offsets[a:b + 1], col.data, m, valid, has_nulls)
        if kind == "float32" or kind == "float64":
            import pyarrow as pa

            text = pa.array(col.values[a:b]).cast(pa.string())
            toffs, tdata, _, _ = _string_buffers(text)
            s.reserve(int(toffs[m]) + m * (2 + null_tok.shape[0]) + 64, m)
            w = k.render_float_text(toffs, tdata, m, valid, has_nulls, null_tok, json_out, s.out, s.offs)
            assert w >= 0
            return s.out, s.offs
        if kind == "decimal":
            words = col.values[a:b]
            if k.decimals_fit_int64(words, m, valid, has_nulls):
                width = 24 + t.scale + null_tok.shape[0]
                return self._fixed_width(s, m, width, k.render_decimals, words, m, t.scale, valid,
                                         has_nulls, null_tok, quote)
            # 128-bit values: pyarrow renders the exact text, the kernel only copies it
            import pyarrow as pa

            text = col.to_arrow(b).slice(a, m).cast(pa.string())
            toffs, tdata, _, _ = _string_buffers(text)
            s.reserve(int(toffs[m]) + m * (2 + null_tok.shape[0]) + 64, m)
            w = k.render_raw_text(toffs, tdata, m, valid, has_nulls, null_tok, quote, s.out, s.offs)
            assert w >= 0
            return s.out, s.offs
        if kind == "bool":
            s.reserve(m * 5 + 8, m)
            w = k.render_bools(col.values[a >> 3:], m, valid, has_nulls, null_tok, _TRUE, _FALSE, s.out, s.offs)
            assert w >= 0
            return s.out, s.offs
        values = col.values[a:b]
        if kind == "date":
            return self._fixed_width(s, m, 12 + 2, k.render_dates, values, m, valid, has_nulls, null_tok, quote)
        if kind == "timestamp":
            return self._fixed_width(s, m, 27 + 3, k.render_timestamps, values, m, valid, has_nulls, null_tok,
                                     quote, t.tz is not None)
        return self._fixed_width(s, m, _INT_WIDTH[kind] + 4, k.render_ints, values, m, valid, has_nulls,
                                 null_tok)

    def _fixed_width(self, s, m, width, kernel, *args):
        from ...kernels.encode import MAX_FIXED_WIDTH

        slack = MAX_FIXED_WIDTH + 64
        s.reserve(m * width + slack, m)
        if kernel(*args, s.out, s.offs) < 0:  # wider than usual (far-off years): size for the worst
            s.reserve(m * (MAX_FIXED_WIDTH + 8 + width) + slack, m)
            if kernel(*args, s.out, s.offs) < 0:
                raise AssertionError("encode kernel overflow")
        return s.out, s.offs

    def _render_binary(self, s, offsets, data, m, valid, has_nulls):
        from ...kernels import binary as kb

        nbytes, null_len = int(offsets[m] - offsets[0]), self.null_tok.shape[0]
        if self.fmt == "csv":
            s.reserve(kb.hex_text_bound(nbytes, m, null_len), m)
            w = kb.render_hex(offsets, data, m, valid, has_nulls, self.null_tok, s.out, s.offs)
        else:
            s.reserve(kb.base64_text_bound(nbytes, m, null_len), m)
            w = kb.render_base64(offsets, data, m, valid, has_nulls, self.null_tok, 34, s.out, s.offs)
        if w < 0:
            raise AssertionError("encode kernel overflow")
        return s.out, s.offs

    def _render_text(self, s, kind, offsets, data, m, valid, has_nulls):
        from ...kernels import encode as k

        if self.fmt == "csv":
            size, same = k.csv_string_size(offsets, data, m, valid, has_nulls, self.delim, self.null_tok.shape[0])
            if same:
                return data, offsets
            s.reserve(size + 8, m)
            w = k.render_csv_strings(offsets, data, m, valid, has_nulls, self.delim, self.null_tok, s.out,
                                     s.offs)
        elif kind == "json":
            s.reserve(int(offsets[m] - offsets[0]) + m * 6 + 8, m)
            w = k.render_raw_text(offsets, data, m, valid, has_nulls, self.null_tok, k.NO_QUOTE, s.out, s.offs)
        else:
            s.reserve(k.json_string_size(offsets, data, m, valid, has_nulls, 4) + 8, m)
            w = k.render_json_strings(offsets, data, m, valid, has_nulls, self.null_tok, s.out, s.offs)
        if w < 0:
            raise AssertionError("encode kernel overflow")
        return s.out, s.offs


# -- destinations -------------------------------------------------------------------------------
def _options(options: dict | None, allowed: tuple[str, ...], where: str) -> dict:
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(allowed)}")
    return opts


def _check_mode(mode: str, modes: tuple[str, ...], path: str) -> None:
    if mode not in modes:
        raise ConfigError(f"{path}: mode {mode!r} is not supported here; use one of {', '.join(modes)}")


class _TextFileDestination(Destination):
    """CSV / JSON lines into one file; ``replace`` (default) or ``append``.

    ``append`` copies the existing file into the temp file and adds rows after it (a compressed
    file gets a new gzip member / zstd or lz4 frame), so a failed run still leaves the old file.
    """

    fmt = ""
    _allowed: tuple[str, ...] = ("compression", "compression_level", "direct")

    def __init__(self, url_or_path: str, *, options: dict | None = None) -> None:
        self.path = target_path(url_or_path)
        self.options = _options(options, self._allowed, self.path)
        comp = self.options.get("compression")
        self.compression = compression_from_path(self.path) if comp is None else (None if comp == "none" else comp)
        if self.compression is not None and self.compression not in COMPRESSIONS:
            raise ConfigError(f"{self.path}: unknown compression {self.compression!r}; "
                              f"expected one of {', '.join(COMPRESSIONS)}, none")
        self.level = self.options.get("compression_level")
        self._file: AtomicFile | None = None
        self._encoder: TextEncoder | None = None

    def _make_encoder(self, schema) -> TextEncoder:
        return TextEncoder(schema, self.fmt)

    def open(self, schema, *, mode: str = "replace", table: str | None = None, key: list[str] | None = None) -> None:
        _check_mode(mode, self.capabilities.modes, self.path)
        self._encoder = self._make_encoder(schema)
        append = mode == "append" and _nonempty(self.path)
        if append:
            self._check_append(schema)
        self._file = atomic_file(self.path, compression=self.compression, level=self.level, keep_existing=append,
                                 direct=bool(self.options.get("direct")))
        if not append:
            self._file.write(self._encoder.header())

    def _check_append(self, schema) -> None:
        """Hook: refuse appending rows that do not fit the existing file."""

    def evolve(self, schema) -> None:
        """JSON lines: later rows are written with the new schema's keys (earlier rows lack the new
        ones, which readers take as null). CSV overrides this: its header is already written."""
        self._encoder = self._make_encoder(schema)

    def write(self, batch) -> int:
        if self._file is None:
            raise DestinationError(f"{self.path}: write() before open()")
        total = 0
        for chunk in self._encoder.encode(batch):
            total += self._file.write(chunk)
        return total

    def commit(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            f.commit()
            size = _stored_size(self.path, f)
            self.bytes_committed = None if size is None else size - getattr(f, "initial_size", 0)

    def abort(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            f.discard()

    def close(self) -> None:
        self.abort()

    def location(self) -> str:
        return self.path

    def check(self) -> None:
        """``nebula check``: the directory or bucket can be written (a probe object on object stores)."""
        check_target(self.path)


class CsvDestination(_TextFileDestination):
    """RFC 4180 CSV with a header row and ``\\n`` line ends.

    Options: ``delimiter`` (default ``,``; ``\\t`` for ``.tsv``), ``header`` (default True),
    ``compression`` (``gzip``/``zstd``/``lz4``/``none``; default from the extension
    ``.gz``/``.zst``/``.lz4``), ``compression_level``.
    """

    fmt = "csv"
    _allowed = ("compression", "compression_level", "delimiter", "header", "direct")
    capabilities = Capabilities(modes=("replace", "append"), formats=("csv", "tsv"), schemes=("file", "s3", "gs"),
                                notes="atomic rename on commit; .gz/.zst/.lz4 streamed")

    def _make_encoder(self, schema) -> TextEncoder:
        default = "\t" if strip_compression_suffix(self.path).lower().endswith(".tsv") else ","
        enc = TextEncoder(schema, "csv", delimiter=self.options.get("delimiter", default))
        if not self.options.get("header", True):
            enc.header = lambda: b""
        return enc

    def evolve(self, schema) -> None:
        if schema.names == self._encoder.schema.names:  # only types changed (e.g. a struct got a field): text
            self._encoder = self._make_encoder(schema)
            return
        raise SchemaEvolutionError(f"{self.path}: a CSV file cannot change its columns mid-file (the header is "
                                   f"written); the source's schema changed to: {schema}. Write Parquet, JSON "
                                   "lines or a table instead, or give the full schema (--schema)")

    def _check_append(self, schema) -> None:
        if not self.options.get("header", True):
            return
        want = self._encoder.header()
        try:
            with _open_text_reader(self.path, self.compression) as f:
                got = f.readline(len(want) + 1)
        except OSError as e:
            raise destination_error(self.path, e, "cannot read the existing file to append") from e
        if got != want:
            raise SchemaEvolutionError(f"{self.path}: cannot append: the existing header "
                                       f"{got.decode(errors='replace').rstrip()!r} differs from "
                                       f"{want.decode().rstrip()!r}")


class JsonlDestination(_TextFileDestination):
    """JSON lines (one object per row, keys in schema order).

    Options: ``compression`` (as for CSV), ``compression_level``.
    """

    fmt = "jsonl"
    capabilities = Capabilities(modes=("replace", "append"), formats=("jsonl", "ndjson"), schemes=("file", "s3", "gs"),
                                notes="atomic rename on commit; .gz/.zst/.lz4 streamed; decimals as strings")


def _open_text_reader(path: str, compression: str | None):
    if is_remote(path):
        import io

        from ..sources._io import open_input

        return io.BufferedReader(open_input(path))
    if compression == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)  # noqa: SIM115
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115


_PARQUET_CODECS = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")


MAX_HELD_BATCHES = 48
DEFAULT_ROW_GROUP_ROWS = 131_072


class ParquetDestination(Destination):
    """One Parquet file, written with pyarrow's ParquetWriter; mode ``replace`` only.

    Batches are held (the runner's own, or copies of small ones) until ``row_group_rows`` rows or
    ``row_group_bytes`` bytes are pending, then encoded as one row group on an encoder thread.
    Appending to a Parquet file would mean rewriting it, so ``append`` is a ConfigError.

    Options: ``compression`` (``zstd`` default, ``snappy``, ``gzip``, ``lz4``, ``brotli``,
    ``none``), ``compression_level``, ``row_group_rows`` (default 131,072, like DuckDB's 122,880: groups are
    encoded in parallel, ``encoders`` at a time, and the runner's batches are held until encoded, so
    this sets most of the memory a run holds; 500,000 measured no faster and held ~150 MB more),
    ``row_group_bytes`` (default 128 MiB), ``integer_encoding`` (``delta``, the default: integer and
    date columns that do not get a dictionary page are written DELTA_BINARY_PACKED, a standard Parquet
    encoding (pyarrow and DuckDB read it back in the tests; polars and Spark since 3.3 read it too): a sequential id
    column is ~150x smaller and such columns encode 2-3x faster than plain + zstd; ``plain`` for
    older readers; applies when ``use_dictionary`` is not given).
    """

    capabilities = Capabilities(modes=("replace",), formats=("parquet",), schemes=("file", "s3", "gs"),
                                notes="atomic rename on commit; large row groups; dictionary columns kept")

    def __init__(self, url_or_path: str, *, options: dict | None = None) -> None:
        self.path = target_path(url_or_path)
        self.options = _options(options, ("compression", "compression_level", "row_group_rows",
                                          "row_group_bytes", "use_dictionary", "direct", "encoders",
                                          "integer_encoding"), self.path)
        self.compression = str(self.options.get("compression", "zstd")).lower()
        if self.compression not in _PARQUET_CODECS:
            raise ConfigError(f"{self.path}: unknown Parquet compression {self.compression!r}; "
                              f"expected one of {', '.join(_PARQUET_CODECS)}")
        self.level = self.options.get("compression_level")
        self.integer_encoding = str(self.options.get("integer_encoding", "delta")).lower()
        if self.integer_encoding not in ("delta", "plain"):
            raise ConfigError(f"{self.path}: integer_encoding must be 'delta' or 'plain', "
                              f"not {self.integer_encoding!r}")
        self.row_group_rows = int(self.options.get("row_group_rows", DEFAULT_ROW_GROUP_ROWS))
        self.row_group_bytes = int(self.options.get("row_group_bytes", 128 << 20))
        if self.row_group_rows <= 0 or self.row_group_bytes <= 0:
            raise ConfigError(f"{self.path}: row_group_rows and row_group_bytes must be positive")
        self._file: AtomicFile | None = None
        self._writer = None
        self._schema = None
        self._pending: list = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._has_dictionary = False
        self._auto_dictionary: list | None = None
        self._release = None  # set by the runner: pooled batches are then kept (not copied) until encoded
        self._give_back = None
        self._held: list = []  # per entry of self._pending: its batch when kept, else None
        self._budget = 0  # at most this many batches kept at a time (holds_batches)
        self._holding = 0
        self.encoders = int(self.options.get("encoders") or min(os.cpu_count() or 1, 4))

    def open(self, schema, *, mode: str = "replace", table: str | None = None, key: list[str] | None = None) -> None:
        _check_mode(mode, self.capabilities.modes, self.path)
        self._schema = schema
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._file = atomic_file(self.path, open_stream=False, direct=bool(self.options.get("direct")))

    def evolve(self, schema) -> None:
        """Continue with ``schema``. A Parquet file has one schema, so rows already encoded into row
        groups are rewritten (one row group at a time, cast to the new types, new columns null) into
        a fresh temporary file that the rest of the run continues; rows still pending are cast."""
        from .memory import conform_to

        target = schema.to_arrow()
        self._pending = [conform_to(rb, target) for rb in self._pending]
        self._schema = schema
        if self._writer is None:
            return
        import pyarrow.parquet as pq

        old_writer, self._writer = self._writer, None
        try:
            old_writer.close()
        except OSError as e:
            raise destination_error(self.path, e) from e
        if is_remote(self.path):
            self._evolve_remote(target)
            return
        old_path = self._file.temp_path
        new_path = old_path + ".evolve"
        self._open_writer(target, new_path)
        try:
            pf = pq.ParquetFile(old_path)
            for i in range(pf.num_row_groups):
                t = pf.read_row_group(i)
                rbs = [conform_to(rb, target) for rb in t.to_batches()]
                self._writer.write_table(pa_table(rbs, target), row_group_size=max(self.row_group_rows, t.num_rows))
            pf.close()
            os.replace(new_path, old_path)  # the open writer follows its file
        except OSError as e:
            raise destination_error(self.path, e) from e

    def _evolve_remote(self, target) -> None:
        """Object stores: complete the upload so far, stream its row groups into a fresh temporary
        object under the new schema, and drop the old one."""
        import pyarrow.parquet as pq

        from .._fs import RemoteAtomicFile, remote_error

        old = self._file
        old.finish()
        self._file = RemoteAtomicFile(self.path)
        self._open_writer(target)
        try:
            with old.fs.open_input_file(old.temp_key) as src:
                pf = pq.ParquetFile(src)
                for i in range(pf.num_row_groups):
                    t = pf.read_row_group(i)
                    rbs = [conform_to_target(rb, target) for rb in t.to_batches()]
                    self._writer.write_table(pa_table(rbs, target), row_group_size=max(self.row_group_rows, t.num_rows))
        except OSError as e:
            raise remote_error(self.path, e, source=False, what="cannot rewrite for the new schema") from e
        finally:
            old.discard()

    def holds_batches(self, batch_rows: int) -> int:
        """The runner's batches are encoded in place instead of copied (~75 bytes a row of
        ``orders``): a row group's worth pending plus one per encoder in flight, at most
        ``MAX_HELD_BATCHES`` (with small batches the rest are copied: a pool stays a few dozen)."""
        per_group = -(-self.row_group_rows // max(1, int(batch_rows))) + 1
        self._budget = min(MAX_HELD_BATCHES, per_group * (self.encoders + 1))
        return self._budget

    def bind_release(self, release) -> None:
        lock = threading.Lock()

        def back(batch) -> None:
            with lock:
                self._holding -= 1
            release(batch)

        self._release = release
        self._give_back = back
        self._holding_lock = lock

    def write(self, batch) -> int:
        if self._file is None:
            raise DestinationError(f"{self.path}: write() before open()")
        n = batch.length
        lent = self._release is not None
        keep = False
        if lent and n:  # partly filled batches (small chunks) could exceed the budget: then copy
            with self._holding_lock:
                keep = self._holding < self._budget
                self._holding += keep
        if keep:  # ours until its row group is encoded; then back to the runner's pool
            rb = batch.to_arrow()
            self._held.append(batch)
            self._pending_bytes += batch.nbytes
        elif n:
            rb = batch.to_arrow(copy=True)  # the batch's buffers are reused after this call
            self._pending_bytes += rb.nbytes
            self._held.append(None)
        if lent and not keep:
            self._release(batch)
        if n == 0:
            return 0
        self._pending.append(rb)
        self._pending_rows += n
        if self._pending_rows >= self.row_group_rows or self._pending_bytes >= self.row_group_bytes:
            self._flush()
        return self._stored_since_last()

    def _stored_since_last(self) -> int:
        """Bytes of encoded row groups that reached the file since the last call (what a batch 'wrote')."""
        pos = self._writer.position if self._writer is not None else 0
        done, self._reported = pos - getattr(self, "_reported", 0), pos
        return max(0, done)

    # Row groups are encoded in parallel by the writer's encoder threads (Arrow releases the GIL) while
    # parsing goes on; at most ``encoders + 1`` row groups are in flight, so memory stays bounded. The
    # encoder thread also assembles its row group's table, keeping that work off the writing thread.
    def _flush(self, final: bool = False) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        held, self._held = self._held, []
        rows = self._pending_rows
        self._pending_rows = self._pending_bytes = 0
        if final and len(pending) >= 2 and rows >= 131072:
            # the last row group is encoded while nothing else runs: two halves keep both encoders busy
            half, acc = len(pending), 0
            for i, rb in enumerate(pending):
                acc += rb.num_rows
                if acc * 2 >= rows:
                    half = i + 1
                    break
            half = min(max(half, 1), len(pending) - 1)
            self._write_tables(pending[:half], held[:half])
            self._write_tables(pending[half:], held[half:])
            return
        self._write_tables(pending, held)

    def _write_tables(self, batches, held=()) -> None:
        import pyarrow as pa

        held = [b for b in held if b is not None]
        give_back = self._give_back
        done = None
        if held:
            def done() -> None:
                for b in held:
                    give_back(b)

        if self._writer is None:
            self._open_writer(batches[0].schema)
        target = self._writer.schema
        unify = self._has_dictionary
        auto_dict = self._auto_dictionary
        delta = self.integer_encoding == "delta"

        def build():
            table = pa.Table.from_batches([_conform(b, target) for b in batches], schema=target)
            # every batch brings its own dictionary; one per column chunk lets the writer keep the codes
            # (per-batch dictionaries cost it about twice the time on those columns)
            if unify:
                table = table.unify_dictionaries()
            if auto_dict is None:
                return table
            small = small_range_columns(table)
            over = {"use_dictionary": auto_dict + small} if small else {}
            if delta:
                dict_cols = set(auto_dict) | set(small)
                enc = {f.name: "DELTA_BINARY_PACKED" for f in table.schema
                       if f.name not in dict_cols and _delta_type(f.type)}
                if enc:
                    over["column_encoding"] = enc
            return (table, over) if over else table

        try:
            self._writer.write_prepared(build, done)
        except OSError as e:
            raise destination_error(self.path, e) from e

    def _open_writer(self, arrow_schema, path: str | None = None) -> None:
        import pyarrow as pa

        from ._parquet_parallel import ParallelParquetWriter

        self._has_dictionary = any(pa.types.is_dictionary(f.type) for f in arrow_schema)
        comp = None if self.compression == "none" else self.compression
        use_dict = self.options.get("use_dictionary")
        self._auto_dictionary = None
        if use_dict is None:  # Parquet dictionary pages for the columns we dictionary-encoded ...
            use_dict = [f.name for f in arrow_schema if pa.types.is_dictionary(f.type)]
            self._auto_dictionary = use_dict  # ... and, per row group, for small-range integer/date columns
            use_dict = use_dict or False
        self._reported = 0
        try:
            sink = path or (self._file.stream if is_remote(self.path) else self._file.temp_path)
            self._writer = ParallelParquetWriter(sink, arrow_schema, encoders=self.encoders, compression=comp,
                                                 compression_level=self.level if comp else None,
                                                 use_dictionary=use_dict)
        except OSError as e:
            raise destination_error(self.path, e) from e

    def commit(self) -> None:
        if self._file is None:
            return
        try:
            self._flush(final=True)
            if self._writer is None:
                self._open_writer(self._schema.to_arrow())
            self._writer.close()
            self._writer = None
        except BaseException:
            self.abort()
            raise
        f, self._file = self._file, None
        f.commit()
        self.bytes_committed = _stored_size(self.path, f)

    def abort(self) -> None:
        self._pending = []
        held, self._held = self._held, []
        for b in held:
            if b is not None:
                self._give_back(b)
        if self._writer is not None:
            try:
                self._writer.abort()
            except Exception:  # noqa: BLE001 - the file is being discarded
                pass
            self._writer = None
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        if self._file is not None:
            f, self._file = self._file, None
            f.discard()

    def close(self) -> None:
        self.abort()

    def location(self) -> str:
        return self.path

    def check(self) -> None:
        """``nebula check``: the directory or bucket can be written (a probe object on object stores)."""
        check_target(self.path)


def _nonempty(path: str) -> bool:
    if is_remote(path):
        from .._fs import fs_and_path

        fs, key = fs_and_path(path)
        try:
            return fs.get_file_info(key).size not in (None, 0)
        except OSError:
            return False
    return os.path.isfile(path) and os.path.getsize(path) > 0


def conform_to_target(rb, target):
    from .memory import conform_to

    return conform_to(rb, target)


def pa_table(batches, schema):
    import pyarrow as pa

    return pa.Table.from_batches(batches, schema=schema)


def small_range_columns(table) -> list[str]:
    """Integer and date columns of ``table`` whose values span a small range (fewer than 65,536 and
    under an eighth of the rows): few distinct values, so a Parquet dictionary page plus bit-packed
    codes is both smaller and cheaper to write than plain values compressed (a quantity or a year,
    not an id). Decided per row group from min/max over the value buffers (numpy; importing
    pyarrow.compute for it would cost a short run ~45 ms)."""
    import pyarrow as pa

    n = table.num_rows
    limit = min(1 << 16, n // 8)
    if limit < 2:
        return []
    out = []
    for f, col in zip(table.schema, table.columns, strict=True):
        t = f.type
        if not (pa.types.is_integer(t) or pa.types.is_date32(t)) or col.null_count == n:
            continue
        kind = "u" if pa.types.is_unsigned_integer(t) else "i"
        dtype = np.dtype(f"{kind}{t.bit_width // 8}")
        lo = hi = None
        for chunk in col.chunks:
            if chunk.null_count == len(chunk):
                continue
            end = chunk.offset + len(chunk)
            vals = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=end)[chunk.offset:]
            if chunk.null_count:
                bits = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
                vals = vals[np.unpackbits(bits, count=end, bitorder="little")[chunk.offset:].view(bool)]
            a, b = int(vals.min()), int(vals.max())
            lo, hi = (a, b) if lo is None else (min(lo, a), max(hi, b))
            if hi - lo >= limit:
                break
        if lo is not None and hi - lo < limit:
            out.append(f.name)
    return out


def _delta_type(t) -> bool:
    """Columns DELTA_BINARY_PACKED can hold: Parquet INT32/INT64 physical integers (timestamps are
    left plain: their deltas are wide, measured slower to encode than plain + zstd)."""
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_date32(t)


def _stored_size(path: str, f=None) -> int | None:
    """The committed file's size: on disk, or for an object store what its upload counted (``f`` the
    committed RemoteAtomicFile; nothing is asked of the store)."""
    if is_remote(path):
        return getattr(f, "stored", None)
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _conform(rb, schema):
    """``rb`` with dictionary/plain string columns converted to the writer's choice."""
    if rb.schema.equals(schema):
        return rb
    if rb.schema.names != schema.names:  # a batch from before a schema evolution
        from .memory import conform_to

        return conform_to(rb, schema)
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col, f in zip(rb.columns, schema, strict=True):
        if col.type != f.type:
            col = pc.dictionary_encode(col) if pa.types.is_dictionary(f.type) else col.cast(f.type)
            if col.type != f.type:
                col = col.cast(f.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=schema)
