"""Round trips: CSV -> Parquet / SQLite / CSV / JSON lines, compared value by value with pyarrow's reading."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import nebula
from nebula.sample import generate

N = 30_000


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt")
    src = generate(str(d / "orders.csv"), N)
    ref = pacsv.read_csv(str(src), parse_options=pacsv.ParseOptions(newlines_in_values=True),
                         convert_options=pacsv.ConvertOptions(strings_can_be_null=True, null_values=[""],
                                                              quoted_strings_can_be_null=False,
                                                              timestamp_parsers=["%Y-%m-%dT%H:%M:%S"]))
    ref = ref.set_column(ref.schema.get_field_index("ts"), "ts", ref.column("ts").cast(pa.timestamp("us")))
    return d, src, ref


def test_parquet(orders):
    d, src, ref = orders
    r = nebula.copy(str(src), str(d / "o.parquet"), batch_rows=5000)
    assert r.rows_written == N
    t = pq.read_table(d / "o.parquet")
    assert pq.ParquetFile(d / "o.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    assert t.column_names == ref.column_names
    for name in ref.column_names:
        assert t.column(name).to_pylist() == ref.column(name).to_pylist(), name


def test_sqlite(orders):
    d, src, ref = orders
    db = d / "o.db"
    nebula.copy(str(src), f"sqlite:///{db}", table="orders", batch_rows=7000)
    con = sqlite3.connect(db)
    rows = con.execute("select id, user_id, amount, qty, country, status, ts, note from orders order by id").fetchall()
    assert len(rows) == N
    exp = ref.to_pylist()
    for got, e in zip(rows, exp, strict=True):
        assert got[:6] == (e["id"], e["user_id"], e["amount"], e["qty"], e["country"], e["status"])
        assert dt.datetime.fromisoformat(got[6]) == e["ts"]
        assert got[7] == e["note"]
    # replace is atomic and leaves exactly one copy
    nebula.copy(str(src), f"sqlite:///{db}", table="orders", mode="replace")
    assert con.execute("select count(*) from orders").fetchone()[0] == N


def test_csv_and_jsonl(orders):
    d, src, ref = orders
    nebula.copy(str(src), str(d / "o.csv"))
    again = nebula.read_csv(str(d / "o.csv"))
    assert again.to_pylist() == nebula.read_csv(str(src)).to_pylist()
    nebula.copy(str(src), str(d / "o.jsonl.zst"))
    import zstandard

    lines = zstandard.ZstdDecompressor().stream_reader(open(d / "o.jsonl.zst", "rb")).read().decode().splitlines()
    assert len(lines) == N
    first = json.loads(lines[0])
    e = ref.slice(0, 1).to_pylist()[0]
    assert first["id"] == e["id"] and first["note"] == e["note"] and first["amount"] == e["amount"]
    assert first["ts"] == e["ts"].isoformat()


def test_country_na_is_not_null(orders):
    d, src, ref = orders
    t = nebula.read_csv(str(src))
    assert "NA" in set(t.column("country").to_pylist())
    assert t.column("country").null_count == 0


def test_default_modes(orders, tmp_path):
    """Tables append by default, files are replaced."""
    _, src, _ = orders
    db = tmp_path / "m.db"
    for _ in range(2):
        nebula.copy(str(src), f"sqlite:///{db}", table="t")
        nebula.copy(str(src), str(tmp_path / "m.parquet"))
    assert sqlite3.connect(db).execute("select count(*) from t").fetchone()[0] == 2 * N
    assert pq.read_table(tmp_path / "m.parquet").num_rows == N
