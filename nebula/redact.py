"""Keeping secrets out of output: URL passwords and known secret values become ``***``.

Kept apart from :mod:`nebula.config` so that error paths and run summaries can redact without
importing pydantic.
"""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]*)(?=@)")


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def redact(text: str, secrets: frozenset[str] | set[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every secret value and every URL password replaced by ``***``."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, "***")
    return redact_url(text)
