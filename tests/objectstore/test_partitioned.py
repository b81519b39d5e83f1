"""Partitioned, staged, manifest-committed directory outputs on S3, GCS and local directories."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import nebula
from nebula.connectors.destinations.partitioned import DEFAULT_PARTITION, escape_path_value

from ._data import orders_csv


@pytest.fixture(scope="module")
def local_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("in") / "orders.csv"
    p.write_bytes(orders_csv(3000, days=2))
    return p


@pytest.fixture(scope="module")
def expected(local_csv):
    return nebula.read_csv(str(local_csv))


def _dataset(store, prefix, fmt="parquet"):
    return ds.dataset(f"{store.bucket}/{prefix}", filesystem=store.fs, format=fmt, partitioning="hive")


def _manifest(store, prefix):
    return json.loads(store.get(f"{prefix}/_manifest.json"))


def _check_equal(table, expected, columns=("id", "country", "amount", "ts", "note")):
    table = table.sort_by("id")
    for c in columns:
        got = table.column(c)
        if pa.types.is_dictionary(got.type):
            got = got.cast(pa.string())
        want = expected.column(c)
        assert got.cast(want.type).to_pylist() == want.to_pylist(), c


def test_partitioned_parquet_reads_back_with_hive_partitioning(store, local_csv, expected):
    r = nebula.copy(str(local_csv), store.url("orders/"), partition_by="country,date(ts)", run_id="r1")
    assert r.rows_written == expected.num_rows and r.run_id == "r1"
    keys = store.keys("orders")
    assert "orders/_manifest.json" in keys and not any("_staging" in k for k in keys)
    data = [k for k in keys if k.endswith(".parquet")]
    assert all(k.split("/")[1].startswith("country=") and k.split("/")[2].startswith("ts_date=") for k in data)
    t = _dataset(store, "orders").to_table()
    _check_equal(t, expected)
    # the derived key agrees with the timestamp; the plain key is not stored inside the files
    dates = [None if v is None else v.date().isoformat() for v in t.column("ts").to_pylist()]
    assert [None if v is None else str(v) for v in t.column("ts_date").to_pylist()] == dates
    m = _manifest(store, "orders")
    assert m["run_id"] == "r1" and m["rows"] == expected.num_rows and m["partition_by"] == ["country", "ts_date"]
    assert sorted(f["path"] for f in m["files"]) == sorted(k[len("orders/"):] for k in data)
    assert sum(f["rows"] for f in m["files"]) == expected.num_rows
    assert all(f["bytes"] > 0 for f in m["files"])
    assert [c["name"] for c in m["schema"]] == expected.column_names


def test_partition_files_over_the_single_copy_limit_are_published_in_parts(s3, local_csv, expected, monkeypatch,
                                                                           caplog):
    """Publishing a staged partition file is a server-side copy too: over S3's single-copy limit (lowered
    here) it goes in parts, and the dataset reads back whole."""
    import logging

    monkeypatch.setenv("NEBULA_S3_COPY_LIMIT", "2000")
    with caplog.at_level(logging.INFO, logger="nebula.connectors._fs"):
        nebula.copy(str(local_csv), s3.url("big/"), partition_by="country", run_id="r1")
    assert any("multipart copy" in m for m in caplog.messages)
    keys = s3.keys("big")
    assert "big/_manifest.json" in keys and not any("_staging" in k for k in keys)
    _check_equal(_dataset(s3, "big").to_table(), expected)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_partitioned_text_on_s3(s3, local_csv, expected, fmt):
    nebula.copy(str(local_csv), s3.url("t/"), partition_by="country", dest_format=fmt,
                dest_options={"compression": "gzip"})
    files = [k for k in s3.keys("t") if not k.endswith("_manifest.json")]
    assert files and all(k.endswith(f".{fmt}.gz") for k in files)
    back = nebula.read_csv(s3.url("t/**/*.csv.gz")) if fmt == "csv" else nebula.read_json(s3.url("t/**/*.jsonl.gz"))
    assert back.num_rows == expected.num_rows
    assert "country" not in back.column_names  # the directory holds it
    assert sorted(back.column("id").to_pylist()) == expected.column("id").to_pylist()


UNSAFE = ["a/b", "..", ".", "", None, "x\x01y", "%41", "c=d", "../../etc/passwd", "sp ace", "ü/ö", "#?*[]"]


def _unsafe_table(tmp_path):
    p = tmp_path / "unsafe.jsonl"
    rows = [{"id": i, "k": UNSAFE[i % len(UNSAFE)]} for i in range(len(UNSAFE) * 3)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p, rows


def test_unsafe_values_never_escape_the_prefix_local(tmp_path):
    src, rows = _unsafe_table(tmp_path)
    out = tmp_path / "deep" / "out"
    nebula.copy(str(src), str(out) + "/", partition_by="k")
    every = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
    outside = [p for p in every if not p.startswith(str(out) + os.sep) and p != str(src)]
    assert outside == []
    dirs = sorted(os.listdir(out))
    assert all(d.startswith("k=") or d == "_manifest.json" for d in dirs)
    assert f"k={DEFAULT_PARTITION}" in dirs and "k=%2E%2E" in dirs and "k=a%2Fb" in dirs
    t = ds.dataset(str(out), format="parquet", partitioning="hive").to_table().sort_by("id")
    want = [None if r["k"] in ("", None) else r["k"] for r in rows]  # Hive: empty and null are one partition
    assert t.column("k").cast(pa.string()).to_pylist() == want


def test_unsafe_values_on_s3(s3, tmp_path):
    src, rows = _unsafe_table(tmp_path)
    nebula.copy(str(src), s3.url("u/"), partition_by="k")
    keys = s3.keys()
    assert all(k.startswith("u/") for k in keys)
    assert all(".." not in k.split("/") and "." not in k.split("/") for k in keys)
    t = _dataset(s3, "u").to_table().sort_by("id")
    assert t.column("k").cast(pa.string()).to_pylist() == [None if r["k"] in ("", None) else r["k"] for r in rows]


@pytest.mark.parametrize("value,text", [("a/b", "a%2Fb"), ("..", "%2E%2E"), ("", DEFAULT_PARTITION),
                                        (None, DEFAULT_PARTITION), ("x\ny", "x%0Ay"), ("100%", "100%25"),
                                        ("k=v", "k%3Dv"), ("ok-value_1.2", "ok-value_1.2")])
def test_escape_path_value(value, text):
    assert escape_path_value(value) == text


def test_rollover_by_rows_and_size(s3, local_csv, expected):
    nebula.copy(str(local_csv), s3.url("r/"), partition_by="country", max_rows_per_file=100, batch_rows=256)
    m = _manifest(s3, "r")
    assert all(f["rows"] <= 100 for f in m["files"])
    per_country: dict = {}
    for c in expected.column("country").to_pylist():
        per_country[c] = per_country.get(c, 0) + 1
    assert len(m["files"]) == sum(-(-n // 100) for n in per_country.values())
    _check_equal(_dataset(s3, "r").to_table(), expected)
    nebula.copy(str(local_csv), s3.url("s/"), dest_format="csv", max_file_size="16KB")
    m = _manifest(s3, "s")
    assert len(m["files"]) > 3 and sum(f["rows"] for f in m["files"]) == expected.num_rows
    assert all(f["bytes"] < 16 * 1024 + 70_000 for f in m["files"])


def test_replace_append_and_rerun_of_a_run_id(gs, local_csv, expected, tmp_path):
    n = expected.num_rows
    url = gs.url("tbl/")
    nebula.copy(str(local_csv), url, partition_by="country", run_id="a1")
    nebula.copy(str(local_csv), url, partition_by="country", run_id="a2")  # replace (the default)
    m = _manifest(gs, "tbl")
    assert m["runs"] == ["a2"] and m["rows"] == n
    assert not any("-a1-" in k for k in gs.keys("tbl"))
    nebula.copy(str(local_csv), url, partition_by="country", run_id="b1", mode="append")
    m = _manifest(gs, "tbl")
    assert m["runs"] == ["a2", "b1"] and m["rows"] == 2 * n
    assert _dataset(gs, "tbl").count_rows() == 2 * n
    before = gs.keys("tbl")
    nebula.copy(str(local_csv), url, partition_by="country", run_id="b1", mode="append")  # rerun: no duplicates
    m = _manifest(gs, "tbl")
    assert m["runs"] == ["a2", "b1"] and m["rows"] == 2 * n
    assert gs.keys("tbl") == before
    assert _dataset(gs, "tbl").count_rows() == 2 * n
    # a rerun of b1 with fewer rows leaves none of the old b1 files behind
    small = tmp_path / "small.csv"
    small.write_bytes(b"".join(local_csv.read_bytes().splitlines(keepends=True)[:11]))
    nebula.copy(str(small), url, partition_by="country", run_id="b1", mode="append")
    m = _manifest(gs, "tbl")
    assert m["rows"] == n + 10 and _dataset(gs, "tbl").count_rows() == n + 10
    listed = {f["path"] for f in m["files"]}
    assert {k[len("tbl/"):] for k in gs.keys("tbl") if not k.endswith("_manifest.json")} == listed


def test_state_is_kept_in_the_manifest(tmp_path, local_csv):
    from nebula.connectors.destinations.partitioned import PartitionedDestination

    d = PartitionedDestination(str(tmp_path / "o") + "/", options={"run_id": "s1"})
    from nebula.schema import Field, Schema
    from nebula.types import INT64

    d.open(Schema([Field("x", INT64)]))
    d.stage_state("p", {"cursor": 5})
    d.commit()
    assert PartitionedDestination(str(tmp_path / "o") + "/").committed_state("p") == {"cursor": 5}


def test_yaml_pipeline_with_partition_by(s3, local_csv, expected, tmp_path):
    from nebula.api import Pipeline
    from nebula.config import load_config

    cfg = load_config(f"""
pipelines:
  - name: lake
    source: {local_csv}
    destination: {{url: "{s3.url('y/')}", format: jsonl}}
    partition_by: country
    max_rows_per_file: 1000
    run_id: y1
""")
    r = Pipeline.from_config(cfg.pipelines[0]).run()
    assert r.rows_written == expected.num_rows and r.run_id == "y1"
    m = _manifest(s3, "y")
    assert m["format"] == "jsonl" and m["partition_by"] == ["country"] and m["rows"] == expected.num_rows
    assert all(f["path"].endswith(".jsonl") and f["rows"] <= 1000 for f in m["files"])


def test_schema_evolution_mid_run_starts_new_files(s3, tmp_path):
    src = tmp_path / "evolving.jsonl"
    rows = [{"id": i, "k": "ab"[i % 2]} for i in range(3000)] + [{"id": 3000 + i, "k": "a", "extra": "x"}
                                                                 for i in range(5)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = nebula.copy(str(src), s3.url("ev/"), partition_by="k", source_options={"block_size": 1024},
                    batch_rows=500)
    assert r.rows_written == len(rows)
    m = _manifest(s3, "ev")
    assert "extra" in [c["name"] for c in m["schema"]]
    d = _dataset(s3, "ev")
    unified = pa.unify_schemas([f.physical_schema for f in d.get_fragments()] + [pa.schema([("k", pa.string())])])
    t = ds.dataset(f"{s3.bucket}/ev", filesystem=s3.fs, schema=unified, partitioning="hive").to_table().sort_by("id")
    assert t.num_rows == len(rows)
    assert t.column("extra").to_pylist() == [None] * 3000 + ["x"] * 5


def test_many_partitions_with_few_open_files(tmp_path):
    src = tmp_path / "o.csv"
    src.write_bytes(orders_csv(300))
    out = str(tmp_path / "many") + "/"
    nebula.copy(str(src), out, partition_by="id", dest_options={"max_open_files": 4}, batch_rows=70)
    m = json.loads(open(out + "_manifest.json").read())
    assert m["rows"] == 300 and len(m["files"]) == 300
    t = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert sorted(t.column("id").to_pylist()) == list(range(300))


def test_replace_never_deletes_files_it_did_not_write(s3, local_csv):
    s3.put("mixed/README.txt", b"keep me")
    s3.put("mixed/country=de/other-tool.parquet", b"not ours")
    nebula.copy(str(local_csv), s3.url("mixed/"), partition_by="country", run_id="m1")
    nebula.copy(str(local_csv), s3.url("mixed/"), partition_by="country", run_id="m2")
    keys = s3.keys("mixed")
    assert "mixed/README.txt" in keys and "mixed/country=de/other-tool.parquet" in keys
    assert not any("-m1-" in k for k in keys) and any("-m2-" in k for k in keys)


@pytest.mark.parametrize("fmt,comp", [("parquet", None), ("jsonl", "gzip"), ("csv", "zstd"), ("csv", "lz4")])
def test_rollover_by_size_of_parquet_and_compressed_files(store, tmp_path, fmt, comp):
    """Parquet files report their bytes only as row groups land and compressed ones as the codec emits
    them: files still roll over near the size asked for (the first is cut by its Arrow size, smaller)."""
    src = tmp_path / "o.csv"
    src.write_bytes(orders_csv(40_000, days=2))
    limit = 64 << 10
    nebula.copy(str(src), store.url("sz/"), dest_format=fmt, max_file_size="64KB", batch_rows=4096,
                dest_options={"compression": comp} if comp else {})
    m = _manifest(store, "sz")
    assert m["rows"] == 40_000
    sizes = [f["bytes"] for f in m["files"]]
    assert sizes == [store.fs.get_file_info(f"{store.bucket}/sz/{f['path']}").size for f in m["files"]]
    assert len(sizes) >= 4 and max(sizes) <= limit * 1.25, sizes
    assert all(s >= limit * 0.75 for s in sizes[1:-1]), sizes  # filled, not cut early
    t = (_dataset(store, "sz", fmt="json" if fmt == "jsonl" else fmt) if fmt != "csv" else None)
    if t is not None:
        assert sorted(t.to_table(columns=["id"]).column("id").to_pylist()) == list(range(40_000))


@pytest.mark.parametrize("spec", ["_region", "date(_ts)", ".hidden"])
def test_partition_column_that_readers_would_skip_is_refused(tmp_path, spec):
    col = spec[5:-1] if spec.startswith("date(") else spec
    src = tmp_path / "o.csv"
    src.write_text(f"id,{col}\n1,2024-01-01 00:00:00\n")
    with pytest.raises(nebula.errors.ConfigError, match=f"column '{col}' starts with"):
        nebula.copy(str(src), str(tmp_path / "out") + "/", partition_by=spec)


@pytest.mark.parametrize("encoding", ["delta", "plain"])
def test_integer_encoding_reaches_every_partition_file(tmp_path, local_csv, expected, encoding):
    """``integer_encoding`` is passed on to each partition's Parquet file (delta by default)."""
    import pyarrow.parquet as pq

    out = str(tmp_path / f"enc-{encoding}") + "/"
    opts = {} if encoding == "delta" else {"integer_encoding": "plain"}
    nebula.copy(str(local_csv), out, partition_by="country", dest_options=opts)
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.endswith(".parquet")]
    assert len(files) > 1
    for f in files:
        md = pq.ParquetFile(f).metadata
        col = md.schema.to_arrow_schema().names.index("id")
        encs = {e for r in range(md.num_row_groups) for e in md.row_group(r).column(col).encodings}
        assert ("DELTA_BINARY_PACKED" in encs) == (encoding == "delta"), (f, encs)
    _check_equal(ds.dataset(out, format="parquet", partitioning="hive").to_table(), expected)
