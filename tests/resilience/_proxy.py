"""A loopback TCP fault proxy for tests: forwards 127.0.0.1:<port> to an upstream port and injects faults.

- ``delay``: seconds added before every forwarded chunk (both directions);
- :meth:`drop_all`: reset every open connection now;
- :meth:`refuse`: reset new connections as soon as they are accepted, for N seconds (or until
  :meth:`accept_again`);
- :meth:`cut_after`: the next ``times`` connection(s) that send more than N bytes upstream are reset at
  exactly that byte.

Counters: ``accepted``, ``refused``, ``cuts``, ``drops`` (connections reset by :meth:`drop_all`).
A reset (SO_LINGER 0) is what a client sees when a network path or a middlebox dies mid-conversation.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


def _reset(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class _Pair:
    __slots__ = ("client", "upstream", "sent", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream, self.sent, self.closed = client, upstream, 0, False


class FaultProxy:
    """Start on construction; :meth:`stop` (or ``with``) ends it. ``port`` is where clients connect."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.accepted = self.refused = self.cuts = self.drops = 0
        self._refuse_until = 0.0
        self._cut_at: int | None = None
        self._cuts_left = 0
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(128)
        self.port = self._srv.getsockname()[1]
        self._running = True
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    # -- faults -----------------------------------------------------------------------------------
    def refuse(self, seconds: float = 3600.0) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds

    def accept_again(self) -> None:
        with self._lock:
            self._refuse_until = 0.0

    def cut_after(self, nbytes: int, times: int = 1) -> None:
        with self._lock:
            self._cut_at, self._cuts_left = int(nbytes), int(times)

    def drop_all(self) -> int:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.drops += len(pairs)
        for p in pairs:
            self._close(p)
        return len(pairs)

    # -- plumbing ---------------------------------------------------------------------------------
    def _accept(self) -> None:
        while self._running:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                refusing = time.monotonic() < self._refuse_until
                if refusing:
                    self.refused += 1
            if refusing:
                _reset(c)
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=5)
                u.settimeout(None)
            except OSError:
                _reset(c)
                continue
            p = _Pair(c, u)
            with self._lock:
                self.accepted += 1
                self._pairs.append(p)
            threading.Thread(target=self._pump, args=(p, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(p, False), daemon=True).start()

    def _pump(self, p: _Pair, up: bool) -> None:
        src, dst = (p.client, p.upstream) if up else (p.upstream, p.client)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                if up:
                    with self._lock:
                        cut = self._cut_at is not None and self._cuts_left > 0 and p.sent + len(data) > self._cut_at
                        keep = self._cut_at - p.sent if cut else len(data)
                        if cut:
                            self._cuts_left -= 1
                            self.cuts += 1
                        p.sent += keep
                    if cut:
                        if keep > 0:
                            dst.sendall(data[:keep])
                        break
                dst.sendall(data)
        except OSError:
            pass
        self._close(p)

    def _close(self, p: _Pair) -> None:
        with self._lock:
            if p.closed:
                return
            p.closed = True
            if p in self._pairs:
                self._pairs.remove(p)
        for s in (p.client, p.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            _reset(s)

    def stop(self) -> None:
        self._running = False
        try:
            self._srv.close()
        except OSError:
            pass
        self.drop_all()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
