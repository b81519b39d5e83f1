"""TLS to MariaDB: a throwaway server with the test CA's certificate and a user that requires a client certificate
signed by that CA (REQUIRE X509), so every connection of a run, snapshot and binlog stream alike, must carry the
configured TLS settings for the run to work at all (PyMySQL alone would only encrypt, without a certificate)."""

from __future__ import annotations

import sqlite3
import textwrap
from urllib.parse import quote

import pytest

from nebula.connectors.sources.mysql import _parse_url

from .._servers import started
from ..mysql._server import MariaDbServer
from .conftest import assert_no_secret, run_nebula

TLS_USER, TLS_PASSWORD = "nebula_tls", "Tls/Pa55:w0rd@x"


@pytest.fixture(scope="module")
def maria_tls(certs):
    srv = started(lambda: MariaDbServer(ssl=(certs["ca"], certs["server"], certs["server_key"])), "MariaDB")
    with srv.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{TLS_PASSWORD}' REQUIRE X509")
        cur.execute(f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* "
                    f"TO '{TLS_USER}'@'%'")
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    yield srv
    srv.stop()


def _client(certs) -> str:
    return f"ssl_cert={certs['client']}&ssl_key={certs['client_key']}"


def _url(srv, query: str = "") -> str:
    return f"mysql://{TLS_USER}:{quote(TLS_PASSWORD, safe='')}@127.0.0.1:{srv.port}/shop" + (f"?{query}" if query else "")


def test_tls_arguments_reach_pymysql(maria_tls, certs):
    import pymysql

    args = _parse_url(_url(maria_tls, f"ssl_ca={certs['ca']}&{_client(certs)}"))
    assert args["ssl"] == {"ca": certs["ca"], "verify_mode": True, "check_hostname": True,
                           "cert": certs["client"], "key": certs["client_key"]}
    with pymysql.connect(**args) as c, c.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]  # a cipher: the session is encrypted
    opts = {"ssl_verify": "ca", "ssl_ca": certs["ca"], "ssl_cert": certs["client"], "ssl_key": certs["client_key"]}
    assert _parse_url(_url(maria_tls), opts)["ssl"]["check_hostname"] is False
    assert _parse_url(_url(maria_tls), {"ssl_verify": "none"})["ssl"]["verify_mode"] is False
    assert "ssl" not in _parse_url(_url(maria_tls))
    with pytest.raises(pymysql.err.OperationalError):  # REQUIRE X509: encrypted without a certificate is refused
        pymysql.connect(**_parse_url(_url(maria_tls)))


def test_snapshot_and_binlog_over_tls(tmp_path, maria_tls, certs):
    r = run_nebula("copy", _url(maria_tls, f"ssl_ca={certs['ca']}&{_client(certs)}"), f"sqlite:///{tmp_path}/o.db",
                   "--cdc",
                   "--tables", "items", "--until-caught-up", "--state", tmp_path / "s.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT id, name FROM items ORDER BY id").fetchall() == [(1, "a"), (2, "b"), (3, "c")]
    with maria_tls.root() as c, c.cursor() as cur:  # changes since the checkpoint come over the TLS binlog stream
        cur.execute("INSERT INTO items VALUES (4, 'd')")
    cfg = tmp_path / "m.yml"
    (tmp_path / "pw").write_text(TLS_PASSWORD + "\n")
    cfg.write_text(textwrap.dedent(f"""\
        state: {tmp_path}/s.db
        pipelines:
          - name: items
            source:
              url: "mysql://{TLS_USER}@127.0.0.1:{maria_tls.port}/shop"
              options: {{ssl_ca: "{certs['ca']}", ssl_verify: full, password: "${{file:pw}}",
                         ssl_cert: "{certs['client']}", ssl_key: "{certs['client_key']}"}}
            destination: "sqlite:///{tmp_path}/o.db"
            cdc: true
            tables: [items]
            until_caught_up: true
        """))
    r = run_nebula("run", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT max(id), count(*) FROM items").fetchone() == (4, 4)
    r = run_nebula("copy", _url(maria_tls, f"ssl_verify=none&{_client(certs)}"), tmp_path / "plain.csv", "--tables",
                   "items", "--state", tmp_path / "s2.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # encrypted without checking the server (no CA)
    r = run_nebula("copy", _url(maria_tls, f"ssl_ca={certs['ca']}"), tmp_path / "nocert.csv", "--tables", "items",
                   "--state", tmp_path / "s3.db", cwd=tmp_path)
    assert r.returncode != 0 and "Access denied" in r.stderr  # the user needs the client certificate


def test_wrong_ca_is_one_clear_line(tmp_path, maria_tls, certs):
    r = run_nebula("copy", _url(maria_tls, f"ssl_ca={certs['wrong_ca']}"), tmp_path / "x.csv", "--tables", "items",
                   cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate could not be verified" in lines[0] and "Traceback" not in r.stderr
    assert_no_secret(r.stderr, r.stdout, secret=TLS_PASSWORD)
