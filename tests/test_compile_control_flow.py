"""Python control flow on tensor values under @tj.compile: one program per
control-flow path, guards, the trace tree, max_paths (SPEC.md "@tj.compile";
TESTING.md T8, T16)."""
import inspect
import pathlib
import re
import sys
import warnings

import numpy as np
import pytest

import tapejit as tj

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from compare import assert_close_values  # noqa: E402

THIS_FILE = pathlib.Path(__file__).name


def line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        if text in line:
            return f"{THIS_FILE}:{start + k}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def counts(f):
    i = f.cache_info()
    return i.traces, i.paths


def assert_same(a, b):
    """Same dtype and shape; values equal up to last-bit rounding (compiled kernels use libm)."""
    a, b = tj.convert_to_tensor(a), tj.convert_to_tensor(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert_close_values(a.numpy(), b.numpy())


# ----------------------------------------------------------------- if
def branchy(x):
    if tj.reduce_sum(x) > 0:
        return x * 2.0 + 1.0
    return tj.exp(-x)


def test_data_dependent_if_both_paths_alternately():
    f = tj.compile(branchy)
    rng = np.random.default_rng(0)
    seen = set()
    for k in range(10):
        sign = 1.0 if k % 2 == 0 else -1.0
        x = tj.constant(sign * rng.uniform(0.1, 2.0, (3,)).astype(np.float32))
        assert_same(f(x), branchy(x))
        seen.add(sign)
        assert counts(f) == (len(seen), len(seen))
    info = f.cache_info()
    assert (info.hits, info.misses) == (8, 2)


def test_guard_is_recorded_with_its_line_and_explained():
    f = tj.compile(branchy)
    pos, neg = tj.constant([1.0, 2.0]), tj.constant([-1.0, -2.0])
    f(pos)
    where = line_of(branchy, "if tj.reduce_sum(x) > 0")
    lo = f.lower(pos)
    assert len(lo.guards) == 1 and where in lo.guards[0] and "bool" in lo.guards[0]
    assert re.search(r"guard\[0, bool, expect=True\] \w+ +# " + re.escape(where), lo.ir), lo.ir
    text = f.explain(neg)
    assert "new control-flow path" in text and where in text and "guard 0" in text and "False" in text, text
    assert "no retrace" in f.explain(tj.constant([3.0, 4.0]))
    f(neg)
    assert "no retrace" in f.explain(neg) and counts(f) == (2, 2)


def test_repeated_data_dependent_path_does_not_retrace():
    """T16: bool(x.sum() > 0) seen before picks its compiled path again."""
    f = tj.compile(lambda x: x * 2.0 if bool(tj.reduce_sum(x) > 0) else x * 3.0)
    xs = [tj.constant(np.random.default_rng(k).normal(size=4).astype(np.float32)) for k in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in xs:
            s = float(np.sum(x.numpy()))
            np.testing.assert_array_equal(f(x).numpy(), x.numpy() * (2.0 if s > 0 else 3.0))
    assert counts(f) == (2, 2)


def nested(x, y):
    if tj.reduce_sum(x) > 0:
        z = x * y
    else:
        z = x + y
    if tj.reduce_max(z) > 1.0:
        return z - 1.0
    return z * z


def test_nested_ifs_are_a_trace_tree():
    f = tj.compile(nested)
    cases = [([1.0, 1.0], [2.0, 2.0]), ([1.0, 1.0], [0.1, 0.1]), ([-1.0, -1.0], [5.0, 5.0]),
             ([-1.0, -1.0], [0.5, 0.5])]
    for round_ in range(2):
        for n, (x, y) in enumerate(cases):
            x, y = tj.constant(x), tj.constant(y)
            assert_same(f(x, y), nested(x, y))
            assert counts(f) == ((n + 1, n + 1) if round_ == 0 else (4, 4))
    assert all(len(f.lower(tj.constant(x), tj.constant(y)).guards) == 2 for x, y in cases)


def test_guard_is_checked_before_the_ops_that_follow_it():
    """A path's later ops never run on inputs its guard rejects: here they would raise."""
    def fn(x, idx):
        if tj.reduce_max(idx) < 3:
            return tj.gather(x, idx)
        return tj.gather(x, idx - 3)

    f = tj.compile(fn)
    x = tj.constant([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(f(x, tj.constant([0, 2])).numpy(), [10.0, 30.0])
    np.testing.assert_array_equal(f(x, tj.constant([4, 5])).numpy(), [20.0, 30.0])  # path 0's gather would fail
    np.testing.assert_array_equal(f(x, tj.constant([1, 1])).numpy(), [20.0, 20.0])
    assert counts(f) == (2, 2)


# --------------------------------------------------------------- while
def newton_sqrt(a, tol):
    x = a
    err = tj.abs(x * x - a)
    while tj.reduce_max(err) > tol:
        x = 0.5 * (x + a / x)
        err = tj.abs(x * x - a)
    return x


def trip_count(a, tol):
    x, n = a, 0
    while np.max(np.abs(x * x - a)) > tol:
        x, n = 0.5 * (x + a / x), n + 1
    return n


def test_while_loop_is_one_path_per_trip_count():
    f = tj.compile(newton_sqrt, max_paths=16)
    values = [4.0, 4.1, 100.0, 4.05, 1e6, 99.0, 2.0, 1e6 + 1]
    seen = set()
    for v in values:
        a = np.array([v, v / 2], np.float64)
        trips = trip_count(a, 1e-9)
        seen.add(trips)
        r = f(tj.constant(a), 1e-9)
        assert_same(r, newton_sqrt(tj.constant(a), 1e-9))
        np.testing.assert_allclose(r.numpy(), np.sqrt(a), rtol=1e-9)
        assert counts(f) == (len(seen), len(seen)), (v, trips)
        assert len(f.lower(tj.constant(a), 1e-9).guards) == trips + 1
    assert len(seen) >= 4


def test_while_loop_tolerance_is_a_dynamic_float():
    """A new tol is not a new signature; it retraces only if the trip count changes."""
    f = tj.compile(newton_sqrt, max_paths=16)
    a = tj.constant([9.0], tj.float64)
    seen = set()
    for tol in (1e-3, 1e-9, 2e-3, 1e-12, 5e-4):
        seen.add(trip_count(a.numpy(), tol))
        assert_same(f(a, tol), newton_sqrt(a, tol))
        assert counts(f) == (len(seen), len(seen))


def test_python_loop_on_static_values_is_unrolled():
    def fn(x, n):
        for i in range(n):
            if i % 2:
                x = x * 2.0
            else:
                x = x + 1.0
        return x

    f = tj.compile(fn)
    x = tj.constant([1.0, 2.0])
    for n in (3, 4, 3):
        assert_same(f(x, n), fn(x, n))
    assert counts(f) == (2, 2)
    assert f.lower(x, 4).guards == []


# ------------------------------------------------- int(), float(), numpy()
def test_int_of_a_tensor_is_a_guard():
    def fn(x, k):
        n = int(tj.reduce_sum(k))
        for _ in range(n):
            x = x * 2.0
        return x

    f = tj.compile(fn)
    x = tj.constant([1.0, 3.0])
    for n in (1, 2, 1, 3, 2):
        assert_same(f(x, tj.constant([n, 0])), fn(x, tj.constant([n, 0])))
    assert counts(f) == (3, 3)
    guards = f.lower(x, tj.constant([2, 0])).guards
    assert len(guards) == 1 and "int(...) == 2" in guards[0] and line_of(fn, "int(tj.reduce_sum(k))") in guards[0]


def test_float_and_numpy_of_a_tensor_are_guards():
    def fn(x):
        scale = float(tj.reduce_max(x))
        first = x.numpy()[0]
        return x / scale + first

    f = tj.compile(fn)
    a = tj.constant([1.0, 4.0])
    assert_same(f(a), fn(a))
    assert_same(f(a), fn(a))
    assert counts(f) == (1, 1)
    b = tj.constant([1.0, 8.0])                     # another value: another path, never a stale one
    assert_same(f(b), fn(b))
    assert counts(f) == (2, 2)
    assert_same(f(a), fn(a))
    assert counts(f) == (2, 2)
    kinds = " ".join(f.lower(a).guards)
    assert "float(...) == 4.0" in kinds and "value" in kinds


def test_a_value_guard_on_a_large_array_reads_as_one_short_line():
    def fn(x):
        return x * float(x.numpy().sum())

    f = tj.compile(fn)
    x = tj.constant(np.arange(1.0, 61.0).reshape(6, 10))
    lowered = f.lower(x)
    (guard,) = [line for line in lowered.ir.splitlines() if "guard" in line]
    assert "expect=array([[1., 2., ..., 9., 10.], [11., 12., ..., 19., 20.], ..., [41., 42., ..., 49., 50.], [51., 52., ..., 59., 60.]])" in guard, guard
    assert len(guard) < 200 and len(lowered.guards) == 1 and "\n" not in lowered.guards[0]
    assert "\n" not in f.explain(x + 1.0)


def test_control_flow_on_a_python_float_argument():
    def fn(x, lr):
        if lr > 0.5:
            return x * lr
        return x - lr

    f = tj.compile(fn)
    x = tj.constant([1.0, 2.0])
    for lr in (0.1, 0.9, 0.2, 0.7, 0.3):
        assert_same(f(x, lr), fn(x, lr))
    assert counts(f) == (2, 2)


# ----------------------------------------------------------- max_paths
def many_paths(x):
    n = int(tj.reduce_sum(x))
    return x * float(n)


def test_max_paths_fallback_warns_once_and_stays_correct():
    f = tj.compile(many_paths, max_paths=3)
    where = line_of(many_paths, "int(tj.reduce_sum(x))")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in list(range(8)) + [0, 1, 5]:
            x = tj.constant([float(i)])
            assert_same(f(x), many_paths(x))
    msgs = [w for w in caught if "tj.compile" in str(w.message)]
    assert len(msgs) == 1, [str(w.message) for w in msgs]
    text = str(msgs[0].message)
    assert "many_paths" in text and where in text and "max_paths=3" in text, text
    assert msgs[0].filename == __file__
    assert counts(f) == (3, 3)
    assert "would reuse compiled path" in f.explain(tj.constant([1.0]))
    explained = f.explain(tj.constant([6.0]))
    assert "would run eagerly" in explained and "max_paths=3" in explained and where in explained, explained
    # another signature of the same function still compiles
    y = tj.constant([1.0, 1.0])
    assert_same(f(y), many_paths(y))
    assert counts(f) == (4, 4)


def nested_paths(x):
    if tj.reduce_sum(x) > 0:
        return x * float(int(tj.reduce_max(x)))
    return x * float(int(tj.reduce_min(x)))


def test_max_paths_fallback_names_every_guard_that_failed():
    f = tj.compile(nested_paths, max_paths=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in (1.0, -1.0, 2.0):  # two paths, then a third differing at the second guard of the first
            x = tj.constant([value])
            assert_same(f(x), nested_paths(x))
    (warning,) = [w for w in caught if "max_paths" in str(w.message)]
    text = str(warning.message)
    guards = [line_of(nested_paths, "tj.reduce_sum(x) > 0"), line_of(nested_paths, "int(tj.reduce_max(x))")]
    assert f"the guards at {', '.join(sorted(guards))} keep changing" in text, text


@pytest.mark.parametrize("how", ["tape", "keyword"])
def test_max_paths_fallback_still_runs_the_compiled_paths(how):
    """Past max_paths, a call its compiled paths fit runs compiled, whichever way it comes in."""
    f = tj.compile(many_paths, max_paths=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(3):
            f(tj.constant([float(i)]))
    for value, compiled in ((1.0, True), (5.0, False)):
        x = tj.constant([value])
        hits = f.cache_info().hits
        if how == "tape":
            with tj.GradientTape() as tape:
                tape.watch(x)
                y = f(x)
            assert_same(tape.gradient(y, x), tj.constant([value]))
        else:
            y = f(x=x)
        assert_same(y, many_paths(x))
        assert f.cache_info().hits == hits + compiled, (value, f.cache_info())
    assert counts(f) == (2, 2)


def test_max_paths_fallback_keeps_variable_semantics():
    v = tj.Variable(0.0)

    def fn(x):
        n = int(tj.reduce_sum(x))
        v.assign_add(float(n))
        return v.read_value()

    f = tj.compile(fn, max_paths=2)
    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(6):
            total += i
            assert float(f(tj.constant([float(i)]))) == total
    assert float(v.numpy()) == total


# -------------------------------------------------- control flow and gradients
def test_gradient_through_each_path_under_an_eager_tape():
    def fn(x):
        if tj.reduce_sum(x) > 0:
            return tj.reduce_sum(x * x)
        return tj.reduce_sum(tj.sin(x))

    f = tj.compile(fn)
    for k in range(6):
        sign = 1.0 if k % 2 == 0 else -1.0
        x = tj.constant(sign * np.random.default_rng(k).uniform(0.1, 1.0, (3,)))
        grads = []
        for g in (f, fn):
            with tj.GradientTape() as tape:
                tape.watch(x)
                y = g(x)
            grads.append(tape.gradient(y, x))
        assert_same(*grads)
    assert counts(f) == (2, 2)


def test_tape_inside_a_compiled_function_with_control_flow():
    def fn(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = x
            while tj.reduce_max(tj.abs(y)) < 10.0:
                y = y * x
        return y, tape.gradient(y, x)

    f = tj.compile(fn, max_paths=16)
    for v in (2.0, 3.0, 1.5, 2.5, 3.5):
        x = tj.constant([v], tj.float64)
        got, want = f(x), fn(x)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert counts(f)[0] == len({int(np.ceil(np.log(10.0) / np.log(v))) for v in (2.0, 3.0, 1.5, 2.5, 3.5)})


def seed_f(x, y):
    output = 1.0
    for i in range(y):
        if i > 1 and i < 5:
            output = tj.multiply(output, x)
    return output


def test_seed_control_flow_example_under_compile():
    """SEED.md 'Flusso di controllo della registrazione', with f compiled."""
    f = tj.compile(seed_f)

    def grad(x, y):
        with tj.GradientTape() as t:
            t.watch(x)
            out = f(x, y)
        return t.gradient(out, x)

    x = tj.convert_to_tensor(2.0)
    assert grad(x, 6).numpy() == 12.0
    assert grad(x, 5).numpy() == 12.0
    assert grad(x, 4).numpy() == 4.0
    assert grad(x, 6).numpy() == 12.0
    assert counts(f) == (3, 3)
    # y as an integer tensor: range(y) asks for its value (a guard), one path per value
    g = tj.compile(seed_f)
    for y, expected in ((6, 12.0), (5, 12.0), (4, 4.0), (6, 12.0)):
        with tj.GradientTape() as t:
            t.watch(x)
            out = g(x, tj.constant(y))
        assert t.gradient(out, x).numpy() == expected
    assert counts(g) == (3, 3)
