"""GradientTape with TensorFlow 2's semantics: watching, persistence, sources
and targets of any structure, output_gradients, unconnected gradients,
stop_recording/reset, jacobians, higher order, stop_gradient/identity."""
import math
import warnings

import numpy as np
import pytest

import tapejit as tj


def val(t):
    return np.asarray(t.numpy())


def assert_close(t, expected, rtol=1e-6, atol=0.0):
    assert t is not None, "expected a gradient, got None"
    np.testing.assert_allclose(val(t), np.asarray(expected), rtol=rtol, atol=atol)


# --------------------------------------------------------------------- watch
def test_unwatched_constant_has_no_gradient():
    x = tj.constant(3.0)
    with tj.GradientTape() as tape:
        y = x * x
    assert tape.gradient(y, x) is None


def test_watch_tensor():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(x * x)
    g = tape.gradient(y, x)
    assert g.shape == (2,) and g.dtype is tj.float32
    assert_close(g, [2.0, 4.0])


def test_watch_nested_structure():
    a = tj.constant(1.0)
    b = tj.constant(2.0)
    c = tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch({"ab": [a, b], "c": (c,)})
        y = a * b * c
    ga, gb, gc = tape.gradient(y, [a, b, c])
    assert_close(ga, 6.0)
    assert_close(gb, 3.0)
    assert_close(gc, 2.0)


def test_watch_variable_and_non_tensor():
    v = tj.Variable(2.0, trainable=False)
    with tj.GradientTape() as tape:
        tape.watch(v)
        y = v * v * v
    assert_close(tape.gradient(y, v), 12.0)
    with tj.GradientTape() as tape:
        with pytest.raises(ValueError):
            tape.watch(1.0)


def test_trainable_variables_are_watched_automatically():
    v = tj.Variable([1.0, 2.0])
    with tj.GradientTape() as tape:
        y = tj.reduce_sum(v * v)
    assert tape.watched_variables() == (v,)
    assert_close(tape.gradient(y, v), [2.0, 4.0])


def test_non_trainable_variable_is_not_watched():
    v = tj.Variable(3.0, trainable=False)
    with tj.GradientTape() as tape:
        y = v * v
    assert tape.watched_variables() == ()
    assert tape.gradient(y, v) is None


def test_watch_accessed_variables_false():
    a = tj.Variable(2.0)
    b = tj.Variable(3.0)
    x = tj.constant(4.0)
    with tj.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
        tape.watch(b)
        tape.watch(x)
        y = a * b * x
    assert tape.watched_variables() == (b,)
    ga, gb, gx = tape.gradient(y, [a, b, x])
    assert ga is None
    assert_close(gb, 8.0)
    assert_close(gx, 6.0)


def test_watched_variables_in_order_of_construction():
    a = tj.Variable(1.0, name="a")
    b = tj.Variable(2.0, name="b")
    c = tj.Variable(3.0, name="c")
    frozen = tj.Variable(4.0, trainable=False)
    with tj.GradientTape() as tape:
        y = c * b
        y = y * frozen
        y = y + a * c
    # TensorFlow returns watched variables ordered by construction, not first access.
    assert tape.watched_variables() == (a, b, c)
    assert all(isinstance(v, tj.Variable) for v in tape.watched_variables())


def test_integer_variable_read_is_silently_not_watched():
    counter = tj.Variable(0)
    w = tj.Variable(2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tj.GradientTape() as tape:
            y = w * tj.cast(counter + 1, tj.float32)
    assert tape.watched_variables() == (w,)
    assert_close(tape.gradient(y, w), 1.0)


def test_integer_source_warns_and_gives_none():
    x = tj.constant([1, 2, 3])
    with tj.GradientTape() as tape:
        with pytest.warns(UserWarning, match="float"):
            tape.watch(x)
        y = x * x
    assert tape.gradient(y, x) is None
    iv = tj.Variable(5)
    with tj.GradientTape() as tape:
        with pytest.warns(UserWarning):
            tape.watch(iv)
        y = iv * 2
    assert tape.gradient(y, iv) is None


# -------------------------------------------------------------- persistence
def test_non_persistent_tape_second_gradient_raises():
    x = tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    assert_close(tape.gradient(y, x), 6.0)
    with pytest.raises(RuntimeError) as info:
        tape.gradient(y, x)
    message = str(info.value)
    assert "non-persistent" in message and "persistent=True" in message
    with pytest.raises(RuntimeError):
        tape.jacobian(y, x)


def test_persistent_tape_many_gradients():
    x = tj.constant(3.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = y * y
    for _ in range(3):
        assert_close(tape.gradient(z, x), 108.0)
        assert_close(tape.gradient(y, x), 6.0)
        assert_close(tape.gradient(z, y), 18.0)
    assert_close(tape.jacobian(z, x), 108.0)


def test_gradient_wrt_intermediate():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * 3.0
        z = tj.reduce_sum(tj.exp(y))
    assert_close(tape.gradient(z, y), np.exp([3.0, 6.0]), rtol=1e-6)
    gx, gy = tape.gradient(z, [x, y])
    assert_close(gx, 3 * np.exp([3.0, 6.0]), rtol=1e-6)
    assert_close(gy, np.exp([3.0, 6.0]), rtol=1e-6)


def test_gradient_of_source_itself_is_ones():
    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
    assert_close(tape.gradient(x, x), [1.0, 1.0, 1.0])


def test_gradient_inside_tape_context():
    x = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x * x
        g = tape.gradient(y, x)
        after = x * 5.0  # ops after the gradient call still run fine
    assert_close(g, 12.0)
    assert_close(after, 10.0)


def test_persistent_tape_inside_context_records_its_own_gradient():
    # TensorFlow: a persistent tape's gradient called inside its context is
    # recorded on the tape, so the same tape gives higher derivatives.
    x = tj.constant(2.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x ** 4
        d1 = tape.gradient(y, x)
        d2 = tape.gradient(d1, x)
    d3 = tape.gradient(d2, x)
    assert_close(d1, 32.0)   # 4x^3
    assert_close(d2, 48.0)   # 12x^2
    assert_close(d3, 48.0)   # 24x


# ------------------------------------------------------------ target shapes
def test_non_scalar_target_is_summed():
    x = tj.constant([[1.0, 2.0], [3.0, 4.0]])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    assert_close(tape.gradient(y, x), 2 * val(x))


def test_multiple_targets_are_summed():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y1 = x * x
        y2 = tj.reduce_sum(x) * 3.0
        y3 = tj.sin(x)
    assert_close(tape.gradient([y1, y2], x), 2 * val(x) + 3)
    assert_close(tape.gradient((y1, y2, y3), x), 2 * val(x) + 3 + np.cos(val(x)), rtol=1e-6)
    assert_close(tape.gradient({"a": y1, "b": [y3]}, x), 2 * val(x) + np.cos(val(x)), rtol=1e-6)


def test_target_not_connected_or_not_on_tape():
    x = tj.constant(1.0)
    c = tj.constant(5.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = c * 2.0
    assert tape.gradient(y, x) is None
    assert tape.gradient(c, x) is None


def test_source_not_on_tape_gives_none():
    x = tj.constant(1.0)
    other = tj.constant(2.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * other
    assert tape.gradient(y, other) is None
    assert tape.gradient(y, tj.constant(1.0)) is None
    assert tape.gradient(y, tj.Variable(1.0)) is None


# -------------------------------------------------------- output_gradients
def test_output_gradients_weight_the_target():
    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    g = tape.gradient(y, x, output_gradients=tj.constant([1.0, 10.0, 100.0]))
    assert_close(g, [2.0, 40.0, 600.0])


def test_output_gradients_for_several_targets():
    x = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y1 = x * x
        y2 = x * 3.0
    g = tape.gradient([y1, y2], x, output_gradients=[tj.constant(10.0), tj.constant(-1.0)])
    assert_close(g, 4.0 * 10.0 - 3.0)


def test_output_gradients_accepts_python_and_numpy_values():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * 2.0
    assert_close(tape.gradient(y, x, output_gradients=np.array([3.0, 4.0], np.float32)), [6.0, 8.0])
    assert_close(tape.gradient(y, x, output_gradients=[np.array([1.0, -1.0], np.float32)]), [2.0, -2.0])


def test_output_gradients_shape_mismatch_raises():
    # TensorFlow broadcasts a mismatched output_gradients silently; tapejit raises.
    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    with pytest.raises(ValueError) as info:
        tape.gradient(y, x, output_gradients=tj.constant([1.0, 2.0]))
    message = str(info.value)
    assert "output_gradients" in message
    assert "(2,)" in message and "(3,)" in message
    with pytest.raises(ValueError):
        tape.gradient(y, x, output_gradients=tj.constant(1.0))


# --------------------------------------------------------- source structures
def test_sources_nested_structure_is_preserved():
    a = tj.constant(1.0)
    b = tj.constant([2.0, 3.0])
    v = tj.Variable(4.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        y = a * tj.reduce_sum(b) * v
    g = tape.gradient(y, [a, b])
    assert isinstance(g, list) and len(g) == 2
    g = tape.gradient(y, (a, b))
    assert isinstance(g, tuple) and len(g) == 2
    g = tape.gradient(y, {"b": b, "a": a, "v": v})
    assert isinstance(g, dict) and set(g) == {"a", "b", "v"}
    assert_close(g["a"], 20.0)
    assert_close(g["b"], [4.0, 4.0])
    assert_close(g["v"], 5.0)
    g = tape.gradient(y, {"pair": (a, [b]), "v": [v]})
    assert isinstance(g["pair"], tuple) and isinstance(g["pair"][1], list) and isinstance(g["v"], list)
    assert_close(g["pair"][0], 20.0)
    assert_close(g["pair"][1][0], [4.0, 4.0])
    assert_close(g["v"][0], 5.0)
    single = tape.gradient(y, b)
    assert isinstance(single, tj.Tensor)
    assert tape.gradient(y, []) == []


def test_repeated_source_gets_gradient_each_time():
    x = tj.constant(3.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    g1, g2 = tape.gradient(y, [x, x])
    assert_close(g1, 6.0)
    assert_close(g2, 6.0)


# ----------------------------------------------------- unconnected gradients
def test_unconnected_gradients_none_and_zero():
    x = tj.constant([1.0, 2.0])
    u = tj.constant([[1.0, 2.0, 3.0]], tj.float64)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, u])
        y = tj.reduce_sum(x * x)
    gx, gu = tape.gradient(y, [x, u])
    assert gu is None
    assert_close(gx, [2.0, 4.0])
    assert tape.gradient(y, u, unconnected_gradients=tj.UnconnectedGradients.NONE) is None
    for mode in (tj.UnconnectedGradients.ZERO, "zero"):
        gu = tape.gradient(y, u, unconnected_gradients=mode)
        assert gu is not None
        assert gu.shape == (1, 3) and gu.dtype is tj.float64
        np.testing.assert_array_equal(val(gu), np.zeros((1, 3)))
    v = tj.Variable([1.0, 2.0, 3.0])
    gv = tape.gradient(y, v, unconnected_gradients="zero")
    assert gv.shape == (3,) and gv.dtype is tj.float32
    np.testing.assert_array_equal(val(gv), np.zeros(3))
    with pytest.raises(ValueError):
        tape.gradient(y, x, unconnected_gradients="sometimes")


# ----------------------------------------------- stop_recording and reset
def test_stop_recording():
    x = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
        with tape.stop_recording():
            z = x * 3.0        # not recorded
            w = tj.exp(x)      # not recorded
        total = y + z + w
    assert_close(tape.gradient(total, x), 4.0)


def test_stop_recording_does_not_stop_other_tapes():
    x = tj.constant(2.0)
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            with inner.stop_recording():
                z = x * x
    assert inner.gradient(z, x) is None
    assert_close(outer.gradient(z, x), 4.0)


def test_stop_recording_outside_context_raises():
    tape = tj.GradientTape()
    with pytest.raises(ValueError):
        with tape.stop_recording():
            pass


def test_reset():
    x = tj.constant(2.0)
    with tj.GradientTape() as tape:
        tape.watch(x)
        first = x * x
        tape.reset()
        tape.watch(x)
        loss = first + x * 5.0
    # only what was recorded after reset() counts (TensorFlow's documented example)
    assert_close(tape.gradient(loss, x), 5.0)


def test_reset_forgets_watched_variables():
    a = tj.Variable(1.0)
    b = tj.Variable(2.0)
    with tj.GradientTape() as tape:
        ya = a * 2.0
        tape.reset()
        yb = b * 3.0
        total = ya + yb
    assert tape.watched_variables() == (b,)
    ga, gb = tape.gradient(total, [a, b])
    assert ga is None
    assert_close(gb, 3.0)


# ------------------------------------------------------------- jacobians
def test_jacobian_values_and_shape():
    xv = np.array([0.5, -1.0, 2.0])
    x = tj.constant(xv)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tj.stack([x[0] * x[1], tj.sin(x[2]), tj.reduce_sum(x * x)])
    j = tape.jacobian(y, x)
    assert j.shape == (3, 3) and j.dtype is tj.float64
    expected = np.array([
        [xv[1], xv[0], 0.0],
        [0.0, 0.0, math.cos(xv[2])],
        2 * xv,
    ])
    assert_close(j, expected, rtol=1e-12)


def test_jacobian_shape_is_target_shape_plus_source_shape():
    x = tj.constant(np.arange(6.0).reshape(2, 3) / 10)
    w = tj.constant(np.arange(12.0).reshape(3, 4) / 10)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, w])
        y = tj.matmul(x, w)   # (2, 4)
        total = tj.reduce_sum(y)
    jx, jw = tape.jacobian(y, [x, w])
    assert jx.shape == (2, 4, 2, 3)
    assert jw.shape == (2, 4, 3, 4)
    xv, wv = val(x), val(w)
    ex = np.einsum("ik,jl->ijkl", np.eye(2), wv.T)   # dy[i,j]/dx[k,l] = d_ik w[l,j]
    ew = np.einsum("il,jm->ijlm", xv, np.eye(4))     # dy[i,j]/dw[l,m] = x[i,l] d_jm
    assert_close(jx, ex, rtol=1e-12)
    assert_close(jw, ew, rtol=1e-12)
    js = tape.jacobian(total, x)                      # scalar target: the gradient
    assert js.shape == (2, 3)
    assert_close(js, val(tape.gradient(y, x)), rtol=1e-12)


def test_jacobian_unconnected():
    x = tj.constant([1.0, 2.0])
    u = tj.constant([[1.0, 2.0, 3.0]])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, u])
        y = x * 2.0
    assert tape.jacobian(y, u) is None
    jz = tape.jacobian(y, u, unconnected_gradients=tj.UnconnectedGradients.ZERO)
    assert jz.shape == (2, 1, 3)
    np.testing.assert_array_equal(val(jz), np.zeros((2, 1, 3)))
    jx, ju = tape.jacobian(y, [x, u])
    assert_close(jx, 2 * np.eye(2))
    assert ju is None


def test_jacobian_partially_connected_rows_are_zero():
    x = tj.constant([1.0, 2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.stack([x[0] * 3.0, tj.constant(7.0)])
    assert_close(tape.jacobian(y, x), [[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_batch_jacobian_shape_and_values():
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(4, 3))
    wv = rng.normal(size=(3, 2))
    x = tj.constant(xv)
    w = tj.constant(wv)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tj.tanh(tj.matmul(x, w))    # (4, 2)
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (4, 2, 3)
    # d y[b, i] / d x[b, k] = (1 - y[b, i]^2) * w[k, i]
    yv = np.tanh(xv @ wv)
    expected = (1 - yv ** 2)[:, :, None] * wv.T[None, :, :]
    assert_close(bj, expected, rtol=1e-12)
    full = val(tape.jacobian(y, x))     # (4, 2, 4, 3): batch_jacobian is its diagonal
    assert_close(bj, np.stack([full[b, :, b, :] for b in range(4)]), rtol=1e-12)


def test_batch_jacobian_multidimensional():
    x = tj.constant(np.arange(1.0, 13.0).reshape(2, 3, 2))
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x      # (2, 3, 2)
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (2, 3, 2, 3, 2)
    xv = val(x)
    expected = np.zeros((2, 3, 2, 3, 2))
    for b in range(2):
        for i in range(3):
            for k in range(2):
                expected[b, i, k, i, k] = 2 * xv[b, i, k]
    assert_close(bj, expected)


def test_batch_jacobian_needs_matching_batch():
    x = tj.constant(np.ones((3, 2)))
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(x, axis=0)   # (2,): batch axis gone
    with pytest.raises(ValueError):
        tape.batch_jacobian(y, x)


# -------------------------------------------------- stop_gradient, identity
def test_stop_gradient_blocks():
    x = tj.constant(3.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        s = tj.stop_gradient(x)
        y = x * s
        z = s * s
    assert_close(tape.gradient(y, x), 3.0)   # only the unstopped factor
    assert tape.gradient(z, x) is None
    assert_close(s, 3.0)


def test_identity_passes_gradient():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        i = tj.identity(x)
        y = tj.reduce_sum(i * i)
    assert i is not x
    assert_close(tape.gradient(y, x), [2.0, 4.0])
    assert_close(tape.gradient(y, i), [2.0, 4.0])


# ------------------------------------------------- Variables on the tape
def test_variable_assigned_in_between_uses_value_at_read_time():
    v = tj.Variable(2.0)
    with tj.GradientTape() as tape:
        y1 = v * v          # reads 2
        v.assign(3.0)
        y2 = v * v          # reads 3
        v.assign_add(1.0)
        y3 = v * 10.0       # reads 4
        y = y1 + y2 + y3
    # each read contributes its own local derivative; assignment is not differentiated
    assert_close(tape.gradient(y, v), 2 * 2.0 + 2 * 3.0 + 10.0)
    assert_close(y, 4.0 + 9.0 + 40.0)


def test_gradient_through_variable_read_value_and_ops():
    v = tj.Variable([[1.0, 2.0], [3.0, 4.0]])
    m = tj.constant([[1.0], [-1.0]])
    with tj.GradientTape() as tape:
        y = tj.reduce_sum(v @ m) + tj.reduce_sum(tj.exp(v.read_value())) + v[0, 1] * 2.0
    expected = np.array([[1.0, -1.0], [1.0, -1.0]]) + np.exp(val(v.read_value()))
    expected[0, 1] += 2.0
    assert_close(tape.gradient(y, v), expected, rtol=1e-6)


def test_variable_and_tensor_sources_together():
    w = tj.Variable([1.0, -2.0])
    b = tj.Variable(0.5)
    x = tj.constant([3.0, 4.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(w * x) + b
    gw, gb, gx = tape.gradient(y, [w, b, x])
    assert_close(gw, [3.0, 4.0])
    assert_close(gb, 1.0)
    assert_close(gx, [1.0, -2.0])


# ----------------------------------------------------------- higher order
def test_third_derivative_of_x4():
    x = tj.constant([0.5, 1.0, 2.0])
    with tj.GradientTape() as t3:
        t3.watch(x)
        with tj.GradientTape() as t2:
            t2.watch(x)
            with tj.GradientTape() as t1:
                t1.watch(x)
                y = x ** 4
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    xv = val(x)
    assert_close(d1, 4 * xv ** 3, rtol=1e-6)
    assert_close(d2, 12 * xv ** 2, rtol=1e-6)
    assert_close(d3, 24 * xv, rtol=1e-6)


def test_third_derivative_of_sin():
    x = tj.constant(np.linspace(-2, 2, 5))
    with tj.GradientTape() as t3:
        t3.watch(x)
        with tj.GradientTape() as t2:
            t2.watch(x)
            with tj.GradientTape() as t1:
                t1.watch(x)
                y = tj.sin(x)
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    xv = val(x)
    assert_close(d1, np.cos(xv), rtol=1e-12)
    assert_close(d2, -np.sin(xv), rtol=1e-12, atol=1e-15)
    assert_close(d3, -np.cos(xv), rtol=1e-12)


def test_fourth_order_of_exp_with_a_loop_of_tapes():
    x = tj.constant(0.7, tj.float64)
    tapes = [tj.GradientTape() for _ in range(4)]
    for t in tapes:
        t.__enter__()
        t.watch(x)
    y = tj.exp(2.0 * x)
    for t in reversed(tapes):
        t.__exit__(None, None, None)
        y = t.gradient(y, x)
    assert_close(y, 16 * math.exp(1.4), rtol=1e-12)


def test_mixed_partials():
    x = tj.constant(1.5, tj.float64)
    y = tj.constant(-2.0, tj.float64)
    with tj.GradientTape() as outer:
        outer.watch(y)
        with tj.GradientTape() as inner:
            inner.watch(x)
            f = x * x * y * y * y + tj.sin(x * y)
        df_dx = inner.gradient(f, x)          # 2x y^3 + y cos(xy)
    d2f_dxdy = outer.gradient(df_dx, y)       # 6x y^2 + cos(xy) - xy sin(xy)
    xv, yv = 1.5, -2.0
    assert_close(df_dx, 2 * xv * yv ** 3 + yv * math.cos(xv * yv), rtol=1e-12)
    assert_close(d2f_dxdy, 6 * xv * yv ** 2 + math.cos(xv * yv) - xv * yv * math.sin(xv * yv), rtol=1e-12)


def test_hessian_via_jacobian_of_gradient():
    x = tj.constant([1.0, 2.0], tj.float64)
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            f = x[0] ** 2 * x[1] + x[1] ** 3
        g = inner.gradient(f, x)
    h = outer.jacobian(g, x)
    a, b = 1.0, 2.0
    assert_close(h, [[2 * b, 2 * a], [2 * a, 6 * b]], rtol=1e-12)


def test_second_order_with_variables():
    v = tj.Variable(3.0)
    with tj.GradientTape() as outer:
        with tj.GradientTape() as inner:
            y = v * v * v * v
        g = inner.gradient(y, v)
    h = outer.gradient(g, v)
    assert_close(g, 108.0)
    assert_close(h, 108.0)  # 12 v^2


def test_same_tensor_used_twice():
    x = tj.constant([3.0, -1.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    assert_close(tape.gradient(y, x), [6.0, -2.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x + x + x * x * x
    assert_close(tape.gradient(y, x), 2 + 3 * val(x) ** 2)


# --------------------------------------------------------- misc semantics
def test_gradient_keeps_source_shape_and_dtype_under_broadcasting():
    a = tj.constant(np.ones((3, 1)))
    b = tj.constant(np.arange(4.0))
    s = tj.constant(2.0, tj.float64)
    with tj.GradientTape() as tape:
        tape.watch([a, b, s])
        y = a * b * s       # (3, 4)
    ga, gb, gs = tape.gradient(y, [a, b, s])
    assert ga.shape == (3, 1) and ga.dtype is tj.float64
    assert gb.shape == (4,) and gb.dtype is tj.float64
    assert gs.shape == () and gs.dtype is tj.float64
    assert_close(ga, np.full((3, 1), 2 * 6.0))
    assert_close(gb, np.full(4, 2 * 3.0))
    assert_close(gs, 3 * 6.0)


def test_gradient_through_indexing_and_python_control_flow():
    x = tj.constant([1.0, -2.0, 3.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        total = tj.constant(0.0)
        for element in x:           # iteration is recorded
            if element > 0:         # Python control flow on values
                total = total + element * element
            else:
                total = total - element
    assert_close(tape.gradient(total, x), [2.0, -1.0, 6.0])


def test_gradient_target_may_be_a_variable_read():
    v = tj.Variable(2.0)
    with tj.GradientTape() as tape:
        r = v.read_value()
    assert_close(tape.gradient(r, v), 1.0)


def test_tapes_nest_independently():
    x = tj.constant(2.0)
    with tj.GradientTape() as outer:
        outer.watch(x)
        y = x * x
        with tj.GradientTape() as inner:
            inner.watch(y)
            z = y * y
    # inner watched y only: dz/dy; the outer tape sees the whole chain
    assert_close(inner.gradient(z, y), 8.0)
    assert_close(outer.gradient(z, x), 32.0)   # 4 x^3


# ------------------------------------------------ tf.GradientTape doc examples
def test_doc_example_jacobian():
    with tj.GradientTape() as g:
        x = tj.constant([1.0, 2.0])
        g.watch(x)
        y = x * x
    jacobian = g.jacobian(y, x)
    np.testing.assert_array_equal(val(jacobian), [[2.0, 0.0], [0.0, 4.0]])


def test_doc_example_batch_jacobian():
    with tj.GradientTape() as g:
        x = tj.constant([[1.0, 2.0], [3.0, 4.0]], dtype=tj.float32)
        g.watch(x)
        y = x * x
    batch_jacobian = g.batch_jacobian(y, x)
    np.testing.assert_array_equal(val(batch_jacobian), [[[2, 0], [0, 4]], [[6, 0], [0, 8]]])
    assert batch_jacobian.dtype is tj.float32


def test_doc_example_nested_second_derivative():
    x = tj.constant(3.0)
    with tj.GradientTape() as g:
        g.watch(x)
        with tj.GradientTape() as gg:
            gg.watch(x)
            y = x * x
        dy_dx = gg.gradient(y, x)     # 2 * x
    d2y_dx2 = g.gradient(dy_dx, x)    # 2
    assert float(dy_dx) == 6.0
    assert float(d2y_dx2) == 2.0


def test_doc_example_persistent():
    x = tj.constant(3.0)
    with tj.GradientTape(persistent=True) as g:
        g.watch(x)
        y = x * x
        z = y * y
    dz_dx = g.gradient(z, x)  # (4*x^3 at x = 3)
    dy_dx = g.gradient(y, x)
    del g
    assert float(dz_dx) == 108.0
    assert float(dy_dx) == 6.0
