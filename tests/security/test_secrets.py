"""Secrets: references (``${VAR}``, ``${env:VAR}``, ``${file:...}``), plain-text warnings, and a search of every
byte the real ``nebula`` command prints (stdout, stderr, ``--debug`` tracebacks, ``--json`` summaries, ``check``,
``state show``, the state store, the audit log) for a PostgreSQL password, as written and URL-encoded."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import textwrap
from urllib.parse import quote

import pytest

from nebula.config import load_config
from nebula.errors import ConfigError
from nebula.redact import (
    RedactingFilter,
    format_exception,
    install_log_redaction,
    redact,
    register_secret,
    secrets,
)

from .conftest import SECRET, SECRET_USER, assert_no_secret, run_nebula, secret_forms


def _load(text: str, tmp_path, env: dict | None = None):
    p = tmp_path / "cfg.yml"
    p.write_text(textwrap.dedent(text))
    return load_config(p, env=env or {})


def test_file_reference_strips_newline_and_is_a_secret(tmp_path):
    (tmp_path / "pw").write_text("from-a-file-42\n")
    cfg = _load("""\
        pipelines:
          - name: a
            source: "postgresql://app:${file:pw}@db/shop"
            destination: {url: out.parquet, options: {note: "${file:pw}"}}
        """, tmp_path)
    assert cfg.pipelines[0].source.url == "postgresql://app:from-a-file-42@db/shop"
    assert cfg.pipelines[0].destination.options["note"] == "from-a-file-42"
    assert "from-a-file-42" in cfg.secrets and "from-a-file-42" in secrets()
    assert cfg.warnings == []
    assert "from-a-file-42" not in redact(f"error at {cfg.pipelines[0].source.url}")


def test_env_reference_forms_and_secret_keys(tmp_path):
    cfg = _load("""\
        pipelines:
          - name: a
            source: "postgresql://app:${env:DB_PW}@db/shop"
            destination: {url: "s3://b/k.parquet", options: {api_token: "${env:T:-tok-default-1}", region: "${REGION}"}}
        """, tmp_path, env={"DB_PW": "pw-from-env-9", "REGION": "eu-west-1"})
    d = cfg.pipelines[0].destination.options
    assert d == {"api_token": "tok-default-1", "region": "eu-west-1"}
    assert {"pw-from-env-9", "tok-default-1"} <= cfg.secrets  # URL password; secret-looking key
    assert "eu-west-1" not in cfg.secrets
    assert cfg.warnings == []


def test_missing_or_unreadable_secret_file_names_key_and_line_not_content(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load("""\
            pipelines:
              - name: a
                source: a.csv
                destination: {url: out.parquet, options: {password: "${file:/nonexistent/secret}"}}
            """, tmp_path)
    e = info.value
    assert e.key == "pipelines[0].destination.options.password" and e.line == 4
    assert "/nonexistent/secret" in str(e) and "cannot read secret file" in str(e)
    (tmp_path / "bin").write_bytes(b"secret-bytes-\xff\xfe-tail")
    with pytest.raises(ConfigError) as info:
        _load("pipelines:\n  - name: a\n    source: a.csv\n    destination: {url: o.parquet, options: "
              "{token: \"${file:bin}\"}}\n", tmp_path)
    assert info.value.line == 4 and "not UTF-8" in str(info.value) and "secret-bytes" not in str(info.value)
    with pytest.raises(ConfigError) as info:  # a directory
        _load("pipelines:\n  - name: a\n    source: \"${file:.}\"\n    destination: o.parquet\n", tmp_path)
    assert info.value.key == "pipelines[0].source" and info.value.line == 3


def test_plain_text_secrets_are_warnings_naming_key_and_line(tmp_path):
    cfg = _load("""\
        pipelines:
          - name: a
            source: "postgresql://app:hunter2-literal@db/shop"
            destination:
              url: "postgresql://app:${PW}@db/shop"
              options: {password: plain-pw-77, token_file: /run/secrets/t, sslmode: verify-full}
        """, tmp_path, env={"PW": "from-env-pw"})
    assert len(cfg.warnings) == 2, cfg.warnings
    url_w, opt_w = cfg.warnings
    assert "cfg.yml:3" in url_w and "pipelines[0].source" in url_w and "plain text" in url_w
    assert "cfg.yml:6" in opt_w and "pipelines[0].destination.options.password" in opt_w
    for w in cfg.warnings:
        assert "hunter2-literal" not in w and "plain-pw-77" not in w
    assert {"hunter2-literal", "plain-pw-77", "from-env-pw"} <= cfg.secrets


def test_config_errors_name_key_and_line(tmp_path):
    base = "pipelines:\n  - name: a\n    source: a.csv\n    destination: b.parquet\n"
    cases = [
        (base + "    infer_schema: maybe\n", "pipelines[0].infer_schema", 5),  # wrong type
        (base + "    max_rejected: -3\n", "pipelines[0].max_rejected", 5),
        (base + "    key: ${env:NO_SUCH_VAR}\n", "pipelines[0].key", 5),  # missing variable
        (base.replace("source: a.csv", "source: {url: [a, b]}"), "pipelines[0].source.url", 3),
        (base + "    bogus_option: 1\n", "pipelines[0].bogus_option", 5),  # unknown key
        ("state: s.db\naudit_log: [x]\n" + base, "audit_log", 2),
        ("audit_lgo: a.jsonl\n" + base, "audit_lgo", 1),
    ]
    for text, key, line in cases:
        with pytest.raises(ConfigError) as info:
            _load(text, tmp_path)
        assert (info.value.key, info.value.line) == (key, line), str(info.value)
        assert f"key '{key}'" in str(info.value)


def test_log_records_and_tracebacks_are_redacted():
    register_secret("log-secret-3141")
    install_log_redaction()
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    log = logging.getLogger("nebula.test_secrets.child")
    log.addHandler(handler)
    try:
        log.warning("connecting with %s and %s", "log-secret-3141", "postgresql://u:other-pw-1@h/db")
        try:
            raise RuntimeError("bad password log-secret-3141")
        except RuntimeError:
            log.exception("failed for log%s", "-secret-3141")
    finally:
        log.removeHandler(handler)
    out = buf.getvalue()
    assert "log-secret-3141" not in out and "other-pw-1" not in out
    assert "RuntimeError: bad password ***" in out and "connecting with *** and postgresql://u:***@h/db" in out
    assert isinstance(install_log_redaction(), RedactingFilter)
    try:
        try:
            raise ValueError("inner log-secret-3141")
        except ValueError as inner:
            raise KeyError("outer") from inner
    except KeyError as e:
        text = format_exception(e)
    assert "ValueError: inner ***" in text and "log-secret-3141" not in text


def _collect(tmp_path) -> str:
    """Every file the runs left behind (audit log, dead letters, JSON summaries), as text."""
    out = []
    for root, _, files in os.walk(tmp_path):
        for f in files:
            if f.endswith(".yml") or f == "pw.txt":  # the inputs holding the secret
                continue
            p = os.path.join(root, f)
            if f.endswith(".db"):
                with sqlite3.connect(p) as db:
                    for (t,) in db.execute("select name from sqlite_master where type='table'").fetchall():
                        out += [repr(r) for r in db.execute(f'select * from "{t}"').fetchall()]
            else:
                out.append(open(p, "rb").read().decode("utf-8", "replace"))
    return "\n".join(out)


def test_no_command_prints_the_secret(tmp_path, pg_server, secret_url, pg):
    """copy / run / check / state show, succeeding and failing, with --debug and --json: no secret anywhere."""
    data = tmp_path / "orders.csv"
    data.write_text("id,amount\n1,2.5\n2,x\n3,4\n")
    state = tmp_path / ".nebula" / "state.db"
    bad_url = secret_url.replace(f":{pg_server.port}/", ":1/")  # nothing listens on port 1
    outputs = []

    def nebula(*args, env=None, ok=True):
        r = run_nebula(*args, cwd=tmp_path, env=env)
        outputs.extend([r.stdout, r.stderr])
        assert (r.returncode == 0) == ok, r.stderr
        return r

    nebula("copy", data, secret_url, "--table", "sec_orders", "--state", state, "--json", "--debug",
           "--on-error", "dead-letter", "--dead-letter", tmp_path / "rejected.jsonl", "--column", "amount:float64")
    assert pg.execute("select count(*) from sec_orders").fetchone()[0] == 2
    r = nebula("copy", data, bad_url, "--table", "t", "--state", state, "--debug", ok=False)
    assert "Traceback" in r.stderr and "cannot connect" in r.stderr
    assert "retrying in" in r.stderr  # the resilience layer's log warnings went through the redacting filter
    r = nebula("copy", data, secret_url.replace(SECRET_USER, "no_such_role"), "--table", "t", "--state", state,
               ok=False)
    assert len(r.stderr.strip().splitlines()) == 1

    (tmp_path / "pw.txt").write_text(SECRET + "\n")
    cfg = tmp_path / "pipes.yml"
    port = pg_server.port
    cfg.write_text(textwrap.dedent(f"""\
        state: {state}
        pipelines:
          - name: from_env
            source: {data}
            destination: {{url: "postgresql://{SECRET_USER}:${{DB_PASSWORD}}@127.0.0.1:{port}/postgres",
                           table: sec_env}}
            on_error: skip
            columns: {{amount: float64}}
          - name: from_file
            source: {data}
            destination: {{url: "postgresql://{SECRET_USER}@127.0.0.1:{port}/postgres", table: sec_file,
                           options: {{password: "${{file:pw.txt}}"}}}}
            on_error: skip
            columns: {{amount: float64}}
        """))
    env = {"DB_PASSWORD": quote(SECRET, safe="")}  # inside a URL a password is URL-encoded
    r = nebula("run", cfg, "--json", "--debug", env=env)
    assert [json.loads(line)["rows_written"] for line in r.stdout.splitlines()] == [2, 2]
    nebula("check", cfg, env=env)
    nebula("check", cfg, "--json", env=env)
    bad_cfg = tmp_path / "bad.yml"
    # refused credentials fail at once (a refused port is retried with backoff: the copy above covers it)
    bad_cfg.write_text(cfg.read_text().replace(SECRET_USER, "no_such_role") + (
        "  - name: from_pg\n"
        f"    source: {{url: 'postgresql://no_such_role:${{DB_PASSWORD}}@127.0.0.1:{port}/postgres', table: t}}\n"
        f"    destination: {tmp_path / 'out.parquet'}\n"))
    r = nebula("run", bad_cfg, "--debug", env=env, ok=False)
    assert "Traceback" in r.stderr
    r = nebula("check", bad_cfg, "--json", env=env, ok=False)
    assert "failing" in r.stdout
    literal = tmp_path / "literal.yml"
    literal.write_text(cfg.read_text().replace("${DB_PASSWORD}", quote(SECRET, safe="")))
    r = nebula("check", literal, env=env)
    assert "warning" in r.stderr and "plain text" in r.stderr and "literal.yml:5" in r.stderr
    nebula("state", "show", "--state", state)
    nebula("state", "show", "--state", state, "--json")
    audit = [json.loads(line) for line in (state.parent / "audit.jsonl").read_text().splitlines()]
    assert {a["outcome"] for a in audit} == {"success", "failed"} and len(audit) >= 6
    everything = "\n".join(outputs) + "\n" + _collect(tmp_path)
    assert "sec_orders" in everything and "***" in everything
    assert_no_secret(everything)
    assert set(secret_forms()) - {SECRET}, "the test must also look for the URL-encoded form"


def test_an_error_outside_a_command_handler_is_one_redacted_line():
    import subprocess
    import sys

    code = textwrap.dedent("""\
        import sys
        from nebula import cli
        from nebula.redact import register_secret
        register_secret("uncaught-secret-77")
        @cli.app.command("boom")
        def boom():
            raise RuntimeError("failed with uncaught-secret-77")
        sys.argv = ["nebula", "boom"]
        cli.main()
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == "nebula: error: internal error: RuntimeError: failed with *** (run with --debug for details)"
