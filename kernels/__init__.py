"""Numba kernels (imported as ``nebula.kernels``): numpy in, numpy out, counts and error positions back.

Kernels import only numpy and numba. They never raise on bad data; they return the position of the
first problem and let the Python wrapper turn it into a typed error.
"""

import os as _os


def _cache_loads_without_refresh() -> None:
    """Load cached kernels without numba's full context refresh.

    numba's ``Cache.load_overload`` refreshes the whole target context before loading a cached
    function: it imports and installs every lowering registry numba has (linalg, random, typed
    containers, ...), about 0.2 s of a short run, though loading compiled code needs only the NRT
    runtime initialised. This keeps that and skips the rest; a real compile (a cache miss) still
    refreshes everything itself (numba's ``CompilerBase`` does). ``NEBULA_NUMBA_FULL_REFRESH=1`` turns
    the shortcut off; it is also skipped when numba's internals are not the ones it was written for.
    """
    if _os.environ.get("NEBULA_NUMBA_FULL_REFRESH"):
        return
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
    except ImportError:  # pragma: no cover - another numba layout
        return
    cache = getattr(caching, "Cache", None)
    if cache is None or not hasattr(cache, "_load_overload") or not hasattr(cache, "_guard_against_spurious_io_errors"):
        return  # pragma: no cover

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    load_overload.__doc__ = cache.load_overload.__doc__
    cache.load_overload = load_overload


_cache_loads_without_refresh()
