"""One script per benchmark task; each runs as a whole separate process (see ``benchmarks/run.py``).

Every script takes ``--tool NAME --input PATH --output PATH [--rows N]``, does the work, checks the
output, and prints one JSON line: ``{"tool", "task", "rows", "seconds", "ok", "error", ...}``.
"""
