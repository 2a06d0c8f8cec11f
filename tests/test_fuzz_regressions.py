"""Regression tests for failures the random-program fuzzer (tests/test_fuzz.py) found.

Each test is the smallest program reproducing one failure, with a comment on
what the fuzzer found. tapejit bugs not fixed yet would be strict xfails naming the
bug (the fuzzer steering clear of them meanwhile); none is open.
"""
import numpy as np

import tapejit as tj


# A reverse slice whose start lies before the first element (start < -n) is
# empty in Python and NumPy. slice.indices() normalises both its start and stop
# to -1; tapejit's strided_slice (tracer/ops/index.py, _slices) handed NumPy
# start -1, which means "the last element", so the kernel returned elements
# while the shape rule said there were none. Fixed: an empty range is 0:0.
def test_reverse_slice_starting_before_the_first_element_is_empty():
    # Found by test_random_programs as v3[(slice(None, -2, -1), slice(-2, -2, -1), 0)] on a (1, 1, 1) value:
    # eager raised "tj.reshape: cannot reshape tensor of shape (1, 1, 1) ... (1 elements) to shape (1, 0)".
    x = np.arange(3.0)
    for key in (slice(-4, None, -1), slice(-5, -5, -1), slice(-4, 0, -1)):
        np.testing.assert_array_equal(tj.constant(x)[key], x[key])


def test_reverse_slice_starting_before_the_first_element_of_an_empty_tensor_compiles():
    # Found by test_random_programs as v3[(slice(None), 0, slice(-2, -2, -1))] on a (0, 1, 1) value: eager
    # ran (no element either way), but the traced strided_slice claimed shape (0, 1, 1) where its shape rule
    # gives (0, 1, 0), and the IR verifier (on in tests/conftest.py) rejected the program.
    x = np.zeros((0, 2))
    f = tj.compile(lambda a: a[:, -3::-1] * 2.0, backend="numpy")
    assert f(tj.constant(x)).shape == x[:, -3::-1].shape
