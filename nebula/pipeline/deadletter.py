"""Rejected rows: the fail / skip / dead-letter policy, and the dead-letter file.

A dead-letter file is JSON lines, one object per rejected row::

    {"run_id": ..., "source": "data/orders.csv", "line": 17, "column": "qty", "offset": 1234,
     "reason": "cannot read 'abc' as int32", "raw": "17,42,abc,...", "raw_base64": null}

``raw`` is the record's text (UTF-8, invalid bytes replaced); when the bytes were not valid UTF-8,
``raw_base64`` holds them exactly. The file is written to a temporary name and renamed when the run
ends (successful or not), so a reader never sees half a line.
"""

from __future__ import annotations

import base64
import json
import os
import threading

from ..errors import DataError, DestinationError


class Rejects:
    """Thread-safe sink for rejected rows under one policy."""

    def __init__(self, policy: str = "fail", path: str | None = None, *, run_id: str = "",
                 source: str = "") -> None:
        if policy not in ("fail", "skip", "dead-letter"):
            raise ValueError(policy)
        self.policy = policy
        self.path = path if policy == "dead-letter" else None
        self.run_id = run_id
        self.source = source
        self.count = 0
        self._lock = threading.Lock()
        self._fh = None
        self._tmp = None

    @property
    def location(self) -> str | None:
        return self.path if self.path and self.count else None

    def reject(self, *, reason: str, line: int | None, column, offset: int | None, raw: bytes,
               path: str | None = None) -> None:
        if self.policy == "fail":
            raise DataError(reason, path=path or self.source, line=line, column=column, offset=offset, raw=raw)
        with self._lock:
            self.count += 1
            if self.path is None:
                return
            if self._fh is None:
                self._open()
            try:
                text = raw.decode("utf-8")
                b64 = None
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                b64 = base64.b64encode(raw).decode()
            rec = {"run_id": self.run_id, "source": path or self.source, "line": line, "column": column,
                   "offset": offset, "reason": reason, "raw": text, "raw_base64": b64}
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def _open(self) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
            self._tmp = os.path.join(d, f".{os.path.basename(self.path)}.nebula-tmp-{os.getpid()}")
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise DestinationError(f"{self.path}: cannot write the dead-letter file: {e.strerror or e}") from e

    def flush(self) -> None:
        """Close and publish the dead-letter file (idempotent)."""
        with self._lock:
            if self._fh is None:
                return
            self._fh.close()
            self._fh = None
            try:
                if os.path.exists(self.path):
                    with open(self.path, "a", encoding="utf-8") as out, open(self._tmp, encoding="utf-8") as src:
                        out.write(src.read())
                    os.unlink(self._tmp)
                else:
                    os.replace(self._tmp, self.path)
            except OSError as e:
                raise DestinationError(f"{self.path}: cannot write the dead-letter file: {e.strerror or e}") from e
