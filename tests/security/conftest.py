"""Fixtures of the security tests: one throwaway PostgreSQL for the session, a role with a password full of
URL-special characters, and helpers that run the real ``nebula`` command and collect every byte it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from .._servers import started
from ..pg._server import PgServer

NEBULA = [sys.executable, "-m", "nebula.cli"]
SECRET_USER = "nebula_secret_user"
SECRET = "Zq9/p@ss:w%rd&Tr0ub4dor"  # '/', '@', ':', '%', '&' all need URL encoding


def run_nebula(*args, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("NEBULA_")}
    e.update(env or {})
    return subprocess.run([*NEBULA, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def secret_forms(secret: str = SECRET) -> list[str]:
    """The secret as written and URL-encoded (both quote styles)."""
    from urllib.parse import quote_plus

    return sorted({secret, quote(secret, safe=""), quote_plus(secret, safe="")})


def assert_no_secret(*texts: str, secret: str = SECRET) -> None:
    for text in texts:
        for form in secret_forms(secret):
            assert form not in text, f"secret {form!r} leaked in:\n{text}"


def make_certs(d) -> dict[str, str]:
    """A throwaway CA, a server certificate it signs (CN localhost, SAN DNS:localhost and IP:127.0.0.1), a client
    certificate it signs (CN nebula-client), and an unrelated second CA (the "wrong" one), made with the openssl
    command line. EC keys: fast to make."""
    d = str(d)
    os.makedirs(d, exist_ok=True)

    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, f"openssl {' '.join(args[:2])} failed: {r.stderr}"

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "wrong_ca"):
        openssl("req", "-x509", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                "-subj", f"/CN=Nebula test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    openssl("req", "-new", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=nebula-client")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "client.crt", "-days", "2", "-extfile", "client.ext")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    return {k: os.path.join(d, f"{k}.crt" if not k.endswith("_key") else f"{k[:-4]}.key")
            for k in ("ca", "wrong_ca", "server", "server_key", "client", "client_key")}


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> dict[str, str]:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def pg_server(certs):
    """A PostgreSQL serving TLS with the test CA's certificate (plain connections still allowed), logical WAL."""
    srv = started(lambda: PgServer(ssl=(certs["server"], certs["server_key"]), wal_level="logical"), "PostgreSQL")
    import psycopg

    with psycopg.connect(srv.dsn, autocommit=True) as c:
        c.execute(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET}'")
        c.execute(f"GRANT ALL ON SCHEMA public TO {SECRET_USER}")
    hba = os.path.join(srv.data, "pg_hba.conf")
    rest = open(hba).read()
    with open(hba, "w") as f:
        f.write(f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n" + rest)
    with psycopg.connect(srv.dsn, autocommit=True) as c:
        c.execute("SELECT pg_reload_conf()")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def secret_url(pg_server) -> str:
    """A libpq URI of the password role: its password URL-encoded."""
    return f"postgresql://{SECRET_USER}:{quote(SECRET, safe='')}@127.0.0.1:{pg_server.port}/postgres"


@pytest.fixture
def pg(pg_server):
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        yield c
