"""bytea both ways: PostgreSQL <-> binary columns, byte for byte (NUL, 0xFF, empty, NULL, a 5 MB value).

Plain source (binary COPY) into memory/Parquet/SQLite; batches (memory, Parquet) into PostgreSQL in append,
replace and merge, by binary COPY and by the text COPY fallback; CDC (pgoutput sends bytea as ``\\x`` hex text)
into PostgreSQL with merge, unchanged TOAST values included.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nebula
from nebula.batch import Batch
from nebula.connectors.destinations.memory import MemoryDestination
from nebula.connectors.destinations.postgres import PostgresDestination
from nebula.errors import SchemaEvolutionError, TypeCoercionError
from nebula.pipeline.cdc import fill_batch
from nebula.schema import Schema
from tests.destinations import batch_from_pylist

from ..pg_cdc.conftest import cdc_server, src_db  # noqa: F401 - a wal_level=logical server for the CDC tests

BIG = os.urandom(5 << 20)  # incompressible: stored out of line
VALUES = [b"\x00", b"\xff\x00\xfe", b"", None, bytes(range(256)), b"\\x41", "ünï".encode(), b"\x00" * 1000, BIG]
SCHEMA = Schema.from_dict({"id": "int32", "v": "binary"})


def _seed(pg, table, values=VALUES):
    pg.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, v bytea)')
    with pg.cursor() as cur:
        cur.executemany(f'INSERT INTO "{table}" VALUES (%s, %s)', list(enumerate(values)))


def _stored(pg, table, cols="id, v"):
    rows = pg.execute(f'SELECT {cols} FROM "{table}" ORDER BY id').fetchall()
    return [tuple(bytes(x) if isinstance(x, memoryview) else x for x in r) for r in rows]


def _type_of(pg, table, col="v"):
    return pg.execute("SELECT data_type FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
                      (table, col)).fetchone()[0]


def _load(dsn, rows, table, mode="append", key=None, options=None, schema=SCHEMA, batches=1):
    d = PostgresDestination(dsn, options=options)
    d.open(schema, mode=mode, table=table, key=key)
    step = max(1, -(-len(rows) // batches))
    for a in range(0, len(rows), step):
        d.write(batch_from_pylist(schema, rows[a:a + step]))
    d.commit()


# -- PostgreSQL -> memory / Parquet / SQLite --------------------------------------------------------------------
def test_source_reads_bytea_as_binary_into_memory_parquet_and_sqlite(pg_dsn, pg, table, tmp_path):
    _seed(pg, table)
    mem = MemoryDestination()
    r = nebula.copy(pg_dsn, mem, source_options={"table": table}, batch_rows=4)
    t = mem.table().sort_by("id")
    assert r.rows_written == len(VALUES)
    assert t.schema.field("v").type == pa.binary() and t.column("v").to_pylist() == VALUES

    nebula.copy(pg_dsn, str(tmp_path / "b.parquet"), source_options={"table": table}, progress="none")
    col = pq.ParquetFile(tmp_path / "b.parquet").schema.column(1)
    assert (col.physical_type, col.logical_type.type) == ("BYTE_ARRAY", "NONE")
    assert pq.read_table(tmp_path / "b.parquet").sort_by("id").column("v").to_pylist() == VALUES

    nebula.copy(pg_dsn, f"sqlite:///{tmp_path}/b.db", source_options={"table": table}, table="b", progress="none")
    with sqlite3.connect(tmp_path / "b.db") as db:
        got = db.execute("SELECT v, typeof(v) FROM b ORDER BY id").fetchall()
    assert [g[0] for g in got] == VALUES and {g[1] for g in got} == {"blob", "null"}


# -- memory / Parquet -> PostgreSQL ------------------------------------------------------------------------------
@pytest.mark.parametrize("copy", ["binary", "csv"])
def test_batches_into_postgres_in_append_replace_merge(pg_dsn, pg, table, copy):
    opts = {"copy": copy}
    rows = list(enumerate(VALUES))
    _load(pg_dsn, rows, table, options=opts, batches=3)
    assert _type_of(pg, table) == "bytea"
    assert _stored(pg, table) == rows
    assert pg.execute(f'SELECT md5(v) FROM "{table}" WHERE id = 8').fetchone()[0] == hashlib.md5(BIG).hexdigest()

    _load(pg_dsn, [(1, b"\x01"), (2, None), (3, b"")], table, mode="replace", key=["id"], options=opts)
    assert _stored(pg, table) == [(1, b"\x01"), (2, None), (3, b"")] and _type_of(pg, table) == "bytea"

    # merge: updates (to NUL bytes, to NULL, from NULL), inserts, the last row of a key wins
    _load(pg_dsn, [(1, b"\x00\x00"), (2, b"\xff"), (3, None), (9, BIG[:100]), (9, BIG[::-1])], table,
          mode="merge", key=["id"], options=opts)
    assert _stored(pg, table) == [(1, b"\x00\x00"), (2, b"\xff"), (3, None), (9, BIG[::-1])]


def test_parquet_written_from_postgres_loads_back_byte_exact(pg_dsn, pg, table, tmp_path):
    _seed(pg, table)
    nebula.copy(pg_dsn, str(tmp_path / "b.parquet"), source_options={"table": table}, progress="none")
    pt = pq.read_table(tmp_path / "b.parquet")
    schema = Schema.from_arrow(pt.schema)
    assert schema["v"].type.kind == "binary"
    d = PostgresDestination(pg_dsn)
    d.open(schema, mode="merge", table=table + "_back", key=["id"])
    for rb in pt.to_batches(max_chunksize=4):  # Arrow buffers copied into pooled batches, as a source would
        batch = Batch(schema, rb.num_rows)
        fill_batch(batch, rb)
        d.write(batch)
    d.commit()
    assert _stored(pg, table + "_back") == _stored(pg, table)


def test_postgres_to_postgres_replace_then_merge(pg_dsn, pg, table):
    _seed(pg, table)
    dst = table + "_copy"
    nebula.copy(pg_dsn, pg_dsn, source_options={"table": table}, table=dst, mode="replace", progress="none")
    assert _stored(pg, dst) == _stored(pg, table) and _type_of(pg, dst) == "bytea"
    pg.execute(f"UPDATE \"{table}\" SET v = '\\x00ff'::bytea WHERE id IN (0, 8)")
    pg.execute(f"INSERT INTO \"{table}\" VALUES (100, '\\x'::bytea), (101, NULL)")
    nebula.copy(pg_dsn, pg_dsn, source_options={"table": table}, table=dst, mode="merge", key="id", progress="none")
    assert _stored(pg, dst) == _stored(pg, table)


def test_existing_bytea_column_takes_binary_and_refuses_text(pg_dsn, pg, table):
    pg.execute(f'CREATE TABLE "{table}" (id int, v bytea, s text)')
    _load(pg_dsn, [(1, b"\x00a")], table)
    assert _stored(pg, table) == [(1, b"\x00a")]
    text = Schema.from_dict({"id": "int32", "v": "string"})
    with pytest.raises(SchemaEvolutionError, match=r"column 'v' is bytea; cannot write string values.*--column v:binary"):
        _load(pg_dsn, [(2, "\\x00")], table, schema=text)
    wrong = Schema.from_dict({"id": "int32", "s": "binary"})
    with pytest.raises(SchemaEvolutionError, match="column 's' is text; cannot write binary values"):
        _load(pg_dsn, [(3, b"x")], table, schema=wrong)
    assert _stored(pg, table, "id, v, s") == [(1, b"\x00a", None)]


def test_binary_column_added_mid_run(pg_dsn, pg, table):
    d = PostgresDestination(pg_dsn)
    first = Schema.from_dict({"id": "int32"})
    d.open(first, table=table)
    d.write(batch_from_pylist(first, [(1,)]))
    d.evolve(SCHEMA)
    d.write(batch_from_pylist(SCHEMA, [(2, b"\x00\xff")]))
    d.commit()
    assert _stored(pg, table) == [(1, None), (2, b"\x00\xff")] and _type_of(pg, table) == "bytea"


# -- CSV / JSON lines text forms -> PostgreSQL --------------------------------------------------------------------
def test_csv_hex_and_jsonl_base64_load_as_bytes(pg_dsn, pg, table, tmp_path):
    rows = list(enumerate(VALUES[:-1]))
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"b.{fmt}"
        nebula.copy(_written(rows, path), pg_dsn, table=f"{table}_{fmt}", columns="v:binary", progress="none")
        assert _type_of(pg, f"{table}_{fmt}") == "bytea"
        assert _stored(pg, f"{table}_{fmt}") == rows


def _written(rows, path):
    from nebula.connectors.destinations.files import CsvDestination, JsonlDestination

    d = (CsvDestination if path.suffix == ".csv" else JsonlDestination)(str(path))
    d.open(SCHEMA)
    d.write(batch_from_pylist(SCHEMA, rows))
    d.commit()
    return str(path)


def test_csv_value_that_is_not_hex_is_a_located_error(pg_dsn, pg, table, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,v\n1,\\x00ff\n2,00ff\n")
    with pytest.raises(TypeCoercionError, match="binary") as e:
        nebula.copy(str(path), pg_dsn, table=table, columns="v:binary", progress="none")
    assert e.value.line == 3 and e.value.column == "v"
    assert pg.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None  # nothing committed


# -- CDC: pgoutput's \x hex text decoded to bytes ------------------------------------------------------------------
def test_cdc_bytea_lands_as_bytes_with_unchanged_toast(src_db, pg_dsn, pg, table, tmp_path):  # noqa: F811
    dsn, c = src_db
    c.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, n int, v bytea)')
    c.execute(f'ALTER TABLE "{table}" ALTER COLUMN v SET STORAGE EXTERNAL')  # large values out of line
    c.execute(f'ALTER TABLE "{table}" REPLICA IDENTITY FULL')  # updates carry the old image (TOAST included)
    big = BIG[:300000]
    with c.cursor() as cur:
        cur.executemany(f'INSERT INTO "{table}" VALUES (%s, 0, %s)', [(i, v) for i, v in enumerate(VALUES[:-1])])
        cur.execute(f'INSERT INTO "{table}" VALUES (50, 0, %s)', (big,))

    def run():
        nebula.copy(dsn, pg_dsn, cdc=True, until_caught_up=True, mode="merge", tables=table,
                    state=str(tmp_path / "s.db"), progress="none")
        assert _stored(pg, table, "id, n, v") == _stored(c, table, "id, n, v")

    run()  # the snapshot (binary COPY)
    assert _type_of(pg, table) == "bytea"
    with c.cursor() as cur:  # the stream (pgoutput text)
        cur.executemany(f'INSERT INTO "{table}" VALUES (%s, 1, %s)', [(100 + i, v) for i, v in enumerate(VALUES[:-1])])
        cur.execute(f'INSERT INTO "{table}" VALUES (200, 1, %s)', (big[::-1],))
        cur.execute(f'UPDATE "{table}" SET v = %s WHERE id IN (0, 3)', (b"\xff\x00\x80",))
        cur.execute(f'UPDATE "{table}" SET v = NULL WHERE id = 1')
        cur.execute(f'UPDATE "{table}" SET v = %s WHERE id = 2', (b"",))
        cur.execute(f'UPDATE "{table}" SET n = 7 WHERE id IN (50, 200)')  # v unchanged: a 'u' TOAST value
        cur.execute(f'DELETE FROM "{table}" WHERE id = 4')
    run()
    assert pg.execute(f'SELECT n, v FROM "{table}" WHERE id IN (50, 200) ORDER BY id').fetchall() == [
        (7, big), (7, big[::-1])]
    c.execute(f'UPDATE "{table}" SET n = 8 WHERE id = 50')  # alone in its round: from the old image
    run()
    assert pg.execute(f'SELECT n, md5(v) FROM "{table}" WHERE id = 50').fetchone() == (8, hashlib.md5(big).hexdigest())
