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


def _stamp_with_every_kernel_source() -> None:
    """Key each cached kernel on the source of every module here, not only its own file.

    numba stamps a cached function with its own file's hash, but a kernel also carries the code of
    the helpers it calls or inlines from sibling modules (``swar.py``, ``parse.py``): editing only
    those would leave callers running their old machine code from the cache. Any edit here now
    invalidates every kernel's cache (a full recompile, as after an install).
    """
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - another numba layout
        return
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if mixin is None or not hasattr(mixin, "get_source_stamp"):
        return  # pragma: no cover
    import hashlib

    here = _os.path.dirname(_os.path.abspath(__file__))
    own = mixin.get_source_stamp
    memo: dict = {}

    def get_source_stamp(self):
        path = getattr(self, "_py_file", None)
        if not path or _os.path.dirname(_os.path.abspath(path)) != here:
            return own(self)
        files = sorted(f for f in _os.listdir(here) if f.endswith(".py"))
        key = tuple((f, st.st_mtime_ns, st.st_size) for f in files for st in (_os.stat(_os.path.join(here, f)),))
        if key not in memo:
            h = hashlib.sha256()
            for f in files:
                with open(_os.path.join(here, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read() + b"\0")
            memo.clear()
            memo[key] = h.digest()
        return memo[key]

    mixin.get_source_stamp = get_source_stamp


_cache_loads_without_refresh()
_stamp_with_every_kernel_source()
