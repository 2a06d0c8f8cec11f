"""IEEE special values and float32 preservation, eager and compiled on both
backends (TESTING.md T21, T23).

* x/0, 0/0, log(0), sqrt(-1), inf - inf, 0 * inf, signed zeros, and NaN through
  maximum, minimum, where, reduce_max, reduce_min, reduce_sum and reduce_mean give
  NumPy's bits (np.testing.assert_array_equal, NaN equal to NaN, np.signbit of every
  zero), in float32 and float64. Elementwise cases see every pair of the special
  values; reductions see rows built around them. Each program runs twice: on arrays
  (loops over arrays in a Numba kernel) and on 0-d values next to a whole-row
  reduction (the kernel's scalar locals); the Numba programs are checked to run every
  equation inside a fused kernel.
* float32 in, float32 out: every OP_DB row's outputs and gradients, eager and compiled.
"""
import functools
import pathlib
import re
import sys

import numpy as np
import pytest

import tapejit as tj

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from opdb import op_params  # noqa: E402
from opdb.core import F32, outputs  # noqa: E402

BACKENDS = ("numpy", "numba")
MODES = ("eager",) + BACKENDS
DTYPES = (np.float32, np.float64)

# Every finite value here is exact in both dtypes and under every function below
# (log(1) = 0, sums of +-1), so any difference from NumPy is about special values.
SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan])
X, Y = np.meshgrid(SPECIALS, SPECIALS, indexing="ij")  # every (x, y) pair
# One row per reduction scenario. No row's max or min is a tie of +0.0 and -0.0:
# test_reductions_break_ties_of_signed_zeros_as_numpy has those.
ROWS = np.array([
    [1.0, -1.0, 0.0, -0.0, 1.0, 1.0, 1.0],                  # finite
    [-0.0] * 7,                                             # only negative zeros
    [np.inf, -np.inf, 1.0, 1.0, 1.0, 1.0, 1.0],             # inf - inf
    [-np.inf, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0],               # -inf
    [np.inf, np.inf, 1.0, 0.0, -0.0, -1.0, 1.0],            # +inf
    [1.0, 1.0, np.nan, -1.0, -1.0, 0.0, 0.0],               # NaN inside
    [np.nan, np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0],          # NaN first
])

# name -> (tapejit function of (x, y), NumPy reference of (x, y))
ELEMENTWISE = {
    "divide": (lambda x, y: x / y, np.divide),
    "divide_by_literal_zero": (lambda x, y: x / 0.0, lambda x, y: x / x.dtype.type(0.0)),
    "log": (lambda x, y: tj.log(x), lambda x, y: np.log(x)),
    "sqrt": (lambda x, y: tj.sqrt(x), lambda x, y: np.sqrt(x)),
    "subtract": (lambda x, y: x - y, np.subtract),
    "multiply": (lambda x, y: x * y, np.multiply),
    "abs": (lambda x, y: tj.abs(x), lambda x, y: np.abs(x)),
    "sign": (lambda x, y: tj.sign(x), lambda x, y: np.sign(x)),
    "maximum": (tj.maximum, np.maximum),
    "minimum": (tj.minimum, np.minimum),
    "where_greater": (lambda x, y: tj.where(x > y, x, y), lambda x, y: np.where(x > y, x, y)),
    "where_is_nan": (lambda x, y: tj.where(tj.math.is_nan(x), y, x), lambda x, y: np.where(np.isnan(x), y, x)),
}
# name -> (tapejit reduction, NumPy reduction); over each row of ROWS
REDUCTIONS = {
    "reduce_max": (tj.reduce_max, np.max),
    "reduce_min": (tj.reduce_min, np.min),
    "reduce_sum": (tj.reduce_sum, np.sum),
    "reduce_mean": (tj.reduce_mean, np.mean),
}
PATHS = ("arrays", "scalars")


def special_values_of_arrays(x, y, rows):
    """Every case at once, on the whole grids; reductions along each row."""
    out = {name: fn(x, y) for name, (fn, _) in ELEMENTWISE.items()}
    out.update({name: fn(rows, axis=1) for name, (fn, _) in REDUCTIONS.items()})
    return out


def special_values_of_scalars(row, x, y):
    """Every case at once on 0-d x and y; reductions over the whole row (the loop
    that makes the Numba backend build a kernel for the scalar equations)."""
    out = {name: fn(x, y) for name, (fn, _) in ELEMENTWISE.items()}
    out.update({name: fn(row) for name, (fn, _) in REDUCTIONS.items()})
    return out


def assert_runs_in_one_kernel(f, *args):
    """Every equation runs inside a fused Numba kernel: the driver (the generated source
    before the kernel modules) runs none itself, as a call `vN = fK(...)` of its NumPy kernel."""
    driver, _, kernels = f.lower(*args).source.partition("# ---- kernel module")
    assert "numba.njit" in kernels, "no Numba kernel was generated"
    assert not re.search(r"= f\d+\(", driver), f"equations run outside the kernel:\n{driver}"


@functools.cache
def special_results(dtype, mode, path):
    """{case name: result array} of one program run (per path, mode and dtype)."""
    x, y, rows = X.astype(dtype), Y.astype(dtype), ROWS.astype(dtype)
    program = special_values_of_arrays if path == "arrays" else special_values_of_scalars
    if mode != "eager":
        program = tj.compile(program, backend=mode)
    with np.errstate(all="ignore"):
        if path == "arrays":
            args = [tj.constant(a) for a in (x, y, rows)]
            if mode == "numba":
                assert_runs_in_one_kernel(program, *args)
            return {name: r.numpy() for name, r in program(*args).items()}
        # One call per (x, y) pair, the same program each time; the calls of grid row i reduce row i.
        calls = {}
        for i, j in np.ndindex(x.shape):
            args = [tj.constant(a) for a in (rows[i], x[i, j], y[i, j])]
            if mode == "numba" and not calls:
                assert_runs_in_one_kernel(program, *args)
            calls[i, j] = {name: r.numpy() for name, r in program(*args).items()}
    results = {name: np.array([calls[ij][name] for ij in np.ndindex(x.shape)]).reshape(x.shape)
               for name in ELEMENTWISE}
    results.update({name: np.array([calls[i, 0][name] for i in range(len(rows))]) for name in REDUCTIONS})
    return results


def expected(name, dtype):
    x, y, rows = X.astype(dtype), Y.astype(dtype), ROWS.astype(dtype)
    with np.errstate(all="ignore"):
        if name in ELEMENTWISE:
            return ELEMENTWISE[name][1](x, y)
        return REDUCTIONS[name][1](rows, axis=1)


def assert_same_bits(got, want, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, NumPy gives {want.dtype}"
    np.testing.assert_array_equal(got, want, err_msg=what)  # NaN equals NaN here
    number = ~np.isnan(want)  # the sign of a NaN carries no meaning
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]),
                                  err_msg=f"{what}: signs of zeros")


def special_params():
    out = []
    for name in [*ELEMENTWISE, *REDUCTIONS]:
        for dtype in DTYPES:
            for mode in MODES:
                for path in PATHS:
                    out.append(pytest.param(name, dtype, mode, path,
                                            id=f"{name}-{np.dtype(dtype).name}-{mode}-{path}"))
    return out


@pytest.mark.parametrize("name, dtype, mode, path", special_params())
def test_special_values_match_numpy_bit_for_bit(name, dtype, mode, path):
    """T21: IEEE special values give NumPy's bits, eagerly and compiled."""
    got = special_results(dtype, mode, path)[name]
    assert_same_bits(got, expected(name, dtype), f"{name} ({mode}, {path})")


@pytest.mark.xfail(strict=True, reason="a Numba reduce_max/reduce_min folds llvm.maximum/minimum, which order "
                                       "-0.0 below +0.0, so a tie of zeros gives +0.0 (max) or -0.0 (min); NumPy folds "
                                       "np.maximum/np.minimum, whose ties return the second argument: the later zero")
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_break_ties_of_signed_zeros_as_numpy(dtype):
    rows = np.array([[-0.0, 0.0, -1.0, -1.0], [0.0, -0.0, -1.0, -1.0]], dtype)
    f = tj.compile(lambda r: (tj.reduce_max(r, axis=1), tj.reduce_min(-r, axis=1)))
    assert_runs_in_one_kernel(f, rows)
    top, bottom = f(rows)
    assert_same_bits(top.numpy(), np.max(rows, axis=1), "reduce_max")
    assert_same_bits(bottom.numpy(), np.min(-rows, axis=1), "reduce_min")


# ====================================================== float32 preserved
def gradient_argnums(op, sample):
    return op.diff_argnums(sample) if op.supports_grad else ()


def value_and_gradients(op, sample):
    """args -> (the op's outputs, gradients of its floating outputs with respect to
    every differentiable argument), by a tape inside the function."""
    argnums = gradient_argnums(op, sample)

    def fn(args):
        xs = [args[i] for i in argnums]
        with tj.GradientTape() as tape:
            tape.watch(xs)
            outs = outputs(op.op(*args, **sample.kwargs))
        floats = [o for o in outs if o.dtype.is_floating]
        return outs, (tape.gradient(floats, xs) if floats and xs else [])
    return fn


def float32_samples(op, mode):
    """Every float32 sample; on the Numba backend only the largest (one kernel
    compile per row, for its biggest loop nest)."""
    samples = op.sample_inputs(F32)
    if mode == "numba":
        return [max(samples, key=lambda s: sum(np.size(a) for a in s.args))]
    return samples


@pytest.mark.parametrize("op, mode", op_params(MODES, lambda op: F32 in op.dtypes, "grad_dtype"))
def test_float32_in_float32_out(op, mode):
    """T23: float32 inputs give float32 outputs and gradients (a dtype the call asks
    for, as cast's `dtype`, excepted), eagerly and compiled."""
    for sample in float32_samples(op, mode):
        fn = value_and_gradients(op, sample)
        if mode != "eager":
            fn = tj.compile(fn, backend=mode)
        args = [tj.constant(a) if isinstance(a, np.ndarray) else a for a in sample.args]
        with np.errstate(all="ignore"):
            outs, grads = fn(args)
        want = np.dtype(tj.as_dtype(sample.kwargs["dtype"]).name) if "dtype" in sample.kwargs else F32
        what = f"{op.name} ({mode}), {sample!r}"
        for k, o in enumerate(outs):
            assert not o.dtype.is_floating or o.numpy().dtype == want, f"{what}: output {k} is {o.dtype.name}"
        for g, i in zip(grads, gradient_argnums(op, sample), strict=True):
            assert g is not None, f"{what}: no gradient for argument {i}"
            assert g.numpy().dtype == F32 and g.shape == args[i].shape, (
                f"{what}: gradient of argument {i} has dtype {g.dtype.name} and shape {g.shape}")
