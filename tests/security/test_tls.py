"""TLS to PostgreSQL against a throwaway server whose certificate a test CA signed (made with openssl): verify-full
with the right CA works (URL query, YAML options, source, destination, CDC), a wrong CA is one clear line without a
traceback or password, and sslmode=require encrypts without a CA."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from urllib.parse import quote

import pytest

from nebula.connectors.destinations.postgres import connect, libpq_url
from nebula.errors import ConnectionFailed

from .conftest import SECRET, SECRET_USER, assert_no_secret, run_nebula


def _q(path: str) -> str:
    return quote(path, safe="/")


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("id,name\n1,a\n2,b\n3,c\n")
    return p


def test_verify_full_connection_is_encrypted(pg_server, secret_url, certs):
    url = f"{secret_url}?sslmode=verify-full&sslrootcert={_q(certs['ca'])}"
    with connect(url, autocommit=True) as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    opts = {"sslmode": "verify-full", "sslrootcert": certs["ca"], "password": SECRET}
    plain = secret_url.split(":")[0] + f"://{SECRET_USER}@127.0.0.1:{pg_server.port}/postgres"
    with connect(libpq_url(plain, opts), autocommit=True) as c:  # the same given as endpoint options
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    with pytest.raises(ConnectionFailed) as info:
        connect(f"{secret_url}?sslmode=verify-full&sslrootcert={_q(certs['wrong_ca'])}")
    assert info.value.retryable is False and "could not be verified" in str(info.value)


def test_copy_with_right_and_wrong_ca(tmp_path, pg_server, secret_url, certs, data, pg):
    good = f"{secret_url}?sslmode=verify-full&sslrootcert={_q(certs['ca'])}"
    r = run_nebula("copy", data, good, "--table", "tls_items", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows_written"] == 3
    # the source side too: read the table back over verify-full
    r = run_nebula("copy", good, tmp_path / "back.csv", "--tables", "tls_items", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.csv").read_text().splitlines()[1:] == ["1,a", "2,b", "3,c"]
    wrong = f"{secret_url}?sslmode=verify-full&sslrootcert={_q(certs['wrong_ca'])}"
    for args in ((data, wrong, "--table", "tls_other"), (wrong, tmp_path / "x.csv", "--tables", "tls_items")):
        r = run_nebula("copy", *args, cwd=tmp_path)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "certificate could not be verified" in lines[0] and "TLS" in lines[0]
        assert_no_secret(r.stderr, r.stdout)
    assert pg.execute("SELECT to_regclass('tls_other')").fetchone() == (None,)
    r = run_nebula("copy", data, f"{secret_url}?sslmode=require", "--table", "tls_req", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert pg.execute("SELECT count(*) FROM tls_req").fetchone() == (3,)


def test_yaml_endpoint_options(tmp_path, pg_server, certs, data, pg):
    (tmp_path / "pw").write_text(SECRET + "\n")
    url = f"postgresql://{SECRET_USER}@127.0.0.1:{pg_server.port}/postgres"
    cfg = tmp_path / "tls.yml"
    cfg.write_text(textwrap.dedent(f"""\
        state: {tmp_path}/state.db
        pipelines:
          - name: tls_yaml
            source: {data}
            destination:
              url: "{url}"
              table: tls_yaml
              options: {{sslmode: verify-full, sslrootcert: "{certs['ca']}", password: "${{file:pw}}"}}
        """))
    r = run_nebula("run", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert pg.execute("SELECT count(*) FROM tls_yaml").fetchone() == (3,)
    cfg.write_text(cfg.read_text().replace(certs["ca"], certs["wrong_ca"]))
    r = run_nebula("run", cfg, cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "certificate could not be verified" in r.stderr
    assert_no_secret(r.stderr, r.stdout, (tmp_path / "audit.jsonl").read_text())


def test_cdc_over_verify_full(tmp_path, pg_server, secret_url, certs, pg):
    pg.execute("CREATE TABLE tls_cdc (id int PRIMARY KEY, v text)")
    pg.execute("INSERT INTO tls_cdc VALUES (1, 'a'), (2, 'b')")
    pg.execute(f"GRANT SELECT ON tls_cdc TO {SECRET_USER}")
    pg.execute(f"ALTER ROLE {SECRET_USER} REPLICATION")
    pg.execute(f"GRANT CREATE ON DATABASE postgres TO {SECRET_USER}")
    pg.execute(f"ALTER TABLE tls_cdc OWNER TO {SECRET_USER}")
    url = f"{secret_url}?sslmode=verify-full&sslrootcert={_q(certs['ca'])}"
    state = tmp_path / "state.db"
    try:
        r = run_nebula("copy", url, f"sqlite:///{tmp_path}/cdc.db", "--cdc", "--tables", "tls_cdc", "--slot",
                       "tls_slot", "--until-caught-up", "--state", state, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        with sqlite3.connect(tmp_path / "cdc.db") as db:
            assert db.execute("SELECT id, v FROM tls_cdc ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
        r = run_nebula("state", "show", "--state", state, cwd=tmp_path)
        assert "sslmode=verify-full" in r.stdout  # the checkpoint keeps the TLS settings (not the password)
        assert_no_secret(r.stdout, r.stderr)
        # the same from YAML source options (password from a file); a wrong CA fails before any slot exists
        (tmp_path / "pw").write_text(SECRET)
        cfg = tmp_path / "cdc.yml"
        for ca, slot in ((certs["wrong_ca"], "tls_slot_bad"), (certs["ca"], "tls_slot2")):
            cfg.write_text(textwrap.dedent(f"""\
                state: {tmp_path}/state2.db
                pipelines:
                  - name: cdc_yaml
                    source:
                      url: "postgresql://{SECRET_USER}@127.0.0.1:{pg_server.port}/postgres"
                      options: {{sslmode: verify-full, sslrootcert: "{ca}", password: "${{file:pw}}"}}
                    destination: "sqlite:///{tmp_path}/cdc2.db"
                    cdc: true
                    tables: [tls_cdc]
                    slot: {slot}
                    until_caught_up: true
                """))
            r = run_nebula("run", cfg, cwd=tmp_path)
            assert_no_secret(r.stdout, r.stderr)
            if slot == "tls_slot_bad":
                assert r.returncode == 1 and "certificate could not be verified" in r.stderr, r.stderr
            else:
                assert r.returncode == 0, r.stderr
        with sqlite3.connect(tmp_path / "cdc2.db") as db:
            assert db.execute("SELECT count(*) FROM tls_cdc").fetchone() == (2,)
    finally:
        pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                   "WHERE slot_name IN ('tls_slot', 'tls_slot2', 'tls_slot_bad')")
