"""Comparing compiled results with eager ones.

Compiled kernels call libm for transcendentals and vectorise reductions, so
floats may differ from eager NumPy in the last bits (TESTING.md T7); NaN
positions, integers and bools must match exactly."""
import numpy as np

RTOL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}


def assert_close_values(c, e):
    c, e = np.asarray(c), np.asarray(e)
    if e.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(c), np.isnan(e))
        np.testing.assert_allclose(c, e, rtol=RTOL[e.dtype], atol=0, equal_nan=True)
    else:
        np.testing.assert_array_equal(c, e)
