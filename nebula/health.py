"""Health checks behind ``nebula check``: can each source be read and each destination written?"""

from __future__ import annotations

import os


def _report(pipeline: str, role: str, target: str, status: str, reason: str = "") -> dict:
    from .redact import redact, redact_url

    return {"pipeline": pipeline, "role": role, "target": redact_url(target), "status": status,
            "reason": redact(reason)}


def check_pipeline(pc) -> list[dict]:
    """One report per connector of a pipeline config: healthy / degraded / failing with the reason."""
    from .api import CopyOptions, config_to_copy_args, make_destination, make_source
    from .errors import NebulaError

    out = []
    try:
        _, src_url, dst_url, opts = config_to_copy_args(pc)
        o = CopyOptions.build(**opts)
    except NebulaError as e:
        return [_report(pc.name, "config", "", "failing", str(e))]
    opts.pop("name", None)
    try:
        src = make_source(src_url, o)
        try:
            src.open()
            n = len(src.schema)
            warn = "; ".join(getattr(src, "warnings", []))
            out.append(_report(pc.name, "source", str(src_url), "degraded" if warn else "healthy",
                               warn or f"{n} columns"))
        finally:
            src.close()
    except NebulaError as e:
        out.append(_report(pc.name, "source", str(src_url), "failing", str(e)))
    try:
        dst = make_destination(str(dst_url), o)
        check = getattr(dst, "check", None)
        if check is not None:
            check()
        else:
            loc = dst.location() or str(dst_url)
            if "://" not in loc:
                d = os.path.dirname(os.path.abspath(loc))
                while not os.path.exists(d):
                    d = os.path.dirname(d)
                if not os.path.isdir(d) or not os.access(d, os.W_OK):
                    raise PermissionError(f"{d} is not a writable directory")
        out.append(_report(pc.name, "destination", str(dst_url), "healthy"))
    except (NebulaError, OSError) as e:
        out.append(_report(pc.name, "destination", str(dst_url), "failing", str(e)))
    return out
