"""The library contract: nebula.read_csv, nebula.copy, nebula.Pipeline; the default null markers; the progress
display's modes (rich on a terminal, quiet lines otherwise; the Jupyter bar runs in tests/test_notebooks.py)."""

from __future__ import annotations

import io
import json
import sqlite3

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import nebula
from nebula.pipeline import progress


@pytest.fixture
def orders(tmp_path):
    p = tmp_path / "orders.csv"
    p.write_text("id,amount\n1,1.5\n2,x\n3,NA\n")
    return p


def test_read_csv_copy_and_pipeline(orders, tmp_path):
    t = nebula.read_csv(str(orders), columns={"amount": "string"})
    assert isinstance(t, pa.Table) and t.to_pydict() == {"id": [1, 2, 3], "amount": ["1.5", "x", "NA"]}

    dl = tmp_path / "rej.jsonl"
    r = nebula.copy(str(orders), str(tmp_path / "o.parquet"), columns={"amount": "float64"},
                    on_error="dead-letter", dead_letter=str(dl), state=str(tmp_path / "s.db"))
    assert isinstance(r, nebula.RunResult) and (r.rows_read, r.rows_written, r.rows_rejected) == (3, 2, 1)
    assert pq.read_table(tmp_path / "o.parquet").column("amount").to_pylist() == [1.5, None]
    assert json.loads(dl.read_text())["line"] == 3

    p = nebula.Pipeline("shop", str(orders), f"sqlite:///{tmp_path / 'shop.db'}", table="orders",
                        infer_schema=False, state=str(tmp_path / "s.db"))
    assert p.run(progress="none").rows_written == 3
    r = p.run(progress="none", mode="replace")
    assert r.name == "shop" and r.status == "ok"
    db = sqlite3.connect(tmp_path / "shop.db")
    assert db.execute("select id, amount from orders order by id").fetchall() == [("1", "1.5"), ("2", "x"),
                                                                                   ("3", "NA")]
    with pytest.raises(nebula.errors.ConfigError):  # options are checked when the pipeline is made
        nebula.Pipeline("bad", str(orders), "o.parquet", on_error="sometimes")


def test_default_null_markers_are_pyarrows(tmp_path):
    from nebula.connectors.sources.csv import PYARROW_NULLS

    assert sorted(PYARROW_NULLS) == sorted(pacsv.ConvertOptions().null_values)
    p = tmp_path / "n.csv"
    p.write_text("n\n" + "".join(f"{m}\n" for m in PYARROW_NULLS if m) + "7\n")
    ours = nebula.read_csv(str(p), columns={"n": "int64"})
    theirs = pacsv.read_csv(str(p), convert_options=pacsv.ConvertOptions(column_types={"n": pa.int64()}))
    assert ours.column("n").to_pylist() == theirs.column("n").to_pylist() == [None] * (len(PYARROW_NULLS) - 1) + [7]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_quiet_lines_off_a_terminal_and_rich_on_one():
    out = io.StringIO()
    p = progress.make_progress("orders", 1000, stream=out)
    assert type(p).__name__ == "_PlainProgress"
    p.every = 0.0  # a line at most every 5 s normally; here at every update
    p.update(rows=10, bytes=500)
    p.update(rows=20, rejected=1, bytes=1000)
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in out.getvalue()  # plain text, no terminal control codes
    assert lines[0].startswith("orders: 10 rows, ") and "MB/s" in lines[0] and "50%, ETA" in lines[0]
    assert "1 rejected" in lines[1]

    quiet = io.StringIO()
    p = progress.make_progress("orders", 1000, stream=quiet)
    p.update(rows=10, bytes=500)  # within 5 s of the start: nothing
    p.close()
    assert quiet.getvalue() == ""

    tty = _Tty()
    p = progress.make_progress("orders", 1000, stream=tty)
    assert type(p).__name__ == "_RichProgress"
    p.update(rows=10, bytes=500)
    p.close()
    assert progress.make_progress("orders", 1000, mode="none", stream=tty) is None


def test_copy_into_a_destination_object_of_ones_own(orders):
    """A Destination written by the user, with only the abstract methods (no ``location``): the run
    works and the summary names its class."""
    from nebula.connectors.base import Destination

    class Collect(Destination):
        def open(self, schema, *, mode="append", table=None, key=None):
            self.rows = []

        def write(self, batch):
            self.rows += batch.to_arrow().to_pylist()
            return 0

        def commit(self):
            self.done = True

        def abort(self):
            pass

    d = Collect()
    r = nebula.copy(str(orders), d, columns={"amount": "string"})
    assert d.done and [x["id"] for x in d.rows] == [1, 2, 3] and r.rows_written == 3
    assert r.destination == "Collect"
