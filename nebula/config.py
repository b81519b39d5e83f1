"""Pipeline configuration: YAML files with line numbers, ``${VAR}`` substitution, pydantic validation.

A config file::

    version: 1                     # optional
    state: .nebula/state.db        # optional state store path
    audit_log: audit.jsonl         # optional: default audit.jsonl next to the state store; false: none
    defaults: {threads: 2}         # optional: any pipeline option, applied to every pipeline
    pipelines:                     # a list (or one mapping under `pipeline:`)
      - name: orders
        source: data/orders.csv    # a URL/path, or {url, format, table, options}
        destination: {url: out/orders.parquet, options: {compression: zstd}}
        mode: merge
        key: [id]
        resilience: {retries: 6, breaker_cooldown: 60}   # optional: retries, breakers, rate limits, timeouts

Rules worth knowing:

- ``${VAR}``, ``${env:VAR}`` and ``${VAR:-default}`` are replaced inside string values (several per string
  are fine; ``$${VAR}`` is a literal ``${VAR}``). As in the shell, the default also applies when ``VAR`` is
  set but empty. An unset variable without a default is an error naming the variable, the key and the line.
- ``${file:/run/secrets/db_password}`` is the file's text without its trailing newline (a relative path is
  relative to the config file); a missing or unreadable file is an error naming the key, the line and the
  path, never the content.
- Secrets: every value read from a file, values of variables whose name contains PASSWORD, SECRET, TOKEN,
  KEY or CREDENTIAL, values of option keys such as ``password`` or ``token``, and URL passwords are
  collected in :attr:`Config.secrets` and registered with :func:`nebula.redact.register_secret`, so that
  no output of the process shows them. A password or token written literally where a reference belongs
  is a warning naming the key and line (:attr:`Config.warnings`), not an error.
- ``on_error: dead-letter`` without ``dead_letter`` writes rejected rows to ``<name>.rejected.jsonl``.
- A relative ``schema:`` file is resolved against the directory of the config file (the working
  directory for text configs); source and destination URLs are kept as written.
- Errors are :class:`~nebula.errors.ConfigError` with ``key`` (e.g. ``pipelines[0].source.format``),
  ``line`` and ``path``; only the first problem is reported.

Layering (defaults <- file <- ``NEBULA_*`` environment <- CLI flags) is :func:`resolve_options`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .errors import ConfigError, NebulaError
from .redact import SECRET_OPTION, redact, redact_url, register_secret, url_passwords  # noqa: F401
from .types import parse_type

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
_SECRET_VAR = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
_SECRET_OPTION = SECRET_OPTION
_NOT_A_SECRET = re.compile(r"(_file|_path|_url|_env|_var)$", re.IGNORECASE)
_VAR = re.compile(r"\$\$\{|\$\{file:(?P<file>[^}]+)\}"
                  r"|\$\{(?:env:)?(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_PLAIN_SECRET = ("a secret is written in plain text; reference it instead: ${VAR}, ${env:VAR} or "
                 "${file:/path/to/secret}")


# -- models -------------------------------------------------------------------------------------
def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _check_type(text: str) -> str:
    try:
        return str(parse_type(text))
    except NebulaError as exc:
        raise ValueError(exc.message) from None


def _audit_log(v: Any) -> Any:
    if v is None or isinstance(v, bool) or (isinstance(v, str) and v.strip()):
        return v
    raise ValueError("expected a file path, or false for no audit log")


StrList = Annotated[list[str], BeforeValidator(_as_list)]
TypeName = Annotated[str, AfterValidator(_check_type)]


class EndpointConfig(BaseModel):
    """A source or destination: ``url`` (path, glob or URL), optional ``format``, ``table`` and options."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    format: Literal["csv", "tsv", "jsonl", "json", "parquet"] | None = None
    table: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url", mode="before")
    @classmethod
    def _url_is_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _endpoint(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


class AlertsConfig(BaseModel):
    """``alerts:`` of a pipeline: thresholds that, while crossed, log a warning and set ``nebula_alert_active``
    (see :mod:`nebula.pipeline.observe`); ``free_disk_bytes`` is the lower bound ``nebula check`` applies."""

    model_config = ConfigDict(extra="forbid")

    cdc_lag_bytes: int | None = Field(default=None, ge=0)
    rejected_rows: int | None = Field(default=None, ge=0)
    rejected_ratio: float | None = Field(default=None, ge=0, le=1)
    batch_seconds: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    free_disk_bytes: int | None = Field(default=None, ge=0)


class ResilienceConfig(BaseModel):
    """``resilience:`` of a pipeline: retries, circuit breakers, rate limits and timeouts of every connection
    (:mod:`nebula.connectors.resilience`, whose :data:`~nebula.connectors.resilience.KEYS` these mirror)."""

    model_config = ConfigDict(extra="forbid")

    retries: int | None = Field(default=None, ge=0)
    backoff_initial: float | None = Field(default=None, ge=0)
    backoff_max: float | None = Field(default=None, ge=0)
    backoff_multiplier: float | None = Field(default=None, ge=1)
    jitter: float | None = Field(default=None, ge=0, le=1)
    deadline: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    breaker_failures: int | None = Field(default=None, ge=1)
    breaker_cooldown: float | None = Field(default=None, ge=0)
    breaker_trials: int | None = Field(default=None, ge=1)
    rate_limit: float | None = Field(default=None, gt=0)
    rate_burst: int | None = Field(default=None, ge=1)


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the field `schema` shadows the deprecated BaseModel.schema()

    class PipelineConfig(BaseModel):
        """One pipeline of a config file, validated. Option names match the CLI's."""

        model_config = ConfigDict(extra="forbid")

        name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
        source: Annotated[EndpointConfig, BeforeValidator(_endpoint)]
        destination: Annotated[EndpointConfig, BeforeValidator(_endpoint)]
        mode: Literal["append", "replace", "merge"] | None = None  # None: the destination's default
        columns: dict[str, TypeName] | None = None
        schema: str | None = None
        infer_schema: bool = True
        on_error: Literal["fail", "skip", "dead-letter"] = "fail"
        dead_letter: str | None = Field(default=None, validate_default=True)
        max_rejected: int | None = Field(default=None, ge=0)
        threads: int | None = Field(default=None, ge=1)
        batch_rows: int | None = Field(default=None, ge=1)  # None: the source's default
        cdc: bool = False
        slot: str | None = None
        publication: str | None = None
        tables: StrList | None = None
        until_caught_up: bool = False
        cursor: str | None = None
        key: StrList | None = Field(default=None, validate_default=True)  # after cdc/tables: its check reads them
        metrics_port: int | None = Field(default=None, ge=1, le=65_535)
        alerts: AlertsConfig | None = None
        resilience: ResilienceConfig | None = None
        # directory / object-prefix destinations (``out/orders/``, ``s3://b/orders/``)
        partition_by: StrList | None = None
        max_rows_per_file: int | None = Field(default=None, ge=1)
        max_file_size: int | str | None = None
        run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$")

        _base_dir: Path = PrivateAttr(default_factory=Path)

        @field_validator("key")
        @classmethod
        def _key_for_merge(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
            # a database source (cdc, or `tables`) merges by each table's primary key when `key` is not given
            d = info.data
            if d.get("mode") == "merge" and not v and not (d.get("cdc") or d.get("tables")):
                raise ValueError("mode 'merge' needs `key` (the column(s) identifying a row)")
            return v

        @field_validator("dead_letter")
        @classmethod
        def _default_dead_letter(cls, v: str | None, info: ValidationInfo) -> str | None:
            if v is None and info.data.get("on_error") == "dead-letter":
                return f"{info.data.get('name', 'pipeline')}.rejected.jsonl"
            return v

        def schema_path(self) -> Path | None:
            """The ``schema`` file, resolved against the config file's directory."""
            return None if self.schema is None else self._base_dir / self.schema

        def load_schema(self):
            """The :class:`~nebula.schema.Schema` of the ``schema`` file, or ``None``."""
            path = self.schema_path()
            return None if path is None else _read_schema(path)

        def to_options(self) -> dict[str, Any]:
            """The flat keyword options of :func:`nebula.copy` / the CLI.

            ``source``/``destination`` are the URLs, ``format`` the source format, ``dest_format`` the
            destination's, ``table`` the destination table, ``source_options``/``destination_options``
            the per-endpoint options; the other names are the fields'.
            """
            opts = self.model_dump(exclude={"source", "destination"})
            opts["schema"] = None if self.schema is None else str(self.schema_path())
            opts.update(source=self.source.url, destination=self.destination.url, format=self.source.format,
                        dest_format=self.destination.format, table=self.destination.table,
                        source_table=self.source.table, source_options=dict(self.source.options),
                        destination_options=dict(self.destination.options),
                        alerts=self.alerts.model_dump(exclude_none=True) if self.alerts else None,
                        resilience=self.resilience.model_dump(exclude_none=True) if self.resilience else None)
            return opts


PIPELINE_FIELDS = tuple(PipelineConfig.model_fields)
_DEFAULTABLE = tuple(f for f in PIPELINE_FIELDS if f != "name")


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    state: str | None = None
    audit_log: Annotated[Any, AfterValidator(_audit_log)] = None
    defaults: dict[str, Any] | None = None
    pipelines: list[Any] | None = None
    pipeline: Any = None


class Config:
    """A loaded config: ``pipelines``, ``state`` path, ``secrets``, ``warnings`` and where each key was written.

    ``sha256`` is the hash of the file's bytes (of the text for a config given as text).
    """

    def __init__(self, pipelines: list[PipelineConfig], *, state: str | None = None, version: int = 1,
                 path: str | None = None, secrets: frozenset[str] = frozenset(),
                 lines: dict[str, int] | None = None, warnings: list[str] | None = None,
                 sha256: str | None = None, audit_log: str | bool | None = None) -> None:
        self.pipelines = pipelines
        self.state, self.version, self.path = state, version, path
        self.secrets = secrets
        self.lines = lines or {}
        self.warnings = list(warnings or [])
        self.sha256 = sha256
        self.audit_log = audit_log

    def get(self, name: str) -> PipelineConfig:
        for p in self.pipelines:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.pipelines) or "(none)"
        close = difflib.get_close_matches(name, [p.name for p in self.pipelines], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"no pipeline named {name!r}{hint} (pipelines: {names})", path=self.path)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pipelines]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def __repr__(self) -> str:
        return f"Config(path={self.path!r}, pipelines={self.names!r})"


# -- loading ------------------------------------------------------------------------------------
class _Reader:
    """Builds plain values from the YAML node tree, with ``{dotted.key: line}`` and substitution."""

    def __init__(self, text: str, path: str | None, env: Mapping[str, str]) -> None:
        self.text, self.path, self.env = text, path, env
        self.lines: dict[str, int] = {}
        self.secrets: set[str] = set()
        self.warnings: list[str] = []

    def _secret(self, value: str) -> None:
        self.secrets.add(value)
        register_secret(value)

    def _warn(self, message: str, key: str, line: int) -> None:
        self.warnings.append(str(ConfigError(message, key=key or None, line=line, path=self.path)))

    def read(self) -> Any:
        loader = yaml.SafeLoader(self.text)
        try:
            node = loader.get_single_node()
            return None if node is None else self._value(loader, node, "")
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(x for x in (exc.context, exc.problem) if x)
            raise ConfigError(f"invalid YAML: {what}", line=mark.line + 1 if mark else None,
                              path=self.path) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", path=self.path) from None
        finally:
            loader.dispose()

    def _value(self, loader: yaml.SafeLoader, node: yaml.Node, key: str) -> Any:
        self.lines.setdefault(key, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            for k_node, v_node in node.value:
                k = loader.construct_object(k_node, deep=True)
                line = k_node.start_mark.line + 1
                if not isinstance(k, str | int | float | bool) or isinstance(k, bool):
                    raise ConfigError("keys must be strings", key=key or None, line=line, path=self.path)
                k = str(k)
                child = f"{key}.{k}" if key else k
                if k in out:
                    raise ConfigError(f"duplicate key '{k}'", key=child, line=line, path=self.path)
                self.lines[child] = line
                value = self._value(loader, v_node, child)
                if _SECRET_OPTION.search(k) and value is not None and not isinstance(value, bool | dict | list):
                    if str(value):
                        self._secret(str(value))
                    if isinstance(v_node, yaml.ScalarNode) and v_node.value and "${" not in v_node.value \
                            and not _NOT_A_SECRET.search(k):
                        self._warn(_PLAIN_SECRET, child, line)
                out[k] = value
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._value(loader, item, f"{key}[{i}]") for i, item in enumerate(node.value)]
        value = loader.construct_object(node, deep=True)
        if isinstance(value, str):
            line = node.start_mark.line + 1
            if any("${" not in pw for pw in url_passwords(value)):
                self._warn(_PLAIN_SECRET.replace("a secret", "a URL password"), key, line)
            value = self._substitute(value, key, line)
            for pw in url_passwords(value):
                self._secret(pw)
                self._secret(unquote(pw))
        return value

    def _read_file(self, name: str, key: str, line: int) -> str:
        path = os.path.expanduser(name.strip())
        if not os.path.isabs(path) and self.path:
            path = os.path.join(os.path.dirname(os.path.abspath(self.path)), path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}",
                              key=key or None, line=line, path=self.path) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"secret file {path} is not UTF-8 text", key=key or None, line=line,
                              path=self.path) from None
        return text.rstrip("\r\n")

    def _substitute(self, text: str, key: str, line: int) -> str:
        def repl(m: re.Match) -> str:
            if m.group(0) == "$${":
                return "${"
            if m.group("file") is not None:
                value = self._read_file(m.group("file"), key, line)
                if value:
                    self._secret(value)
                return value
            var, default = m.group("var"), m.group("default")
            value = self.env.get(var)
            if not value:
                if default is None and value is None:
                    raise ConfigError(f"environment variable {var} is not set (write ${{{var}:-default}} "
                                      "to give a default)", key=key or None, line=line, path=self.path)
                value = value if default is None else default
            if value and _SECRET_VAR.search(var):
                self._secret(value)
            return value

        return _VAR.sub(repl, text) if "$" in text else text


def _dotted(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(lines: dict[str, int], key: str) -> int | None:
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return lines.get("")


def _allowed_keys(loc: tuple, top: bool) -> tuple[str, ...]:
    if top:
        return tuple(_FileModel.model_fields)
    if len(loc) >= 2 and loc[0] in ("source", "destination"):
        return tuple(EndpointConfig.model_fields)
    if len(loc) >= 2 and loc[0] == "alerts":
        return tuple(AlertsConfig.model_fields)
    if len(loc) >= 2 and loc[0] == "resilience":
        return tuple(ResilienceConfig.model_fields)
    return PIPELINE_FIELDS


def _error_from(exc: ValidationError, *, prefix_of, lines: dict[str, int], path: str | None,
                top: bool = False) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if p not in ("function-before[_endpoint(), EndpointConfig]",))
    prefix = prefix_of(loc[0] if loc else None)
    key = _dotted(prefix, loc)
    line_key = key
    if err["type"] == "extra_forbidden":
        name = str(loc[-1])
        close = difflib.get_close_matches(name, _allowed_keys(loc, top), n=1, cutoff=0.6)
        msg = f"unknown key '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")
    elif err["type"] == "missing":
        msg = f"missing required key '{loc[-1]}'"
        line_key = _dotted(prefix, loc[:-1])
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("literal_error", "string_pattern_mismatch", "enum") or "parsing" in err["type"]:
            msg = f"invalid value {err.get('input')!r}: {msg}"
        if loc and loc[0] == "key" and key not in lines:
            line_key = _dotted(prefix, ("mode",))
    return ConfigError(msg, key=key, line=_line_of(lines, line_key), path=path)


def _read_schema(path: Path):
    from .schema import Schema

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read schema file: {exc.strerror or exc}", path=str(path)) from None
    items = _Reader(text, str(path), {}).read()
    if isinstance(items, dict) and "fields" in items:
        items = items["fields"]
    if not isinstance(items, list | dict):
        raise ConfigError("a schema file holds a list of {name, type, nullable}", path=str(path))
    try:
        return Schema.from_dict(items)
    except NebulaError as exc:
        raise ConfigError(exc.message, path=str(path)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"a schema file holds a list of {{name, type, nullable}} ({exc})",
                          path=str(path)) from None


def _source_text(path_or_text: str | os.PathLike[str]) -> tuple[str, str | None, str]:
    is_path = isinstance(path_or_text, os.PathLike) or (
        "\n" not in path_or_text and (path_or_text.endswith((".yml", ".yaml")) or os.path.isfile(path_or_text)))
    if not is_path:
        text = str(path_or_text)
        return text, None, hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = os.fspath(path_or_text)
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        return text, path, hashlib.sha256(data).hexdigest()
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {getattr(exc, 'strerror', None) or exc}",
                          path=path) from None


def load_config(path_or_text: str | os.PathLike[str], env: Mapping[str, str] = os.environ) -> Config:
    """Load and validate a pipeline config from a file path or from YAML text.

    A ``str`` is a path when it has no newline and ends in ``.yml``/``.yaml`` or names an existing
    file; otherwise it is the YAML text itself.

    Raises
    ------
    ConfigError
        The first problem found, with its dotted ``key``, ``line`` and ``path``.
    """
    text, path, sha256 = _source_text(path_or_text)
    reader = _Reader(text, path, env)
    raw = reader.read()
    lines = reader.lines
    if raw is None:
        raise ConfigError("the config is empty; expected a mapping with `pipelines:`", path=path)
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping with `pipelines:`", line=lines.get(""), path=path)
    try:
        top = _FileModel.model_validate(raw)
    except ValidationError as exc:
        raise _error_from(exc, prefix_of=lambda _: "", lines=lines, path=path, top=True) from None
    if (top.pipelines is None) == (top.pipeline is None):
        which = "both `pipelines` and `pipeline`" if top.pipelines is not None else "no `pipelines`"
        raise ConfigError(f"the config has {which}; give a list under `pipelines:` (or one mapping under "
                          "`pipeline:`)", line=lines.get("pipeline"), path=path)

    defaults = top.defaults or {}
    for k in defaults:
        if k not in _DEFAULTABLE:
            close = difflib.get_close_matches(k, _DEFAULTABLE, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            why = "each pipeline needs its own name" if k == "name" else f"unknown key '{k}'{hint}"
            raise ConfigError(why, key=f"defaults.{k}", line=lines.get(f"defaults.{k}"), path=path)

    items = [(f"pipelines[{i}]", p) for i, p in enumerate(top.pipelines)] if top.pipelines is not None \
        else [("pipeline", top.pipeline)]
    base_dir = Path(path).parent if path else Path()
    pipelines: list[PipelineConfig] = []
    seen: dict[str, str] = {}
    for prefix, item in items:
        if not isinstance(item, dict):
            raise ConfigError("a pipeline must be a mapping with name, source and destination", key=prefix,
                              line=lines.get(prefix), path=path)
        merged = {**defaults, **item}

        def prefix_of(field, prefix=prefix, item=item):
            return "defaults" if field is not None and field not in item and field in defaults else prefix

        try:
            pipeline = PipelineConfig.model_validate(merged)
        except ValidationError as exc:
            raise _error_from(exc, prefix_of=prefix_of, lines=lines, path=path) from None
        pipeline._base_dir = base_dir
        if pipeline.name in seen:
            raise ConfigError(f"duplicate pipeline name '{pipeline.name}' (also at {seen[pipeline.name]})",
                              key=f"{prefix}.name", line=lines.get(f"{prefix}.name"), path=path)
        seen[pipeline.name] = f"line {lines.get(prefix + '.name')}"
        if pipeline.schema is not None:
            try:
                pipeline.load_schema()
            except ConfigError as exc:
                origin = prefix_of("schema")
                raise ConfigError(exc.message, key=f"{origin}.schema", line=lines.get(f"{origin}.schema"),
                                  path=path) from None
        pipelines.append(pipeline)
    return Config(pipelines, state=top.state, version=top.version, path=path,
                  secrets=frozenset(reader.secrets), lines=dict(lines), warnings=reader.warnings, sha256=sha256,
                  audit_log=top.audit_log)


# -- layering -----------------------------------------------------------------------------------
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_KIND_OF_FIELD = {"threads": int, "max_rejected": int, "batch_rows": int, "metrics_port": int,
                  "infer_schema": bool, "cdc": bool, "key": list, "tables": list, "columns": dict}


def _convert(name: str, text: str, sample: Any) -> Any:
    kind = _KIND_OF_FIELD.get(name)
    if kind is None and sample is not None:
        kind = type(sample) if isinstance(sample, bool | int | float | list | dict) else str
    var = f"NEBULA_{name.upper()}"
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ValueError("expected true/false")
            return low in _TRUE
        if kind is int:
            return int(text.strip())
        if kind is float:
            return float(text.strip())
        if kind is list:
            return _as_list(text)
        if kind is dict:  # columns: "amount:decimal(12,2);qty:int32" or "a:int,b:string"
            parts = [p for p in re.split(r"[;,](?![^()]*\))", text) if p.strip()]
            return {k.strip(): v.strip() for k, v in (p.split(":", 1) for p in parts)}
    except ValueError as exc:
        raise ConfigError(f"cannot use {var}={text!r}: {exc}", key=var) from None
    return text


def resolve_options(defaults: Mapping[str, Any], file: Mapping[str, Any], env: Mapping[str, str],
                    cli: Mapping[str, Any]) -> dict[str, Any]:
    """Layer options: ``defaults`` <- ``file`` <- ``NEBULA_<OPTION>`` variables <- non-None ``cli``.

    An environment variable is looked up for every option named in any layer and every pipeline field
    (``NEBULA_ON_ERROR`` for ``on_error``) and converted to the option's type: integers, booleans
    (true/false/1/0/yes/no/on/off), lists (comma-separated) and ``columns`` (``name:type,...``).
    """
    out: dict[str, Any] = dict(defaults)
    out.update(file)
    names = dict.fromkeys([*PIPELINE_FIELDS, *defaults, *file, *cli])
    for name in names:
        var = f"NEBULA_{name.upper()}"
        if var in env:
            out[name] = _convert(name, env[var], out.get(name))
    out.update({k: v for k, v in cli.items() if v is not None})
    return out


__all__ = ["Config", "PipelineConfig", "EndpointConfig", "load_config", "resolve_options", "redact",
           "redact_url", "FORMATS", "PIPELINE_FIELDS"]
