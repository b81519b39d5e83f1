from __future__ import annotations

import csv
import json
import time
from datetime import datetime

import pytest

from nebula.sample import CHUNK_ROWS, COUNTRIES, STATUSES, generate, iter_chunks, main

N = 20_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("orders")
    return {fmt: generate(d / f"orders.{fmt}", N, fmt) for fmt in ("csv", "jsonl", "json")}


def _check_record(i: int, r: dict) -> None:
    assert r["id"] == i + 1
    assert r["user_id"] in range(1, 1_000_001)
    assert 0.01 <= r["amount"] <= 10_000.00 and round(r["amount"], 2) == r["amount"]
    assert r["qty"] in range(1, 101)
    assert r["country"] in COUNTRIES
    assert r["status"] in STATUSES
    assert r["ts"].year == 2025
    assert r["note"] is None or 10 <= len(r["note"]) <= 40


def test_deterministic(tmp_path):
    for fmt in ("csv", "jsonl", "json"):
        a = generate(tmp_path / f"a.{fmt}", 3000, fmt, seed=7).read_bytes()
        b = generate(tmp_path / f"b.{fmt}", 3000, fmt, seed=7).read_bytes()
        assert a == b
        assert a != generate(tmp_path / f"c.{fmt}", 3000, fmt, seed=8).read_bytes()


def test_prefix_stable_across_chunks():
    small = b"".join(iter_chunks(CHUNK_ROWS + 10, "csv"))
    big = b"".join(iter_chunks(CHUNK_ROWS + 500, "csv"))
    assert big.startswith(small)


def test_csv_with_python_csv(files):
    with open(files["csv"], newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["id", "user_id", "amount", "qty", "country", "status", "ts", "note"]
        rows = list(reader)
    assert len(rows) == N
    for i, r in enumerate(rows):
        rec = dict(id=int(r[0]), user_id=int(r[1]), amount=float(r[2]), qty=int(r[3]), country=r[4],
                   status=r[5], ts=datetime.fromisoformat(r[6]), note=r[7] or None)
        _check_record(i, rec)
        assert len(r[2].split(".")[1]) == 2
    notes = [r[7] for r in rows]
    nulls = sum(1 for n in notes if n == "") / N
    assert 0.01 < nulls < 0.03
    assert any("," in n for n in notes) and any('"' in n for n in notes) and any("\n" in n for n in notes)
    assert len({r[4] for r in rows}) >= 45
    assert {r[5] for r in rows} == set(STATUSES)
    na = sum(r[4] == "NA" for r in rows) / N
    assert 0 < na < 0.02


def test_csv_quotes_only_when_needed(files):
    text = files["csv"].read_text()
    for line in text.split("\n")[1:50]:
        if line and '"' not in line:
            assert line.count(",") == 7
    assert ',""\n' not in text  # a null note is an empty field, never ""


def test_csv_with_pyarrow(files):
    pa = pytest.importorskip("pyarrow")
    pcsv = pytest.importorskip("pyarrow.csv")
    table = pcsv.read_csv(files["csv"], parse_options=pcsv.ParseOptions(newlines_in_values=True),
                          convert_options=pcsv.ConvertOptions(strings_can_be_null=True, null_values=[""]))
    assert table.num_rows == N
    types = {f.name: f.type for f in table.schema}
    assert types["id"] == pa.int64() and types["user_id"] == pa.int64() and types["qty"] == pa.int64()
    assert types["amount"] == pa.float64()
    assert pa.types.is_timestamp(types["ts"])
    assert types["country"] == pa.string() and types["note"] == pa.string()
    assert table.column("id").to_pylist() == list(range(1, N + 1))
    assert table.column("country").null_count == 0  # "NA" stays Namibia
    assert 0.01 < table.column("note").null_count / N < 0.03


def test_jsonl(files):
    lines = files["jsonl"].read_text().split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == N
    for i, r in enumerate(records):
        assert list(r) == ["id", "user_id", "amount", "qty", "country", "status", "ts", "note"]
        _check_record(i, {**r, "ts": datetime.fromisoformat(r["ts"])})
    assert 0.01 < sum(r["note"] is None for r in records) / N < 0.03
    assert any("\n" in (r["note"] or "") for r in records)
    assert any('"' in (r["note"] or "") for r in records)


def test_json_array_matches_jsonl_and_csv(files):
    with open(files["json"]) as f:
        records = json.load(f)
    jsonl = [json.loads(line) for line in files["jsonl"].read_text().splitlines()]
    assert records == jsonl
    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["note"] or None for r in rows] == [r["note"] for r in records]
    assert [float(r["amount"]) for r in rows] == [r["amount"] for r in records]


def test_amount_two_decimals_in_json(files):
    first = files["jsonl"].read_text().split("\n", 1)[0]
    amount = first.split('"amount":')[1].split(",")[0]
    assert len(amount.split(".")[1]) == 2


def test_zero_and_tiny(tmp_path):
    assert generate(tmp_path / "z.csv", 0).read_text() == "id,user_id,amount,qty,country,status,ts,note\n"
    assert json.loads(generate(tmp_path / "z.json", 0, "json").read_text()) == []
    assert generate(tmp_path / "z.jsonl", 0, "jsonl").read_bytes() == b""
    assert len(json.loads(generate(tmp_path / "one.json", 1, "json").read_text())) == 1
    with pytest.raises(ValueError):
        generate(tmp_path / "x.parquet", 1, "parquet")


def test_skip_when_identical(tmp_path):
    path = generate(tmp_path / "o.csv", 100)
    mtime = path.stat().st_mtime_ns
    time.sleep(0.01)
    generate(path, 100)
    assert path.stat().st_mtime_ns == mtime
    generate(path, 100, force=True)
    assert path.stat().st_mtime_ns != mtime
    generate(path, 101)
    assert len(path.read_text().splitlines()) >= 102
    path.write_text("tampered")
    generate(path, 101)
    assert path.read_text() != "tampered"


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    assert main(["--rows", "10", "--out", str(out), "--seed", "3"]) == 0
    assert len(out.read_text().splitlines()) == 10
    assert out.read_bytes() == b"".join(iter_chunks(10, "jsonl", 3))


def test_speed(tmp_path):
    start = time.perf_counter()
    generate(tmp_path / "speed.csv", 100_000)
    assert time.perf_counter() - start < 3.0
