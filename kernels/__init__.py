"""Numba kernels (imported as ``nebula.kernels``): numpy in, numpy out, counts and error positions back.

Kernels import only numpy and numba. They never raise on bad data; they return the position of the
first problem and let the Python wrapper turn it into a typed error.
"""
