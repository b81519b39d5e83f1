"""A throwaway PostgreSQL server per test session, or ``NEBULA_TEST_PG_DSN`` when it is set."""

from __future__ import annotations

import itertools
import os

import pytest

from .._servers import started
from ._server import PgServer

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """The started :class:`PgServer`, or None when ``NEBULA_TEST_PG_DSN`` points at an existing server."""
    if os.environ.get("NEBULA_TEST_PG_DSN"):
        yield None
        return
    srv = started(lambda: PgServer(), "PostgreSQL")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_dsn(pg_server) -> str:
    return os.environ.get("NEBULA_TEST_PG_DSN") or pg_server.dsn


@pytest.fixture
def table(request) -> str:
    """A table name unique to this test (and this xdist worker)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "w")
    return f"t_{request.node.name[:30].replace('[', '_').replace(']', '').replace('-', '_')}_{worker}_{next(_names)}".lower()


@pytest.fixture
def pg(pg_dsn):
    """An autocommit psycopg connection for checking what was loaded."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c
