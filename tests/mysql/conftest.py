"""A throwaway MariaDB per test session (binlog ROW/FULL/FULL), and a fresh database per test."""

from __future__ import annotations

import itertools

import pytest

from .._servers import started
from ._server import MariaDbServer

_names = itertools.count()


@pytest.fixture(scope="session")
def maria():
    srv = started(lambda: MariaDbServer(), "MariaDB")
    yield srv
    srv.stop()


@pytest.fixture
def db(maria, request):
    """``(dsn, root connection)`` for a database of its own (tables named freely)."""
    name = f"d{next(_names)}_{request.node.name[:20]}".lower().replace("[", "_").replace("]", "").replace("-", "_")
    c = maria.root(None)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    c.select_db(name)
    yield maria.dsn.rsplit("/", 1)[0] + "/" + name, c
    c.close()
