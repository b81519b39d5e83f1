"""A throwaway MariaDB server for tests: mariadb-install-db in a temp dir, a free port, loopback only.

The binlog is set up for CDC (ROW format, FULL row image and metadata); ``MariaDbServer(log_bin=False)``
or ``binlog_format="STATEMENT"`` make servers for the error tests. As root, the server runs as user
``mysql`` with its socket and pid file in a run directory that user owns (else mariadbd dies silently).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

CDC_USER, CDC_PASSWORD = "nebula_cdc", "cdc-pass-7"
_INSTALL_HINT = ("MariaDB server binaries (mariadbd, mariadb-install-db) not found: apt-get install mariadb-server "
                 "(make test installs it via scripts/ensure-system.sh)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(*names: str) -> str | None:
    for n in names:
        p = shutil.which(n) or (f"/usr/sbin/{n}" if os.path.exists(f"/usr/sbin/{n}") else None)
        if p:
            return p
    return None


class MariaDbServer:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`dsn` is ``mysql://`` for the CDC user."""

    def __init__(self, *, log_bin: bool = True, binlog_format: str = "ROW",
                 ssl: tuple[str, str, str] | None = None) -> None:
        """``ssl``: (CA file, certificate file, key file) to serve TLS with; plain connections still work."""
        self.mariadbd = _binary("mariadbd", "mysqld")
        self.install_db = _binary("mariadb-install-db", "mysql_install_db")
        if not self.mariadbd or not self.install_db:
            raise RuntimeError(_INSTALL_HINT)
        self.dir = tempfile.mkdtemp(prefix="nebula-maria-")
        self.data = os.path.join(self.dir, "data")
        self.run = os.path.join(self.dir, "run")
        self.port = free_port()
        self.socket = os.path.join(self.run, "mysqld.sock")
        self.cnf = os.path.join(self.dir, "my.cnf")
        self.log = os.path.join(self.dir, "error.log")
        self.proc: subprocess.Popen | None = None
        os.makedirs(self.run)
        os.makedirs(self.data)
        lines = ["[mysqld]", f"datadir={self.data}", f"port={self.port}", "bind-address=127.0.0.1",
                 f"socket={self.socket}", f"pid-file={self.run}/mysqld.pid", f"log-error={self.log}",
                 "server_id=1", "skip-name-resolve", "innodb_buffer_pool_size=64M", "innodb_log_file_size=48M",
                 "innodb_flush_log_at_trx_commit=2", "sync_binlog=0", "max_connections=200"]
        if log_bin:
            lines += [f"log_bin={self.data}/binlog", f"binlog_format={binlog_format}", "binlog_row_image=FULL",
                      "binlog_row_metadata=FULL"]
        if os.geteuid() == 0:
            lines.append("user=mysql")
        if ssl:
            for src, name in zip(ssl, ("ca.pem", "server-cert.pem", "server-key.pem"), strict=True):
                shutil.copyfile(src, os.path.join(self.dir, name))
                os.chmod(os.path.join(self.dir, name), 0o644)
            lines += [f"ssl_ca={self.dir}/ca.pem", f"ssl_cert={self.dir}/server-cert.pem",
                      f"ssl_key={self.dir}/server-key.pem"]
        with open(self.cnf, "w") as f:
            f.write("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("mysql")
            for d in (self.dir, self.run, self.data):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)

    @property
    def dsn(self) -> str:
        return f"mysql://{CDC_USER}:{CDC_PASSWORD}@127.0.0.1:{self.port}/shop"

    def root(self, db: str | None = "shop"):
        """An autocommit PyMySQL connection as root (over TCP)."""
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=db,
                               autocommit=True)

    def start(self) -> MariaDbServer:
        r = subprocess.run([self.install_db, f"--defaults-file={self.cnf}", "--auth-root-authentication-method=normal",
                            "--skip-test-db"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {r.stderr.strip()[-2000:]}")
        self.proc = subprocess.Popen([self.mariadbd, f"--defaults-file={self.cnf}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self._wait()
        with self.root(None) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE shop")
            cur.execute(f"CREATE USER '{CDC_USER}'@'%' IDENTIFIED BY '{CDC_PASSWORD}'")
            cur.execute(f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION MASTER ADMIN "
                        f"ON *.* TO '{CDC_USER}'@'%'")
        return self

    def _wait(self) -> None:
        import pymysql

        for _ in range(300):
            if self.proc.poll() is not None:
                break
            try:
                self.root(None).close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
        raise RuntimeError(f"MariaDB did not become ready:\n{log}")

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
