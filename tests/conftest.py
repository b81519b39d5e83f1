"""Suite-wide settings.

Hypothesis: no per-example deadline. A kernel's first call in a process loads (or compiles) its machine
code, which can take far longer than any later call on a loaded 2-core CI machine; speed is measured in
benchmarks/, not asserted in tests.
"""

from hypothesis import settings

settings.register_profile("nebula", deadline=None)
settings.load_profile("nebula")
