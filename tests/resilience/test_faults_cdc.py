"""PostgreSQL change data capture through the fault proxy: every connection (catalog, snapshot, replication) is
reset while a backlog streams; the stream reconnects through the resilience layer from the last handed-over
transaction, and the change log holds every change exactly once."""

from __future__ import annotations

import sqlite3
import threading
import time

import nebula
from nebula import metrics
from nebula.connectors.resilience import endpoint_of
from tests.pg_cdc.conftest import cdc_server, src_db  # noqa: F401  (fixtures)

from .._proxy import FaultProxy

BACKLOG = 1500


def retries(ep: str) -> float:
    kinds = ("OperationalError", "SourceError", "ConnectionFailed")  # how a cut shows, depending on the moment
    return sum(metrics.sample("nebula_retries_total", {"endpoint": ep, "error": k}) or 0 for k in kinds)


def test_cdc_stream_survives_dropped_connections_exactly_once(src_db, cdc_server, tmp_path):  # noqa: F811
    import psycopg

    dsn, c = src_db
    c.execute("CREATE TABLE orders (id int PRIMARY KEY, qty int)")
    c.execute("INSERT INTO orders SELECT g, 1 FROM generate_series(1, 10) g")
    with FaultProxy(cdc_server.port) as proxy:
        url = dsn.replace(f":{cdc_server.port}/", f":{proxy.port}/")
        ep = endpoint_of(url)
        before = retries(ep)
        db = tmp_path / "log.db"
        opts = {"cdc": True, "until_caught_up": True, "state": str(tmp_path / "s.db"), "tables": "orders",
                "mode": "append", "resilience": {"retries": 6, "backoff_initial": 0.05}}
        nebula.copy(url, f"sqlite:///{db}", **opts)  # the snapshot; the slot is in place
        with psycopg.connect(dsn) as w:  # a backlog of one-row transactions, written directly
            for i in range(BACKLOG):
                w.execute("INSERT INTO orders VALUES (%s, 2)", (1000 + i,))
                w.commit()
        c.execute("SELECT pg_logical_emit_message(true, 'nebula', 'END')")
        drops = []

        def dropper():
            deadline = time.monotonic() + 20
            seen, need = proxy.accepted, 2  # catalog + replication connections, then the replication reconnect
            while len(drops) < 2 and time.monotonic() < deadline:
                if proxy.accepted >= seen + need:  # the stream is up again: cut every connection mid-stream
                    time.sleep(0.1)
                    drops.append(proxy.drop_all())
                    seen, need = proxy.accepted, 1
                time.sleep(0.005)

        proxy.delay = 0.003  # a slow network: the backlog streams for a while
        t = threading.Thread(target=dropper)
        t.start()
        r = nebula.copy(url, f"sqlite:///{db}", max_changes=100, **opts)
        t.join()
    assert len(drops) == 2 and all(drops), drops
    assert any("connection lost" in w for w in r.warnings), r.warnings
    with sqlite3.connect(db) as s:
        ids = [x[0] for x in s.execute("SELECT id FROM orders WHERE _op = 'c'").fetchall()]
    assert sorted(ids) == list(range(1000, 1000 + BACKLOG))
    # one reconnection per cut at most; a cut landing between two rounds (the stream's connection already
    # closed, the next round opens a new one anyway) needs none, which a loaded machine makes happen
    reconnections = retries(ep) - before
    assert reconnections in (1, 2), reconnections
