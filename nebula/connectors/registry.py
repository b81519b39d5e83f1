"""Built-in connectors, and turning a URL or path (plus an optional format) into one."""

from __future__ import annotations

import os
import re

from ..errors import ConfigError
from .base import ConnectorSpec, get, register

_S = "nebula.connectors.sources."
_D = "nebula.connectors.destinations."

for _spec in (
    ConnectorSpec("csv", "source", _S + "csv:CsvSource", ("file", "s3", "gs"), (".csv", ".tsv", ".txt"),
                  description="CSV/TSV files and globs, .gz/.zst/.lz4/.bz2; Numba-parsed"),
    ConnectorSpec("jsonl", "source", _S + "json:JsonSource", ("file", "s3", "gs"), (".jsonl", ".ndjson"),
                  description="JSON lines files and globs, .gz/.zst/.lz4; Numba-parsed, nested objects flattened"),
    ConnectorSpec("json", "source", _S + "json:JsonSource", ("file", "s3", "gs"), (".json",),
                  description="JSON: a top-level array of objects (streamed), records under records_path, or lines"),
    ConnectorSpec("csv", "destination", _D + "files:CsvDestination", ("file", "s3", "gs"), (".csv", ".tsv"),
                  description="CSV file (RFC 4180), optional .gz/.zst/.lz4"),
    ConnectorSpec("jsonl", "destination", _D + "files:JsonlDestination", ("file", "s3", "gs"), (".jsonl", ".ndjson"),
                  description="JSON lines file, optional .gz/.zst/.lz4"),
    ConnectorSpec("parquet", "destination", _D + "files:ParquetDestination", ("file", "s3", "gs"), (".parquet", ".pq"),
                  description="Parquet file (zstd by default)"),
    ConnectorSpec("directory", "destination", _D + "partitioned:PartitionedDestination", ("file", "s3", "gs"),
                  ("/",), description="a directory/prefix (URL ending in /) of Parquet/CSV/JSONL files: Hive "
                  "--partition-by, rollover, staged commit with _manifest.json"),
    ConnectorSpec("sqlite", "destination", _D + "sqlite:SqliteDestination", ("sqlite",),
                  description="SQLite table: append, replace (atomic swap) or merge by key"),
    ConnectorSpec("postgresql", "source", _S + "postgres:PostgresSource", ("postgresql", "postgres"), extra="postgres",
                  description="PostgreSQL table (options: table, cursor): binary COPY decoded by kernels; --cdc: "
                  "exported snapshot + pgoutput logical replication (LSN resume)"),
    ConnectorSpec("postgresql", "destination", _D + "postgres:PostgresDestination", ("postgresql", "postgres"),
                  extra="postgres", description="PostgreSQL table: binary COPY, append/replace/merge, state in the "
                  "same transaction"),
    ConnectorSpec("mysql", "source", _S + "mysql:MysqlSource", ("mysql", "mariadb"), extra="mysql",
                  description="MySQL/MariaDB tables: consistent snapshot, --cdc binlog changes (GTID/file:pos resume)"),
    ConnectorSpec("memory", "destination", _D + "memory:MemoryDestination", ("memory",),
                  description="in-process pyarrow.Table (library use)"),
    ConnectorSpec("null", "destination", _D + "memory:NullDestination", ("null",),
                  description="discards rows (measuring a source)"),
):
    register(_spec)

_COMPRESSION = (".gz", ".zst", ".zstd", ".lz4", ".bz2")
_FORMAT_ALIASES = {"ndjson": "jsonl", "tsv": "csv", "txt": "csv", "pq": "parquet"}
_PLANNED = {
    "snowflake": "the Snowflake destination", "bigquery": "the BigQuery destination",
}


def scheme_of(url: str) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return m.group(1).lower() if m else "file"


def format_of(path: str) -> str | None:
    p = re.sub(r"[*?\[\]]+$", "", path.lower())
    for ext in _COMPRESSION:
        if p.endswith(ext):
            p = p[: -len(ext)]
    _, ext = os.path.splitext(p)
    ext = ext.lstrip(".")
    return _FORMAT_ALIASES.get(ext, ext) or None


def resolve(kind: str, url: str, fmt: str | None = None) -> ConnectorSpec:
    """The connector for ``url`` as a ``kind`` ("source" or "destination")."""
    scheme = scheme_of(url)
    if scheme in ("file", "s3", "gs", "gcs"):
        f = (fmt or format_of(url) or "").lower()
        f = _FORMAT_ALIASES.get(f, f)
        if not f:
            if kind == "source":
                from .sources.csv import expand_paths

                expand_paths(url)  # a missing file or a directory says so
            raise ConfigError(f"cannot tell the format of {url!r}: give it an extension "
                              "(.csv .tsv .jsonl .json .parquet) or --format")
        name = f
    else:
        name = {"postgres": "postgresql", "gcs": "gs", "mariadb": "mysql"}.get(scheme, scheme)
    try:
        return get(kind, name)
    except ConfigError:
        if name in _PLANNED or scheme in _PLANNED:
            what = _PLANNED.get(name) or _PLANNED[scheme]
            raise ConfigError(f"{url}: no {kind} for {name!r} in this version yet; it comes with {what}") from None
        raise
