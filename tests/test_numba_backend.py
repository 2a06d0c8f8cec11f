"""The Numba backend: fusion, kernel reuse across shapes, the generated source,
compile errors, IEEE behaviour and threads (issue "Numba backend")."""
import threading

import numba
import numpy as np
import pytest

import tapejit as tj
from tapejit.compiler.lower import fusion, rules
from tapejit.runtime import kernel_cache
from tapejit.tracer.ops import elementwise as E


def _path(f):
    return next(iter(f._entries.values())).paths[0]


def chain(x, b):
    y = tj.tanh(x * 2.0 + b)
    return tj.reduce_sum(y * y, axis=1), y


def test_elementwise_chain_and_its_reduction_fuse_into_one_kernel():
    f = tj.compile(chain)
    x, b = tj.constant(np.random.default_rng(0).random((3, 4), np.float32)), tj.ones((4,))
    got = f(x, b)
    want = chain(x, b)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=2e-6)
    (region,) = fusion.plan(_path(f).program)
    (group,) = region.units
    assert type(group) is fusion.Group and group.reduced
    assert "# region k_" in f.lower(x, b).source


def test_a_gradient_written_far_from_its_forward_pass_shares_its_loop():
    def fn(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(tj.tanh(x) * tj.exp(-x))
        return y, tape.gradient(y, x)

    f = tj.compile(fn)
    x = tj.constant(np.linspace(-2, 2, 12, dtype=np.float32))
    got, want = f(x), fn(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=2e-6, atol=1e-7)
    (region,) = fusion.plan(_path(f).program)
    groups = [u for u in region.units if type(u) is fusion.Group]
    assert len(groups) == 1  # value, reduction and gradient: one pass over x
    assert len(region.stored) == 1  # only the gradient reaches memory


def test_a_new_shape_with_the_same_pattern_compiles_nothing():
    f = tj.compile(chain)
    b = tj.ones((4,))
    f(tj.ones((3, 4)), b)
    before = kernel_cache.STATS["kernel_compiles"]
    loads = kernel_cache.STATS["disk_cache_loads"]
    f(tj.ones((7, 4)), b)
    assert f.cache_info().traces == 2  # traced again (cheap) ...
    assert kernel_cache.STATS["kernel_compiles"] == before  # ... but no kernel compiled
    assert kernel_cache.STATS["disk_cache_loads"] == loads


class _PlainPython:
    """Stands for the numba module: decorated functions stay plain Python."""

    @staticmethod
    def njit(**flags):
        return lambda fn: fn


def test_generated_kernels_run_as_plain_python_agree():
    f = tj.compile(chain)
    x, b = tj.constant(np.linspace(-1, 1, 12, dtype=np.float64).reshape(3, 4)), tj.ones((4,), tj.float64)
    compiled = f(x, b)
    from tapejit.compiler.ir import pretty
    from tapejit.compiler.lower import codegen
    program = _path(f).program
    pretty(program)
    (region,) = fusion.plan(program)
    kernel = codegen.region_source(region)
    loaded = vars(kernel_cache.load_kernel(kernel.source, kernel.name).module)
    namespace = {"numba": _PlainPython}
    exec(kernel.source.replace("import numba\n", ""), namespace)  # noqa: S102
    # mathlib's helpers (their bit casts are Numba intrinsics) stay compiled, called from
    # Python (the kernel's copies have no CPython wrapper: compiled again with one).
    namespace.update({k: numba.njit(v.py_func) for k, v in loaded.items() if k.startswith("tj_")})
    entry = namespace[kernel.name]
    args = [x.numpy() if a is program.inputs[0] else b.numpy() for a in region.inputs]
    stored = [np.empty(v.aval.shape, v.aval.dtype) for v in region.stored]
    assert not kernel.scalar_outputs
    assert entry(*args, *stored, np.array(kernel.dims, np.int64), np.array(kernel.floats)) == 0
    by_var = {id(v): a for v, a in zip(region.stored, stored)}
    np.testing.assert_allclose(by_var[id(program.outputs[0])], compiled[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(by_var[id(program.outputs[1])], compiled[1].numpy(), rtol=1e-12)


def test_a_kernel_numba_rejects_is_a_compile_error_naming_the_equation_and_line(monkeypatch):
    monkeypatch.setitem(rules.ELEMENTWISE, E.sin_p,
                        (rules.FLOAT, lambda a, c: f"np.no_such_function({a[0]})"))

    def fn(x):
        return tj.sin(x) * 3.0  # the line the error names

    f = tj.compile(fn)
    with pytest.raises(tj.CompileError) as info:
        f(tj.constant([1.0, 2.0]))
    message = str(info.value)
    assert "sin a" in message and "test_numba_backend.py" in message
    assert "generated source" in message and "no_such_function" in message
    assert info.value.__cause__ is not None
    assert f.cache_info().paths == 0  # nothing cached
    monkeypatch.undo()
    np.testing.assert_allclose(f(tj.constant([1.0, 2.0])).numpy(), np.sin([1.0, 2.0]).astype(np.float32) * 3,
                               rtol=2e-6)


@pytest.mark.parametrize("parallel", [False, True])
def test_generated_kernels_keep_ieee_semantics_and_stay_in_nopython_mode(parallel):
    """T21, T22: every function of the generated source is an njit with NumPy's
    error model and no fastmath flag that assumes away NaN or infinities; nothing
    falls back to object mode."""
    def fn(x, y):
        z = tj.exp(x) * y + tj.sqrt(tj.abs(x)) - tj.tanh(y) / (x + 1.0)
        return tj.reduce_sum(z, axis=0), tj.reduce_max(tj.sigmoid(z), axis=1), tj.nn.softmax(z)

    source = tj.compile(fn, parallel=parallel).lower(tj.constant(np.ones((8, 64))), tj.constant(np.ones(64))).source
    decorators = [line.strip() for line in source.splitlines() if line.lstrip().startswith("@")]
    # Besides njit functions: mathlib's @intrinsic bit casts, LLVM IR built at compile time.
    jitted = [line for line in decorators if line != "@intrinsic"]
    assert jitted and all(line.startswith("@numba.njit(") for line in jitted), decorators
    for line in jitted:
        assert "error_model='numpy'" in line or 'error_model="numpy"' in line, line
        assert not any(flag in line for flag in ("nnan", "ninf", "'fast'", '"fast"', "fastmath=True")), line
    assert "parallel=True" in source if parallel else "prange" not in source
    for fallback in ("objmode", "forceobj", "looplift", "nopython=False"):
        assert fallback not in source, fallback


def test_fastmath_true_gives_every_loop_llvm_fast_math():
    """tj.compile(fastmath=True) is the user's opt-in: every loop gets Numba's
    fastmath=True (NaN and infinities assumed away); finite results stay close."""
    def fn(x, y):
        return tj.reduce_sum(tj.exp(x) * y, axis=1), tj.tanh(x) * 2.0 - y

    x, y = np.linspace(-1.0, 1.0, 96).reshape(3, 32), np.linspace(0.0, 2.0, 32)
    fast = tj.compile(fn, fastmath=True)
    source = fast.lower(tj.constant(x), tj.constant(y)).source
    jitted = [line.strip() for line in source.splitlines() if line.strip().startswith("@numba.njit(")
              and "forceinline" not in line]  # mathlib's helpers keep their own flags
    assert jitted and all("fastmath=True" in line for line in jitted), jitted
    for got, want in zip(fast(tj.constant(x), tj.constant(y)), tj.compile(fn)(tj.constant(x), tj.constant(y))):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)


def test_donate_is_accepted_with_a_warning_that_it_is_not_used():
    with pytest.warns(UserWarning, match=r"tj\.compile: <lambda>: donate='x' is accepted, but tapejit does not "
                                         r"reuse donated buffers yet") as caught:
        f = tj.compile(lambda x: x + 1.0, donate="x")
    assert caught[0].filename == __file__
    x = tj.constant([1.0, 2.0])
    np.testing.assert_array_equal(f(x).numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])  # the donated argument stays valid


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ieee_special_values_match_numpy(dtype):
    x = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.0], dtype)
    y = np.array([0.0, 0.0, 0.0, -0.0, np.inf, 1.0, 1.0, np.nan], dtype)

    def fn(a, b):
        return (a / b, tj.log(a), tj.sqrt(a), tj.maximum(a, b), tj.minimum(a, b), a - a * 0.0,
                tj.where(tj.math.is_nan(a), 0.0, a), tj.reduce_max(a), tj.reduce_sum(a))

    with np.errstate(all="ignore"):
        want = fn(tj.constant(x), tj.constant(y))
        got = tj.compile(fn)(tj.constant(x), tj.constant(y))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
        number = ~np.isnan(w.numpy())  # the sign of a NaN carries no meaning
        np.testing.assert_array_equal(np.signbit(g.numpy())[number], np.signbit(w.numpy())[number])
        assert g.dtype == w.dtype


def test_float32_stays_float32_through_literals():
    f = tj.compile(lambda x: x * 0.1 + 2.0)
    x = tj.constant(np.linspace(0, 1, 5, dtype=np.float32))
    out = f(x)
    assert out.dtype == tj.float32
    np.testing.assert_array_equal(out.numpy(), (x.numpy() * np.float32(0.1)) + np.float32(2.0))


def test_eight_threads_with_mixed_shapes_and_paths_agree_with_a_serial_run():
    def fn(x):
        if tj.reduce_sum(x) > 0:
            return tj.exp(-x) * 2.0
        return tj.tanh(x)

    f = tj.compile(fn)
    inputs = [tj.constant(np.random.default_rng(k).standard_normal((k % 3 + 1, 4)).astype(np.float32))
              for k in range(16)]
    serial = [fn(x).numpy() for x in inputs]
    results, errors = {}, []
    barrier = threading.Barrier(8)

    def work(t):
        try:
            barrier.wait()
            for k in range(t, 16, 8):
                results[k] = f(inputs[k]).numpy()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(16):
        np.testing.assert_allclose(results[k], serial[k], rtol=2e-6)
    keys = {(tuple(x.shape), bool(np.sum(x.numpy()) > 0)) for x in inputs}
    assert f.cache_info().paths == len(keys)


def parallel_work(x, w):
    y = tj.tanh(x * w) + 0.5 * x                    # elementwise: rows split among threads
    row_max = tj.reduce_max(y, axis=1)              # a row reduction: rows split
    total = tj.reduce_sum(y * y)                    # a whole reduction: chunks with partial totals
    return y, row_max, total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_loops_agree_with_eager_above_and_below_the_threshold(dtype):
    from tapejit.compiler.lower import codegen
    f = tj.compile(parallel_work, parallel=True)
    rng = np.random.default_rng(3)
    for rows in (4, codegen.PARALLEL_MIN_ELEMENTS // 64 + 7):  # below, above the threshold
        x = tj.constant(rng.standard_normal((rows, 64)).astype(dtype))
        w = tj.constant(rng.standard_normal(64).astype(dtype))
        for g, e in zip(f(x, w), parallel_work(x, w)):
            tol = 1e-5 if dtype == np.float32 else 1e-12  # tanh(xw) + x/2 may cancel: atol too
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=tol, atol=tol)
    assert "numba.prange" in kernel_sources(f)


def kernel_sources(f):
    return "".join(kernel.source for entry in f._entries.values() for path in entry.paths
                   for kernel, _ in path.executable.run.kernels)


def test_eight_threads_calling_one_parallel_function_at_once_agree():
    f = tj.compile(parallel_work, parallel=True)
    x = tj.constant(np.random.default_rng(4).standard_normal((2048, 64)).astype(np.float32))
    w = tj.ones((64,))
    want = [a.numpy() for a in f(x, w)]
    barrier = threading.Barrier(8)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            for _ in range(5):
                results.append([a.numpy() for a in f(x, w)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 40
    for got in results:
        for g, e in zip(got, want):
            np.testing.assert_array_equal(g, e)


def test_long_float32_sums_stay_accurate():
    x = np.full(3_000_001, 0.1, np.float32)  # a float32 running sum would drift far off
    got = float(tj.compile(lambda a: tj.reduce_sum(a * 1.0))(tj.constant(x)).numpy())
    assert abs(got - float(np.sum(x.astype(np.float64)))) <= 1e-6 * abs(got)


def test_without_a_thread_safe_layer_parallel_kernels_run_one_at_a_time():
    from tapejit.runtime import threads
    held = []
    kernel = threads.serialised(lambda a, b: held.append(threads.SERIAL.locked()) or a + b)
    assert kernel(2, 3) == 5 and held == [True] and not threads.SERIAL.locked()


def test_a_branch_runs_its_failed_path_once_and_a_run_of_one_branch_is_promoted():
    def fn(x):
        if tj.reduce_sum(x) > 0:
            return tj.tanh(x) * x + 1.0
        return x * x - 1.0

    f = tj.compile(fn)
    pos, neg = tj.constant([0.5, 1.0, 2.0]), tj.constant([-0.5, -1.0, -2.0])
    f(pos), f(neg)
    calls = []
    for path in next(iter(f._entries.values())).paths:
        def counted(leaves, run=path.fast_call, path=path):
            calls.append(path)
            return run(leaves)
        path.fast_call = counted
    negative_path, positive_path = next(iter(f._entries.values())).paths  # the newest first
    for x in (pos, neg, pos, neg):
        np.testing.assert_allclose(f(x).numpy(), fn(x).numpy(), rtol=2e-6)
    # Alternating keeps the order: a positive call fails the first path once, then runs
    # the other; a negative call hits first time.
    assert calls == [negative_path, positive_path, negative_path] * 2
    del calls[:]
    for x in (pos, pos, pos):
        np.testing.assert_allclose(f(x).numpy(), fn(x).numpy(), rtol=2e-6)
    # The second positive call in a row moves the positive path first.
    assert calls == [negative_path, positive_path, negative_path, positive_path, positive_path]
    assert f.cache_info().paths == 2
