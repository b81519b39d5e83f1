"""Nebula: a fast Extract & Load engine whose hot paths are Numba kernels.

The public API is loaded lazily so that ``import nebula`` (and ``nebula --help``) stays cheap:
numba and pyarrow are imported only when a function that needs them runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "copy": "nebula.api",
    "read_csv": "nebula.api",
    "read_json": "nebula.api",
    "discover": "nebula.api",
    "Pipeline": "nebula.api",
    "RunResult": "nebula.pipeline.runner",
    "Schema": "nebula.schema",
    "Field": "nebula.schema",
    "LogicalType": "nebula.types",
    "parse_type": "nebula.types",
    "Batch": "nebula.batch",
    "BatchPool": "nebula.pool",
    "Pool": "nebula.pool",
    "load_config": "nebula.config",
    "errors": None,
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'nebula' has no attribute {name!r}")
    import importlib

    if _LAZY[name] is None:
        return importlib.import_module(f"nebula.{name}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
