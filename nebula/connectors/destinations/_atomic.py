"""Atomic local files: write to a dot-temp file beside the target, rename onto it on commit.

A crash leaves at most ``.<name>.nebula-tmp-<pid>-<random>`` behind, never a partial ``<name>``.
Compressed streams (gzip, zstd, lz4 frame) wrap the temp file when asked.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading

from ...errors import ConfigError, DestinationError

COMPRESSIONS = ("gzip", "zstd", "lz4")
_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}


# Temp files of this process not yet committed or discarded. A name is registered before its file is
# created and forgotten only after the rename or unlink, so an interrupt landing anywhere in between
# (even before the owner kept a reference) still leaves it known to :func:`sweep_temp_files`.
_live: set[str] = set()
_live_lock = threading.Lock()


def sweep_temp_files() -> list[str]:
    """Delete every temp file this process created and did not commit or discard (the CLI calls this
    when a run is interrupted or fails); returns the paths removed."""
    with _live_lock:
        paths = list(_live)
        _live.clear()
    removed = []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def compression_from_path(path: str) -> str | None:
    """``gzip`` / ``zstd`` / ``lz4`` from the file's last extension, else None."""
    return _SUFFIXES.get(os.path.splitext(path)[1].lower())


def strip_compression_suffix(path: str) -> str:
    root, ext = os.path.splitext(path)
    return root if ext.lower() in _SUFFIXES else path


def local_path(url_or_path: str) -> str:
    """The local path of ``file://...`` or a plain path; other schemes are a ConfigError."""
    if url_or_path.startswith("file://"):
        return url_or_path[len("file://"):]
    if "://" in url_or_path:
        raise ConfigError(f"{url_or_path}: only local paths and file:// URLs are supported here")
    return url_or_path


def is_remote(url) -> bool:
    p = str(url)[:6].lower()
    return p[:5] in ("s3://", "gs://") or p == "gcs://"


def target_path(url_or_path: str) -> str:
    """The absolute local path, or the ``s3://`` / ``gs://`` URL as given."""
    if is_remote(url_or_path):
        return url_or_path
    return os.path.abspath(local_path(url_or_path))


def atomic_file(path: str, **kw):
    """:class:`AtomicFile` for a local path, ``_fs.RemoteAtomicFile`` for an object URL."""
    if is_remote(path):
        from .._fs import RemoteAtomicFile

        kw.pop("open_stream", None)
        return RemoteAtomicFile(path, **kw)
    kw.pop("direct", None)
    return AtomicFile(path, **kw)


def check_target(path: str) -> None:
    """Raise if ``path`` (a file, or a directory when it ends in ``/``) cannot be written."""
    if is_remote(path):
        from .._fs import check_writable

        check_writable(path)
        return
    d = path if path.endswith(("/", os.sep)) else os.path.dirname(os.path.abspath(path))
    d = os.path.abspath(d)
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d) or not os.access(d, os.W_OK):
        raise DestinationError(f"{d} is not a writable directory", retryable=False)


def destination_error(path: str, e: OSError, what: str = "cannot write") -> DestinationError:
    reason = e.strerror or str(e)
    return DestinationError(f"{path}: {what}: {reason}", retryable=False)


class AtomicFile:
    """A temp file next to ``path`` that replaces ``path`` on :meth:`commit`.

    Parameters
    ----------
    path : str
        The final file name; missing parent directories are created.
    compression : str or None
        ``gzip``, ``zstd`` or ``lz4``: :meth:`write` goes through that stream compressor.
    level : int or None
        Compression level (the library's default when None).
    keep_existing : bool
        Start from a copy of the current ``path`` (append); a compressed file then gets a new
        member/frame, which gzip, zstd and lz4 readers treat as a continuation.
    open_stream : bool
        False: only reserve the temp name (for writers that open the path themselves).
    """

    def __init__(self, path: str, *, compression: str | None = None, level: int | None = None,
                 keep_existing: bool = False, open_stream: bool = True) -> None:
        self.path = os.path.abspath(path)
        self.existed = os.path.exists(self.path)
        d, name = os.path.split(self.path)
        self.temp_path = os.path.join(d, f".{name}.nebula-tmp-{os.getpid()}-{secrets.token_hex(4)}")
        self._raw = None
        self._stream = None
        self._done = False
        with _live_lock:
            _live.add(self.temp_path)
        try:
            if os.path.isdir(self.path):
                raise IsADirectoryError(21, "is a directory")
            os.makedirs(d, exist_ok=True)
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            if keep_existing and self.existed:
                shutil.copyfile(self.path, self.temp_path)
            if open_stream:
                self._raw = open(self.temp_path, "ab")  # noqa: SIM115 - closed in commit/discard
                self._stream = _compressor(self._raw, compression, level) if compression else self._raw
            self.initial_size = os.path.getsize(self.temp_path)  # kept content of an append
            self._told = self.initial_size
        except OSError as e:
            self._cleanup()
            raise destination_error(self.path, e) from e

    def write(self, data) -> int:
        """Write ``data``; returns the bytes that reached the file (after compression, so far)."""
        try:
            self._stream.write(data)
            if self._stream is self._raw:
                return len(data)
            pos = self._raw.tell()
        except OSError as e:
            raise destination_error(self.path, e) from e
        done, self._told = pos - self._told, pos
        return max(0, done)

    def commit(self) -> None:
        """Finish the stream, fsync, and rename onto the final name (then fsync the directory)."""
        if self._done:
            return
        try:
            if self._stream is not None and self._stream is not self._raw:
                self._stream.close()
            if self._raw is not None:
                self._raw.flush()
                os.fsync(self._raw.fileno())
                self._raw.close()
            else:
                fd = os.open(self.temp_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(self.temp_path, self.path)
            self._done = True
            with _live_lock:
                _live.discard(self.temp_path)
            dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            self._cleanup()
            raise destination_error(self.path, e, "cannot commit") from e

    def discard(self) -> None:
        """Close and delete the temp file; safe to call more than once."""
        self._cleanup()

    def _cleanup(self) -> None:
        for f in (self._stream, self._raw):
            try:
                if f is not None:
                    f.close()
            except Exception:  # the stream is being thrown away
                pass
        self._stream = self._raw = None
        if not self._done:
            self._done = True
            try:
                os.unlink(self.temp_path)
            except OSError:
                pass
            with _live_lock:
                _live.discard(self.temp_path)


# compression levels each codec accepts (inclusive); a codec missing here takes none (snappy, none)
_TEXT_LEVELS = {"gzip": (0, 9), "zstd": (-131072, 22), "lz4": (0, 16)}
_PARQUET_LEVELS = {"gzip": (0, 9), "zstd": (-131072, 22), "lz4": (1, 12), "brotli": (0, 11)}


def check_level(where: str, codec: str | None, level, *, parquet: bool) -> None:
    """A ConfigError unless ``level`` is None or a level ``codec`` accepts (the libraries would clamp
    some silently, e.g. Parquet zstd 99, and fail on others with their own exceptions)."""
    if level is None:
        return
    codec = (codec or "none").lower()
    if isinstance(level, bool) or not isinstance(level, int):
        raise ConfigError(f"{where}: compression_level must be an integer, not {level!r}")
    span = (_PARQUET_LEVELS if parquet else _TEXT_LEVELS).get(codec)
    if span is None:
        raise ConfigError(f"{where}: compression {codec!r} takes no compression_level")
    if not span[0] <= level <= span[1]:
        raise ConfigError(f"{where}: compression_level {level} is out of range for {codec} "
                          f"({span[0]} to {span[1]})")


def _compressor(raw, compression: str, level: int | None):
    if compression == "gzip":
        import gzip

        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                             compresslevel=6 if level is None else level)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).stream_writer(raw, closefd=False)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameFile(raw, mode="wb", compression_level=0 if level is None else level)
    raise ConfigError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
