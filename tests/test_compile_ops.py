"""T7: every OP_DB row, compiled equals eager, in values and in gradients.

For each row, a modest subset of its samples (per dtype: some gradient samples,
some forward-only ones such as special values and size-0 dims, the large one)
runs as `tj.compile(lambda *a: op(*a, **kwargs))` and as the eager op:

* values: same structure, dtype and shape; float64 within rtol 1e-12 (atol 1e-13),
  float32 within rtol 1e-5 (atol 1e-6); NaN in the same places; integers and bools
  exactly;
* gradients (rows with supports_grad): an eager tape around the compiled call
  against an eager tape around the eager op, after the compiled call was first
  differentiated at *other* values of the same shapes, so a backward program that
  baked the first call's values in would be caught.
"""
import pathlib
import sys

import numpy as np
import pytest

import tapejit as tj

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from opdb import OP_DB  # noqa: E402
from opdb.core import ALL, FORWARD, LARGE, outputs  # noqa: E402

# Fused kernels round like NumPy for arithmetic but call libm for transcendentals and
# sum in another order, so floats agree to a few ulp; values that cancel to ~0
# (e.g. the gradient of sum(softmax(x))) agree to an absolute bound instead.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-6}
# Samples per use and dtype: the first gradient samples, every forward-only one
# (special values, size-0 dims, ties), the large one.
PER_USE = {ALL: 5, FORWARD: 100, LARGE: 1}


def subset(op, dtype):
    taken = {use: 0 for use in PER_USE}
    out = []
    for s in op.sample_inputs(dtype):
        if taken.get(s.use, 0) < PER_USE.get(s.use, 0):
            taken[s.use] += 1
            out.append(s)
    return out


def compiled_op(op, sample):
    kwargs = dict(sample.kwargs)
    return tj.compile(lambda *args: op.op(*args, **kwargs))


def assert_close(got, want, what):
    got, want = outputs(got), outputs(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, eager has {len(want)}"
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None:
            assert g is None, f"{what}: output {k} is {g!r}, eager gives None"
            continue
        assert g is not None, f"{what}: output {k} is None, eager gives a tensor"
        assert isinstance(g, tj.Tensor), f"{what}: output {k} is a {type(g).__name__}"
        w = tj.convert_to_tensor(w)
        assert g.dtype == w.dtype, f"{what}: output {k} has dtype {g.dtype.name}, eager {w.dtype.name}"
        assert g.shape == w.shape, f"{what}: output {k} has shape {g.shape}, eager {w.shape}"
        gv, wv = np.asarray(g.numpy()), np.asarray(w.numpy())
        if wv.dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(gv), np.isnan(wv), err_msg=f"{what}: NaN positions, output {k}")
            np.testing.assert_allclose(gv, wv, rtol=RTOL[wv.dtype], atol=ATOL[wv.dtype], equal_nan=True,
                                       err_msg=f"{what}: output {k}")
        else:
            np.testing.assert_array_equal(gv, wv, err_msg=f"{what}: output {k}")


def with_args(sample, replaced):
    args = list(sample.args)
    for i, x in replaced.items():
        args[i] = x
    return args


def tape_grads(fn, sample, argnums, values=None):
    """Gradients of the sum of fn's floating outputs w.r.t. args[argnums] (optionally at other values)."""
    xs = [tj.constant(sample.args[i] if values is None else values[i]) for i in argnums]
    with tj.GradientTape() as tape:
        tape.watch(xs)
        outs = [o for o in outputs(fn(*with_args(sample, dict(zip(argnums, xs)))))
                if isinstance(o, tj.Tensor) and o.dtype.is_floating]
    return tape.gradient(outs, xs)


def other_values(op, sample, argnums, dtype, seed):
    """Fresh random values for the differentiable arguments, mapped into the op's domain."""
    rng = np.random.default_rng(seed)
    args = list(sample.args)
    for i in argnums:
        a = sample.args[i]
        args[i] = rng.uniform(-2.0, 2.0, a.shape).astype(a.dtype)
    return op.apply_domain(tuple(args), dtype)


def params():
    out = []
    for op in OP_DB:
        marks = [pytest.mark.xfail(reason=op.xfail["compiled"], strict=True)] if "compiled" in op.xfail else []
        out.append(pytest.param(op, marks=marks, id=op.name))
    return out


@pytest.mark.parametrize("op", params())
def test_compiled_equals_eager(op):
    checked_values = checked_grads = 0
    for dtype in op.dtypes:
        dtype = np.dtype(dtype)
        for n, sample in enumerate(subset(op, dtype)):
            what = f"{op.name} {sample!r}"
            try:
                f = compiled_op(op, sample)
                eager = op.op
                with np.errstate(all="ignore"):
                    want = eager(*sample.args, **sample.kwargs)
                    got = f(*sample.args)
                    assert_close(got, want, what + " (values)")
                    again = f(*sample.args)  # the cached program gives the same
                    assert_close(again, want, what + " (values, cached call)")
                    assert f.cache_info().traces == 1, what
                checked_values += 1
                argnums = op.diff_argnums(sample)
                if not (op.supports_grad and sample.use in (ALL, LARGE) and argnums):
                    continue
                with np.errstate(all="ignore"):
                    # differentiate the compiled call first at other values, then at the sample's
                    tape_grads(f, sample, argnums, other_values(op, sample, argnums, dtype, n))
                    got = tape_grads(f, sample, argnums)
                    want = tape_grads(lambda *a: eager(*a, **sample.kwargs), sample, argnums)
                assert_close(got, want, what + " (gradients)")
                for g, i in zip(got, argnums):  # float32 in -> float32 gradients
                    assert g is None or np.asarray(g.numpy()).dtype == sample.args[i].dtype, what
                checked_grads += 1
            except Exception as exc:
                exc.add_note(f"while checking {what}")
                raise
    assert checked_values, f"{op.name}: no samples checked"
    if op.supports_grad:
        assert checked_grads, f"{op.name}: no gradient samples checked"
