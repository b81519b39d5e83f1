"""A loopback TCP fault proxy for tests: forwards 127.0.0.1:<port> to 127.0.0.1:<upstream port> and injects
faults (used by tests/resilience and tests/objectstore).

- ``delay``: seconds added before every forwarded chunk (both directions);
- :meth:`drop_all`: reset every open connection now;
- :meth:`drop_all_after`: once N more bytes in total (all connections together) went upstream, reset every
  open connection, once;
- :meth:`refuse`: reset new connections as soon as they are accepted, for N seconds (or until
  :meth:`accept_again`);
- :meth:`cut_after`: the next ``times`` connection(s) that send more than N bytes upstream are reset at
  exactly that byte;
- ``tap``: a callable that sees every chunk on its way, ``tap(conn, upstream, data)`` (``upstream``: client
  -> server). It runs in the connection's pump thread before the chunk is forwarded, outside the proxy's
  lock: the two directions of a connection, and different connections, call it concurrently.
  ``conn.memo`` is a dict for its per-connection state.

Counters: ``accepted``, ``refused``, ``cuts``, ``drops`` (times every open connection was reset, by
:meth:`drop_all` or :meth:`drop_all_after`; :meth:`stop` does not count).
A reset (SO_LINGER 0) is what a client sees when a network path or a middlebox dies mid-conversation.
A connection ends when either side ends it: both of its sockets are then shut down and reset.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

LOOPBACK = "127.0.0.1"
CHUNK = 65536


def _reset(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class Conn:
    """One proxied connection: ``sent`` counts the bytes forwarded upstream; ``memo`` belongs to the tap."""

    __slots__ = ("client", "upstream", "sent", "closed", "memo")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream, self.sent, self.closed = client, upstream, 0, False
        self.memo: dict[str, Any] = {}


Tap = Callable[[Conn, bool, bytes], None]


class FaultProxy:
    """Start on construction; :meth:`stop` (or ``with``) ends it. ``port`` is where clients connect."""

    def __init__(self, upstream_port: int, *, tap: Tap | None = None) -> None:
        self.upstream = (LOOPBACK, upstream_port)
        self.tap = tap
        self.delay = 0.0
        self.accepted = self.refused = self.cuts = self.drops = 0
        self._refuse_until = 0.0
        self._cut_at: int | None = None
        self._cuts_left = 0
        self._sent = 0  # bytes forwarded upstream, all connections
        self._drop_at: int | None = None  # drop every connection when _sent reaches it
        self._lock = threading.Lock()
        self._conns: list[Conn] = []
        self._running = True
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((LOOPBACK, 0))
        self._srv.listen(128)
        self.port = self._srv.getsockname()[1]
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
        """Reset every open connection; returns how many there were."""
        with self._lock:
            self.drops += 1
        return self._reset_all()

    def drop_all_after(self, nbytes: int) -> None:
        """Once ``nbytes`` more bytes went upstream (all connections together), forward up to exactly that
        byte and reset every open connection; once."""
        with self._lock:
            self._drop_at = self._sent + int(nbytes)

    # -- plumbing ---------------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                c, _ = self._srv.accept()
            except OSError:  # stop()
                return
            with self._lock:
                refusing = self._running and time.monotonic() < self._refuse_until
                if refusing:
                    self.refused += 1
            if refusing or not self._running:
                _reset(c)
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=5)
                u.settimeout(None)
            except OSError:
                _reset(c)
                continue
            p = Conn(c, u)
            with self._lock:
                running = self._running
                if running:
                    self.accepted += 1
                    self._conns.append(p)
            if not running:  # stop() came while connecting: it did not see this one
                _reset(c)
                _reset(u)
                return
            threading.Thread(target=self._pump, args=(p, True), name="fault-proxy-up", daemon=True).start()
            threading.Thread(target=self._pump, args=(p, False), name="fault-proxy-down", daemon=True).start()

    def _admit(self, p: Conn, n: int) -> tuple[int, bool, bool]:
        """Under the lock: how many of the next ``n`` upstream bytes of ``p`` go through, whether ``p`` is
        then cut (:meth:`cut_after`) and whether every connection is then dropped (:meth:`drop_all_after`)."""
        cut_pos = self._cut_at - p.sent if self._cut_at is not None and self._cuts_left > 0 else n
        drop_pos = self._drop_at - self._sent if self._drop_at is not None else n + 1
        cut = cut_pos < n and cut_pos <= drop_pos  # more than N bytes on this connection
        drop = drop_pos <= n and drop_pos <= cut_pos  # N bytes in all (a cut before it stops them short)
        keep = max(0, min(n, cut_pos, drop_pos))
        p.sent += keep
        self._sent += keep
        if cut:
            self._cuts_left -= 1
            self.cuts += 1
        if drop:
            self._drop_at = None
            self.drops += 1
        return keep, cut, drop

    def _pump(self, p: Conn, up: bool) -> None:
        src, dst = (p.client, p.upstream) if up else (p.upstream, p.client)
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                cut = drop = False
                if up:
                    with self._lock:
                        keep, cut, drop = self._admit(p, len(data))
                    if keep < len(data):
                        data = data[:keep]
                if data:
                    if self.tap is not None:
                        self.tap(p, up, data)
                    dst.sendall(data)
                if drop:
                    self._reset_all()
                if cut or drop:
                    break
        except OSError:
            pass
        finally:
            self._close(p)

    def _close(self, p: Conn) -> None:
        with self._lock:
            if p.closed:
                return
            p.closed = True
            if p in self._conns:
                self._conns.remove(p)
        for s in (p.client, p.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            _reset(s)

    def _reset_all(self) -> int:
        with self._lock:
            conns, self._conns = self._conns, []
        for p in conns:
            self._close(p)
        return len(conns)

    def stop(self) -> None:
        with self._lock:
            self._running = False
        try:  # a close alone leaves a blocked accept() running (and the port listening) on Linux
            self._srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._srv.close()
        self._reset_all()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
