"""Directory / prefix outputs: Hive-style partitions, file rollover, staged and manifest-committed.

``out/orders/`` or ``s3://b/orders/`` (a destination URL ending in ``/``, or any with
``partition_by``) receives ``key=value/.../part-<run_id>-<seq>.<ext>`` files:

- **Split**: each batch's partition codes come from the key columns (dictionary codes, strings
  dictionary-encoded by Arrow, integers, ``date(ts)`` days) numbered densely by
  ``nebula.kernels.partition``; a stable counting sort gives the row permutation and the range of
  each partition; the rows are gathered with Arrow ``take``. Plain key columns are not stored in
  the files (Hive layout: their value is the directory); ``date(ts)`` adds ``ts_date=YYYY-MM-DD``
  and keeps ``ts``.
- **Values in paths**: percent-encoded like Hive's ``escapePathName`` (``/ \\ : = % ? # * " ' [ ] ^ { }``,
  control characters, DEL; a value made only of dots), null and empty as
  ``__HIVE_DEFAULT_PARTITION__``; a value can never add a path segment.
- **Rollover**: a new file once ``max_rows_per_file`` rows or about ``max_file_size`` bytes (stored
  bytes, or the Arrow bytes given to the file times the size/Arrow ratio of the files finished so far,
  whichever is larger: Parquet and compressed files report bytes late; the first file uses ratio 1,
  so it comes out smaller) are in one; at most ``max_open_files`` files
  are open (the least recently used is finished first) and their pending Parquet row groups share
  about 256 MiB, so memory stays bounded (plus at most one upload part, 10 MiB in pyarrow, per open
  object on S3). A batch that touches more partitions than ``max_open_files`` finishes files early:
  correct, but many small files (1M rows over 165 partitions on moto: 7 s with 256 open, 108 s with 32).
- **Commit**: files are written under ``<prefix>/_staging/<run_id>/``; only when every one is
  complete are they moved (rename locally, server-side copy on object stores) to their final names,
  then ``_manifest.json`` (files, rows, bytes, schema, run id, the pipeline checkpoint) is written
  last, then what the manifest no longer lists is deleted (``replace``: the previous files;
  ``append``: leftovers of an earlier attempt of the same run id) — only files this destination
  wrote (listed in the old manifest or named ``part-<run>-<n>.<ext>``), never other files under the prefix. A rerun of a run id rewrites the
  same names, so it replaces, never duplicates. Readers that list files by ``_manifest.json`` never
  see a mix of runs; readers that list the directory may, for the moment of the moves.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DestinationError
from ..base import Capabilities, Destination
from ._atomic import check_level, is_remote

MANIFEST = "_manifest.json"
STAGING = "_staging"
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_FORMATS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
_UNSAFE = set('"#%\'*/:=?\\[]^{}') | {chr(c) for c in range(0x20)} | {"\x7f"}
_COMPRESSION_EXT = {"gzip": ".gz", "zstd": ".zst", "lz4": ".lz4"}
_OUR_FILE = re.compile(r"^part-[A-Za-z0-9_.\-]+-\d{5,}\.(parquet|csv|jsonl)(\.gz|\.zst|\.lz4)?$")


def escape_path_value(value) -> str:
    """The directory-name text of a partition value (see the module docstring)."""
    if value is None:
        return DEFAULT_PARTITION
    s = value if isinstance(value, str) else _text(value)
    if s == "":
        return DEFAULT_PARTITION
    out = "".join("".join(f"%{b:02X}" for b in ch.encode()) if ch in _UNSAFE else ch for ch in s)
    if set(out) == {"."}:
        out = "%2E" * len(out)
    return out


def _text(v) -> str:
    import datetime

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    return str(v)


@dataclass
class _Key:
    name: str  # directory key
    column: str  # source column
    kind: str  # "value" | "date"


def parse_partition_by(spec, schema) -> list[_Key]:
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    keys = []
    for it in filter(None, items):
        m = re.fullmatch(r"date\(\s*([^()]+?)\s*\)", it)
        col, kind = (m.group(1), "date") if m else (it, "value")
        if col not in schema:
            raise ConfigError(f"partition_by: no column {col!r}; the columns are {', '.join(schema.names)}")
        t = schema[col].type
        if kind == "date" and t.kind not in ("timestamp", "date"):
            raise ConfigError(f"partition_by: date({col}) needs a timestamp or date column, {col!r} is {t}")
        if kind == "value" and t.kind in ("float32", "float64", "json", "decimal", "struct", "list", "binary"):
            raise ConfigError(f"partition_by: cannot partition by {col!r} of type {t}")
        if col[:1] in ("_", "."):  # the directory would be `_x=…/`: Hive readers and globs skip those
            raise ConfigError(f"partition_by: column {col!r} starts with {col[0]!r}; readers (Spark, Athena, "
                              "pyarrow) skip directories named so, its rows would not be seen: rename it")
        keys.append(_Key(f"{col}_date" if kind == "date" else col, col, kind))
    if not keys:
        raise ConfigError("partition_by names no column")
    if len({k.name for k in keys}) != len(keys):
        raise ConfigError("partition_by names a column twice")
    return keys


def partition_rows(rb, keys: list[_Key]):
    """``(perm int64[n], starts int64[k+1], first_rows int64[k], key_values list[list])``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...kernels import partition as kp

    n = rb.num_rows
    combined = None
    card = 1
    values_of = []
    for key in keys:
        arr = rb.column(key.column)
        if key.kind == "date":
            if pa.types.is_timestamp(arr.type):
                us = arr.cast(pa.timestamp("us", arr.type.tz)).cast(pa.int64())
                ints = np.empty(n, dtype=np.int64)
                kp.days_from_micros(np.asarray(us.fill_null(0)), n, ints)
            else:
                ints = np.asarray(arr.cast(pa.int32()).fill_null(0)).astype(np.int64)
        elif pa.types.is_dictionary(arr.type):
            ints = np.asarray(arr.indices.fill_null(0)).astype(np.int64)
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type):
            ints = np.asarray(pc.dictionary_encode(arr).indices.fill_null(0)).astype(np.int64)
        elif pa.types.is_boolean(arr.type):
            ints = np.asarray(arr.fill_null(False)).astype(np.int64)
        else:
            ints = np.asarray(arr.cast(pa.int64()).fill_null(0))
        has_nulls = arr.null_count > 0
        valid = np.asarray(arr.is_valid()).view(np.uint8) if has_nulls else np.zeros(0, np.uint8)
        codes = np.empty(n, dtype=np.int64)
        uniq = np.empty(max(n, 1), dtype=np.int64)
        null_code = np.empty(1, dtype=np.int64)
        k = kp.factorize_int64(ints, valid, n, has_nulls, codes, uniq, null_code)
        values_of.append(arr)
        if combined is None:
            combined, card = codes, k
        else:
            pair = np.empty(n, dtype=np.int64)
            kp.combine_codes(combined, codes, k, n, pair)
            combined = np.empty(n, dtype=np.int64)
            card = kp.factorize_int64(pair, valid[:0], n, False, combined, uniq, null_code)
    perm = np.empty(n, dtype=np.int64)
    starts = np.empty(card + 1, dtype=np.int64)
    if kp.stable_counting_sort(combined, n, card, perm, starts) < 0:
        raise AssertionError("partition codes out of range")
    first_rows = perm[starts[:-1]]
    return perm, starts, first_rows


def _partition_dir(rb, keys: list[_Key], row: int) -> str:
    import datetime

    parts = []
    for key in keys:
        v = rb.column(key.column)[row].as_py()
        if key.kind == "date" and v is not None:
            v = (v.date() if isinstance(v, datetime.datetime) else v).isoformat()
        parts.append(f"{escape_path_value(key.name)}={escape_path_value(v)}")
    return "/".join(parts)


# -- storage: local directory or object-store prefix ------------------------------------------------
class _Store:
    def __init__(self, root: str) -> None:
        self.remote = is_remote(root)
        if self.remote:
            from .._fs import fs_and_path

            self.fs, self.base = fs_and_path(root.rstrip("/"))
            self.root = root.rstrip("/")
        else:
            from ._atomic import local_path

            self.root = self.base = os.path.abspath(local_path(root))

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _key(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _err(self, rel, e, what):
        if self.remote:
            from .._fs import remote_error

            return remote_error(self.url(rel), e, source=False, what=what)
        return DestinationError(f"{self.url(rel)}: {what}: {getattr(e, 'strerror', None) or e}", retryable=False)

    def each(self, fn, items) -> None:
        """``fn`` over ``items``; on an object store 16 at a time (each call is a round trip)."""
        items = list(items)
        if not self.remote or len(items) < 2:
            for it in items:
                fn(it)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(16, len(items)), thread_name_prefix="nebula-publish") as ex:
            for _ in ex.map(fn, items):
                pass

    def move(self, src: str, dst: str) -> None:
        try:
            if self.remote:
                from .._fs import copy_object

                copy_object(self.fs, self.root, self._key(src), self._key(dst))
                self.fs.delete_file(self._key(src))
            else:
                os.makedirs(os.path.dirname(self._key(dst)), exist_ok=True)
                os.replace(self._key(src), self._key(dst))
        except OSError as e:
            raise self._err(dst, e, "cannot publish") from e

    def delete(self, rel: str) -> None:
        try:
            if self.remote:
                self.fs.delete_file(self._key(rel))
            else:
                os.unlink(self._key(rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self._err(rel, e, "cannot delete") from e

    def delete_tree(self, rel: str) -> None:
        try:
            if self.remote:
                import pyarrow.fs as pafs

                key = self._key(rel)
                for i in self.fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True)):
                    if i.type == pafs.FileType.File:
                        self.fs.delete_file(i.path)
                parent = key.rsplit("/", 1)[0]
                for d in (key, parent):  # the directory markers pyarrow leaves when it deletes (S3)
                    if d == self.base or any(i.type == pafs.FileType.File for i in self.fs.get_file_info(
                            pafs.FileSelector(d, recursive=True, allow_not_found=True))):
                        break
                    try:
                        self.fs.delete_dir(d)
                    except OSError:
                        pass
            else:
                shutil.rmtree(self._key(rel), ignore_errors=True)
        except OSError as e:
            raise self._err(rel, e, "cannot clean up") from e

    def list_files(self) -> list[str]:
        """Relative names of every file under the root."""
        try:
            if self.remote:
                import pyarrow.fs as pafs

                infos = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True, allow_not_found=True))
                n = len(self.base) + 1
                return [i.path[n:] for i in infos if i.type == pafs.FileType.File]
            out = []
            for d, _, files in os.walk(self.base):
                out.extend(os.path.relpath(os.path.join(d, f), self.base).replace(os.sep, "/") for f in files)
            return out
        except OSError as e:
            raise self._err("", e, "cannot list") from e

    def read(self, rel: str) -> bytes | None:
        if self.remote:
            from .._fs import read_bytes

            return read_bytes(self.url(rel))
        try:
            with open(self._key(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_atomic(self, rel: str, data: bytes) -> None:
        if self.remote:  # one PUT: readers see the old object or the new one
            from .._fs import write_bytes

            write_bytes(self.url(rel), data)
            return
        from ._atomic import AtomicFile

        f = AtomicFile(self._key(rel))
        f.write(data)
        f.commit()

    def remove_empty_dirs(self) -> None:
        if self.remote:
            return
        for d, _, _ in sorted(os.walk(self.base), key=lambda t: -len(t[0])):
            if d != self.base:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


# -- the destination ------------------------------------------------------------------------------
class _OpenFile:
    __slots__ = ("rel", "dest", "rows", "bytes", "arrow")

    def __init__(self, rel, dest) -> None:
        self.rel, self.dest, self.rows, self.bytes, self.arrow = rel, dest, 0, 0, 0.0


class PartitionedDestination(Destination):
    """A directory or object prefix of files, optionally Hive-partitioned (see the module docstring).

    Options: ``format`` (parquet default, csv, jsonl), ``partition_by`` (``country,date(ts)``),
    ``max_rows_per_file``, ``max_file_size`` (bytes), ``max_open_files`` (default 256), ``run_id``,
    ``compression``, ``compression_level``, ``row_group_rows``, ``integer_encoding`` (Parquet: as for
    :class:`~.files.ParquetDestination`).
    """

    capabilities = Capabilities(modes=("replace", "append"), formats=tuple(_FORMATS), schemes=("file", "s3", "gs"),
                                exactly_once=True, schema_evolution=True, notes="Hive partitions; staged files published by "
                                "_manifest.json; rerun of a run_id replaces")
    _allowed = ("format", "partition_by", "max_rows_per_file", "max_file_size", "max_open_files", "run_id",
                "compression", "compression_level", "row_group_rows", "integer_encoding")

    def __init__(self, url: str, *, options: dict | None = None) -> None:
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(self._allowed))
        if unknown:
            raise ConfigError(f"{url}: unknown option(s) {', '.join(unknown)}; known: {', '.join(self._allowed)}")
        self.url = url
        self.options = opts
        self.format = str(opts.get("format") or "parquet").lower()
        self.format = {"ndjson": "jsonl", "pq": "parquet"}.get(self.format, self.format)
        if self.format not in _FORMATS:
            raise ConfigError(f"{url}: a directory output is parquet, csv or jsonl, not {self.format!r}")
        self.max_rows = int(opts.get("max_rows_per_file") or 0) or None
        self.max_bytes = _size(opts.get("max_file_size")) or None
        self.max_open = int(opts.get("max_open_files") or 256)
        if (self.max_rows is not None and self.max_rows < 1) or self.max_open < 1:
            raise ConfigError(f"{url}: max_rows_per_file and max_open_files must be positive")
        self.run_id = str(opts.get("run_id") or time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3))
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.run_id) or set(self.run_id) == {"."}:
            raise ConfigError(f"run_id may hold only letters, digits, '_', '-' and '.': {self.run_id!r}")
        comp = opts.get("compression")
        if self.format != "parquet" and comp not in (None, "none") and comp not in _COMPRESSION_EXT:
            raise ConfigError(f"{url}: unknown compression {comp!r}; expected one of gzip, zstd, lz4, none")
        if self.format == "parquet":
            from .files import _PARQUET_CODECS

            if str(comp or "zstd").lower() not in _PARQUET_CODECS:
                raise ConfigError(f"{url}: unknown Parquet compression {comp!r}; expected one of "
                                  f"{', '.join(_PARQUET_CODECS)}")
        check_level(url, comp or ("zstd" if self.format == "parquet" else None), opts.get("compression_level"),
                    parquet=self.format == "parquet")
        self.ext = _FORMATS[self.format] + (_COMPRESSION_EXT.get(comp, "") if self.format != "parquet" else "")
        self.store = _Store(url)
        self.staging = f"{STAGING}/{self.run_id}"
        self._files: OrderedDict[str, _OpenFile] = OrderedDict()
        self._done: list[dict] = []
        self._seq = 0
        self._stored = self._handed = 0.0  # finished files: their size, and the Arrow bytes they were given
        self._state: dict = {}
        self._opened = False

    def location(self) -> str:
        return self.url

    def check(self) -> None:
        """``nebula check``: the directory or bucket prefix can be written."""
        from ._atomic import check_target

        check_target(self.url if self.url.endswith("/") else self.url + "/")

    def _inner_options(self) -> dict:
        o = {k: self.options[k] for k in ("compression", "compression_level") if k in self.options}
        if self.format == "parquet":
            o.update({k: self.options[k] for k in ("row_group_rows", "integer_encoding") if k in self.options})
            o["encoders"] = 1  # many files are open at once: one encoder thread each
            # pending row groups of all open files share ~256 MiB
            budget = max(1 << 20, min(128 << 20, (256 << 20) // self.max_open))
            o.setdefault("row_group_bytes", min(budget, self.max_bytes) if self.max_bytes else budget)
        o["direct"] = True
        return o

    def open(self, schema, *, mode: str = "replace", table: str | None = None, key: list[str] | None = None) -> None:
        if mode not in self.capabilities.modes:
            raise ConfigError(f"{self.url}: mode {mode!r} is not supported here; use replace or append")
        self.mode = mode
        spec = self.options.get("partition_by")
        self.keys = parse_partition_by(spec, schema) if spec else []
        plain = {k.column for k in self.keys if k.kind == "value"}
        from ...schema import Schema

        self.file_schema = Schema(f for f in schema if f.name not in plain)
        self.data_columns = self.file_schema.names
        if not self.data_columns:
            raise ConfigError(f"{self.url}: every column is a partition key; nothing would be left in the files")
        self.schema = schema
        self.store.delete_tree(self.staging)  # leftovers of a killed attempt of this run id
        self._opened = True

    def evolve(self, schema) -> None:
        """Later rows have ``schema`` (columns added or widened): the open files are finished and new
        ones start with the new columns (files of one table may differ; Hive readers unify them)."""
        while self._files:
            self._finish(next(iter(self._files)))
        from ...schema import Schema

        self.keys = parse_partition_by([k.name if k.kind == "value" else f"date({k.column})" for k in self.keys],
                                       schema) if self.keys else []
        plain = {k.column for k in self.keys if k.kind == "value"}
        self.file_schema = Schema(f for f in schema if f.name not in plain)
        self.data_columns = self.file_schema.names
        self.schema = schema

    def _new_file(self, pdir: str) -> _OpenFile:
        from .files import CsvDestination, JsonlDestination, ParquetDestination

        name = f"part-{self.run_id}-{self._seq:05d}{self.ext}"
        self._seq += 1
        rel = f"{pdir}/{name}" if pdir else name
        cls = {"parquet": ParquetDestination, "csv": CsvDestination, "jsonl": JsonlDestination}[self.format]
        d = cls(self.store.url(f"{self.staging}/{rel}"), options=self._inner_options())
        d.open(self.file_schema, mode="replace")
        return _OpenFile(rel, d)

    def _finish(self, pdir: str) -> None:
        f = self._files.pop(pdir)
        f.dest.commit()
        size = self._size_of(f)
        self._stored += size
        self._handed += f.arrow
        self._done.append({"path": f.rel, "rows": f.rows, "bytes": size})

    def _estimate(self, f: _OpenFile) -> float:
        """About how large ``f`` is now. A Parquet file reports its bytes only as row groups land and a
        compressed file as the codec emits them, so the Arrow bytes given to it count too, scaled by
        the size/Arrow ratio of the files finished so far (1 before the first: never too large)."""
        ratio = self._stored / self._handed if self._handed else 1.0
        return max(float(f.bytes), f.arrow * ratio)

    def _size_of(self, f: _OpenFile) -> int:
        try:
            if self.store.remote:
                return int(self.store.fs.get_file_info(self.store._key(f"{self.staging}/{f.rel}")).size or 0)
            return os.path.getsize(self.store._key(f"{self.staging}/{f.rel}"))
        except OSError:
            return f.bytes

    def write(self, batch) -> int:
        if not self._opened:
            raise DestinationError(f"{self.url}: write() before open()")
        n = batch.length
        if n == 0:
            return 0
        rb = batch.to_arrow()
        data = rb.select(self.data_columns)
        if self.keys:
            perm, starts, first_rows = partition_rows(rb, self.keys)
            groups = [(_partition_dir(rb, self.keys, int(first_rows[p])), perm[starts[p]:starts[p + 1]])
                      for p in range(len(first_rows))]
        else:
            groups = [("", None)]
        total = 0
        for pdir, rows in groups:
            m = n if rows is None else rows.shape[0]
            done = 0
            while done < m:
                f = self._files.get(pdir)
                if f is None:
                    f = self._files[pdir] = self._new_file(pdir)
                    if len(self._files) > self.max_open:
                        self._finish(next(iter(self._files)))
                else:
                    self._files.move_to_end(pdir)
                take = m - done if self.max_rows is None else min(m - done, self.max_rows - f.rows)
                if self.max_bytes is not None:  # rows that fit, at the file's (or the batch's) bytes per row
                    est = self._estimate(f)
                    per_row = est / f.rows if f.rows and est else max(1.0, batch.nbytes / n) * (
                        self._stored / self._handed if self._handed else 1.0)
                    take = min(take, max(1, int((self.max_bytes - est) / max(per_row, 1e-9)) + 1))
                if rows is None and take == m:
                    piece = batch  # no keys: the batch itself (destinations copy what they keep)
                else:
                    idx = np.arange(done, done + take) if rows is None else rows[done:done + take]
                    piece = data.take(idx)
                wrote = f.dest.write(piece if piece is batch else ArrowBatch(piece, self.file_schema))
                f.rows += take
                f.bytes += wrote
                f.arrow += take * batch.nbytes / n
                total += wrote
                done += take
                if (self.max_rows is not None and f.rows >= self.max_rows) or (
                        self.max_bytes is not None and self._estimate(f) >= self.max_bytes):
                    self._finish(pdir)
        return total

    def stage_state(self, name: str, value: dict) -> None:
        self._state[name] = value

    def committed_state(self, name: str) -> dict | None:
        m = self._manifest()
        return (m or {}).get("state", {}).get(name)

    def _manifest(self) -> dict | None:
        raw = self.store.read(MANIFEST)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise DestinationError(f"{self.store.url(MANIFEST)}: unreadable manifest ({e})", retryable=False) from e

    def commit(self) -> None:
        if not self._opened:
            return
        try:
            while self._files:
                self._finish(next(iter(self._files)))
            old = self._manifest() or {}
            self.store.each(lambda f: self.store.move(f"{self.staging}/{f['path']}", f["path"]),
                            self._done)  # publish: every file is complete in staging
            for f in self._done:
                f["run_id"] = self.run_id
            keep = [f for f in old.get("files", []) if f.get("run_id") != self.run_id] if self.mode == "append" else []
            files = keep + self._done
            state = dict(old.get("state", {})) if self.mode == "append" else {}
            state.update(self._state)
            manifest = {
                "format": self.format, "run_id": self.run_id, "mode": self.mode,
                "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "partition_by": [k.name for k in self.keys],
                "schema": self.schema.to_dict(),
                "rows": sum(f["rows"] for f in files), "bytes": sum(f["bytes"] for f in files),
                "files": files, "runs": sorted({f.get("run_id", "") for f in files} - {""}), "state": state,
            }
            self.store.write_atomic(MANIFEST, json.dumps(manifest, indent=1).encode())
            listed = {f["path"] for f in files}
            prefix = f"part-{self.run_id}-"
            # what we wrote before and no longer list: never a file of another tool under the prefix
            previous = {f["path"] for f in old.get("files", [])}
            stale = []
            for rel in self.store.list_files():
                if rel == MANIFEST or rel.startswith(STAGING + "/") or rel in listed:
                    continue
                base = rel.rsplit("/", 1)[-1]
                if base.startswith((".", "_")):
                    continue
                ours = rel in previous or _OUR_FILE.match(base) is not None
                if ours and (self.mode == "replace" or base.startswith(prefix)):
                    stale.append(rel)
            self.store.each(self.store.delete, stale)
            self.store.delete_tree(self.staging)
            self.store.remove_empty_dirs()
        except BaseException:
            self.abort()
            raise
        self._opened = False

    def abort(self) -> None:
        files, self._files = list(self._files.values()), OrderedDict()
        for f in files:
            try:
                f.dest.abort()
            except Exception:  # noqa: BLE001 - discarding anyway
                pass
        self._done = []
        if self._opened:
            self._opened = False
            try:
                self.store.delete_tree(self.staging)
            except Exception:  # noqa: BLE001 - staging is never read; a rerun clears it
                pass

    def close(self) -> None:
        self.abort()


def _size(v) -> int:
    if v is None or v == "":
        return 0
    if isinstance(v, int | float):
        return int(v)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", str(v).lower())
    if not m:
        raise ConfigError(f"max_file_size: not a size: {v!r} (like 128MB, 1GiB, 5000000)")
    unit = (m.group(2) or "").rstrip("b").rstrip("i")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit])


# -- an Arrow RecordBatch seen as a Batch (what the file destinations read) ---------------------------
class _ArrowColumn:
    __slots__ = ("field", "values", "validity", "offsets", "data", "null_count", "dictionary", "_arr")

    def __init__(self, field, arr) -> None:
        import pyarrow as pa

        if arr.offset:
            arr = pa.concat_arrays([arr])
        self.field, self._arr = field, arr
        t = field.type
        bufs = arr.buffers()
        self.null_count = arr.null_count
        self.validity = np.frombuffer(bufs[0], np.uint8) if bufs[0] is not None and arr.null_count else \
            np.zeros(0, np.uint8)
        self.offsets = self.data = self.dictionary = None
        if pa.types.is_dictionary(arr.type):
            self.dictionary = arr.dictionary
            self.values = np.frombuffer(bufs[1], np.int32, count=len(arr)) if len(arr) else np.zeros(0, np.int32)
        elif t.is_varlen:
            if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
                arr = arr.cast(pa.binary() if t.kind == "binary" else pa.string())
                self._arr = arr
                bufs = arr.buffers()
            self.offsets = np.frombuffer(bufs[1], np.int32, count=len(arr) + 1)
            self.data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and bufs[2].size else \
                np.zeros(0, np.uint8)
            self.values = np.zeros(0, np.int32)
        elif t.is_nested:  # struct/list: read through to_arrow (text destinations render it as JSON)
            self.values = None
        elif t.kind == "bool":
            self.values = np.frombuffer(bufs[1], np.uint8)
        elif t.kind == "decimal":
            self.values = np.frombuffer(bufs[1], np.int64, count=2 * len(arr)).reshape(-1, 2)
        else:
            self.values = np.frombuffer(bufs[1], t.numpy_dtype, count=len(arr))

    def to_arrow(self, n: int, copy: bool = False):
        return self._arr.slice(0, n)


class ArrowBatch:
    """Read-only :class:`~nebula.batch.Batch` look-alike over a ``pyarrow.RecordBatch``."""

    def __init__(self, rb, schema) -> None:
        self.rb = rb
        self.schema = schema
        self.length = rb.num_rows
        self.columns = [_ArrowColumn(f, rb.column(i)) for i, f in enumerate(schema)]

    def __len__(self) -> int:
        return self.length

    def to_arrow(self, copy: bool = False):
        return self.rb
