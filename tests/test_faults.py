"""Faults (TESTING.md T17, T18): damaged kernel cache files met by @tj.compile, a
helper edited between processes, a cache directory that vanishes or turns
unwritable while a process runs, a kernel or driver step that raises in the middle
of a program, and KeyboardInterrupt while tracing.

tests/test_kernel_cache.py damages the cache through load_kernel (truncated, emptied,
bit-flipped .nbc; garbage, emptied .nbi; truncated .py) and covers unwritable
directories at start-up; here are the remaining damages, met through @tj.compile.
"""
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

import tapejit as tj
from tapejit.compiler.lower import rules
from tapejit.runtime import kernel_cache
from tapejit.tracer.ops import elementwise
from tapejit.tracer.ops.linalg import matmul_p

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from privileges import permissions_bind  # noqa: E402

# A child process: compiles each function named in argv[1] ({"degrees": [...],
# "helper_dir": path or None}), calls it once and prints a JSON report.
CHILD = r'''
import json, sys, warnings
spec = json.loads(sys.argv[1])
import numpy as np
import tapejit as tj
from tapejit.runtime import kernel_cache


def power(n):
    """x**n + 1 by n - 1 multiplications: a kernel of its own for each n."""
    def fn(x):
        y = x
        for _ in range(n - 1):
            y = y * x
        return y + 1.0
    return fn


functions = {f"x**{n}": power(n) for n in spec["degrees"]}
if spec["helper_dir"]:
    sys.path.insert(0, spec["helper_dir"])
    import edited_helper

    functions["helper"] = lambda x: edited_helper.transform(x) - 0.5

x = tj.constant(np.linspace(-2.0, 2.0, 101))
report = {"x": x.numpy().tolist(), "results": {}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for name, fn in functions.items():
        f = tj.compile(fn)
        out = f(x)
        (kernel,) = [k for entry in f._entries.values() for path in entry.paths
                     for _, k in path.executable.run.kernels]
        module = sys.modules[kernel.py_func.__module__]
        report["results"][name] = {
            "out": out.numpy().tolist(), "eager": fn(x).numpy().tolist(), "path": module.__file__,
            "numba_prefix": kernel.stats.cache_path + "/" + module.__name__ + "." + kernel.py_func.__qualname__,
            "hits": sum(kernel.stats.cache_hits.values()), "misses": sum(kernel.stats.cache_misses.values())}
report["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
report["stats"] = kernel_cache.STATS
print(json.dumps(report))
'''


def run_child(cache_dir, degrees=(), helper_dir=None):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(cache_dir),
               PYTHONDONTWRITEBYTECODE="1")  # Python itself must not serve the edited helper from a stale .pyc
    for name in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "TAPEJIT_DISABLE_JIT"):
        env.pop(name, None)
    spec = json.dumps({"degrees": list(degrees), "helper_dir": str(helper_dir) if helper_dir else None})
    proc = subprocess.run([sys.executable, "-c", CHILD, spec], check=False, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"child failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def numba_file(result, suffix):
    """The entry function's numba index (.nbi) or its one data file (.nbc)."""
    prefix = pathlib.Path(result["numba_prefix"])
    (path,) = prefix.parent.glob(f"{prefix.name}-*{suffix}")
    return path


def leftovers(root):
    return [f for _, _, files in os.walk(root) for f in files if ".tmp" in f]


# ------------------------------------------------------------------ damaged cache files (T18)

def _truncate_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# The damages tests/test_kernel_cache.py does not make, one kernel each.
DAMAGES = {
    "emptied_py": (".py", lambda p: p.write_bytes(b"")),
    "garbage_py": (".py", lambda p: p.write_bytes(b"def k_(:\n\x00\xff garbage")),
    "truncated_nbi": (".nbi", _truncate_half),
    "garbage_nbc": (".nbc", lambda p: p.write_bytes(b"\x80\x05garbage, not numba's" * 64)),
}
DEGREES = [2 + n for n in range(len(DAMAGES))]


def test_damaged_cache_files_warn_once_are_rewritten_and_the_next_process_hits(tmp_path):
    cache = tmp_path / "missing" / "cache"  # created on demand
    cold = run_child(cache, DEGREES)
    results = list(cold["results"].values())
    for (suffix, damage), result in zip(DAMAGES.values(), results, strict=True):
        result["module_bytes"] = pathlib.Path(result["path"]).read_bytes()
        damage(pathlib.Path(result["path"]) if suffix == ".py" else numba_file(result, suffix))

    recovered = run_child(cache, DEGREES)
    warm = run_child(cache, DEGREES)

    corrupt = [w for w in recovered["warnings"] if "corrupt kernel cache entry" in w]
    assert len(corrupt) == len(DAMAGES), recovered["warnings"]
    for mode, before, after, next_run in zip(DAMAGES, results, recovered["results"].values(),
                                             warm["results"].values(), strict=True):
        module = pathlib.Path(before["path"]).stem
        assert len([w for w in corrupt if module in w]) == 1, (mode, recovered["warnings"])
        np.testing.assert_allclose(after["out"], after["eager"], rtol=1e-12, err_msg=mode)
        assert after["out"] == before["out"] == next_run["out"], mode
        assert pathlib.Path(after["path"]).read_bytes() == before["module_bytes"], mode
        if DAMAGES[mode][0] == ".py":  # the module was rewritten; numba's entry, stamped with its content, serves
            assert after["hits"] == 1, mode
        else:  # numba's entry was rebuilt
            assert after["misses"] == 1, mode
        assert next_run["hits"] == 1 and next_run["misses"] == 0, mode
    assert recovered["stats"]["corrupt_entries_recovered"] == len(DAMAGES)
    assert warm["warnings"] == []
    assert warm["stats"] == {"kernel_compiles": 0, "disk_cache_loads": len(DAMAGES), "corrupt_entries_recovered": 0}
    assert leftovers(cache) == []


# ------------------------------------------------------------------ a helper edited between processes (T17)

HELPER = """SCALE = {scale}


def transform(x):
    return {expression}
"""


def test_a_helper_edited_between_processes_serves_no_stale_kernel(tmp_path):
    helper = tmp_path / "edited_helper.py"
    helper.write_text(HELPER.format(scale=2.0, expression="x * SCALE + x"))
    first = run_child(tmp_path / "cache", helper_dir=tmp_path)["results"]["helper"]

    # A new expression and a new global, in a file of the same size and modification
    # time: a cache keyed on (mtime, size) would serve the old kernel.
    stat = helper.stat()
    helper.write_text(HELPER.format(scale=3.0, expression="x - SCALE * x"))
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert helper.stat().st_size == stat.st_size

    second = run_child(tmp_path / "cache", helper_dir=tmp_path)
    x = np.array(second["x"])
    np.testing.assert_allclose(first["out"], x * 2.0 + x - 0.5, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second["results"]["helper"]["out"], x - 3.0 * x - 0.5, rtol=1e-12, atol=1e-12)
    assert second["warnings"] == []


# ------------------------------------------------------------------ the directory vanishes while running

@contextlib.contextmanager
def _removed(directory):
    shutil.rmtree(directory)
    yield


@contextlib.contextmanager
def _replaced_by_a_file(directory):
    shutil.rmtree(directory)
    directory.write_text("not a directory")
    yield


@contextlib.contextmanager
def _made_read_only(directory):
    directory.chmod(0o555)
    try:
        with permissions_bind():
            yield
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize("fault", [
    pytest.param(_removed, id="removed"),
    pytest.param(_replaced_by_a_file, id="replaced_by_a_file"),
    pytest.param(_made_read_only, id="made_read_only"),
])
def test_cache_dir_lost_while_running_keeps_every_function_working_with_one_warning(tmp_path, monkeypatch, fault):
    monkeypatch.setattr(kernel_cache, "_RESOLVED", {})
    monkeypatch.setattr(kernel_cache, "_TEMPORARY", None)
    monkeypatch.setattr(kernel_cache, "_FELL_BACK", False)
    monkeypatch.setattr(kernel_cache, "_HANDLES", {})  # as if no kernel were loaded yet in this process
    cache = tmp_path / "cache"
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(cache))
    x = tj.constant(np.linspace(-1.0, 1.0, 7))
    f = tj.compile(lambda x: x * x + 1.0)
    np.testing.assert_allclose(f(x).numpy(), x.numpy() ** 2 + 1.0, rtol=1e-12)
    assert len(list(cache.glob("tapejit_k_*.py"))) == 1

    recovered = kernel_cache.STATS["corrupt_entries_recovered"]
    with fault(cache), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = tj.compile(lambda x: x * x - x)  # new kernels, written after the directory went
        h = tj.compile(lambda x: x - x * x * x)
        np.testing.assert_allclose(g(x).numpy(), x.numpy() ** 2 - x.numpy(), rtol=1e-12)
        np.testing.assert_allclose(h(x).numpy(), x.numpy() - x.numpy() ** 3, rtol=1e-12)
        np.testing.assert_allclose(f(x - 1.0).numpy(), (x.numpy() - 1.0) ** 2 + 1.0, rtol=1e-12)
    assert len([w for w in caught if w.category is kernel_cache.KernelCacheWarning]) == 1, \
        [str(w.message) for w in caught]
    if cache.is_dir():  # read-only: nothing new was written there
        assert len(list(cache.glob("tapejit_k_*.py"))) == 1 and leftovers(cache) == []
    assert kernel_cache.STATS["corrupt_entries_recovered"] == recovered  # nothing was corrupt


# ------------------------------------------------------------------ faults in the middle of a program

class FaultInjector:
    """Logs the steps compiled programs take at run time (Numba kernel calls and the
    matmuls the driver runs between them) and raises `error` at step `fail_at`."""

    def __init__(self):
        self.log = []        # "kernel" or "matmul", one per step taken
        self.fail_at = None  # raise when the log reaches this length
        self.error = None

    def wrap(self, fn, kind):
        def step(*args, **kwargs):
            self.log.append(kind)
            if len(self.log) == self.fail_at:
                raise self.error
            return fn(*args, **kwargs)
        return step


@pytest.fixture
def faults(monkeypatch):
    """Every kernel loaded and every matmul traced from now on runs through the injector
    (matmuls run eagerly while tracing are logged too)."""
    injector = FaultInjector()
    load_kernel = kernel_cache.load_kernel

    def load_faulty_kernel(*args, **kwargs):
        return types.SimpleNamespace(fn=injector.wrap(load_kernel(*args, **kwargs).fn, "kernel"))

    monkeypatch.setattr(kernel_cache, "load_kernel", load_faulty_kernel)
    monkeypatch.setattr(matmul_p, "impl", injector.wrap(matmul_p.impl, "matmul"))
    return injector


def make_train_step(w, b):
    def train_step(x, y):
        with tj.GradientTape() as tape:
            loss = tj.reduce_mean(tj.square(tj.tanh(x @ w + b) - y))
        dw, db = tape.gradient(loss, [w, b])
        w.assign_sub(0.1 * dw)
        b.assign_sub(0.1 * db)
        return loss
    return train_step


@pytest.mark.parametrize("error_type", [RuntimeError, KeyboardInterrupt])
def test_a_fault_at_any_step_of_a_program_leaves_every_variable_as_it_was(faults, error_type):
    rng = np.random.default_rng(0)
    w, b = tj.Variable(rng.standard_normal((3, 2))), tj.Variable(np.zeros(2))
    x, y = tj.constant(rng.standard_normal((4, 3))), tj.constant(rng.standard_normal((4, 2)))
    step = tj.compile(make_train_step(w, b))
    step(x, y)
    faults.log.clear()
    step(x, y)
    steps = list(faults.log)
    assert steps == ["matmul", "kernel", "matmul", "kernel"]  # forward and backward, then the updates

    error = faults.error = error_type("injected fault")
    for fail_at in range(1, len(steps) + 1):
        before = w.numpy().copy(), b.numpy().copy()
        faults.log.clear()
        faults.fail_at = fail_at
        with pytest.raises(BaseException) as info:
            step(x, y)
        assert error in (info.value, info.value.__cause__), info.value  # a kernel's error is a CompileError's cause
        np.testing.assert_array_equal(w.numpy(), before[0], err_msg=f"fault at step {fail_at}")
        np.testing.assert_array_equal(b.numpy(), before[1], err_msg=f"fault at step {fail_at}")

    faults.fail_at = None
    w_eager, b_eager = tj.Variable(w.numpy()), tj.Variable(b.numpy())
    expected = make_train_step(w_eager, b_eager)(x, y)
    np.testing.assert_allclose(step(x, y).numpy(), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_eager.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), b_eager.numpy(), rtol=1e-12)
    assert step.cache_info().traces == 1


def test_a_kernel_that_fails_to_compile_after_another_ran_leaves_variables_and_caches_no_path(faults, monkeypatch):
    w = tj.Variable(np.eye(3))

    def update(x):
        h = tj.exp(x) * 2.0                # kernel 1
        w.assign_add(tj.sin(x @ h))        # a matmul, then kernel 2: the one that fails
        return tj.reduce_sum(h)

    f = tj.compile(update)
    x = tj.constant(np.linspace(-1.0, 1.0, 9).reshape(3, 3))
    with monkeypatch.context() as broken:
        broken.setitem(rules.ELEMENTWISE, elementwise.sin_p,
                       (rules.FLOAT, lambda args, ctx: f"np.no_such_function({args[0]})"))
        with pytest.raises(tj.CompileError, match="no_such_function"):
            f(x)
    assert faults.log[-3:] == ["kernel", "matmul", "kernel"]  # kernel 1 and the matmul ran first
    np.testing.assert_array_equal(w.numpy(), np.eye(3))
    assert f.cache_info().paths == 0

    np.testing.assert_allclose(f(x).numpy(), np.sum(np.exp(x.numpy()) * 2.0), rtol=1e-12)
    np.testing.assert_allclose(w.numpy(), np.eye(3) + np.sin(x.numpy() @ (np.exp(x.numpy()) * 2.0)), rtol=1e-12)
    assert f.cache_info().traces == 2 and f.cache_info().paths == 1


# ------------------------------------------------------------------ KeyboardInterrupt while tracing

def test_keyboard_interrupt_while_tracing_leaves_no_poisoned_cache():
    v = tj.Variable([1.0, 2.0])
    interrupt = {"positive": True, "negative": False}

    def fn(x):
        v.assign_add(x)
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(tj.tanh(x) * v)
            branch = "positive" if y > 0 else "negative"
            if interrupt[branch]:
                raise KeyboardInterrupt
        return y, tape.gradient(y, x)

    def expected(x, v_before):
        v_after = v_before + x
        return np.sum(np.tanh(x) * v_after), (1 - np.tanh(x) ** 2) * v_after

    f = tj.compile(fn)
    pos, neg = tj.constant([0.5, 0.25]), tj.constant([-0.5, -0.25])
    with pytest.raises(KeyboardInterrupt):
        f(pos)  # the first trace of the first signature
    assert f.cache_info() == (0, 0, 0, 0, 0.0) and v.numpy().tolist() == [1.0, 2.0]

    interrupt["positive"] = False
    y, g = f(pos)
    want_y, want_g = expected(pos.numpy(), np.array([1.0, 2.0]))
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), want_g, rtol=1e-6)
    assert f.cache_info()[2:4] == (1, 1)  # traces, paths

    interrupt["negative"] = True
    v.assign([1.0, 2.0])
    with pytest.raises(KeyboardInterrupt):
        f(neg)  # a new path of the cached signature
    assert v.numpy().tolist() == [1.0, 2.0] and f.cache_info()[2:4] == (1, 1)
    interrupt["negative"] = False
    y, _ = f(neg)
    np.testing.assert_allclose(y.numpy(), expected(neg.numpy(), np.array([1.0, 2.0]))[0], rtol=1e-6)
    assert f.cache_info()[2:4] == (2, 2)
    v.assign([1.0, 2.0])
    y, _ = f(pos)  # the first path still serves
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-6)
    assert f.cache_info()[2:4] == (2, 2)
