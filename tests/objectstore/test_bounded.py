"""A large upload is streamed: multipart in parts of bounded size, and the process's peak memory does not
grow with the output (a .csv.zst input, decompressed as a stream, to a plain CSV object on moto's S3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import zstandard

from .._proxy import Conn, FaultProxy
from .test_kill import NEBULA

BLOCK_ROWS = 100_000
_BLOCK = "".join(f"{i},de,{i % 1000}.25,2024-01-{10 + i % 18} 12:00:00,note {i} padding padding padding\n"
                 for i in range(BLOCK_ROWS)).encode()
HEADER = b"id,country,amount,ts,note\n"

# the peak RSS (KiB) of the command it runs, printed on stderr; the command's stdout is dropped
_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")


def _input(path, blocks: int) -> int:
    """A .csv.zst of ``blocks`` x 100k rows; returns the uncompressed size."""
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f) as w:
        w.write(HEADER)
        for _ in range(blocks):
            w.write(_BLOCK)
    return len(HEADER) + blocks * len(_BLOCK)


class PartRecorder(FaultProxy):
    """The loopback proxy (tests/_proxy.py) in front of moto, recording each S3 UploadPart's size."""

    _PART = re.compile(rb"PUT /\S*[?&]partNumber=(\d+)\S* HTTP/1\.1\r\n((?:[^\r\n]*\r\n){0,60}?)\r\n")

    def __init__(self, upstream_port: int) -> None:
        self.parts: dict[int, int] = {}
        self.lock = threading.Lock()
        super().__init__(upstream_port, tap=self._scan)

    def _scan(self, conn: Conn, upstream: bool, data: bytes) -> None:
        if not upstream:
            return
        # request heads may straddle two reads: scan with the previous tail
        buf = conn.memo.get("tail", b"") + data
        for m in self._PART.finditer(buf):
            n = re.search(rb"(?im)^(?:x-amz-decoded-content-length|content-length): (\d+)", m.group(2))
            with self.lock:
                self.parts[int(m.group(1))] = int(n.group(1)) if n else -1
        conn.memo["tail"] = buf[-8192:]


def _copy_rss(src, dest, tmp_path, env) -> int:
    r = subprocess.run([sys.executable, "-c", _RSS, *NEBULA, "copy", str(src), dest, "--no-progress", "--state",
                        str(tmp_path / "s.db")], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(re.search(r"maxrss (\d+)", r.stderr).group(1)) * 1024


def test_large_upload_is_multipart_and_memory_does_not_grow_with_the_output(s3, moto_endpoint, tmp_path):
    small, large = tmp_path / "small.csv.zst", tmp_path / "large.csv.zst"
    small_size, large_size = _input(small, 3), _input(large, 24)  # ~26 MB and ~210 MB of CSV
    env = dict(os.environ)
    rss_small = _copy_rss(small, s3.url("small.csv"), tmp_path, env)
    proxy = PartRecorder(int(moto_endpoint.rsplit(":", 1)[1]))
    try:
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{proxy.port}"
        rss_large = _copy_rss(large, s3.url("large.csv"), tmp_path, env)
    finally:
        proxy.stop()
    # the object is whole and was uploaded in parts of bounded size (never one request with the output)
    info = s3.fs.get_file_info(f"{s3.bucket}/large.csv")
    assert info.size == large_size and s3.fs.get_file_info(f"{s3.bucket}/small.csv").size == small_size
    parts = dict(sorted(proxy.parts.items()))
    assert len(parts) >= 10 and list(parts) == list(range(1, len(parts) + 1)), parts
    assert max(parts.values()) <= 16 << 20 and sum(parts.values()) == large_size, parts
    # 8x the output (and the input), about the same peak memory: nothing holds the whole stream
    grew = rss_large - rss_small
    assert grew < 64 << 20, (f"peak RSS grew by {grew >> 20} MiB for {(large_size - small_size) >> 20} MiB more "
                             f"output ({rss_small >> 20} -> {rss_large >> 20} MiB)")
