"""Fixtures of the resilience tests: a clean breaker/limiter registry per test, and the throwaway
PostgreSQL and S3 (moto) servers of tests/pg and tests/objectstore."""

from __future__ import annotations

import pytest

from tests.objectstore.conftest import moto_endpoint, s3  # noqa: F401  (fixtures)
from tests.pg.conftest import pg, pg_dsn, pg_server, table  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _fresh_breakers():
    from nebula.connectors import resilience

    resilience.reset()
    yield
    resilience.reset()
