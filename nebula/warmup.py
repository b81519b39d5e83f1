"""Compile every kernel once into Numba's on-disk cache (run at install time).

``python -m nebula.warmup`` calls each kernel on tiny inputs of every dtype the engine uses, so a
user's first real run loads machine code from the cache instead of compiling it.
"""

from __future__ import annotations

import os
import tempfile
import time


def warm() -> float:
    t0 = time.perf_counter()
    from .api import read_csv

    text = ("i,f,b,d,ts,tz,s,dec\n1,1.5,true,2024-01-01,2024-01-01T00:00:00,2024-01-01T00:00:00Z,x,1.25\n"
            ",,,,,,,\n")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.csv")
        with open(p, "w") as f:
            f.write(text)
        cols = {"dec": "decimal(10,2)"}
        read_csv(p, columns=cols)
        for t in ("int8", "int16", "int32", "float32"):
            read_csv(p, columns={"i": t, "f": t if t == "float32" else "float64", **cols})
        try:
            from . import api

            for ext in ("csv", "jsonl", "parquet"):
                api.copy(p, os.path.join(d, f"out.{ext}"), columns=cols)
            api.copy(p, f"sqlite:///{os.path.join(d, 'out.db')}", columns=cols)
        except Exception:  # noqa: BLE001 - destinations are warmed when present
            pass
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"nebula: kernels compiled and cached in {warm():.1f}s")
