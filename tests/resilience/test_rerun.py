"""The rules of nebula.copy's run-level rerun (its docstring), with destinations that fail on purpose: an
in-memory destination (real Destination implementation) whose write or commit raises a connection error."""

from __future__ import annotations

import json

import pytest

import nebula
from nebula import metrics
from nebula.connectors.base import Capabilities
from nebula.connectors.destinations.memory import MemoryDestination
from nebula.errors import ConnectionFailed, DestinationError

ROWS = 3000
FAST = {"retries": 3, "backoff_initial": 0.01}


class Flaky(MemoryDestination):
    """Collects rows like MemoryDestination; fails the first ``fail_writes`` runs at their 2nd batch, or the
    first ``fail_commits`` commits (``commit_unknown``: the answer was lost, the outcome unknown)."""

    capabilities = Capabilities(modes=("append", "replace"), exactly_once=True)

    def __init__(self, *, fail_writes: int = 0, fail_commits: int = 0, retryable: bool = True) -> None:
        super().__init__()
        self.fail_writes, self.fail_commits, self.retryable = fail_writes, fail_commits, retryable
        self.opens = self.batches = 0

    def open(self, schema, **kw) -> None:
        super().open(schema, **kw)
        self.opens += 1
        self.batches = 0

    def write(self, batch) -> int:
        self.batches += 1
        if self.batches == 2 and self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionFailed("memory://flaky: connection reset mid-load", retryable=self.retryable)
        return super().write(batch)

    def commit(self) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            self._pending = []
            e = ConnectionFailed("memory://flaky: lost the answer to COMMIT")
            e.commit_unknown = True
            raise e
        super().commit()


class ThirdParty(Flaky):
    capabilities = Capabilities(modes=("append", "replace"))  # makes no promise about partial runs


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("rerun") / "rows.csv"
    p.write_text("id,v\n" + "".join(f"{i},{i % 7}\n" for i in range(ROWS)))
    return p


def ids(dst) -> list[int]:
    return sorted(dst.table().column("id").to_pylist())


def test_a_failed_load_runs_again_and_holds_each_row_once(csv_file):
    dst = Flaky(fail_writes=2)
    before = metrics.sample("nebula_retries_total", {"endpoint": "Flaky", "error": "ConnectionFailed"}) or 0
    r = nebula.copy(str(csv_file), dst, batch_rows=500, resilience=FAST)
    assert dst.opens == 3 and r.rows_written == ROWS and ids(dst) == list(range(ROWS))
    assert metrics.sample("nebula_retries_total", {"endpoint": "Flaky", "error": "ConnectionFailed"}) == before + 2


def test_reruns_stop_after_the_policy_attempts_with_a_message_saying_so(csv_file):
    dst = Flaky(fail_writes=10)
    with pytest.raises(ConnectionFailed, match=r"gave up after 3 attempts .* at Flaky"):
        nebula.copy(str(csv_file), dst, batch_rows=500, resilience={"retries": 2, "backoff_initial": 0.01})
    assert dst.opens == 3 and dst.table().num_rows == 0


def test_not_rerun_when_the_error_is_not_retryable_or_the_destination_promises_nothing(csv_file):
    dst = Flaky(fail_writes=1, retryable=False)
    with pytest.raises(ConnectionFailed):
        nebula.copy(str(csv_file), dst, batch_rows=500, resilience=FAST)
    assert dst.opens == 1
    third = ThirdParty(fail_writes=1)
    with pytest.raises(ConnectionFailed):
        nebula.copy(str(csv_file), third, batch_rows=500, resilience=FAST)
    assert third.opens == 1


def test_commit_with_unknown_outcome_reruns_only_when_that_is_idempotent(csv_file):
    dst = Flaky(fail_commits=1)
    with pytest.raises(ConnectionFailed, match="lost the answer to COMMIT"):  # append, no checkpoint: could double
        nebula.copy(str(csv_file), dst, mode="append", batch_rows=500, resilience=FAST)
    assert dst.opens == 1
    dst = Flaky(fail_commits=1)
    r = nebula.copy(str(csv_file), dst, mode="replace", batch_rows=500, resilience=FAST)  # replace: idempotent
    assert dst.opens == 2 and r.rows_written == ROWS and ids(dst) == list(range(ROWS))


def test_rejected_rows_are_counted_once_and_dead_letters_are_never_written_twice(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("id,v\n" + "".join(f"{i},{'x' if i % 500 == 7 else i}\n" for i in range(ROWS)))
    dst = Flaky(fail_writes=1)
    r = nebula.copy(str(src), dst, batch_rows=500, columns={"v": "int64"}, on_error="skip", resilience=FAST)
    assert dst.opens == 2 and r.rows_rejected == 6 and r.rows_written == ROWS - 6
    dead = tmp_path / "dead.jsonl"
    dst = Flaky(fail_writes=1)
    with pytest.raises(ConnectionFailed):  # rows already went to the dead-letter file: no second attempt
        nebula.copy(str(src), dst, batch_rows=500, columns={"v": "int64"}, on_error="dead-letter",
                    dead_letter=str(dead), resilience=FAST)
    assert dst.opens == 1
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len({(x["line"], x["column"]) for x in lines}) == len(lines)


def test_a_local_file_destination_reruns_to_exactly_the_input(csv_file, tmp_path):
    out = tmp_path / "out.csv"
    r = nebula.copy(str(csv_file), str(out), resilience=FAST)
    assert r.rows_written == ROWS and out.read_text() == csv_file.read_text()
    (tmp_path / "afile").write_text("")
    with pytest.raises(DestinationError) as e:  # a file where a directory should be: not retryable, not rerun
        nebula.copy(str(csv_file), str(tmp_path / "afile" / "x.csv"), resilience=FAST)
    assert not e.value.retryable and "gave up" not in str(e.value)
