"""Differentiation and @tj.compile, both ways: a GradientTape inside a compiled
function (differentiated symbolically at trace time) and a compiled call under
eager tapes (one tape entry running a derived backward program), to any order
(SPEC.md "@tj.compile"; SEED.md under compile; TESTING.md T7, T13, T23)."""
import numpy as np
import pytest

import tapejit as tj


def rand(shape, dtype=np.float64, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def traces(f):
    return f.cache_info().traces


# --------------------------------------------------- SEED.md under compile
def test_seed_gradient_wrt_input_tape_inside():
    @tj.compile
    def dz_dx_of(x):
        with tj.GradientTape() as t:
            t.watch(x)
            y = tj.reduce_sum(x)
            z = tj.multiply(y, y)
        return t.gradient(z, x)

    x = tj.ones((2, 2))
    dz_dx = dz_dx_of(x)
    for i in [0, 1]:
        for j in [0, 1]:
            assert dz_dx[i][j].numpy() == 8.0
    assert dz_dx.dtype == tj.float32 and dz_dx.shape == (2, 2)
    np.testing.assert_array_equal(dz_dx_of(tj.fill((2, 2), 2.0)).numpy(), np.full((2, 2), 16.0))
    assert traces(dz_dx_of) == 1
    assert "reduce_sum" in dz_dx_of.lower(x).ir and dz_dx_of.lower(x).ir.count("\n") > 3


def test_seed_gradient_wrt_input_compiled_under_tape():
    @tj.compile
    def z_of(x):
        y = tj.reduce_sum(x)
        return tj.multiply(y, y)

    x = tj.ones((2, 2))
    with tj.GradientTape() as t:
        t.watch(x)
        z = z_of(x)
    dz_dx = t.gradient(z, x)
    np.testing.assert_array_equal(dz_dx.numpy(), np.full((2, 2), 8.0, np.float32))
    assert dz_dx.dtype == tj.float32


def test_seed_gradient_wrt_intermediate_tape_inside():
    @tj.compile
    def dz_dy_of(x):
        with tj.GradientTape() as t:
            t.watch(x)
            y = tj.reduce_sum(x)
            z = tj.multiply(y, y)
        return t.gradient(z, y)

    assert dz_dy_of(tj.ones((2, 2))).numpy() == 8.0
    assert dz_dy_of(tj.fill((2, 2), 0.5)).numpy() == 4.0
    assert traces(dz_dy_of) == 1


def test_seed_persistent_tape_inside():
    @tj.compile
    def both(x):
        with tj.GradientTape(persistent=True) as t:
            t.watch(x)
            y = x * x
            z = y * y
        dz_dx = t.gradient(z, x)  # 108.0 (4*x^3 at x = 3)
        dy_dx = t.gradient(y, x)  # 6.0
        del t
        return dz_dx, dy_dx

    dz_dx, dy_dx = both(tj.constant(3.0))
    assert dz_dx.numpy() == 108.0 and dy_dx.numpy() == 6.0
    dz_dx, dy_dx = both(tj.constant(2.0))
    assert dz_dx.numpy() == 32.0 and dy_dx.numpy() == 4.0
    assert traces(both) == 1


def test_seed_control_flow_tape_inside():
    def f(x, y):
        output = 1.0
        for i in range(y):
            if i > 1 and i < 5:
                output = tj.multiply(output, x)
        return output

    @tj.compile
    def grad(x, y):
        with tj.GradientTape() as t:
            t.watch(x)
            out = f(x, y)
        return t.gradient(out, x)

    x = tj.convert_to_tensor(2.0)
    assert grad(x, 6).numpy() == 12.0
    assert grad(x, 5).numpy() == 12.0
    assert grad(x, 4).numpy() == 4.0
    assert grad(tj.convert_to_tensor(3.0), 6).numpy() == 27.0
    assert traces(grad) == 3


def test_seed_higher_order_variable_tapes_inside_then_reassigned():
    """d/dx and d2/dx2 of x*x*x at a Variable, with both tapes inside the compiled
    function; the Variable is read at call time, so reassigning it needs no retrace."""
    x = tj.Variable(1.0)  # Create a Tensorflow variable initialized to 1.0

    @tj.compile
    def derivatives():
        with tj.GradientTape() as t:
            with tj.GradientTape() as t2:
                y = x * x * x
            # Compute the gradient inside the 't' context manager
            # which means the gradient computation is differentiable as well.
            dy_dx = t2.gradient(y, x)
        d2y_dx2 = t.gradient(dy_dx, x)
        return dy_dx, d2y_dx2

    dy_dx, d2y_dx2 = derivatives()
    assert dy_dx.numpy() == 3.0
    assert d2y_dx2.numpy() == 6.0
    x.assign(2.0)
    dy_dx, d2y_dx2 = derivatives()
    assert dy_dx.numpy() == 12.0
    assert d2y_dx2.numpy() == 12.0
    assert traces(derivatives) == 1
    x.assign_add(1.0)
    assert [float(d) for d in derivatives()] == [27.0, 18.0]
    assert traces(derivatives) == 1


def test_seed_higher_order_variable_compiled_under_eager_tapes():
    x = tj.Variable(1.0)
    cube = tj.compile(lambda v: v * v * v)
    for value, expected in ((1.0, (3.0, 6.0)), (2.0, (12.0, 12.0))):
        x.assign(value)
        with tj.GradientTape() as t:
            with tj.GradientTape() as t2:
                y = cube(x)
            dy_dx = t2.gradient(y, x)
        d2y_dx2 = t.gradient(dy_dx, x)
        assert (dy_dx.numpy(), d2y_dx2.numpy()) == expected
    assert traces(cube) == 1


# ----------------------------------------------- compiled call under eager tapes
def loss_fn(x, w):
    h = tj.tanh(tj.matmul(x, w))
    return tj.reduce_sum(h * h) + tj.reduce_mean(tj.exp(-x))


def eager_and_compiled_grads(fn, args, watch):
    f = tj.compile(fn)
    out = []
    for g in (f, fn):
        with tj.GradientTape() as tape:
            tape.watch([args[i] for i in watch])
            y = g(*args)
        out.append(tape.gradient(y, [args[i] for i in watch]))
    return f, out


def test_first_order_under_eager_tape_is_one_entry():
    x, w = tj.constant(rand((4, 3))), tj.constant(rand((3, 2), seed=1))
    f = tj.compile(loss_fn)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch([x, w])
        y = f(x, w)
    assert len(tape._entries) == 1
    gx, gw = tape.gradient(y, [x, w])
    with tj.GradientTape() as tape:
        tape.watch([x, w])
        ye = loss_fn(x, w)
    ex, ew = tape.gradient(ye, [x, w])
    np.testing.assert_allclose(y.numpy(), ye.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx.numpy(), ex.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), ew.numpy(), rtol=1e-12)


def test_derived_backward_is_reused_at_new_values():
    """The backward program is derived once per path; later calls with other values
    (same path) must give their own gradients, not the first call's."""
    f = tj.compile(loss_fn)
    for seed in range(4):
        x, w = tj.constant(rand((4, 3), seed=seed)), tj.constant(rand((3, 2), seed=seed + 10))
        grads = []
        for g in (f, loss_fn):
            with tj.GradientTape() as tape:
                tape.watch([x, w])
                y = g(x, w)
            grads.append(tape.gradient(y, [x, w]))
        for a, b in zip(*grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert traces(f) == 1


def test_float32_gradients_stay_float32():
    x, w = tj.constant(rand((4, 3), np.float32)), tj.constant(rand((3, 2), np.float32, seed=1))
    f, (got, want) = eager_and_compiled_grads(loss_fn, (x, w), (0, 1))
    for a, b in zip(got, want):
        assert a.dtype == tj.float32 and a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_second_order_under_nested_eager_tapes():
    f = tj.compile(lambda x: tj.reduce_sum(tj.sin(x) * x))
    x = tj.constant(rand((3,), seed=4))
    with tj.GradientTape() as t1:
        t1.watch(x)
        with tj.GradientTape() as t2:
            t2.watch(x)
            y = f(x)
        d1 = t2.gradient(y, x)
        s = tj.reduce_sum(d1 * tj.constant([1.0, 2.0, 3.0], tj.float64))
    d2 = t1.gradient(s, x)
    xn = x.numpy()
    np.testing.assert_allclose(d1.numpy(), np.cos(xn) * xn + np.sin(xn), rtol=1e-12)
    np.testing.assert_allclose(d2.numpy(), (2 * np.cos(xn) - xn * np.sin(xn)) * [1.0, 2.0, 3.0], rtol=1e-12)


def test_third_order_under_nested_eager_tapes():
    f = tj.compile(lambda x: x * x * x * x + tj.exp(x))
    for v in (2.0, -0.5):
        x = tj.constant(v, tj.float64)
        with tj.GradientTape() as t1:
            t1.watch(x)
            with tj.GradientTape() as t2:
                t2.watch(x)
                with tj.GradientTape() as t3:
                    t3.watch(x)
                    y = f(x)
                g1 = t3.gradient(y, x)
            g2 = t2.gradient(g1, x)
        g3 = t1.gradient(g2, x)
        np.testing.assert_allclose([g1.numpy(), g2.numpy(), g3.numpy()],
                                   [4 * v ** 3 + np.exp(v), 12 * v ** 2 + np.exp(v), 24 * v + np.exp(v)],
                                   rtol=1e-12)
    assert traces(f) == 1


def test_backward_does_not_rerun_the_python_function():
    calls = []

    @tj.compile
    def f(x):
        calls.append(1)
        return tj.reduce_sum(tj.sin(x) ** 2)

    x = tj.constant(rand((3,)))
    for _ in range(3):
        with tj.GradientTape() as t1:
            t1.watch(x)
            with tj.GradientTape() as t2:
                t2.watch(x)
                y = f(x)
            g = t2.gradient(y, x)
        t1.gradient(g, x)
    assert len(calls) == 1


def test_variables_read_by_a_compiled_call_are_watched():
    w = tj.Variable(rand((3, 2), seed=2))
    frozen = tj.Variable(rand((2,), seed=3), trainable=False)

    def fn(x):
        return tj.reduce_sum(tj.matmul(x, w) * frozen)

    f = tj.compile(fn)
    x = tj.constant(rand((4, 3)))
    results = []
    for g in (f, fn):
        with tj.GradientTape() as tape:
            y = g(x)
        results.append(tape.gradient(y, [w, frozen, x]))
    (gw, gfrozen, gx), (ew, efrozen, ex) = results
    np.testing.assert_allclose(gw.numpy(), ew.numpy(), rtol=1e-12)
    assert gfrozen is None and efrozen is None
    assert gx is None and ex is None  # x was not watched


def test_multiple_outputs_and_output_gradients():
    def fn(x):
        return x * x, tj.reduce_sum(tj.sin(x)), tj.argmax(x)

    f = tj.compile(fn)
    x = tj.constant(rand((2, 3)))
    seed = tj.constant(rand((2, 3), seed=9))
    results = []
    for g in (f, fn):
        with tj.GradientTape(persistent=True) as tape:
            tape.watch(x)
            a, b, idx = g(x)
        results.append((tape.gradient(a, x, output_gradients=seed), tape.gradient(b, x),
                        tape.gradient([a, b], x), idx))
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_unconnected_and_unwatched():
    f = tj.compile(lambda x, y: (x * 2.0, tj.reduce_sum(y)))
    x, y = tj.constant([1.0, 2.0]), tj.constant([3.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = f(x, y)
    assert tape.gradient(b, x) is None
    np.testing.assert_array_equal(tape.gradient(b, x, unconnected_gradients=tj.UnconnectedGradients.ZERO).numpy(),
                                  [0.0, 0.0])
    assert tape.gradient(a, y) is None
    with tj.GradientTape() as tape:
        a, b = f(x, y)  # nothing watched: no tape entry
    assert tape._entries == []


def test_jacobian_through_a_compiled_call():
    def fn(x):
        return tj.tanh(x) * tj.reduce_sum(x)

    f = tj.compile(fn)
    x = tj.constant(rand((3,)))
    jacs = []
    for g in (f, fn):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = g(x)
        jacs.append(tape.jacobian(y, x))
    np.testing.assert_allclose(jacs[0].numpy(), jacs[1].numpy(), rtol=1e-12)


def test_compiled_function_calling_a_compiled_function():
    inner = tj.compile(lambda x: tj.sin(x) * x)

    @tj.compile
    def outer(x):
        with tj.GradientTape() as t:
            t.watch(x)
            y = tj.reduce_sum(inner(x))
        return y, t.gradient(y, x)

    x = tj.constant(rand((3,)))
    y, g = outer(x)
    xn = x.numpy()
    np.testing.assert_allclose(y.numpy(), np.sum(np.sin(xn) * xn), rtol=1e-12)
    np.testing.assert_allclose(g.numpy(), np.cos(xn) * xn + np.sin(xn), rtol=1e-12)
    assert traces(inner) == 0  # inlined into the outer trace


def test_stop_gradient_inside_a_compiled_call():
    """stop_gradient must survive the optimisation passes that run before the
    backward program is derived."""
    def fn(x):
        return tj.reduce_sum(x * tj.stop_gradient(x))

    f = tj.compile(fn)
    x = tj.constant([1.0, 2.0, -3.0])
    for g in (f, fn):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = g(x)
        np.testing.assert_array_equal(tape.gradient(y, x).numpy(), x.numpy())


@pytest.mark.xfail(strict=True, reason="known limit (README): the IR has no custom-gradient region, so a "
                   "compiled call differentiated from an outer eager tape goes through the primitives")
def test_custom_gradient_inside_a_compiled_call():
    """A custom_gradient used inside a compiled function keeps its gradient when the
    compiled call is differentiated from outside (as it does with the tape inside)."""
    @tj.custom_gradient
    def clip_grad(x):
        def grad(dy):
            return tj.clip_by_value(dy, -0.5, 0.5)
        return tj.identity(x), grad

    def fn(x):
        return tj.reduce_sum(clip_grad(x) * 3.0)

    f = tj.compile(fn)
    x = tj.constant([1.0, 2.0])

    @tj.compile
    def inside(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x)

    np.testing.assert_array_equal(inside(x).numpy(), [0.5, 0.5])
    for g in (fn, f):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = g(x)
        np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.5, 0.5])


# -------------------------------------------------------- kinks (T13)
@pytest.mark.parametrize("name, fn, x, expected", [
    ("abs", lambda x: tj.abs(x), 0.0, 0.0),
    ("relu", lambda x: tj.nn.relu(x), 0.0, 0.0),
    ("square via pow", lambda x: x ** 2, 0.0, 0.0),
    ("sqrt", lambda x: tj.sqrt(x), 0.0, np.inf),
])
def test_kink_conventions_compiled_equal_eager(name, fn, x, expected):
    x = tj.constant([x, 1.0])
    f = tj.compile(fn)
    grads = []
    for g in (f, fn):
        with tj.GradientTape() as tape, np.errstate(divide="ignore"):
            tape.watch(x)
            y = g(x)
            grads.append(tape.gradient(y, x).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert grads[0][0] == expected


def test_masked_sqrt_gradient_is_finite_compiled():
    fn = lambda x: tj.reduce_sum(tj.sqrt(tj.where(x > 0, x, 1.0)))  # noqa: E731
    f = tj.compile(fn)
    x = tj.constant([-1.0, 0.0, 4.0])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    g = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.25])


# ----------------------------------------------- a training step (tape inside)
def make_linear_regression(n_features):
    w = tj.Variable(np.zeros((n_features, 1), np.float32), name="w")
    b = tj.Variable(0.0, name="b")

    def train_step(x, y, lr):
        with tj.GradientTape() as tape:
            pred = tj.matmul(x, w) + b
            loss = tj.reduce_mean(tj.square(pred - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(lr * dw)
        b.assign_sub(lr * db)
        return loss

    return w, b, train_step


def test_linear_regression_training_step_matches_eager_over_200_steps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.7
         + 0.01 * rng.normal(size=(32, 1))).astype(np.float32)
    x, y = tj.constant(x), tj.constant(y)
    wc, bc, step_c = make_linear_regression(3)
    we, be, step_e = make_linear_regression(3)
    step = tj.compile(step_c)
    for i in range(200):
        lr = 0.1 * 0.995 ** i  # a new Python float every step: no retrace
        loss_c, loss_e = step(x, y, lr), step_e(x, y, lr)
        assert loss_c.dtype == tj.float32
        np.testing.assert_allclose(loss_c.numpy(), loss_e.numpy(), rtol=1e-5)
        np.testing.assert_allclose(wc.numpy(), we.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(bc.numpy(), be.numpy(), rtol=1e-5, atol=1e-7)
    assert step.cache_info().traces == 1
    assert step.cache_info().hits == 199
    assert float(loss_c) < 1e-3
    assert wc.dtype == tj.float32 and bc.dtype == tj.float32
    ir = step.lower(x, y, 0.1).ir
    assert "read_variable 'w'" in ir and "write_variable 'w'" in ir and "write_variable 'b'" in ir
    assert ir.count("matmul") >= 2  # forward and backward in one program


def test_tape_inside_differentiated_again_from_outside():
    """A compiled function whose program already holds backward equations (its own
    tape) is differentiated again by an eager tape around the call."""
    @tj.compile
    def grad_of_cube(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = x * x * x
        return tape.gradient(y, x)  # 3 x^2

    for v in (1.5, -2.0):
        x = tj.constant(v, tj.float64)
        with tj.GradientTape() as outer:
            outer.watch(x)
            g = grad_of_cube(x)
        assert float(g) == 3 * v * v
        assert float(outer.gradient(g, x)) == 6 * v
    assert traces(grad_of_cube) == 1


def test_variable_writes_under_an_outer_tape():
    """Called while an eager tape records, a compiled step still commits its writes
    in program order, and commits none when it fails."""
    w = tj.Variable([1.0, 2.0])

    @tj.compile
    def step(x, idx):
        w.assign_add(x)
        return tj.reduce_sum(tj.gather(w, idx) * x)

    x = tj.constant([0.5, 0.25])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = step(x, tj.constant([1, 0]))
    np.testing.assert_array_equal(w.numpy(), [1.5, 2.25])
    assert float(y) == 2.25 * 0.5 + 1.5 * 0.25
    with tj.GradientTape() as tape:
        tape.watch(x)
        with pytest.raises(IndexError, match="tj.gather"):
            step(x, tj.constant([1, 7]))
    np.testing.assert_array_equal(w.numpy(), [1.5, 2.25])


@pytest.mark.parametrize("update", ["assign", "assign_add"])
def test_assignment_is_a_gradient_barrier_under_an_outer_tape(update):
    """As on the eager tape (and in TensorFlow), an assignment is not differentiable and
    a read after it is a fresh read of the Variable: d/dx goes only through the direct
    use of x, and the Variable's gradient comes from the read after the assignment."""
    def make():
        w = tj.Variable([1.0, 2.0])

        def step(x):
            getattr(w, update)(x * 3.0)
            return tj.reduce_sum(w * x)
        return w, step

    results = []
    for compiled in (False, True):
        w, step = make()
        fn = tj.compile(step) if compiled else step
        x = tj.constant([0.5, 0.25])
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        gx, gw = tape.gradient(y, [x, w])
        results.append((float(y), gx.numpy(), None if gw is None else gw.numpy(), w.numpy()))
    (ye, gxe, gwe, we), (yc, gxc, gwc, wc) = results
    assert yc == ye
    np.testing.assert_array_equal(wc, we)
    np.testing.assert_array_equal(gxc, gxe)  # eager: the new w, not w + 3x through the assignment
    assert (gwc is None) == (gwe is None)
    if gwe is not None:
        np.testing.assert_array_equal(gwc, gwe)
