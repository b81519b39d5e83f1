"""Fixtures of the observability tests: generated orders files, throwaway servers borrowed from other suites."""

from __future__ import annotations

import pytest

from ..mysql.conftest import db, maria  # noqa: F401 - a throwaway MariaDB (binlog CDC)
from ..pg.conftest import pg, pg_dsn, pg_server  # noqa: F401 - a throwaway PostgreSQL
from ..pg_cdc.conftest import cdc_server, src_db  # noqa: F401 - one with wal_level=logical


@pytest.fixture(scope="session")
def orders_csv(tmp_path_factory):
    """30,000 generated orders (about 2.4 MB of CSV)."""
    from nebula.sample import generate

    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    generate(path, 30_000)
    return path


@pytest.fixture(scope="session")
def big_orders_csv(tmp_path_factory):
    """1.2 M generated orders (about 96 MB): a copy that runs for seconds, to scrape while it runs."""
    from nebula.sample import generate

    path = tmp_path_factory.mktemp("big") / "orders.csv"
    generate(path, 1_200_000)
    return path
