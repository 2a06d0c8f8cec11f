"""tj.custom_gradient with tf.custom_gradient's semantics (the TF docs' examples)."""
import math

import numpy as np
import pytest

import tapejit as tj


def val(t):
    return np.asarray(t.numpy())


def assert_close(t, expected, rtol=1e-6, atol=0.0):
    assert t is not None, "expected a gradient, got None"
    np.testing.assert_allclose(val(t), np.asarray(expected), rtol=rtol, atol=atol)


# TF docs: the naive log(1 + exp(x)) has a NaN gradient at x = 100 in float32.
def log1pexp_naive(x):
    return tj.math.log(1 + tj.exp(x))


@tj.custom_gradient
def log1pexp(x):
    e = tj.exp(x)

    def grad(upstream):
        return upstream * (1 - 1 / (1 + e))

    return tj.math.log(1 + e), grad


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_log1pexp_naive_gradient_is_nan_at_100():
    x = tj.constant(100.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp_naive(x)
    assert np.isnan(float(tape.gradient(y, x)))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_log1pexp_custom_gradient_is_stable():
    x = tj.constant(100.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp(x)
    dy_dx = tape.gradient(y, x)
    assert dy_dx.dtype is tj.float32
    assert float(dy_dx) == 1.0


def test_log1pexp_custom_gradient_values():
    xv = np.array([-3.0, 0.0, 2.0])
    x = tj.constant(xv)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp(x)
    assert_close(y, np.log1p(np.exp(xv)), rtol=1e-12)
    assert_close(tape.gradient(y, x), 1 / (1 + np.exp(-xv)), rtol=1e-12)


def test_body_ops_are_replaced_by_grad_fn():
    @tj.custom_gradient
    def f(x):
        def grad(dy):
            return dy * 100.0    # deliberately not the true derivative
        return x * x, grad

    x = tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = f(x) * 2.0
    assert_close(y, 18.0)
    assert_close(tape.gradient(y, x), 200.0)


def test_gradient_reversal_returning_input_unchanged():
    # returning the input itself must still route the gradient through grad_fn
    @tj.custom_gradient
    def reverse(x):
        return x, lambda dy: -dy

    x = tj.constant([1.0, 2.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(reverse(x) * 3.0)
    assert_close(tape.gradient(y, x), [-3.0, -3.0])


def test_clip_gradient_example():
    @tj.custom_gradient
    def clip_gradients(y):
        def backward(dy):
            return tj.clip_by_value(dy, -0.5, 0.5)
        return y, backward

    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        z = tj.reduce_sum(clip_gradients(x * x))
    # dz/d(x*x) = 1 clipped to 0.5, then times 2x
    assert_close(tape.gradient(z, x), [1.0, 2.0, 3.0])


def test_multiple_inputs():
    @tj.custom_gradient
    def mul(x, y):
        def grad(dz):
            return dz * y, dz * x
        return x * y, grad

    x = tj.constant([1.0, 2.0])
    y = tj.constant([3.0, 5.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, y])
        z = tj.reduce_sum(mul(x, y) * tj.constant([1.0, 10.0]))
    gx, gy = tape.gradient(z, [x, y])
    assert_close(gx, [3.0, 50.0])
    assert_close(gy, [1.0, 20.0])


def test_multiple_inputs_only_one_watched():
    @tj.custom_gradient
    def f(x, y):
        def grad(dz):
            return dz * 2.0, dz * 3.0
        return 2.0 * x + 3.0 * y, grad

    x = tj.constant(1.0)
    y = tj.constant(1.0)
    with tj.GradientTape() as tape:
        tape.watch(y)
        z = f(x, y)
    gx, gy = tape.gradient(z, [x, y])
    assert gx is None
    assert_close(gy, 3.0)


def test_grad_fn_may_return_none_for_an_input():
    @tj.custom_gradient
    def f(x, n):
        def grad(dy):
            return dy * n, None
        return x * n, grad

    x = tj.constant(2.0)
    n = tj.constant(4.0)
    with tj.GradientTape() as tape:
        tape.watch([x, n])
        y = f(x, n)
    gx, gn = tape.gradient(y, [x, n])
    assert_close(gx, 4.0)
    assert gn is None


def test_broadcast_input_gradient_and_python_scalar_input():
    @tj.custom_gradient
    def scale(x, s):
        def grad(dy):
            return dy * s, tj.reduce_sum(dy * x)
        return x * s, grad

    x = tj.constant([1.0, 2.0, 3.0])
    s = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch([x, s])
        y = tj.reduce_sum(scale(x, s))
    gx, gs = tape.gradient(y, [x, s])
    assert gx.shape == (3,) and gs.shape == ()
    assert_close(gx, [2.0, 2.0, 2.0])
    assert_close(gs, 6.0)


# ------------------------------------------------------------- Variables
def test_variables_read_inside_get_gradients_from_grad_fn():
    # the tf.custom_gradient docs' linear_poly example
    weights = tj.Variable([5.0, 10.0])

    @tj.custom_gradient
    def linear_poly(x):
        poly = weights[1] * x + weights[0]

        def grad_fn(dpoly, variables):
            grad_xs = dpoly * weights[1]
            assert variables is not None
            assert len(variables) == 1
            assert variables[0] is weights
            dy_dw = dpoly * tj.stack([x ** 1, x ** 0])
            grad_vars = [tj.reduce_sum(tj.reshape(dy_dw, [2, -1]), axis=1)]
            return grad_xs, grad_vars

        return poly, grad_fn

    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = linear_poly(x)
    assert_close(y, [15.0, 25.0, 35.0])
    assert tape.watched_variables() == (weights,)
    gx, gw = tape.gradient(y, [x, weights])
    assert_close(gx, [10.0, 10.0, 10.0])
    assert_close(gw, [6.0, 3.0])


def test_several_variables():
    a = tj.Variable(2.0)
    b = tj.Variable(3.0)
    seen = []

    @tj.custom_gradient
    def f(x):
        def grad(dy, variables):
            seen.extend(variables)
            # one gradient per entry of `variables`, in its order (TF leaves the order open)
            return dy * a * b, [dy * x * b if v is a else dy * x * a for v in variables]
        return a * b * x, grad

    x = tj.constant(5.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    gx, ga, gb = tape.gradient(y, [x, a, b])
    assert_close(gx, 6.0)
    assert_close(ga, 15.0)
    assert_close(gb, 10.0)
    assert len(seen) == 2 and {id(v) for v in seen} == {id(a), id(b)}


def test_variable_passed_as_input_is_not_in_variables():
    w = tj.Variable(3.0)

    @tj.custom_gradient
    def f(v):
        def grad(dy):             # no `variables`: w arrives as an input, not read inside
            return dy * 2.0 * v
        return v * v, grad

    with tj.GradientTape() as tape:
        y = f(w)
    assert_close(tape.gradient(y, w), 6.0)


def test_grad_fn_with_var_keyword_accepts_variables():
    w = tj.Variable(2.0)

    @tj.custom_gradient
    def f(x):
        def grad(dy, **kwargs):
            (v,) = kwargs["variables"]
            assert v is w
            return dy * w, [dy * x]
        return x * w, grad

    x = tj.constant(4.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    gx, gw = tape.gradient(y, [x, w])
    assert_close(gx, 2.0)
    assert_close(gw, 4.0)


def test_grad_fn_without_variables_kwarg_raises_when_variables_are_read():
    w = tj.Variable(2.0)

    @tj.custom_gradient
    def f(x):
        def grad(dy):
            return dy * w
        return x * w, grad

    x = tj.constant(1.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        with pytest.raises(TypeError, match="variables"):
            f(x)


# ---------------------------------------------------------- higher order
def test_second_order_through_custom_gradient():
    @tj.custom_gradient
    def cube(x):
        def grad(dy):
            return dy * 3.0 * x * x     # written in tj ops: differentiable again
        return x * x * x, grad

    x = tj.constant(2.0)
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            y = cube(x)
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert_close(dy, 12.0)
    assert_close(d2y, 12.0)   # 6x


def test_second_order_of_log1pexp():
    xv = 0.3
    x = tj.constant(xv, tj.float64)
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            y = log1pexp(x)
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    s = 1 / (1 + math.exp(-xv))
    assert_close(dy, s, rtol=1e-12)
    assert_close(d2y, s * (1 - s), rtol=1e-12)


def test_nested_custom_gradients():
    @tj.custom_gradient
    def double_grad(x):
        return x * 1.0, lambda dy: dy * 2.0

    x = tj.constant(1.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = double_grad(double_grad(x))
    assert_close(tape.gradient(y, x), 4.0)


# ---------------------------------------------------------- tuple outputs
def test_custom_gradient_returning_a_tuple():
    @tj.custom_gradient
    def f(x):
        def grad(dy1, dy2):
            return dy1 * 2.0 + dy2 * 3.0 * x * x
        return (2.0 * x, x * x * x), grad

    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = f(x)
        both = a + b
    assert isinstance((a, b), tuple)
    assert_close(a, [2.0, 4.0])
    assert_close(b, [1.0, 8.0])
    assert_close(tape.gradient(both, x), [5.0, 14.0])
    # an output that is not used gets a zero upstream gradient (as TF)
    assert_close(tape.gradient(a, x), [2.0, 2.0])
    assert_close(tape.gradient(b, x), [3.0, 12.0])
    assert_close(tape.gradient([a, b], x), [5.0, 14.0])


def test_custom_gradient_tuple_output_structure_is_kept():
    @tj.custom_gradient
    def f(x):
        def grad(dy_a, dy_b):
            return dy_a + dy_b * 2.0
        return [x, (x * 2.0,)], grad

    x = tj.constant(1.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        out = f(x)
        total = out[0] + out[1][0]
    assert isinstance(out, list) and isinstance(out[1], tuple)
    assert_close(tape.gradient(total, x), 3.0)


def test_custom_gradient_outside_any_tape_just_computes():
    x = tj.constant(1.0)
    y = log1pexp(x)
    assert_close(y, math.log1p(math.e))
    assert type(y) is tj.Tensor
