"""Suite-wide settings.

Hypothesis: no per-example deadline. A kernel's first call in a process loads (or compiles) its machine
code, which can take far longer than any later call on a loaded 2-core CI machine; speed is measured in
benchmarks/, not asserted in tests.
"""

import sys

import pytest
from hypothesis import settings

settings.register_profile("nebula", deadline=None)
settings.load_profile("nebula")


@pytest.fixture(autouse=True)
def _fresh_circuit_breakers():
    """Circuit breakers are process-wide: one test's unreachable endpoint must not leave a breaker open
    (and ``/healthz`` failing) for the next."""
    yield
    resilience = sys.modules.get("nebula.connectors.resilience")
    if resilience is not None:
        resilience.reset()
