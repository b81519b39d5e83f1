"""Real faults between Nebula and the S3 emulator (moto server): the loopback fault proxy delays traffic and
cuts uploads mid-way. pyarrow's own request retries are off (NEBULA_FS_RETRIES=1), so what saves the run
is the resilience layer: the run is repeated from its last checkpoint."""

from __future__ import annotations

import pytest

import nebula
from nebula import metrics
from nebula.connectors.resilience import endpoint_of
from nebula.errors import CircuitOpenError, ConnectionFailed

from .._proxy import FaultProxy

ROWS = 4000


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("s3fault") / "events.csv"
    lines = ["id,kind,value,comment"]
    lines += [f"{i},k{i % 13},{i * 31 % 9973},\"comment {i}, quoted\"" for i in range(ROWS)]
    p.write_text("\n".join(lines) + "\n")  # ~150 kB
    return p


@pytest.fixture
def proxied(s3, moto_endpoint, monkeypatch):
    """The ``s3`` bucket, reached through a fault proxy in front of moto."""
    with FaultProxy(int(moto_endpoint.rsplit(":", 1)[1])) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NEBULA_FS_RETRIES", "1")
        yield proxy


def retries(url: str) -> float:
    return metrics.sample("nebula_retries_total", {"endpoint": endpoint_of(url), "error": "ConnectionFailed"}) or 0.0


def back(s3, key: str, monkeypatch, moto_endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return nebula.read_csv(s3.url(key))


@pytest.mark.parametrize(("key", "cut"), [("out/events.csv", 15_000), ("out/events.parquet", 2_000)])
def test_upload_cut_twice_with_delays_finishes_with_exactly_the_input(s3, proxied, csv_file, key, cut, monkeypatch,
                                                                      moto_endpoint):
    url = s3.url(key)
    before = retries(url)
    proxied.delay = 0.002
    proxied.cut_after(cut, times=2)  # the upload's connection (~175 kB of CSV, ~4 kB of Parquet), twice
    r = nebula.copy(str(csv_file), url, resilience={"retries": 4, "backoff_initial": 0.05})
    assert r.rows_written == ROWS and proxied.cuts == 2
    assert retries(url) == before + 2
    assert s3.keys("out/") == [key]  # the cut attempts left no temporary object behind
    got = back(s3, key, monkeypatch, moto_endpoint) if key.endswith(".csv") else _parquet(s3, key)
    assert got.equals(nebula.read_csv(str(csv_file)))


def _parquet(s3, key):
    import io

    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(s3.get(key)))


def test_without_retries_the_cut_is_a_retryable_error_and_nothing_is_left(s3, proxied, csv_file):
    proxied.cut_after(40_000)
    with pytest.raises(ConnectionFailed) as e:
        nebula.copy(str(csv_file), s3.url("out/x.csv"), resilience={"retries": 0})
    assert e.value.retryable and proxied.cuts == 1
    assert s3.keys("out/") == []


def test_refusing_store_opens_the_breaker_naming_the_bucket(s3, proxied, csv_file):
    url = s3.url("out/y.csv")
    ep = endpoint_of(url)
    proxied.refuse()
    with pytest.raises(CircuitOpenError) as e:
        nebula.copy(str(csv_file), url, resilience={"retries": 6, "backoff_initial": 0.02, "breaker_failures": 2})
    assert ep in str(e.value) and s3.bucket in str(e.value)
    assert metrics.sample("nebula_circuit_transitions_total", {"endpoint": ep, "state": "open"}) >= 1
