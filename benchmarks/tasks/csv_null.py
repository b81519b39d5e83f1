"""CSV → nothing with nebula (the source and its kernels alone): ``--tool nebula [--threads N]``.

There is no ``null://`` URL on the CLI, so this runs the library with a ``NullDestination``.
"""

from __future__ import annotations

from ._common import main


def nebula(args) -> dict:
    import nebula as nb
    from nebula.connectors.destinations.memory import NullDestination

    r = nb.copy(args.input, NullDestination(), threads=args.threads, progress="none")
    return {"rows_written": r.rows_written, "bytes_per_record": r.bytes_per_record}


if __name__ == "__main__":
    raise SystemExit(main("csv_null", {"nebula": nebula}))
