"""Throwaway object stores on loopback: moto's S3 server and a GCS emulator, one per session.

Each test gets a fresh bucket. A missing emulator fails loudly with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

INSTALL = "pip install 'moto[server]' gcp-storage-emulator   (or: pip install -e '.[dev]')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    path = here if os.path.exists(here) else shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed; the object-store tests need it: {INSTALL}", pytrace=False)
    return path


def _wait(port: int, proc: subprocess.Popen, name: str, log: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}); log: {open(log).read()[-2000:]}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port} within 30 s", pytrace=False)


def start_server(argv: list[str], port: int, name: str, tmp, env=None) -> subprocess.Popen:
    log = os.path.join(str(tmp), f"{name}-{port}.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
    _wait(port, proc, name, log)
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    proc = start_server([_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, "moto_server",
                        tmp_path_factory.mktemp("moto"))
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory):
    port = free_port()
    proc = start_server([_tool("gcp-storage-emulator"), "start", "--host=127.0.0.1", f"--port={port}",
                         "--in-memory"], port, "gcp-storage-emulator", tmp_path_factory.mktemp("gcs"))
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


class Store:
    """A fresh bucket on one emulator: ``url(key)``, ``put``, ``get``, ``keys``."""

    def __init__(self, scheme: str, fs, bucket: str) -> None:
        self.scheme, self.fs, self.bucket = scheme, fs, bucket

    def url(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.bucket}/{key}", compression=None) as f:
            f.write(data)

    def get(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.bucket}/{key}", compression=None) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(f"{self.bucket}/{key}").type == pafs.FileType.File

    def keys(self, prefix: str = "") -> list[str]:
        """Every object (not directory markers) under ``prefix``, relative to the bucket."""
        import pyarrow.fs as pafs

        base = f"{self.bucket}/{prefix}".rstrip("/")
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        n = len(self.bucket) + 1
        return sorted(i.path[n:] for i in infos if i.type == pafs.FileType.File)


def s3_env(endpoint: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("NEBULA_FS_RETRIES", "3")


def make_s3(endpoint: str, **kw):
    import pyarrow.fs as pafs

    host = endpoint.split("://", 1)[1]
    return pafs.S3FileSystem(access_key=kw.get("access_key", "testing"), secret_key=kw.get("secret_key", "testing"),
                             region="us-east-1", endpoint_override=host, scheme="http", allow_bucket_creation=True)


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    s3_env(moto_endpoint, monkeypatch)
    fs = make_s3(moto_endpoint)
    bucket = "nb-" + uuid.uuid4().hex[:12]
    fs.create_dir(bucket)
    return Store("s3", fs, bucket)


@pytest.fixture
def gs(gcs_endpoint, monkeypatch):
    import pyarrow.fs as pafs

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    monkeypatch.setenv("NEBULA_FS_RETRIES", "2")
    fs = pafs.GcsFileSystem(anonymous=True, project_id="test", endpoint_override=gcs_endpoint.split("://", 1)[1],
                            scheme="http")
    bucket = "nb-" + uuid.uuid4().hex[:12]
    fs.create_dir(bucket)
    return Store("gs", fs, bucket)


@pytest.fixture(params=["s3", "gs"])
def store(request):
    return request.getfixturevalue(request.param)
