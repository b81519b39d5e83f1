"""``python -m benchmarks.generate``: the orders generator lives in :mod:`nebula.sample` (``nebula demo`` uses it)."""

from nebula.sample import COLUMNS, FORMATS, generate, iter_chunks, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())
