"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temp dir, a free port, loopback only.

As root, the server commands run as user ``postgres`` (initdb refuses root) in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

PASSWORD_USER = "nebula_pw"
PASSWORD = "right-horse-battery"


def pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    path = shutil.which("initdb")
    return os.path.dirname(path) if path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``dsn`` is a libpq URI over TCP on 127.0.0.1."""

    def __init__(self, *, wal_level: str = "replica", ssl: tuple[str, str] | None = None) -> None:
        """``ssl``: (certificate file, key file) to serve TLS with (``ssl = on``); plain TCP still works."""
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                               "apt-get install postgresql (make test installs it via scripts/ensure-system.sh)")
        self.wal_level = wal_level
        self.ssl = ssl
        self.dir = tempfile.mkdtemp(prefix="nebula-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self._as = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self._as, *args], capture_output=True, text=True)
        if r.returncode != 0:
            log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {r.stderr.strip()}\n{log}")

    def start(self) -> PgServer:
        b = self.bindir
        self._run(f"{b}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                    f"wal_level = {self.wal_level}\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nmax_connections = 60\nshared_buffers = 128MB\n"
                    "max_wal_size = 4GB\n")
            if self.ssl:
                f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        if self.ssl:
            for src, name in zip(self.ssl, ("server.crt", "server.key"), strict=True):
                dst = os.path.join(self.data, name)
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)  # the server refuses a key readable by others
                if self._as:
                    import pwd

                    pw = pwd.getpwnam("postgres")
                    os.chown(dst, pw.pw_uid, pw.pw_gid)
        hba = os.path.join(self.data, "pg_hba.conf")
        rest = open(hba).read()
        with open(hba, "w") as f:  # one role needs a password, for the authentication tests
            f.write(f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + rest)
        self._run(f"{b}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start")
        self._wait()
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
            c.execute(f"GRANT ALL ON SCHEMA public TO {PASSWORD_USER}")
        return self

    def _wait(self) -> None:
        import psycopg

        for _ in range(100):
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not become ready")

    def stop(self) -> None:
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                subprocess.run([*self._as, f"{self.bindir}/pg_ctl", "-D", self.data, "-w", "stop", "-m", "fast"],
                               capture_output=True, timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
