"""Opening input files, transparently decompressing .gz, .zst, .lz4 and .bz2 as a stream."""

from __future__ import annotations

import io
import os

COMPRESSED = (".gz", ".zst", ".zstd", ".lz4", ".bz2")


def compression_of(path: str) -> str | None:
    p = path.lower()
    for ext, name in ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd"), (".lz4", "lz4"), (".bz2", "bz2")):
        if p.endswith(ext):
            return name
    return None


class _Guard(io.RawIOBase):
    """Turns a decompressor's own exceptions into OSError-free ValueError-free EOFError for the reader."""

    def __init__(self, inner, name: str) -> None:
        self._inner = inner
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self._inner.readinto(b)
        except (EOFError, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise EOFError(f"{self.name}: compressed data is corrupt or truncated ({e})") from e
        except Exception as e:  # zstandard.ZstdError, lz4 RuntimeError
            raise EOFError(f"{self.name}: compressed data is corrupt or truncated ({e})") from e

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def _is_remote(path) -> bool:
    p = str(path)[:6].lower()
    return p[:5] in ("s3://", "gs://") or p == "gcs://"


def input_size(path: str) -> int:
    """Size in bytes of a local file or an object."""
    if _is_remote(path):
        from .._fs import expand

        return expand(path)[0][1]
    return os.path.getsize(path)


def open_input(path: str):
    """A binary file object with ``readinto`` for ``path`` (decompressing by extension).

    ``s3://`` / ``gs://`` objects are streamed through pyarrow's filesystems (``.._fs``); local
    files keep the plain unbuffered ``open``."""
    kind = compression_of(path)
    remote = _is_remote(path)
    if remote:
        from .._fs import RemoteReader

        if kind is None:
            return RemoteReader(path)
        raw = io.BufferedReader(RemoteReader(path), buffer_size=1 << 20)
    else:
        if kind is None:
            return open(path, "rb", buffering=0)  # noqa: SIM115
        raw = open(path, "rb")  # noqa: SIM115
    try:
        if kind == "gzip":
            import gzip

            inner = gzip.GzipFile(fileobj=raw, mode="rb")
        elif kind == "zstd":
            import zstandard

            inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        elif kind == "lz4":
            import lz4.frame

            inner = lz4.frame.LZ4FrameFile(raw, mode="rb")
        else:
            import bz2

            inner = bz2.BZ2File(raw, mode="rb")
    except Exception:
        raw.close()
        raise
    return _Guard(inner, os.fspath(path))


def chosen_dict_columns(dictionary, schema) -> frozenset[str] | None:
    """The text columns the ``dictionary`` option names (CSV and JSON sources): an empty set for
    ``none``/off, the named string columns for a list (an unknown name is a ConfigError), ``None`` when
    the source should choose itself from its sample (``auto``)."""
    from ...errors import ConfigError

    if dictionary in ("none", None, False) or not dictionary:
        return frozenset()
    if isinstance(dictionary, list | tuple):
        unknown = [c for c in dictionary if c not in schema]
        if unknown:
            raise ConfigError(f"dictionary: unknown column(s) {', '.join(unknown)}")
        text = {f.name for f in schema if f.type.kind == "string"}
        return frozenset(c for c in dictionary if c in text)
    return None
