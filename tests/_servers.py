"""Starting a throwaway server for a fixture: a missing binary or a failed start fails the test loudly."""

from __future__ import annotations

import pytest


def started(make, what: str):
    """``make()`` (a server object with ``start``/``stop``) started, or ``pytest.fail`` saying why."""
    try:
        srv = make()
    except RuntimeError as e:  # the binaries are missing: the message says how to get them
        pytest.fail(str(e), pytrace=False)
    try:
        srv.start()
    except Exception as e:  # noqa: BLE001
        srv.stop()
        pytest.fail(f"cannot start a throwaway {what} server: {e}", pytrace=False)
    return srv
