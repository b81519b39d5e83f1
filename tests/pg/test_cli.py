"""``nebula copy … postgresql://…`` in subprocesses: a whole run, one-line errors, and SIGKILL at random points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from nebula.sample import generate

NEBULA = [sys.executable, "-m", "nebula.cli"] if not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "nebula")) else [os.path.join(os.path.dirname(sys.executable), "nebula")]
ROWS = 300_000


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    return str(generate(tmp_path_factory.mktemp("pgcli") / "orders.csv", ROWS, "csv"))


def _copy(*args, **kw):
    return subprocess.run([*NEBULA, "copy", *args], capture_output=True, text=True, timeout=120, **kw)


def test_cli_copy_and_json_summary(pg_dsn, pg, table, tmp_path):
    src = tmp_path / "small.csv"
    src.write_text("id,name\n1,a\n2,b\n")
    r = _copy(str(src), pg_dsn, "--table", table, "--json", "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0, r.stderr
    assert '"rows_written": 2' in r.stdout
    assert pg.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall() == [(1, "a"), (2, "b")]


def test_cli_errors_are_one_line_without_password(pg_server, tmp_path):
    from tests.pg._server import PASSWORD_USER, free_port

    src = tmp_path / "small.csv"
    src.write_text("id\n1\n")
    port = pg_server.port if pg_server else free_port()
    r = _copy(str(src), f"postgresql://{PASSWORD_USER}:wrong-sekrit@127.0.0.1:{port}/postgres", "--table", "x",
              "--state", str(tmp_path / "s.db"))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "wrong-sekrit" not in r.stderr, r.stderr
    assert "PostgreSQL" in lines[0]


def test_sigkill_at_random_points_then_rerun_is_exact(pg_dsn, pg, table, big_csv, tmp_path):
    env = dict(os.environ)
    args = [*NEBULA, "copy", big_csv, pg_dsn, "--table", table, "--state", str(tmp_path / "s.db")]
    t = time.monotonic()
    warm = subprocess.run([*NEBULA, "copy", big_csv, pg_dsn, "--table", table + "_warm", "--state", str(tmp_path / "s.db")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert warm.returncode == 0, warm.stderr
    full = time.monotonic() - t
    rng = random.Random(7)
    budget = time.monotonic() + 40
    kills = 0
    while kills < 5 and time.monotonic() < budget:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.05, max(0.1, full * 0.9)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        # the server notices the dead client and rolls its transaction back: all or nothing, never a part
        for _ in range(50):
            busy = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nebula'").fetchone()[0]
            if not busy:
                break
            time.sleep(0.1)
        exists = pg.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{table}"',)).fetchone()[0]
        n = pg.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] if exists else 0
        assert n in (0, ROWS), f"a killed run left {n} rows"
        if n == ROWS:  # the kill came after the commit: start over for the next round
            pg.execute(f'DROP TABLE "{table}"')
    assert kills >= 3
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert pg.execute(f'SELECT count(*), count(DISTINCT id), min(id), max(id) FROM "{table}"').fetchone() == (
        ROWS, ROWS, 1, ROWS)


def test_cli_incremental_source_with_tables_and_cursor(pg_dsn, pg, table, tmp_path):
    """`--tables T --cursor C` reads a PostgreSQL table incrementally: a rerun only takes the new rows."""
    pg.execute(f'CREATE TABLE "{table}" (id int primary key, v text, updated_at timestamptz)')
    pg.execute(f"INSERT INTO \"{table}\" SELECT g, 'v' || g, '2025-01-01'::timestamptz + g * interval '1 min' "
               "FROM generate_series(1, 100) g")
    pg.commit()
    out = tmp_path / "out.jsonl"
    state = str(tmp_path / "s.db")
    args = [pg_dsn, str(out), "--tables", table, "--cursor", "updated_at", "--name", "inc", "--state", state,
            "--mode", "append", "--json"]
    r = _copy(*args)
    assert r.returncode == 0, r.stderr
    assert '"rows_written": 100' in r.stdout
    pg.execute(f"INSERT INTO \"{table}\" SELECT g, 'v' || g, '2025-02-01'::timestamptz + g * interval '1 min' "
               "FROM generate_series(101, 130) g")
    pg.commit()
    r = _copy(*args)
    assert r.returncode == 0, r.stderr
    assert '"rows_written": 30' in r.stdout
    assert len(out.read_text().splitlines()) == 130
    r = _copy(pg_dsn, str(tmp_path / "x.csv"), "--tables", "a,b")
    assert r.returncode == 2 and "reads one table" in r.stderr
