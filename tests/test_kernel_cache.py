"""Cached kernels are keyed on every kernel module's source, not only their own file's (a compiled-mode
test: it is not in the NUMBA_DISABLE_JIT pass over tests/kernels)."""

from __future__ import annotations

import hashlib
import os


def test_every_kernel_is_stamped_with_all_kernel_sources():
    from numba.core import caching

    import nebula.kernels.csv as kc
    import nebula.kernels.json as kj

    here = os.path.dirname(kc.__file__)
    want = hashlib.sha256()
    for f in sorted(f for f in os.listdir(here) if f.endswith(".py")):
        with open(os.path.join(here, f), "rb") as fh:
            want.update(f.encode() + b"\0" + fh.read() + b"\0")
    a = kc.tokenize._cache._impl.locator.get_source_stamp()
    b = kj.tokenize._cache._impl.locator.get_source_stamp()
    # numba's own stamp: the hash of the function's file alone
    own = caching._hash_source_file(kc.__file__, os.stat(kc.__file__).st_mtime, os.stat(kc.__file__).st_size)
    assert a == b == want.digest() != own
