"""The ``resilience:`` block of a YAML pipeline and ``nebula.copy(resilience=...)``: keys, errors naming the key
and line, and ``nebula run`` failing with one line naming the endpoint when the breaker opens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

import nebula
from nebula.api import CopyOptions, config_to_copy_args
from nebula.config import ResilienceConfig, load_config
from nebula.connectors import resilience as rs
from nebula.errors import ConfigError

from .._proxy import FaultProxy

YAML = """\
defaults:
  resilience: {{retries: 1}}
pipelines:
  - name: a
    source: in.csv
    destination: out.csv
    resilience:
{block}
  - name: b
    source: in.csv
    destination: out.csv
"""


def test_the_yaml_keys_are_the_layer_keys():
    assert set(ResilienceConfig.model_fields) == set(rs.KEYS)


def test_yaml_block_becomes_the_run_policy():
    cfg = load_config(YAML.format(block="      retries: 7\n      backoff_max: 2.5\n      rate_limit: 20\n"
                                        "      rate_burst: 5\n      breaker_cooldown: 0"))
    _, _, _, opts = config_to_copy_args(cfg.get("a"))
    p = CopyOptions.build(**opts).resilience
    assert (p.attempts, p.backoff_max, p.rate_limit, p.rate_burst, p.breaker_cooldown) == (8, 2.5, 20.0, 5, 0.0)
    assert p.connect_timeout == rs.RetryPolicy().connect_timeout  # unset keys keep the defaults
    _, _, _, opts = config_to_copy_args(cfg.get("b"))
    assert CopyOptions.build(**opts).resilience.attempts == 2  # from defaults:


@pytest.mark.parametrize(("block", "key", "line", "match"), [
    ("      retires: 3", "pipelines[0].resilience.retires", 8, "unknown key 'retires'; did you mean 'retries'"),
    ("      retries: 1\n      jitter: 1.5", "pipelines[0].resilience.jitter", 9, "less than or equal to 1"),
    ("      timeout: soon", "pipelines[0].resilience.timeout", 8, "valid number"),
    ("      breaker_failures: 0", "pipelines[0].resilience.breaker_failures", 8, "greater than or equal to 1"),
])
def test_yaml_errors_name_the_key_and_line(block, key, line, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_config(YAML.format(block=block))
    assert e.value.key == key and e.value.line == line


def test_library_option_is_checked_too(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="did you mean 'retries'") as e:
        nebula.copy(str(src), str(tmp_path / "out.csv"), resilience={"retires": 1})
    assert e.value.key == "resilience.retires"
    r = nebula.copy(str(src), str(tmp_path / "out.csv"), resilience={"retries": 0, "timeout": 5})
    assert r.rows_written == 1


def test_nebula_run_fails_with_one_line_naming_the_endpoint_when_the_breaker_opens(pg_dsn, tmp_path):
    port = urlsplit(pg_dsn).port
    src = tmp_path / "in.csv"
    src.write_text("id\n1\n2\n")
    with FaultProxy(port) as proxy:
        proxy.refuse()
        url = f"postgresql://postgres:hunter2-sekrit@127.0.0.1:{proxy.port}/postgres"
        (tmp_path / "p.yml").write_text(f"""\
pipelines:
  - name: nightly
    source: {src}
    destination: {{url: "{url}", table: t_breaker_cli}}
    resilience: {{retries: 5, backoff_initial: 0.05, breaker_failures: 2, connect_timeout: 2}}
""")
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "nebula.cli", "run", str(tmp_path / "p.yml"), "--state",
                            str(tmp_path / "s.db")], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.getcwd()}, cwd=tmp_path)
        took = time.monotonic() - t
        refused = proxy.refused
    assert r.returncode == 1, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and "WARNING" not in ln and "retrying" not in ln]
    assert any(f"postgresql://127.0.0.1:{proxy.port}" in ln and "circuit breaker open" in ln for ln in err), r.stderr
    assert "hunter2-sekrit" not in r.stderr + r.stdout
    assert refused == 2 and took < 60
