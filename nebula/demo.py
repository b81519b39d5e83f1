"""``nebula demo``: generate sample orders, load them to Parquet and SQLite."""

from __future__ import annotations

import os


def run_demo(rows: int = 100_000, out: str = "demo-output", progress: bool = True) -> list:
    from .api import copy
    from .sample import generate

    os.makedirs(out, exist_ok=True)
    src = generate(os.path.join(out, "orders.csv"), rows, fmt="csv")
    prog = "auto" if progress else "none"
    r1 = copy(os.fspath(src), os.path.join(out, "orders.parquet"), name="demo-parquet", mode="replace",
              progress=prog, state=os.path.join(out, "state.db"))
    r2 = copy(os.fspath(src), f"sqlite:///{os.path.join(out, 'orders.db')}", table="orders", name="demo-sqlite",
              mode="replace", progress=prog, state=os.path.join(out, "state.db"))
    return [r1, r2]
