"""A throwaway PostgreSQL server with ``wal_level=logical`` for the CDC tests (one per session)."""

from __future__ import annotations

import itertools

import pytest

from .._servers import started
from ..pg._server import PgServer

_names = itertools.count()


@pytest.fixture(scope="session")
def cdc_server():
    srv = started(lambda: PgServer(wal_level="logical"), "PostgreSQL")
    yield srv
    srv.stop()


@pytest.fixture
def src_db(cdc_server):
    """A fresh database of its own per test: ``(dsn, autocommit connection)``; its slots are dropped after."""
    import psycopg

    name = f"cdc_{next(_names)}"
    with psycopg.connect(cdc_server.dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    dsn = f"postgresql://postgres@127.0.0.1:{cdc_server.port}/{name}"
    conn = psycopg.connect(dsn, autocommit=True)
    yield dsn, conn
    conn.close()
    with psycopg.connect(cdc_server.dsn, autocommit=True) as c:
        for (slot,) in c.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)).fetchall():
            c.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = %s "
                      "AND active_pid IS NOT NULL", (slot,))
            for _ in range(50):
                try:
                    c.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    break
                except psycopg.errors.ObjectInUse:
                    import time

                    time.sleep(0.1)


from ..pg.conftest import pg_dsn, pg_server  # noqa: E402, F401 - a wal_level=replica server for the error test
