from __future__ import annotations

import textwrap

import pytest

from nebula.config import Config, EndpointConfig, load_config, redact, redact_url, resolve_options
from nebula.errors import ConfigError

BASE = """\
pipelines:
  - name: orders
    source: data/orders.csv
    destination: out/orders.parquet
"""


def load(text: str, env: dict | None = None) -> Config:
    return load_config(textwrap.dedent(text), env=env or {})


def error(text: str, env: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return info.value


def test_minimal_and_defaults():
    cfg = load(BASE)
    p = cfg.get("orders")
    assert p.source == EndpointConfig(url="data/orders.csv")
    assert p.destination.url == "out/orders.parquet"
    assert (p.mode, p.on_error, p.infer_schema, p.batch_rows, p.key) == (None, "fail", True, None, None)  # None: the source's
    assert cfg.state is None and cfg.version == 1


def test_full_pipeline_and_to_options():
    cfg = load("""\
        version: 1
        state: .nebula/s.db
        defaults:
          threads: 2
          on_error: skip
        pipelines:
          - name: orders
            source: {url: data/orders.csv, format: csv, options: {delimiter: ";", header: true}}
            destination: {url: "sqlite:///out.db", table: orders, options: {compression: zstd}}
            mode: merge
            key: id
            columns: {amount: "decimal(12,2)", qty: int}
            on_error: dead-letter
            max_rejected: 10
            tables: a, b
          - name: other
            source: x.jsonl
            destination: y.parquet
            threads: 4
        """)
    orders, other = cfg.pipelines
    assert cfg.state == ".nebula/s.db"
    assert orders.key == ["id"] and orders.tables == ["a", "b"]
    assert orders.columns == {"amount": "decimal(12,2)", "qty": "int64"}
    assert orders.threads == 2 and other.threads == 4 and other.on_error == "skip"
    assert orders.dead_letter == "orders.rejected.jsonl"
    opts = orders.to_options()
    assert opts["source"] == "data/orders.csv" and opts["format"] == "csv"
    assert opts["table"] == "orders" and opts["destination"] == "sqlite:///out.db"
    assert opts["source_options"] == {"delimiter": ";", "header": True}
    assert opts["destination_options"] == {"compression": "zstd"}
    assert opts["on_error"] == "dead-letter" and opts["max_rejected"] == 10 and opts["mode"] == "merge"
    assert cfg.names == ["orders", "other"]


def test_single_pipeline_mapping():
    cfg = load("pipeline:\n  name: one\n  source: a.csv\n  destination: b.parquet\n")
    assert cfg.names == ["one"]


def test_substitution():
    cfg = load("""\
        pipelines:
          - name: orders
            source: "${DATA_DIR}/${FILE:-orders.csv}"
            destination: "$${NOT_A_VAR}/${EMPTY:-fallback}/${SET:-unused}"
            slot: "${SLOT:-}"
        """, env={"DATA_DIR": "/data", "EMPTY": "", "SET": "given"})
    p = cfg.pipelines[0]
    assert p.source.url == "/data/orders.csv"
    assert p.destination.url == "${NOT_A_VAR}/fallback/given"
    assert p.slot == ""


def test_substituted_numbers_are_validated():
    assert load(BASE + "    threads: ${THREADS}\n", {"THREADS": "4"}).pipelines[0].threads == 4
    err = error(BASE + "    threads: ${THREADS}\n", {"THREADS": "four"})
    assert err.key == "pipelines[0].threads" and err.line == 5


def test_missing_variable_names_var_key_and_line():
    err = error(BASE + "    slot: ${REPLICATION_SLOT}\n")
    assert "REPLICATION_SLOT" in str(err)
    assert err.key == "pipelines[0].slot" and err.line == 5
    assert "line 5" in str(err) and "pipelines[0].slot" in str(err)


def test_unknown_key_with_line_and_suggestion():
    err = error(BASE + "    treads: 4\n")
    assert err.key == "pipelines[0].treads" and err.line == 5
    assert "unknown key 'treads'" in str(err) and "did you mean 'threads'" in str(err)
    err = error("pipelines:\n  - name: a\n    source: {url: x, fromat: csv}\n    destination: y\n")
    assert err.key == "pipelines[0].source.fromat" and err.line == 3 and "'format'" in str(err)
    err = error("pipelinez: []\n")
    assert err.line == 1 and "unknown key 'pipelinez'" in str(err)
    err = error("defaults:\n  on_eror: skip\n" + BASE)
    assert err.key == "defaults.on_eror" and err.line == 2 and "on_error" in str(err)


def test_bad_enum_value():
    err = error(BASE + "    on_error: ignore\n")
    assert err.key == "pipelines[0].on_error" and err.line == 5
    assert "'ignore'" in str(err) and "dead-letter" in str(err)
    err = error(BASE.replace("data/orders.csv", "{url: a, format: xml}"))
    assert err.key == "pipelines[0].source.format" and err.line == 3


def test_merge_without_key():
    err = error(BASE + "    mode: merge\n")
    assert err.key == "pipelines[0].key" and err.line == 5 and "merge" in str(err)


def test_bad_type_in_columns():
    err = error(BASE + "    columns:\n      a: int\n      b: decimal(50,2)\n")
    assert err.key == "pipelines[0].columns.b" and err.line == 7
    err = error(BASE + "    columns: {a: integr}\n")
    assert "integr" in str(err) and err.line == 5


def test_duplicate_names():
    err = error(BASE + "  - name: orders\n    source: b.csv\n    destination: c.parquet\n")
    assert err.key == "pipelines[1].name" and err.line == 5 and "duplicate" in str(err)


def test_duplicate_yaml_key():
    err = error(BASE + "    mode: append\n    mode: replace\n")
    assert err.line == 6 and "duplicate key 'mode'" in str(err)


def test_invalid_name_and_missing_fields():
    err = error(BASE.replace("name: orders", "name: my orders"))
    assert err.key == "pipelines[0].name" and err.line == 2
    err = error("pipelines:\n  - name: a\n    source: x\n")
    assert "destination" in str(err) and err.line == 2


def test_secrets_redaction():
    cfg = load("""\
        pipelines:
          - name: pg
            source: "postgresql://app:${PG_PASSWORD}@db:5432/shop"
            destination: {url: "bigquery://p/d", options: {api_token: "${BQ_TOKEN}", password: literal-pw}}
            slot: "${SLOT_NAME}"
        """, env={"PG_PASSWORD": "s3cr3t!", "BQ_TOKEN": "tok-123", "SLOT_NAME": "slot1"})
    assert cfg.secrets == {"s3cr3t!", "tok-123", "literal-pw"}
    shown = cfg.redact(repr(cfg.pipelines[0]))
    assert "s3cr3t!" not in shown and "tok-123" not in shown and "literal-pw" not in shown
    assert "slot1" in shown and "***" in shown
    assert redact("token tok-123 here", {"tok-123"}) == "token *** here"
    assert redact_url("failed: postgresql://u:pa%40ss@h:5/db?x=1") == "failed: postgresql://u:***@h:5/db?x=1"
    assert redact_url("mysql://user@h/db and s3://bucket/k") == "mysql://user@h/db and s3://bucket/k"


def test_path_vs_text(tmp_path):
    f = tmp_path / "pipe.yml"
    f.write_text(BASE + "    mode: nope\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert info.value.path == str(f) and info.value.line == 5
    assert str(info.value).startswith(f"{f}:5")
    f.write_text(BASE)
    assert load_config(str(f), env={}).path == str(f)
    assert load_config(BASE, env={}).path is None
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yml"), env={})


def test_schema_file_relative_to_config(tmp_path):
    (tmp_path / "schema.yml").write_text("- {name: id, type: int64, nullable: false}\n- {name: note, type: string}\n")
    f = tmp_path / "pipe.yml"
    f.write_text(BASE + "    schema: schema.yml\n")
    p = load_config(f, env={}).pipelines[0]
    assert p.load_schema().names == ["id", "note"]
    assert p.to_options()["schema"] == str(tmp_path / "schema.yml")
    f.write_text(BASE + "    schema: nope.yml\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert info.value.key == "pipelines[0].schema" and info.value.line == 5


def test_empty_file(tmp_path):
    f = tmp_path / "empty.yml"
    f.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="empty"):
        load_config("# just a comment\n", env={})
    with pytest.raises(ConfigError, match="pipelines"):
        load_config("version: 1\n", env={})


def test_yaml_syntax_error():
    err = error("pipelines:\n  - name: a\n    source: [x\n    destination: y\n")
    assert err.line is not None and "invalid YAML" in str(err)
    err = error("pipelines:\n  - name: a\n   bad indent: 1\n")
    assert err.line in (2, 3) and "invalid YAML" in str(err)
    assert err.__cause__ is None and err.__suppress_context__


def test_get_unknown_lists_names():
    cfg = load(BASE)
    with pytest.raises(ConfigError) as info:
        cfg.get("order")
    assert "orders" in str(info.value) and "did you mean" in str(info.value)


def test_resolve_options_precedence():
    defaults = {"threads": None, "on_error": "fail", "infer_schema": True, "mode": "append"}
    file = {"threads": 2, "on_error": "skip", "key": ["id"]}
    env = {"NEBULA_THREADS": "4", "NEBULA_ON_ERROR": "dead-letter", "NEBULA_INFER_SCHEMA": "false",
           "NEBULA_KEY": "a,b", "NEBULA_COLUMNS": "amount:decimal(12,2),qty:int32", "OTHER": "x"}
    out = resolve_options(defaults, file, env, {"threads": 8, "on_error": None, "mode": None})
    assert out["threads"] == 8  # cli beats env
    assert out["on_error"] == "dead-letter"  # env beats file (cli None ignored)
    assert out["infer_schema"] is False
    assert out["key"] == ["a", "b"]
    assert out["columns"] == {"amount": "decimal(12,2)", "qty": "int32"}
    assert out["mode"] == "append"
    assert resolve_options(defaults, file, {}, {})["threads"] == 2
    assert resolve_options(defaults, {}, {}, {})["on_error"] == "fail"
    with pytest.raises(ConfigError, match="NEBULA_THREADS"):
        resolve_options(defaults, file, {"NEBULA_THREADS": "many"}, {})
    with pytest.raises(ConfigError, match="NEBULA_CDC"):
        resolve_options(defaults, file, {"NEBULA_CDC": "perhaps"}, {})


def test_merge_without_key_is_allowed_for_database_sources_only(tmp_path):
    from nebula.config import load_config
    from nebula.errors import ConfigError

    p = tmp_path / "p.yml"
    p.write_text("pipelines:\n  - name: a\n    source: postgresql://u@127.0.0.1/db\n    destination: out.db\n"
                 "    mode: merge\n    cdc: true\n")
    assert load_config(str(p)).pipelines[0].key is None  # each table's primary key
    p.write_text("pipelines:\n  - name: a\n    source: x.csv\n    destination: out.db\n    mode: merge\n")
    with pytest.raises(ConfigError, match=r"pipelines\[0\]\.key.*merge' needs `key`"):
        load_config(str(p))
