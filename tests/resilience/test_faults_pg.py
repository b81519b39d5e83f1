"""Real faults between Nebula and a real PostgreSQL: a loopback fault proxy (tests/_proxy.py) cuts
the connection mid-COPY, or refuses connections until the circuit breaker opens."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import pytest

import nebula
from nebula import metrics
from nebula.connectors.resilience import endpoint_of
from nebula.errors import CircuitOpenError

from .._proxy import FaultProxy

ROWS = 5000


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("pgfault") / "orders.csv"
    lines = ["id,customer,amount,note"]
    lines += [f"{i},c{i % 97},{i * 7 % 1000}.{i % 100:02d},note number {i} with some text" for i in range(ROWS)]
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def proxy(pg_dsn):
    port = urlsplit(pg_dsn).port
    if port is None:
        pytest.fail("the fault proxy needs a TCP PostgreSQL DSN (host:port)", pytrace=False)
    with FaultProxy(port) as p:
        yield p


def through(dsn: str, proxy: FaultProxy) -> str:
    parts = urlsplit(dsn)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"))


def sample(name: str, **labels) -> float:
    return metrics.sample(name, labels) or 0.0


def check_exact(pg, table: str) -> None:
    n, distinct, total = pg.execute(f'SELECT count(*), count(DISTINCT id), sum(id) FROM "{table}"').fetchone()
    assert (n, distinct, total) == (ROWS, ROWS, ROWS * (ROWS - 1) // 2)


def test_connection_cut_mid_copy_reruns_from_the_checkpoint_exactly(pg, table, csv_file, proxy, pg_dsn):
    url = through(pg_dsn, proxy)
    ep = endpoint_of(url)
    before = sample("nebula_retries_total", endpoint=ep, error="ConnectionFailed")
    proxy.delay = 0.001
    proxy.cut_after(60_000)  # the COPY connection is cut after 60 kB of its ~250 kB
    r = nebula.copy(str(csv_file), url, table=table, batch_rows=500, threads=2,
                    resilience={"retries": 3, "backoff_initial": 0.05, "connect_timeout": 3})
    assert proxy.cuts == 1 and r.rows_written == ROWS
    check_exact(pg, table)
    assert sample("nebula_retries_total", endpoint=ep, error="ConnectionFailed") == before + 1


def test_append_cut_twice_still_exact_and_merge_rerun(pg, table, csv_file, proxy, pg_dsn):
    url = through(pg_dsn, proxy)
    opts = {"table": table, "batch_rows": 500, "resilience": {"retries": 3, "backoff_initial": 0.05}}
    proxy.cut_after(30_000, times=2)
    nebula.copy(str(csv_file), url, mode="append", **opts)
    assert proxy.cuts == 2
    check_exact(pg, table)
    proxy.cut_after(30_000)
    nebula.copy(str(csv_file), url, mode="merge", key="id", **opts)  # same rows again: upserted, not added
    assert proxy.cuts == 3
    check_exact(pg, table)


def test_refusing_endpoint_opens_the_breaker_and_fails_fast_naming_it(pg, table, csv_file, proxy, pg_dsn):
    url = through(pg_dsn, proxy)
    ep = endpoint_of(url)
    pol = {"retries": 8, "backoff_initial": 0.05, "breaker_failures": 3, "breaker_cooldown": 1, "connect_timeout": 2}
    opened = sample("nebula_circuit_transitions_total", endpoint=ep, state="open")
    retried = sample("nebula_retries_total", endpoint=ep, error="ConnectionFailed")
    proxy.refuse()
    t = time.monotonic()
    with pytest.raises(CircuitOpenError) as e:
        nebula.copy(str(csv_file), url, table=table, resilience=pol)
    took = time.monotonic() - t
    msg = str(e.value)
    assert ep in msg and "circuit breaker open after 3 failure(s)" in msg and "\n" not in msg
    assert took < 15 and proxy.refused == 3
    assert sample("nebula_circuit_transitions_total", endpoint=ep, state="open") == opened + 1
    assert sample("nebula_retries_total", endpoint=ep, error="ConnectionFailed") == retried + 2
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 1
    with pytest.raises(CircuitOpenError):  # still open: no connection is even tried
        nebula.copy(str(csv_file), url, table=table, resilience=pol)
    assert proxy.refused == 3
    # the endpoint recovers: after the cool-down one trial call goes through and closes the breaker
    proxy.accept_again()
    time.sleep(1.05)
    r = nebula.copy(str(csv_file), url, table=table, resilience=pol)
    assert r.rows_written == ROWS
    check_exact(pg, table)
    assert sample("nebula_circuit_transitions_total", endpoint=ep, state="half-open") >= 1
    assert sample("nebula_circuit_transitions_total", endpoint=ep, state="closed") >= 1
    assert metrics.sample("nebula_circuit_state", {"endpoint": ep}) == 0
