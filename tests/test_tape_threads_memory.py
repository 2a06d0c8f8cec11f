"""Tape thread isolation (T10), deep chains without recursion (T12), freed
intermediates (T9), NaN propagation and saturation at +-1000 (T13)."""
import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import tapejit as tj


def val(t):
    return np.asarray(t.numpy())


# ------------------------------------------------------------------ threads
def test_tapes_are_thread_local():
    """Two threads, each with its own persistent tape, interleave ops on a shared
    watched tensor; neither tape sees the other thread's ops."""
    x = tj.constant(1.5, tj.float64)
    steps = 200
    barrier = threading.Barrier(2, timeout=30)
    results, errors = {}, []

    def worker(name, factor, variable):
        try:
            with tj.GradientTape(persistent=True) as tape:
                tape.watch(x)
                y = x
                for _ in range(steps):
                    barrier.wait()           # lock-step: the other thread's op runs now too
                    y = y * factor
                    y = y + variable * 0.0   # reads a trainable Variable on this thread
                barrier.wait()
            results[name] = (tape, y, variable)
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)
            barrier.abort()

    va = tj.Variable(1.0, dtype=tj.float64)
    vb = tj.Variable(1.0, dtype=tj.float64)
    ta = threading.Thread(target=worker, args=("a", 1.001, va))
    tb = threading.Thread(target=worker, args=("b", 0.999, vb))
    ta.start()
    tb.start()
    ta.join(60)
    tb.join(60)
    assert not errors, errors
    tape_a, ya, _ = results["a"]
    tape_b, yb, _ = results["b"]
    # each tape watched only its own thread's Variable
    assert tape_a.watched_variables() == (va,)
    assert tape_b.watched_variables() == (vb,)
    # both gradients correct: y = x * f**steps
    np.testing.assert_allclose(float(tape_a.gradient(ya, x)), 1.001 ** steps, rtol=1e-12)
    np.testing.assert_allclose(float(tape_b.gradient(yb, x)), 0.999 ** steps, rtol=1e-12)
    # ops of thread B never reached tape A (and vice versa), although they used A's watched x
    assert tape_a.gradient(yb, x) is None
    assert tape_b.gradient(ya, x) is None
    assert tape_a.gradient(yb, vb) is None
    assert tape_b.gradient(ya, va) is None


def test_tape_opened_on_main_thread_does_not_record_worker_ops():
    x = tj.constant(2.0)
    out = {}
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        t = threading.Thread(target=lambda: out.setdefault("y", x * x))
        t.start()
        t.join()
        z = x * x
    assert tape.gradient(out["y"], x) is None
    np.testing.assert_allclose(float(tape.gradient(z, x)), 4.0)


def test_many_threads_each_with_own_tape():
    n = 8
    barrier = threading.Barrier(n, timeout=30)
    grads, errors = [None] * n, []

    def worker(i):
        try:
            x = tj.constant(float(i + 1), tj.float64)
            with tj.GradientTape() as tape:
                tape.watch(x)
                y = x
                for _ in range(20):
                    barrier.wait()
                    y = y * x
            grads[i] = float(tape.gradient(y, x))   # d x^21 / dx = 21 x^20
        except Exception as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i in range(n):
        np.testing.assert_allclose(grads[i], 21 * float(i + 1) ** 20, rtol=1e-12)


# ---------------------------------------------------------------- deep chains
@pytest.fixture
def default_recursion_limit():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)   # CPython's default
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_100k_op_chain(default_recursion_limit):
    n = 100_000
    x = tj.constant(1.0, tj.float64)
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x
        for _ in range(n):
            y = y * 1.0000001
    expected = 1.0000001 ** n
    np.testing.assert_allclose(float(y), expected, rtol=1e-9)
    g = tape.gradient(y, x)
    np.testing.assert_allclose(float(g), expected, rtol=1e-9)
    ref = weakref.ref(tape)
    del tape, y
    gc.collect()
    assert ref() is None


def test_deep_chain_persistent_tape_teardown(default_recursion_limit):
    x = tj.constant(1.0)
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x
        for _ in range(30_000):
            y = tj.sin(y) + y
    assert np.isfinite(float(tape.gradient(y, x)))
    del tape, y   # dropping a long chain must not recurse
    gc.collect()


# ---------------------------------------------------------------- memory
def test_non_persistent_tape_frees_intermediates_after_gradient():
    x = tj.constant(np.linspace(0.0, 1.0, 1000))
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
        z = tj.exp(y)
        w = tj.reduce_sum(z * y)
    refs = [weakref.ref(t) for t in (y, z, w)]
    g = tape.gradient(w, x)
    assert g.shape == (1000,)
    del y, z, w
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    # the tape object itself is still alive, the intermediates are not
    assert tape is not None


def test_persistent_tape_frees_intermediates_when_deleted():
    x = tj.constant(np.linspace(0.0, 1.0, 1000))
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * 2.0
        z = tj.exp(y)
        w = tj.reduce_sum(z * y)
    refs = [weakref.ref(t) for t in (y, z, w)]
    tape.gradient(w, x)
    tape.gradient(w, y)
    del y, z, w
    gc.collect()
    # a persistent tape keeps what it recorded (TensorFlow frees it with the tape)
    assert all(r() is not None for r in refs)
    del tape
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_gradient_results_do_not_keep_the_tape_alive():
    x = tj.constant([1.0, 2.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tj.reduce_sum(tj.exp(x))
    g = tape.gradient(y, x)
    ref = weakref.ref(tape)
    del tape
    gc.collect()
    assert ref() is None
    np.testing.assert_allclose(val(g), np.exp([1.0, 2.0]), rtol=1e-6)


def test_variable_reads_freed_with_tape():
    v = tj.Variable(np.ones(100))
    with tj.GradientTape() as tape:
        y = tj.reduce_sum(v * v)
        r = weakref.ref(y)
    tape.gradient(y, v)
    del y
    gc.collect()
    assert r() is None


# --------------------------------------------------------------- NaN and inf
def test_nan_propagates_through_gradient():
    x = tj.constant([1.0, np.nan, 3.0])
    with tj.GradientTape(persistent=True) as tape:
        tape.watch(x)
        sq = x * x
        e = tj.exp(x)
        s = tj.reduce_sum(x)
    g = val(tape.gradient(sq, x))
    assert g[0] == 2.0 and np.isnan(g[1]) and g[2] == 6.0
    g = val(tape.gradient(e, x))
    assert np.isnan(g[1]) and np.isfinite(g[[0, 2]]).all()
    # d sum / dx does not depend on x: ones, even at the NaN
    np.testing.assert_array_equal(val(tape.gradient(s, x)), [1.0, 1.0, 1.0])


def test_nan_in_reduction_poisons_every_gradient_entry():
    x = tj.constant([1.0, np.nan])
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(x) * x
    g = val(tape.gradient(y, x))
    assert np.isnan(g).all()


EXTREME = [-1000.0, -20.0, 0.0, 20.0, 1000.0]


def _value_and_grad(fn, x_value, dtype):
    x = tj.constant(np.asarray(x_value, dtype))
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        total = tj.reduce_sum(y)
    return val(y), val(tape.gradient(total, x))


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_finite_at_extremes(dtype):
    y, g = _value_and_grad(tj.sigmoid, EXTREME, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    xs = np.asarray(EXTREME)
    np.testing.assert_allclose(y, _sigmoid(xs), rtol=1e-5, atol=1e-30)
    # y * (1 - y), as TF's SigmoidGrad: float32 rounds sigmoid(20) to 1, so its slope to 0
    atol = 1e-8 if dtype == np.float32 else 1e-30
    np.testing.assert_allclose(g, _sigmoid(xs) * (1 - _sigmoid(xs)), rtol=1e-4, atol=atol)
    assert y[0] == 0.0 and y[-1] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_finite_at_extremes(dtype):
    y, g = _value_and_grad(tj.nn.softplus, EXTREME, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    xs = np.asarray(EXTREME)
    np.testing.assert_allclose(y, np.logaddexp(0, xs), rtol=1e-6)
    np.testing.assert_allclose(g, _sigmoid(xs), rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_logsumexp_finite_at_extremes(dtype):
    xs = np.array([[-1000.0, 0.0, 1000.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0]])
    y, g = _value_and_grad(lambda x: tj.reduce_logsumexp(x, axis=1), xs, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    expected = np.array([1000.0, -1000.0 + np.log(3), 1000.0 + np.log(2)])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(g, [[0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], rtol=1e-5, atol=1e-30)
    y, g = _value_and_grad(tj.reduce_logsumexp, EXTREME, dtype)
    np.testing.assert_allclose(y, 1000.0, rtol=1e-6)
    np.testing.assert_allclose(g, [0, 0, 0, 0, 1], atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_finite_at_extremes(dtype):
    xs = np.array([[-1000.0, 0.0, 1000.0], [1000.0, 1000.0, -1000.0]])
    weights = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype)

    def weighted_softmax(x):
        return tj.nn.softmax(x) * weights

    def weighted_log_softmax(x):
        return tj.nn.log_softmax(x) * weights

    y, g = _value_and_grad(weighted_softmax, xs, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    np.testing.assert_allclose(y / weights, [[0, 0, 1], [0.5, 0.5, 0]], atol=1e-30)
    p = np.array([[0, 0, 1], [0.5, 0.5, 0]])
    # d sum(w * p) / dx = p * (w - sum(w * p))
    expected = p * (weights - (weights * p).sum(1, keepdims=True))
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-30)

    y, g = _value_and_grad(weighted_log_softmax, xs, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    np.testing.assert_allclose(y / weights, [[-2000.0, -1000.0, 0.0], [-np.log(2), -np.log(2), -2000.0 - np.log(2)]],
                               rtol=1e-5)
    # d sum(w * log p) / dx = w - p * sum(w)
    expected = weights - p * weights.sum(1, keepdims=True)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_cross_entropy_finite_at_extremes(dtype):
    xs = np.asarray(EXTREME)
    labels = np.array([0.0, 1.0, 0.5, 0.0, 1.0], dtype)
    y, g = _value_and_grad(
        lambda x: tj.nn.sigmoid_cross_entropy_with_logits(labels=tj.constant(labels), logits=x), xs, dtype)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    expected = np.maximum(xs, 0) - xs * labels + np.log1p(np.exp(-np.abs(xs)))
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(g, _sigmoid(xs) - labels, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_finite_at_extremes(dtype):
    xs = np.array([[-1000.0, 0.0, 1000.0], [1000.0, -1000.0, 0.0], [1000.0, 1000.0, -1000.0]])
    labels = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype)
    y, g = _value_and_grad(
        lambda x: tj.nn.softmax_cross_entropy_with_logits(labels=tj.constant(labels), logits=x), xs, dtype)
    assert y.shape == (3,)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    np.testing.assert_allclose(y, [0.0, 2000.0, np.log(2)], rtol=1e-5, atol=1e-6)
    p = np.array([[0, 0, 1], [1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(g, p - labels, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_softmax_cross_entropy_finite_at_extremes(dtype):
    xs = np.array([[-1000.0, 0.0, 1000.0], [1000.0, -1000.0, 0.0], [1000.0, 1000.0, -1000.0]])
    labels = tj.constant([2, 1, 0])
    y, g = _value_and_grad(
        lambda x: tj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x), xs, dtype)
    assert y.shape == (3,)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    np.testing.assert_allclose(y, [0.0, 2000.0, np.log(2)], rtol=1e-5, atol=1e-6)
    p = np.array([[0, 0, 1], [1, 0, 0], [0.5, 0.5, 0]])
    onehot = np.eye(3)[[2, 1, 0]]
    np.testing.assert_allclose(g, p - onehot, atol=1e-6)
