"""Generic op tests driven by OP_DB (TESTING.md T1-T5, T14, T23), then
behaviours the generic tests cannot reach, per op family."""
import copy
import math
import pathlib
import re
import sys
import warnings

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tapejit as tj
from tapejit.testing import check_grads

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from opdb import OP_DB  # noqa: E402
from opdb.core import (ALL, F32, F64, LARGE, PrimitiveLog, Sample, outputs, partial_op, raw,  # noqa: E402
                       tape_gradients)

# TESTING.md section 1 (T1/T2): float64 central differences.
GRAD_KW = dict(eps=1e-6, atol=1e-5, rtol=1e-3)
MAX_GRAD_ELEMENTS = 24


def op_params(test, ops=OP_DB, dtypes=False, only=None):
    """pytest params over rows (and their dtypes), with the row's xfail marks."""
    out = []
    for op in ops:
        if only is not None and not only(op):
            continue
        marks = [pytest.mark.xfail(reason=op.xfail[test], strict=True)] if test in op.xfail else []
        if dtypes:
            for d in op.dtypes:
                out.append(pytest.param(op, np.dtype(d), marks=marks, id=f"{op.name}-{np.dtype(d).name}"))
        else:
            out.append(pytest.param(op, marks=marks, id=op.name))
    return out


def assert_matches(actual, expected, dtype_tol, what=""):
    """Tensor(s) vs NumPy: same count, shape, dtype; values within tolerance; NaNs in the same places."""
    outs, exps = outputs(actual), outputs(expected)
    assert len(outs) == len(exps), f"{what}: {len(outs)} outputs, reference has {len(exps)}"
    rtol, atol = dtype_tol
    for k, (a, e) in enumerate(zip(outs, exps, strict=True)):
        assert isinstance(a, tj.Tensor), f"{what}: output {k} is {type(a).__name__}, not a Tensor"
        e = np.asarray(e)
        got = np.asarray(a)
        assert a.shape == e.shape, f"{what}: output {k} has shape {a.shape}, reference {e.shape}"
        assert got.dtype == e.dtype and a.dtype == tj.as_dtype(e.dtype), (
            f"{what}: output {k} has dtype {got.dtype}, reference {e.dtype}")
        if e.dtype.kind == "f":
            np.testing.assert_allclose(got, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"{what}: output {k}")
        else:
            np.testing.assert_array_equal(got, e, err_msg=f"{what}: output {k}")


def note(exc, op, sample):
    exc.add_note(f"op {op.name}, {sample!r}")


# =========================================================== generic tests
@pytest.mark.parametrize("op, dtype", op_params("forward", dtypes=True))
def test_forward(op, dtype):
    """T4: values, shape and dtype agree with the NumPy reference (float32 in -> float32 out)."""
    samples = op.sample_inputs(dtype)
    assert samples, f"{op.name} has no samples for {dtype}"
    for sample in samples:
        try:
            with np.errstate(all="ignore"):
                expected = op.ref(*sample.args, **sample.kwargs)
                actual = op.op(*sample.args, **sample.kwargs)
            assert_matches(actual, expected, op.tol(dtype), op.name)
        except Exception as exc:
            note(exc, op, sample)
            raise


@pytest.mark.parametrize("op, dtype", op_params("shape_rule", dtypes=True))
def test_shape_rule_matches_eager(op, dtype):
    """Every primitive applied (forward, and backward for differentiable rows) has a
    shape rule that predicts the eager result's shape and dtype."""
    with PrimitiveLog() as log:
        for sample in op.sample_inputs(dtype):
            try:
                with np.errstate(all="ignore"):
                    op.op(*sample.args, **sample.kwargs)
                    argnums = op.diff_argnums(sample)
                    if op.supports_grad and dtype.kind == "f" and argnums:
                        tape_gradients(op, sample, argnums)
            except Exception as exc:
                note(exc, op, sample)
                raise
    assert log.seen, f"{op.name}: no primitive was recorded"


def grad_samples(op):
    samples = [s for s in op.sample_inputs(F64, use=ALL) if op.diff_argnums(s)]
    assert samples, f"{op.name} supports gradients but has no gradient samples"
    for s in samples:
        for i in op.diff_argnums(s):
            assert s.args[i].size <= MAX_GRAD_ELEMENTS, f"{op.name}: {s!r} is too large for a full Jacobian"
    return samples


@pytest.mark.parametrize("op", op_params("grad", only=lambda op: op.supports_grad))
def test_grad(op):
    """T1: full-Jacobian reverse-mode gradients vs float64 central differences."""
    kw = {**GRAD_KW, **op.grad_tolerances}
    for sample in grad_samples(op):
        argnums = op.diff_argnums(sample)
        try:
            check_grads(partial_op(op, sample, argnums), [sample.args[i] for i in argnums], order=1, **kw)
        except Exception as exc:
            note(exc, op, sample)
            raise


@pytest.mark.parametrize("op", op_params("gradgrad", only=lambda op: op.supports_gradgrad))
def test_gradgrad(op):
    """T2: second order, the gradient differentiated again by a nested tape."""
    kw = {**GRAD_KW, **op.grad_tolerances}
    for sample in grad_samples(op):
        argnums = op.diff_argnums(sample)
        try:
            check_grads(partial_op(op, sample, argnums), [sample.args[i] for i in argnums], order=2, **kw)
        except Exception as exc:
            note(exc, op, sample)
            raise


@pytest.mark.parametrize("op", op_params("vjp_identity", only=lambda op: op.supports_grad))
def test_vjp_identity(op):
    """T3: <J^T c, t> == <c, J t> with random c and t on a larger input (float64, rtol 1e-6)."""
    samples = [s for s in op.sample_inputs(F64, use=LARGE) if op.diff_argnums(s)]
    assert samples, f"{op.name} supports gradients but has no LARGE sample"
    for seed, sample in enumerate(samples):
        argnums = op.diff_argnums(sample)
        try:
            check_grads(partial_op(op, sample, argnums), [sample.args[i] for i in argnums], order=1,
                        eps=1e-6, rtol=1e-6, atol=1e-8, max_full=0, seed=seed)
        except Exception as exc:
            note(exc, op, sample)
            raise


@pytest.mark.parametrize("op", op_params("grad_dtype", only=lambda op: op.supports_grad and F32 in op.dtypes))
def test_grad_dtype_float32(op):
    """T23: float32 inputs give float32 gradients of the input's shape."""
    for sample in op.sample_inputs(F32, use=(ALL, LARGE)):
        argnums = op.diff_argnums(sample)
        if not argnums:
            continue
        try:
            xs, grads = tape_gradients(op, sample, argnums)
            for x, g in zip(xs, grads, strict=True):
                assert g is not None, "gradient is None"
                assert g.dtype == tj.float32 and np.asarray(g).dtype == np.float32, f"gradient dtype {g.dtype}"
                assert g.shape == x.shape, f"gradient shape {g.shape} != input shape {x.shape}"
                assert np.all(np.isfinite(np.asarray(g))), "non-finite float32 gradient"
        except Exception as exc:
            note(exc, op, sample)
            raise


BROADCAST_OPS = op_params("broadcast", only=lambda op: bool(op.broadcast))


@pytest.mark.parametrize("op", BROADCAST_OPS)
@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_broadcasting(op, data):
    """T5/T14: any mutually broadcastable shapes (0-d, size 1, size 0): the forward
    matches NumPy and every gradient has its input's shape and dtype."""
    shapes = data.draw(mutually_broadcastable_shapes(num_shapes=len(op.broadcast), min_dims=0, max_dims=3,
                                                     min_side=0, max_side=3), label="shapes")
    dtype = np.dtype(data.draw(st.sampled_from(op.dtypes), label="dtype"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args = tuple(raw(s, dtype if d is None else d, rng) for s, d in zip(shapes.input_shapes, op.broadcast,
                                                                       strict=True))
    args = op.apply_domain(args, dtype)
    with np.errstate(all="ignore"):
        expected = op.ref(*args)
        actual = op.op(*args)
    assert_matches(actual, expected, op.tol(dtype), op.name)
    assert actual.shape == shapes.result_shape
    if op.supports_grad and dtype.kind == "f":
        sample = Sample(args)
        argnums = op.diff_argnums(sample)
        xs, grads = tape_gradients(op, sample, argnums)
        for x, g in zip(xs, grads, strict=True):
            assert g is not None
            assert g.shape == x.shape, f"gradient shape {g.shape} != input shape {x.shape}"
            assert g.dtype == x.dtype


ERROR_PARAMS = [pytest.param(op, i, e, id=f"{op.name}-{i}")
                for op in OP_DB if op.error_inputs is not None for i, e in enumerate(op.error_inputs())]


@pytest.mark.parametrize("op, index, error", ERROR_PARAMS)
def test_error_inputs(op, index, error):
    """Bad input raises the documented builtin-derived exception, naming the op."""
    with pytest.raises(error.exc_type) as info:
        op.op(*error.args, **error.kwargs)
    message = str(info.value)
    assert re.search(error.match, message), f"{message!r} does not match {error.match!r}"
    names = {op.error_prefix, op.error_prefix.replace("tj.", "tj.nn.", 1)}
    assert any(n in message for n in names), f"{message!r} does not name {op.error_prefix}"


def test_every_row_has_error_inputs_or_is_exempt():
    # Rows that cannot fail on bad shapes or dtypes beyond what their conversion does.
    exempt = {"identity", "stop_gradient", "one_hot"}
    missing = [op.name for op in OP_DB if op.error_inputs is None and op.name not in exempt]
    assert not missing, f"rows without error_inputs: {missing}"


def _snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy(), value.__array_interface__["data"][0], value.strides
    return copy.deepcopy(value)


@pytest.mark.parametrize("op, dtype", op_params("no_mutation", dtypes=True))
def test_inputs_not_mutated(op, dtype):
    """Ops (and their gradients) never write into the arrays they are given."""
    for sample in op.sample_inputs(dtype):
        before = [_snapshot(a) for a in sample.args]
        with np.errstate(all="ignore"):
            op.op(*sample.args, **sample.kwargs)
            argnums = op.diff_argnums(sample)
            if op.supports_grad and dtype.kind == "f" and argnums:
                tape_gradients(op, sample, argnums)
        for a, snap in zip(sample.args, before, strict=True):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, snap[0], err_msg=f"{op.name} mutated an input ({sample!r})")
                assert a.__array_interface__["data"][0] == snap[1] and a.strides == snap[2]


# ====================================================== creation functions
# Exempt from OP_DB (tests/test_registry.py CREATION_EXEMPT): tested directly.
def test_creation_constant_and_convert_to_tensor():
    assert tj.constant(1.5).dtype == tj.float32 and tj.constant(2).dtype == tj.int32
    assert tj.constant(True).dtype == tj.bool and tj.constant(2**40).dtype == tj.int64
    assert tj.constant([[1.0, 2.0]]).shape == (1, 2) and tj.constant([[1.0, 2.0]]).dtype == tj.float32
    assert tj.constant(np.ones(2)).dtype == tj.float64  # NumPy arrays keep their dtype
    assert tj.constant(1, dtype=tj.float64).dtype == tj.float64
    np.testing.assert_array_equal(tj.constant(3.0, shape=(2, 2)), np.full((2, 2), 3.0, np.float32))
    np.testing.assert_array_equal(tj.constant([1, 2, 3, 4], shape=(2, 2)), [[1, 2], [3, 4]])
    source = np.array([1.0, 2.0])
    t = tj.constant(source)
    source[0] = 5.0
    assert float(t[0]) == 1.0  # a copy, not a view
    assert tj.convert_to_tensor(t) is t
    assert tj.convert_to_tensor([1, 2], dtype_hint=tj.float32).dtype == tj.float32
    assert tj.convert_to_tensor([1.0]).dtype == tj.float32
    with pytest.raises(TypeError, match=r"tj\.convert_to_tensor: requested dtype float64 .*float32"):
        tj.convert_to_tensor(tj.constant([1.0]), dtype=tj.float64)
    with pytest.raises(TypeError, match=r"tj\.constant: cannot give a value with 3 elements the shape \(2, 2\)"):
        tj.constant([1, 2, 3], shape=(2, 2))


def test_creation_zeros_ones_fill_eye():
    z = tj.zeros((2, 3))
    assert z.dtype == tj.float32 and z.shape == (2, 3) and not np.asarray(z).any()
    o = tj.ones([3], dtype=tj.int64)
    assert o.dtype == tj.int64
    np.testing.assert_array_equal(o, [1, 1, 1])
    assert tj.zeros(()).shape == () and tj.ones((0, 2)).shape == (0, 2)
    f = tj.fill((2, 2), 3)
    assert f.dtype == tj.int32
    np.testing.assert_array_equal(f, np.full((2, 2), 3))
    assert tj.fill([2], 1.5).dtype == tj.float32
    np.testing.assert_array_equal(tj.eye(3), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(tj.eye(2, 3, dtype=tj.float64), np.eye(2, 3))
    assert tj.eye(2, batch_shape=(4,)).shape == (4, 2, 2)
    with pytest.raises(ValueError, match=r"tj\.zeros: shape \(2, -1\) has a negative dimension"):
        tj.zeros((2, -1))


def test_creation_range_linspace():
    r = tj.range(5)
    assert r.dtype == tj.int32
    np.testing.assert_array_equal(r, np.arange(5))
    r = tj.range(1, 2, 0.25)
    assert r.dtype == tj.float32
    np.testing.assert_array_equal(r, np.arange(1, 2, 0.25, dtype=np.float32))
    assert tj.range(3, dtype=tj.float64).dtype == tj.float64
    np.testing.assert_array_equal(tj.range(5, 0, -2), [5, 3, 1])
    lin = tj.linspace(0.0, 1.0, 5)
    assert lin.dtype == tj.float32
    np.testing.assert_allclose(lin, np.linspace(0, 1, 5), rtol=1e-7)


def test_creation_shape_size_rank():
    x = tj.ones((2, 3, 4))
    s = tj.shape(x)
    assert s.dtype == tj.int32
    np.testing.assert_array_equal(s, [2, 3, 4])
    assert tj.shape(x, out_type=tj.int64).dtype == tj.int64
    assert int(tj.size(x)) == 24 and tj.size(x).dtype == tj.int32
    assert int(tj.rank(x)) == 3 and int(tj.rank(tj.constant(1.0))) == 0
    np.testing.assert_array_equal(tj.shape(tj.constant(1.0)), np.zeros(0))


def test_creation_zeros_like_ones_like():
    x = tj.constant([[1.0, 2.0]], dtype=tj.float64)
    z, o = tj.zeros_like(x), tj.ones_like(x)
    assert z.dtype == tj.float64 and z.shape == (1, 2) and o.dtype == tj.float64
    np.testing.assert_array_equal(o, [[1.0, 1.0]])
    assert tj.ones_like(x, dtype=tj.int32).dtype == tj.int32
    assert tj.zeros_like(tj.constant([True])).dtype == tj.bool
    with tj.GradientTape() as tape:  # constants: no gradient flows through them (as TF)
        tape.watch(x)
        y = tj.reduce_sum(tj.zeros_like(x) + tj.ones_like(x))
    assert tape.gradient(y, x) is None


# ========================================================= helpers below
def grad_of(f, *values, dtype=np.float64, output_gradients=None):
    xs = [tj.constant(np.asarray(v, dtype)) for v in values]
    with tj.GradientTape() as tape:
        tape.watch(xs)
        y = f(*xs)
    grads = tape.gradient(y, xs, output_gradients=output_gradients)
    return grads[0] if len(grads) == 1 else grads


# ================================================================ reductions
REDUCE_REFS = {
    "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod,
    "reduce_mean": np.mean, "reduce_logsumexp": scipy.special.logsumexp,
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, -3, (0, 2), (2, -3), [1], (), (0, 1, 2)],
                         ids=lambda a: repr(a).replace(" ", ""))
@pytest.mark.parametrize("name", sorted(REDUCE_REFS))
def test_reduce_axis_variants(name, axis, keepdims):
    x = np.random.default_rng(0).uniform(-2, 2, (2, 3, 4))
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    expected = REDUCE_REFS[name](x, axis=np_axis, keepdims=keepdims)
    actual = getattr(tj, name)(x, axis=axis, keepdims=keepdims)
    assert actual.shape == np.shape(expected) and actual.dtype == tj.float64
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


def test_reduce_bool_and_int():
    b = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(tj.reduce_any(b, axis=1), [True, True])
    np.testing.assert_array_equal(tj.reduce_all(b, axis=1), [False, True])
    assert tj.reduce_all(np.zeros((0,), bool)).numpy() == True  # noqa: E712  (empty: the identity)
    i = np.array([[1, 2], [3, 4]], np.int32)
    assert tj.reduce_sum(i).dtype == tj.int32 and int(tj.reduce_sum(i)) == 10
    assert tj.reduce_prod(i, axis=0).dtype == tj.int32
    np.testing.assert_array_equal(tj.reduce_mean(np.array([-5, 2, 0], np.int32)), -1)  # truncates toward zero


def test_argmax_argmin_output_dtype():
    x = tj.constant([[1.0, 3.0, 2.0], [4.0, 0.0, 4.0]])
    r = tj.argmax(x, axis=1)
    assert r.dtype == tj.int64 and r.shape == (2,)
    np.testing.assert_array_equal(r, [1, 0])  # ties: the first index
    np.testing.assert_array_equal(tj.argmax(x), [1, 0, 1])  # axis None means axis 0, as TF
    assert tj.argmax(x, axis=-1, output_type=tj.int32).dtype == tj.int32
    assert tj.argmin(x, axis=1).dtype == tj.int64
    np.testing.assert_array_equal(tj.argmin(x, axis=1), [0, 1])
    assert tj.argmax(np.array([3, 7, 7], np.int32)).numpy() == 1
    with tj.GradientTape() as tape:  # integer output: no gradient
        tape.watch(x)
        y = tj.cast(tj.argmax(x, axis=1), tj.float32)
    assert tape.gradient(y, x) is None


@pytest.mark.parametrize("op, exclusive, reverse, expected", [
    (tj.cumsum, False, False, [1, 3, 6, 10]), (tj.cumsum, True, False, [0, 1, 3, 6]),
    (tj.cumsum, False, True, [10, 9, 7, 4]), (tj.cumsum, True, True, [9, 7, 4, 0]),
    (tj.cumprod, False, False, [1, 2, 6, 24]), (tj.cumprod, True, False, [1, 1, 2, 6]),
    (tj.cumprod, False, True, [24, 24, 12, 4]), (tj.cumprod, True, True, [24, 12, 4, 1]),
])
def test_scans_exclusive_reverse(op, exclusive, reverse, expected):
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(op(x, exclusive=exclusive, reverse=reverse), expected)
    x2 = np.stack([x, 2 * x])  # along axis 1 of a matrix, as along the vector
    np.testing.assert_array_equal(op(x2, axis=1, exclusive=exclusive, reverse=reverse)[0], expected)
    check_grads(lambda t: op(t, axis=1, exclusive=exclusive, reverse=reverse), [x2], order=2, **GRAD_KW)


@pytest.mark.parametrize("x, axis, keepdims, expected", [
    ([2.0, 0.0, 3.0], None, False, [0.0, 6.0, 0.0]),
    ([0.0, 0.0, 3.0], None, False, [0.0, 0.0, 0.0]),
    ([[2.0, 0.0, 3.0], [1.0, 4.0, 5.0]], 1, False, [[0.0, 6.0, 0.0], [20.0, 5.0, 4.0]]),
    ([[2.0, 0.0], [0.0, 4.0], [3.0, 5.0]], 0, True, [[0.0, 20.0], [6.0, 0.0], [0.0, 0.0]]),
    ([[0.0, 7.0]], (0, 1), False, [[7.0, 0.0]]),
])
def test_reduce_prod_gradient_with_zeros(x, axis, keepdims, expected):
    """d prod / d x_i is the product of the others: exact at zeros (out / x would give NaN)."""
    g = grad_of(lambda t: tj.reduce_prod(t, axis=axis, keepdims=keepdims), x)
    np.testing.assert_array_equal(g, expected)


# ================================================================== indexing
def test_gather_repeated_indices_gradient_scatter_adds():
    w = np.array([1.0, 2.0, 3.0, 4.0])
    g = grad_of(lambda p: tj.gather(p, np.array([1, 1, 3, 1])), [5.0, 6.0, 7.0, 8.0], output_gradients=w)
    np.testing.assert_array_equal(g, [0.0, 1.0 + 2.0 + 4.0, 0.0, 3.0])
    # 2-d indices along axis 1: every gathered slot adds into its source column
    params = np.arange(6.0).reshape(2, 3)
    idx = np.array([[2, 2], [0, -1]])
    out = tj.gather(params, idx, axis=1)
    np.testing.assert_array_equal(out, np.take(params, idx, axis=1))
    g = grad_of(lambda p: tj.gather(p, idx, axis=1), params)
    np.testing.assert_array_equal(g, [[1.0, 0.0, 3.0], [1.0, 0.0, 3.0]])
    check_grads(lambda p: tj.gather(p, idx, axis=1), [params], order=2, **GRAD_KW)


def _index_gradient(shape, key, w):
    """The gradient of x[key] with cotangent w: scatter-add of w into x's positions."""
    flat = np.arange(int(np.prod(shape))).reshape(shape)[key]
    g = np.zeros(int(np.prod(shape)))
    np.add.at(g, np.asarray(flat).ravel(), np.asarray(w).ravel())
    return g.reshape(shape)


GETITEM_KEYS = [1, -1, (2, 3), slice(None, None, -1), (slice(None), slice(None, None, -1)), (slice(3, 0, -2), 1),
                slice(-2, None), (None, 1), (Ellipsis, 2), (1, None, Ellipsis), (Ellipsis, None),
                (slice(None), None, slice(1, 3)), np.array([2, 0, 2]), (slice(None), np.array([[3, 0], [1, 1]])),
                (slice(1, None), np.array([-1, 0]))]


@pytest.mark.parametrize("key", GETITEM_KEYS, ids=lambda k: repr(k).replace(" ", ""))
def test_getitem_values_and_gradient(key):
    x = np.arange(12.0).reshape(3, 4)
    out = tj.constant(x)[key]
    np.testing.assert_array_equal(out, x[key])
    assert out.shape == np.shape(x[key])
    w = np.random.default_rng(1).standard_normal(np.shape(x[key]))
    g = grad_of(lambda t: t[key], x, output_gradients=w)
    np.testing.assert_array_equal(g, _index_gradient(x.shape, key, w))


def test_getitem_reverse_and_tensor_index():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(tj.constant(x)[::-1], x[::-1])
    np.testing.assert_array_equal(grad_of(lambda t: t[::-1] * np.array([1.0, 2.0, 3.0, 4.0]), x), [4, 3, 2, 1])
    assert float(tj.constant(x)[tj.constant(2)]) == 3.0  # a 0-d integer tensor acts as an int
    np.testing.assert_array_equal(tj.constant(x)[tj.constant([3, 3, 0])], [4.0, 4.0, 1.0])
    np.testing.assert_array_equal(grad_of(lambda t: t[tj.constant([3, 3, 0])], x), [1.0, 0.0, 0.0, 2.0])
    check_grads(lambda t: t[::-2] * t[1::2], [x], order=2, **GRAD_KW)


# ============================================================ shape gradients
def test_concat_stack_split_unstack_gradients():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    w = rng.standard_normal((2, 4))
    ga, gb = grad_of(lambda x, y: tj.concat([x, y], axis=1), a, b, output_gradients=w)
    np.testing.assert_array_equal(ga, w[:, :3])
    np.testing.assert_array_equal(gb, w[:, 3:])

    c = rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 2, 3))
    ga, gc = grad_of(lambda x, y: tj.stack([x, y], axis=1), a, c, output_gradients=w)
    np.testing.assert_array_equal(ga, w[:, 0])
    np.testing.assert_array_equal(gc, w[:, 1])

    x = rng.standard_normal((2, 6))
    w1, w2 = rng.standard_normal((2, 2)), rng.standard_normal((2, 4))
    g = grad_of(lambda t: tj.split(t, [2, 4], axis=1), x, output_gradients=[w1, w2])
    np.testing.assert_array_equal(g, np.concatenate([w1, w2], axis=1))
    g = grad_of(lambda t: tj.reduce_sum(tj.split(t, 3, axis=1)[1]), x)  # unused pieces get zeros
    np.testing.assert_array_equal(g, np.concatenate([np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))], axis=1))

    ws = [rng.standard_normal(6), rng.standard_normal(6)]
    g = grad_of(lambda t: tj.unstack(t), x, output_gradients=ws)
    np.testing.assert_array_equal(g, np.stack(ws))
    check_grads(lambda t: tj.unstack(t, axis=1)[::2], [x], order=2, **GRAD_KW)


def test_tile_and_pad_gradients():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3))
    w = rng.standard_normal((4, 6))
    g = grad_of(lambda t: tj.tile(t, [2, 2]), x, output_gradients=w)
    np.testing.assert_allclose(g, w.reshape(2, 2, 2, 3).sum(axis=(0, 2)), rtol=1e-15)
    w = rng.standard_normal((3, 6))
    g = grad_of(lambda t: tj.pad(t, [[1, 0], [2, 1]], constant_values=7.0), x, output_gradients=w)
    np.testing.assert_array_equal(g, w[1:, 2:-1])
    check_grads(lambda t: tj.pad(tj.tile(t, [1, 2]), [[0, 1], [1, 1]]) ** 2, [x], order=2, **GRAD_KW)


# ============================================================ linear algebra
EINSUM_CASES = [("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("i,i->", [(5,), (5,)]),
                ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]), ("...ij,...jk->...ik", [(3, 2), (2, 2, 3)]),
                ("ij->ji", [(2, 3)]), ("ij->", [(2, 3)]), ("ij,ij->i", [(3, 2), (3, 2)]), ("i,j->ij", [(2,), (3,)])]


@pytest.mark.parametrize("equation, shapes", EINSUM_CASES, ids=[f"{e}-{len(s)}" for e, s in EINSUM_CASES])
def test_einsum_values_and_gradients(equation, shapes):
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal(s) for s in shapes]
    out = tj.einsum(equation, *xs)
    expected = np.einsum(equation, *xs)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    f32 = tj.einsum(equation, *[x.astype(np.float32) for x in xs])
    assert f32.dtype == tj.float32
    check_grads(lambda *ts: tj.einsum(equation, *ts), xs, order=2, **GRAD_KW)


def test_tensordot_values_and_gradients():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 3, 2))
    for axes in (1, [[1, 2], [1, 0]], 0, ([2], [0])):
        np.testing.assert_allclose(tj.tensordot(a, b, axes), np.tensordot(a, b, axes), rtol=1e-12, atol=1e-14)
    check_grads(lambda x, y: tj.tensordot(x, y, [[1, 2], [1, 0]]), [a, b], order=2, **GRAD_KW)


def test_matmul_batch_broadcasting_gradient_shapes():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    out = tj.matmul(a, b)
    assert out.shape == (2, 5, 3, 2)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-12)
    w = rng.standard_normal((2, 5, 3, 2))
    ga, gb = grad_of(tj.matmul, a, b, output_gradients=w)
    assert ga.shape == a.shape and gb.shape == b.shape
    np.testing.assert_allclose(ga, (w @ np.swapaxes(b, -1, -2)).sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(gb, (np.swapaxes(a, -1, -2) @ w).sum(axis=0), rtol=1e-12)
    ga32, gb32 = grad_of(tj.matmul, a, b, dtype=np.float32)
    assert ga32.dtype == tj.float32 and gb32.dtype == tj.float32 and ga32.shape == a.shape
    check_grads(tj.matmul, [a[:, :, :2, :3], b[:2, :3, :1]], order=2, **GRAD_KW)
    assert (a @ tj.constant(b)).shape == (2, 5, 3, 2)  # the operator, with an ndarray on the left


# ====================================================================== cast
def test_cast_truncates_toward_zero():
    x = np.array([-2.7, -1.5, -0.5, 0.5, 1.5, 2.7], np.float32)
    for dtype in (tj.int32, tj.int64):
        out = tj.cast(x, dtype)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, [-2, -1, 0, 0, 1, 2])
    np.testing.assert_array_equal(tj.cast(np.array([0.0, -2.0, 0.5]), tj.bool), [False, True, True])
    np.testing.assert_array_equal(tj.cast(np.array([True, False]), tj.float32), [1.0, 0.0])
    t = tj.constant([1.0])
    assert tj.cast(t, tj.float32) is t  # same dtype: no op


def test_cast_gradient_between_float_dtypes():
    w = np.array([1.0, -2.0, 0.5])
    g = grad_of(lambda t: tj.reduce_sum(tj.cast(t, tj.float64) * w), [1.0, 2.0, 3.0], dtype=np.float32)
    assert g.dtype == tj.float32
    np.testing.assert_array_equal(g, w.astype(np.float32))
    g = grad_of(lambda t: tj.cast(t, tj.float32) ** 2, [1.5, -2.0], dtype=np.float64)
    assert g.dtype == tj.float64
    np.testing.assert_array_equal(g, [3.0, -4.0])
    x = tj.constant(np.array([1.5, -2.0], np.float32))  # second order through the cast
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            y = tj.reduce_sum(tj.cast(x, tj.float64) ** 3)
        dx = inner.gradient(y, x)
    assert dx.dtype == tj.float32
    np.testing.assert_allclose(dx, 3 * np.array([1.5, -2.0]) ** 2, rtol=1e-7)
    np.testing.assert_allclose(outer.gradient(dx, x), 6 * np.array([1.5, -2.0]), rtol=1e-7)
    assert grad_of(lambda t: tj.cast(tj.cast(t, tj.int32), tj.float64), [1.5]) is None  # through ints: none


# ================================================================= numerics
def _expit(x):
    return scipy.special.expit(x)


BIG = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0])
LABELS01 = np.array([0.0, 1.0, 0.5, 0.0, 1.0])


def _softmax_ce(labels, logits):
    return -np.sum(labels * scipy.special.log_softmax(logits, -1), -1)


# name: (f of one tensor, numpy value, numpy gradient of the sum of outputs)
NUMERICS = {
    "sigmoid": (tj.sigmoid, _expit, lambda x: _expit(x) * (1 - _expit(x))),
    "softplus": (tj.nn.softplus, lambda x: np.logaddexp(0, x), _expit),
    "reduce_logsumexp": (tj.reduce_logsumexp, scipy.special.logsumexp, lambda x: scipy.special.softmax(x)),
    "softmax": (lambda t: tj.nn.softmax(t) * np.arange(5.0).astype(t.dtype.name),
                lambda x: scipy.special.softmax(x) * np.arange(5.0),
                lambda x: scipy.special.softmax(x) * (np.arange(5.0)
                                                      - np.sum(scipy.special.softmax(x) * np.arange(5.0)))),
    "log_softmax": (tj.nn.log_softmax, scipy.special.log_softmax, lambda x: 1 - 5 * scipy.special.softmax(x)),
    "sigmoid_ce": (lambda t: tj.nn.sigmoid_cross_entropy_with_logits(labels=LABELS01.astype(t.dtype.name), logits=t),
                   lambda x: np.maximum(x, 0) - x * LABELS01 + np.log1p(np.exp(-np.abs(x))),
                   lambda x: _expit(x) - LABELS01),
    "softmax_ce": (lambda t: tj.nn.softmax_cross_entropy_with_logits(np.eye(5)[1].astype(t.dtype.name), t),
                   lambda x: _softmax_ce(np.eye(5)[1], x), lambda x: scipy.special.softmax(x) - np.eye(5)[1]),
    "sparse_softmax_ce": (lambda t: tj.nn.sparse_softmax_cross_entropy_with_logits(np.int32(0), t),
                          lambda x: _softmax_ce(np.eye(5)[0], x), lambda x: scipy.special.softmax(x) - np.eye(5)[0]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(NUMERICS))
def test_numerics_at_plus_minus_1000(name, dtype):
    """Finite values and gradients at +-1000, equal to stable float64 references, without
    overflow, invalid-value or divide-by-zero warnings."""
    f, value, gradient = NUMERICS[name]
    x = tj.constant(BIG.astype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        g = tape.gradient(y, x)
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-13)
    assert y.dtype == x.dtype and g.dtype == x.dtype
    assert np.all(np.isfinite(np.asarray(y))) and np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(np.asarray(y, np.float64), value(BIG), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(g, np.float64), gradient(BIG), rtol=rtol, atol=atol)


# ======================================================= kink conventions
def test_kink_abs_and_relu_at_zero():
    np.testing.assert_array_equal(grad_of(tj.abs, [0.0, -0.0, 2.0, -3.0]), [0.0, 0.0, 1.0, -1.0])
    np.testing.assert_array_equal(grad_of(tj.nn.relu, [0.0, -0.0, 2.0, -3.0]), [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(grad_of(tj.nn.relu6, [0.0, 6.0, 3.0, 7.0]), [0.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("f", [lambda t: t ** 2, lambda t: tj.pow(t, 2.0), lambda t: tj.square(t),
                               lambda t: t * t, lambda t: t ** tj.constant(2.0, dtype=t.dtype)],
                         ids=["operator", "pow", "square", "mul", "tensor_exponent"])
def test_kink_square_at_zero_is_zero_not_nan(f):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        np.testing.assert_array_equal(grad_of(f, [0.0, 1.5]), [0.0, 3.0])


def test_kink_pow_exponent_gradient_at_zero_base():
    gx, gy = grad_of(tj.pow, [0.0, 2.0], [2.0, 3.0])
    np.testing.assert_array_equal(gx, [0.0, 12.0])
    np.testing.assert_allclose(gy, [0.0, 8.0 * math.log(2.0)], rtol=1e-15)  # 0 ** y: log(0) must not leak


def test_kink_sqrt_at_zero_is_plus_inf():
    with np.errstate(divide="ignore"):
        g = grad_of(tj.sqrt, [0.0, 4.0])
    assert np.isposinf(g[0]) and g[1] == 0.25


def test_double_where_keeps_gradients_finite():
    f = lambda t: tj.reduce_sum(tj.sqrt(tj.where(t > 0, t, 1.0)))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        g = grad_of(f, [0.0, -1.0, 4.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.25])


@pytest.mark.xfail(strict=True, reason="single where: the masked branch's log(0) = -inf meets a zero cotangent, "
                                       "0 / 0 = NaN (TensorFlow and JAX give NaN too; README: use the double where)")
def test_single_where_masked_gradient_is_zero():
    with np.errstate(all="ignore"):
        g = grad_of(lambda t: tj.where(t > 0, tj.log(t), 0.0), [0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.5])


def test_maximum_minimum_ties_send_gradient_to_x():
    gx, gy = grad_of(tj.maximum, [1.0, 2.0, 3.0], [1.0, 5.0, 0.0])
    np.testing.assert_array_equal(gx, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.0])
    gx, gy = grad_of(tj.minimum, [1.0, 2.0, 3.0], [1.0, 5.0, 0.0])
    np.testing.assert_array_equal(gx, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 0.0, 1.0])


def test_reduce_max_min_ties_split_equally():
    np.testing.assert_array_equal(grad_of(tj.reduce_max, [1.0, 3.0, 3.0]), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(grad_of(tj.reduce_min, [1.0, 1.0, 1.0, 4.0]), [1 / 3, 1 / 3, 1 / 3, 0.0])
    g = grad_of(lambda t: tj.reduce_max(t, axis=1), [[1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(g, [[0.5, 0.5], [1.0, 0.0]])
    g = grad_of(lambda t: tj.reduce_max(t, axis=0, keepdims=True), [[2.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
    np.testing.assert_array_equal(g, [[1 / 3, 0.5], [1 / 3, 0.0], [1 / 3, 0.5]])


# ========================================================= NaN propagation
def test_nan_propagation():
    nan = np.nan
    x = np.array([nan, 1.0, nan, 2.0])
    y = np.array([0.0, nan, nan, 1.0])
    for op, ref in ((tj.maximum, np.maximum), (tj.minimum, np.minimum)):
        out = np.asarray(op(x, y))
        np.testing.assert_array_equal(out, ref(x, y))  # NaN wherever either side is NaN
        assert np.isnan(out[:3]).all() and not np.isnan(out[3])
    m = np.array([[1.0, nan, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(tj.reduce_max(m, axis=1), [nan, 6.0])
    np.testing.assert_array_equal(tj.reduce_min(m, axis=1), [nan, 4.0])
    assert np.isnan(float(tj.reduce_max(m))) and np.isnan(float(tj.reduce_sum(m)))
    c = np.array([True, False, True, False])
    np.testing.assert_array_equal(tj.where(c, x, 0.0), [nan, 0.0, nan, 0.0])
    np.testing.assert_array_equal(tj.where(c, 0.0, x), [0.0, 1.0, 0.0, 2.0])
    gx, gy = grad_of(lambda a, b: tj.where(c, a, b), x, y)  # NaN values never reach the other branch's gradient
    np.testing.assert_array_equal(gx, [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.0, 1.0])


# ============================================== stop_gradient and identity
def test_stop_gradient_and_identity():
    x = np.array([1.0, -2.0])
    assert grad_of(tj.stop_gradient, x) is None
    xt = tj.constant(x)
    with tj.GradientTape() as tape:
        tape.watch(xt)
        y = tj.stop_gradient(xt * 2.0) + xt
    np.testing.assert_array_equal(tape.gradient(y, xt), [1.0, 1.0])
    with tj.GradientTape() as tape:
        tape.watch(xt)
        y = tj.stop_gradient(xt)
    zero = tape.gradient(y, xt, unconnected_gradients=tj.UnconnectedGradients.ZERO)
    np.testing.assert_array_equal(zero, [0.0, 0.0])
    i = tj.identity(xt)
    assert i is not xt
    np.testing.assert_array_equal(i, x)
    np.testing.assert_array_equal(grad_of(tj.identity, x), [1.0, 1.0])
