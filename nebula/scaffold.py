"""``nebula init NAME``: a pipeline YAML and a notebook to start from."""

from __future__ import annotations

import json
import os
import re

from .errors import ConfigError

_YAML = """# Nebula pipeline '{name}'. Run it with:  nebula run {name}.yml
# Values may use ${{VAR}} and ${{VAR:-default}} from the environment.
version: 1
state: .nebula/state.db
pipelines:
  - name: {name}
    source:
      url: ${{NEBULA_SOURCE:-data/{name}.csv}}
      options:
        delimiter: ","
    destination:
      url: out/{name}.parquet
    mode: replace
    on_error: dead-letter
    dead_letter: out/{name}.rejected.jsonl
    # columns: {{amount: "decimal(12,2)"}}
"""


def _notebook(name: str) -> dict:
    cells = [
        ("markdown", f"# Pipeline `{name}`\nRun the pipeline from `{name}.yml`, then look at the result."),
        ("code", "import nebula\nfrom nebula.config import load_config\n"
                 f"cfg = load_config('{name}.yml')\npipeline = nebula.Pipeline.from_config(cfg.pipelines[0])\n"
                 "result = pipeline.run(progress='auto')\nresult"),
        ("code", "import pyarrow.parquet as pq\n"
                 f"pq.read_table('out/{name}.parquet').to_pandas().head()"),
    ]
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": t, "metadata": {}, "source": s, "id": f"c{i}",
                       **({"outputs": [], "execution_count": None} if t == "code" else {})}
                      for i, (t, s) in enumerate(cells)]}


def scaffold(name: str, directory: str = ".", force: bool = False) -> list[str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"pipeline name {name!r}: use letters, digits, '_', '-' and '.'")
    files = {os.path.join(directory, f"{name}.yml"): _YAML.format(name=name),
             os.path.join(directory, f"{name}.ipynb"): json.dumps(_notebook(name), indent=1)}
    if not force:
        exists = [p for p in files if os.path.exists(p)]
        if exists:
            raise ConfigError(f"{exists[0]} exists; use --force to overwrite")
    for p, text in files.items():
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
    return list(files)
