"""Object stores (``s3://``, ``gs://``) through pyarrow's own filesystems.

Why pyarrow.fs and not fsspec (s3fs/gcsfs): pyarrow is already a core dependency, its S3 and GCS
clients are C++ (reads and multipart uploads release the GIL and do not compete with the parse
threads), its output streams upload parts as they fill, so memory stays bounded for any output size,
and Parquet writes straight into them. No extra client library is needed; local files never go
through this module (they keep the plain ``open``/``readinto`` path).

Settings come from each ecosystem's standard variables: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` (an ``http://`` endpoint switches the scheme);
``STORAGE_EMULATOR_HOST`` (anonymous, for the emulator), ``GOOGLE_APPLICATION_CREDENTIALS`` (read by
the GCS client itself), ``NEBULA_FS_RETRIES`` (attempts per request, default 5),
``NEBULA_S3_BACKGROUND_WRITES=1`` (faster uploads, memory no longer bounded by one part).

Resilience: pyarrow's own retry strategy retries each request (``NEBULA_FS_RETRIES`` attempts); on top, the
steps that open or check an object or bucket, small whole-object reads and writes, and the commit's copy
onto the final key go through :func:`nebula.connectors.resilience.retry_call` (breaker per bucket, backoff,
metrics); S3 connect and request timeouts are the run policy's ``connect_timeout`` and ``timeout``. A
stream cut mid-upload or mid-read cannot be resumed in place: it fails the run with a retryable error,
which :func:`nebula.copy` answers by running again.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import re
import threading

from ..errors import ConfigError, ConnectionFailed, DestinationError, NebulaError, SourceError

log = logging.getLogger(__name__)

REMOTE_SCHEMES = ("s3", "gs", "gcs")
_URL = re.compile(r"^(s3|gs|gcs)://([^/]*)(/?.*)$", re.IGNORECASE)
_lock = threading.Lock()
_cache: dict[tuple, object] = {}


def is_remote(url) -> bool:
    return isinstance(url, str) and _URL.match(url) is not None


def split(url: str) -> tuple[str, str]:
    """``("s3" | "gs", "bucket/key")`` of an object URL."""
    m = _URL.match(url)
    if m is None:
        raise ConfigError(f"{url}: not an s3:// or gs:// URL")
    scheme = "gs" if m.group(1).lower() in ("gs", "gcs") else "s3"
    bucket, key = m.group(2), m.group(3).lstrip("/")
    if not bucket:
        raise ConfigError(f"{url}: the URL names no bucket")
    return scheme, f"{bucket}/{key}" if key else bucket


def url_of(scheme: str, path: str) -> str:
    return f"{scheme}://{path}"


def join(url: str, *parts: str) -> str:
    out = url.rstrip("/")
    for p in parts:
        out += "/" + p.strip("/")
    return out


def _endpoint(var_names: tuple[str, ...]) -> tuple[str | None, str | None]:
    for v in var_names:
        val = os.environ.get(v)
        if val:
            m = re.match(r"^(https?)://(.+?)/?$", val)
            return (m.group(2), m.group(1)) if m else (val, None)
    return None, None


def filesystem(scheme: str):
    """A pyarrow FileSystem for ``scheme`` configured from the environment (cached per settings)."""
    import pyarrow.fs as pafs

    from .resilience import current_policy

    retries = int(os.environ.get("NEBULA_FS_RETRIES", "5"))
    policy = current_policy()
    if scheme == "s3":
        host, proto = _endpoint(("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        timeouts = (policy.connect_timeout, policy.timeout)
        key = ("s3", host, proto, region, retries, timeouts, os.environ.get("NEBULA_S3_BACKGROUND_WRITES"),
               os.environ.get("AWS_ACCESS_KEY_ID"),
               os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"))
        kwargs = dict(region=region, endpoint_override=host, retry_strategy=pafs.AwsStandardS3RetryStrategy(
            max_attempts=retries), connect_timeout=timeouts[0], request_timeout=timeouts[1],
            # parts upload in the writing thread: pyarrow documents no bound on the finished parts that
            # background writes may hold while the network is slower than we produce; this keeps one
            background_writes=os.environ.get("NEBULA_S3_BACKGROUND_WRITES", "0") == "1")
        if proto:
            kwargs["scheme"] = proto
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"],
                          secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                          session_token=os.environ.get("AWS_SESSION_TOKEN"))
        factory = pafs.S3FileSystem
    else:
        import datetime

        host, proto = _endpoint(("STORAGE_EMULATOR_HOST",))
        key = ("gs", host, proto, retries, os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        kwargs = dict(retry_time_limit=datetime.timedelta(seconds=max(1, 3 * retries)))
        if host:
            kwargs.update(anonymous=True, endpoint_override=host, scheme=proto or "http")
        factory = pafs.GcsFileSystem
    with _lock:
        fs = _cache.get(key)
        if fs is None:
            fs = _cache[key] = factory(**{k: v for k, v in kwargs.items() if v is not None})
        return fs


def fs_and_path(url: str):
    scheme, path = split(url)
    return filesystem(scheme), path


# -- errors ---------------------------------------------------------------------------------------
def _fs_errors() -> tuple[type, ...]:
    """What pyarrow's filesystems raise: ``OSError`` mostly, but a google-cloud-cpp status such as
    INVALID_ARGUMENT (unusable GOOGLE_APPLICATION_CREDENTIALS) comes as ``ArrowInvalid``."""
    import pyarrow.lib

    return OSError, pyarrow.lib.ArrowException


_CREDENTIALS = ("Could not create a OAuth2 access token", "Invalid ServiceAccountCredentials",
                "Invalid AuthorizedUserCredentials", "credentials file")
_DENIED = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH",
           "SignatureDoesNotMatch", "PERMISSION_DENIED", "UNAUTHENTICATED", "HTTP status 403", "HTTP status 401",
           "status code: 403", "status code: 401", "Forbidden")
_NO_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket", "bucket does not exist", "Bucket '")
_NETWORK = ("NETWORK_CONNECTION", "curlCode", "Couldn't connect", "Connection refused", "connection reset",
            "UNAVAILABLE", "timed out", "Timeout", "SLOW_DOWN", "SERVICE_UNAVAILABLE", "INTERNAL_FAILURE",
            "HTTP status 5", "status code: 5")


def remote_error(url: str, e: BaseException, *, source: bool, what: str) -> NebulaError:
    """A typed error for a failed object-store call (never the credentials)."""
    if isinstance(e, NebulaError):
        return e
    msg = str(e)
    cls = SourceError if source else DestinationError
    bucket = split(url)[1].split("/", 1)[0] if is_remote(url) else "?"
    if any(s in msg for s in _NO_BUCKET) or (isinstance(e, FileNotFoundError) and "CreateResumableUpload" in msg):
        return cls(f"{url}: {what}: bucket {bucket!r} does not exist", retryable=False)
    if any(s in msg for s in _CREDENTIALS):
        detail = msg.split("The underlying error message was:", 1)[-1] if "underlying error" in msg else msg
        var = " (GOOGLE_APPLICATION_CREDENTIALS)" if url.lower().startswith(("gs:", "gcs:")) else ""
        return cls(f"{url}: {what}: the credentials{var} cannot be used: {_short(detail)}", retryable=False)
    if any(s in msg for s in _DENIED):
        return cls(f"{url}: {what}: access denied (check the credentials and the bucket's permissions)",
                   retryable=False)
    if isinstance(e, FileNotFoundError):
        return cls(f"{url}: {what}: no such object", retryable=False)
    if any(s.lower() in msg.lower() for s in _NETWORK):
        return ConnectionFailed(f"{url}: {what}: the object store is unreachable or failed ({_short(msg)})")
    return cls(f"{url}: {what}: {_short(msg)}", retryable=False)


def _call(url: str, fn, *, source: bool, what: str, passthrough: tuple[type, ...] = ()):
    """``fn()`` through the resilience layer; a pyarrow ``OSError`` becomes :func:`remote_error`'s typed error
    (those in ``passthrough`` are raised as they are, e.g. ``FileNotFoundError`` for callers that expect it)."""
    from .resilience import endpoint_of, retry_call

    def once():
        try:
            return fn()
        except passthrough:
            raise
        except _fs_errors() as e:
            raise remote_error(url, e, source=source, what=what) from e

    return retry_call(once, endpoint=endpoint_of(url), what="object store request")


def _short(msg: str) -> str:
    msg = re.sub(r"\(Request ID: [^)]*\)", "", msg).split(" error_info=")[0].strip()
    return msg.splitlines()[0][:300] if msg else "error"


# -- reading --------------------------------------------------------------------------------------
def expand(spec: str) -> list[tuple[str, int]]:
    """``[(url, size)]`` of an object URL or glob (``*``, ``?``, ``[...]``, ``**``), sorted."""
    import pyarrow.fs as pafs

    scheme, path = split(spec)
    fs = filesystem(scheme)
    if not any(ch in path for ch in "*?["):
        info = _call(spec, lambda: fs.get_file_info(path), source=True, what="cannot list")
        if info.type == pafs.FileType.NotFound:
            _check_bucket(spec, fs, path)
            raise SourceError(f"{spec}: no such object", retryable=False)
        if info.type != pafs.FileType.File:
            raise SourceError(f"{spec}: is a prefix, not an object (use a glob like {spec.rstrip('/')}/*.csv)")
        return [(spec, info.size)]
    first = re.search(r"[*?\[]", path).start()
    base = path[:first].rsplit("/", 1)[0]
    selector = pafs.FileSelector(base, recursive="/" in path[first:] or "**" in path, allow_not_found=True)
    infos = _call(spec, lambda: fs.get_file_info(selector), source=True, what="cannot list")
    rx = re.compile(_glob_regex(path))
    hits = sorted((url_of(scheme, i.path), i.size) for i in infos
                  if i.type == pafs.FileType.File and rx.match(i.path) and not _hidden(i.path))
    if not hits:
        _check_bucket(spec, fs, path)
        raise SourceError(f"{spec}: no object matches this pattern")
    return hits


def _check_bucket(spec: str, fs, path: str) -> None:
    """Nothing found at ``spec``: a SourceError naming the bucket when it is the bucket that is missing."""
    import pyarrow.fs as pafs

    bucket = path.split("/", 1)[0]
    info = _call(spec, lambda: fs.get_file_info(bucket), source=True, what="cannot list")
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"{spec}: bucket {bucket!r} does not exist", retryable=False)


def _hidden(path: str) -> bool:
    """Staging areas, manifests and temporary objects (names starting with ``_`` or ``.``)."""
    return any(p[:1] in ("_", ".") for p in path.split("/")[1:])


def _glob_regex(pattern: str) -> str:
    parts = re.split(r"(\*\*/?)", pattern)
    out = ""
    for p in parts:
        if p in ("**", "**/"):
            out += "(?:.*/)?" if p == "**/" else ".*"
        else:
            out += fnmatch.translate(p).replace(r"\Z", "").replace("(?s:", "(?:").replace(".*", "[^/]*")
    return out + r"\Z"


class RemoteReader(io.RawIOBase):
    """``readinto`` over an object's input stream; failures become typed errors."""

    def __init__(self, url: str) -> None:
        fs, path = fs_and_path(url)
        self.name = url
        self._f = _call(url, lambda: fs.open_input_stream(path, compression=None), source=True, what="cannot open")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        """Fill ``b`` (short only at the end of the object: samples and blocks rely on it)."""
        view = memoryview(b).cast("B")
        got = 0
        try:
            while got < len(view):
                k = self._f.readinto(view[got:])
                if not k:
                    break
                got += k
        except _fs_errors() as e:
            raise remote_error(self.name, e, source=True, what="read failed") from e
        return got

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


# -- writing --------------------------------------------------------------------------------------
S3_COPY_LIMIT = 5 * 1024**3  # the largest object one S3 CopyObject request copies


def s3_copy_limit() -> int:
    """Objects above this are copied in parts (``NEBULA_S3_COPY_LIMIT`` lowers it, for tests)."""
    return int(os.environ.get("NEBULA_S3_COPY_LIMIT") or S3_COPY_LIMIT)


def _s3_copy_in_parts(src_key: str, dst_key: str, size: int) -> None:
    """Server-side copy of an S3 object too large for one CopyObject (pyarrow's ``copy_file`` makes
    only that one request): a multipart upload of UploadPartCopy ranges, by boto3's managed copy,
    configured from the same environment variables as pyarrow's S3 filesystem. The final key appears
    when the upload completes, all at once, as with a single copy."""
    try:
        import boto3
        from boto3.s3.transfer import TransferConfig
    except ImportError as e:
        raise ConfigError(f"an S3 object of {size:,} bytes is over the {s3_copy_limit():,}-byte limit of a single "
                          "server-side copy: committing it needs boto3 (pip install 'nebula[s3]')") from e
    host, proto = _endpoint(("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    client = boto3.client("s3", endpoint_url=f"{proto or 'https'}://{host}" if host else None,
                          region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    part = max(8 << 20, -(-size // 9000))  # S3 allows 10,000 parts; at least 8 MiB each
    sb, _, sk = src_key.partition("/")
    db, _, dk = dst_key.partition("/")
    try:
        client.copy({"Bucket": sb, "Key": sk}, db, dk,
                    Config=TransferConfig(multipart_threshold=1, multipart_chunksize=part, max_concurrency=4))
    except Exception as e:  # botocore's errors are not OSError: name the failure the same way
        raise OSError(f"multipart copy of {size:,} bytes failed: {e}") from e
    log.info("committed %s by a multipart copy (%d bytes in parts of %d)", dst_key, size, part)


def copy_object(fs, url: str, src_key: str, dst_key: str) -> None:
    """Server-side copy on the store of ``url``; on S3 in parts when the object is over the single-copy limit."""
    if split(url)[0] == "s3":
        size = fs.get_file_info(src_key).size or 0
        if size > s3_copy_limit():
            _s3_copy_in_parts(src_key, dst_key, size)
            return
    fs.copy_file(src_key, dst_key)


class RemoteAtomicFile:
    """An object written under a temporary key and copied onto its final key on :meth:`commit`
    (``direct=True``: written to its key, for callers that stage and publish themselves).

    S3 has no rename, and a pyarrow output stream *completes* its multipart upload when it is closed
    or garbage-collected, so the multipart completion cannot serve as the commit point of a run that
    may still abort. Instead the upload goes to ``<dir>/.<name>.nebula-tmp-<token>`` (dot-named:
    Hive/Spark readers and our globs skip it; no directory marker is left when it is deleted): a process killed
    mid-upload leaves only an incomplete (invisible) multipart upload; :meth:`commit` closes the stream
    (completing the temporary object), copies it server-side onto the final key (the commit point:
    one PUT-copy, atomic for readers), and deletes the temporary key. :meth:`discard` deletes it.
    """

    def __init__(self, url: str, *, compression: str | None = None, level: int | None = None,
                 keep_existing: bool = False, direct: bool = False) -> None:
        import secrets

        self.path = url
        self.fs, self.key = fs_and_path(url)
        parent, _, name = self.key.rpartition("/")
        self.direct = direct  # the caller stages: upload to the key itself, commit only completes it
        self.temp_key = self.key if direct else f"{parent}/.{name}.nebula-tmp-{secrets.token_hex(6)}"
        self.temp_path = url_of(split(url)[0], self.temp_key)
        self._done = False
        self._raw = None
        self._stream = None
        self.bytes = 0  # bytes that reached the object (after compression), the kept content included
        self.initial_size = 0  # the kept content of an append
        self.stored: int | None = None  # the object's size once finished
        try:
            self._raw = _call(url, lambda: self.fs.open_output_stream(self.temp_key, compression=None), source=False,
                              what="cannot write")
            if keep_existing:
                self._copy_existing()
            self.bytes = self.initial_size = self._raw.tell()
            if compression:
                from ..connectors.destinations._atomic import _compressor

                self._stream = _compressor(self._raw, compression, level)
            else:
                self._stream = self._raw
        except _fs_errors() as e:
            self._cleanup(delete=self._raw is not None)
            raise remote_error(url, e, source=False, what="cannot write") from e
        except NebulaError:
            self._cleanup(delete=self._raw is not None)
            raise
        except BaseException:
            self._cleanup()
            raise

    @property
    def stream(self):
        """The raw (uncompressed-by-us) output stream, for writers that encode themselves."""
        return self._raw

    def _copy_existing(self) -> None:
        try:
            src = self.fs.open_input_stream(self.key, compression=None)
        except FileNotFoundError:
            return
        with src:
            while True:
                buf = src.read(8 << 20)
                if not buf:
                    break
                self._raw.write(buf)

    def write(self, data) -> int:
        """Write ``data``; returns the bytes that reached the object (after compression, so far)."""
        try:
            self._stream.write(data)
            pos = self._raw.tell()
        except _fs_errors() as e:
            raise remote_error(self.path, e, source=False, what="upload failed") from e
        done, self.bytes = pos - self.bytes, pos
        return max(0, done)

    def finish(self) -> None:
        """Complete the temporary object (no final key yet)."""
        try:
            if self._stream is not None and self._stream is not self._raw:
                self._stream.close()
            if self._raw is not None:
                self.stored = self._raw.tell()
                self._raw.close()
        except _fs_errors() as e:
            self._cleanup()
            raise remote_error(self.path, e, source=False, what="upload failed") from e
        self._stream = self._raw = None

    def commit(self) -> None:
        if self._done:
            return
        self.finish()
        if self.direct:
            self._done = True
            return
        try:  # a server-side copy: repeating it is harmless, so it is retried in place
            if split(self.path)[0] == "s3" and (self.stored or 0) > s3_copy_limit():
                _call(self.path, lambda: _s3_copy_in_parts(self.temp_key, self.key, self.stored), source=False,
                      what="cannot commit")
            else:
                _call(self.path, lambda: self.fs.copy_file(self.temp_key, self.key), source=False,
                      what="cannot commit")
        except NebulaError as e:
            self._cleanup()
            if e.retryable:  # a lost answer: the copy may have landed
                e.commit_unknown = True
            raise
        self._cleanup()

    def discard(self) -> None:
        self._cleanup()

    def _cleanup(self, delete: bool = True) -> None:
        if self._done:
            return
        self._done = True
        for f in (self._stream, self._raw):
            try:
                if f is not None and not f.closed:
                    f.close()  # pyarrow has no abort: the temp object is completed, then deleted
            except Exception:  # noqa: BLE001 - discarding
                pass
        self._stream = self._raw = None
        if delete:
            try:
                self.fs.delete_file(self.temp_key)
            except Exception:  # noqa: BLE001 - best effort; the _staging prefix is never read
                pass


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole small object (one PUT: repeating it is harmless, so it is retried)."""
    fs, path = fs_and_path(url)

    def put() -> None:
        with fs.open_output_stream(path, compression=None) as f:
            f.write(data)

    _call(url, put, source=False, what="cannot write")


def read_bytes(url: str) -> bytes | None:
    """A whole small object, or None when it does not exist."""
    fs, path = fs_and_path(url)

    def get() -> bytes:
        with fs.open_input_stream(path, compression=None) as f:
            return f.read()

    try:
        return _call(url, get, source=False, what="cannot read", passthrough=(FileNotFoundError,))
    except FileNotFoundError:
        return None


def check_writable(url: str) -> None:
    """Write and delete a small dot-named probe object beside ``url`` (for ``nebula check``)."""
    import secrets

    scheme, path = split(url)
    parent = path.rstrip("/") if url.endswith("/") else path.rpartition("/")[0] or path
    probe = url_of(scheme, f"{parent}/.nebula-check-{secrets.token_hex(4)}")
    write_bytes(probe, b"")
    fs, key = fs_and_path(probe)
    _call(url, lambda: fs.delete_file(key), source=False, what="cannot delete a probe object")
