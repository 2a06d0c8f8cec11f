"""Memory under churn (TESTING.md T9, T24): a compiled function called with more
shapes than it may keep stays within its cache limits (kernels, programs, RSS), and
compiled calls keep nothing alive, with or without a tape recording them.

tests/test_tape_threads_memory.py covers eager tapes; here are compiled calls.
"""
import gc
import json
import linecache
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

import tapejit as tj
from tapejit.runtime import executable

# A child process (alone, so its RSS measures tapejit only): 1,000 calls of one compiled
# function cycling 100 shapes (ranks 1 and 2) and 3 control-flow paths. Every call
# retraces: 100 shapes do not fit in max_traces (64), least recently used first out.
CHURN_CHILD = r'''
import gc, json, os, weakref
import numpy as np
import tapejit as tj
from tapejit.runtime import compiled, kernel_cache

built = weakref.WeakSet()  # every program built for a path, to count those still alive
build = compiled.Executable


def counted_build(*args, **kwargs):
    program = build(*args, **kwargs)
    built.add(program)
    return program


compiled.Executable = counted_build


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def loss_and_grad(x, w):
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * w
        total = tj.reduce_sum(y)
        if total > 1.0:
            loss = tj.reduce_sum(y * y)
        elif total < -1.0:
            loss = tj.reduce_sum(tj.abs(y))
        else:
            loss = total * 0.5
    return loss, tape.gradient(loss, x)


SHAPES = [(n,) for n in range(2, 52)] + [(n, 3) for n in range(1, 51)]
SIGNS = [1.0, -1.0, 0.0]  # one per path: sum > 1, sum < -1, in between
rng = np.random.default_rng(0)
calls = [tj.constant(SIGNS[k % 3] * (np.abs(rng.standard_normal(SHAPES[k % 100])) + 0.5)) for k in range(1000)]
f = tj.compile(loss_and_grad)
report = {}
for k, x in enumerate(calls):
    if k == 300:  # every (shape, path) met once: every kernel compiled
        gc.collect()
        report["warm"] = {"rss_mb": rss_mb(), "stats": dict(kernel_cache.STATS)}
    loss, grad = f(x, 2.0)
    assert grad.shape == x.shape
gc.collect()
report["end"] = {"rss_mb": rss_mb(), "stats": dict(kernel_cache.STATS)}
report["cache_info"] = f.cache_info()._asdict()
report["programs_alive"] = len(built)
print(json.dumps(report))
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set size from /proc")
def test_churn_of_shapes_and_paths_stays_within_the_cache_limits(tmp_path):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(tmp_path))
    for name in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "TAPEJIT_DISABLE_JIT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", CHURN_CHILD], check=False, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    warm, end, info = report["warm"], report["end"], report["cache_info"]

    # Kernels are written for symbolic sizes: a few per path, however many shapes (each
    # costs ~1 MB that numba never returns), and none after every path was met.
    assert 1 <= warm["stats"]["kernel_compiles"] <= 12
    assert end["stats"]["kernel_compiles"] == warm["stats"]["kernel_compiles"]
    # Every call retraced, and the programs of evicted signatures were freed.
    assert info["traces"] == info["misses"] == 1000
    assert info["paths"] <= 64 and report["programs_alive"] <= info["paths"]
    assert end["rss_mb"] - warm["rss_mb"] < 50, (warm, end)


@pytest.mark.filterwarnings("ignore:tj.compile.*traced")
def test_retracing_does_not_grow_linecache_without_bound():
    f = tj.compile(lambda x: x * 2.0 + 1.0, max_traces=4)
    shapes = [(n,) for n in range(1, 9)]  # twice as many as it may keep: every call retraces
    before = {k for k in linecache.cache if k.startswith("<tapejit")}
    for k in range(200):
        f(tj.ones(shapes[k % len(shapes)]))
    assert f.cache_info().traces == 200
    added = {k for k in linecache.cache if k.startswith("<tapejit")} - before
    # At most a driver and a call per (shape, path) ever seen: bounded by the distinct keys.
    assert len(added) <= 2 * len(shapes)


# ------------------------------------------------------------------ references (T9)

def weak(*objects):
    """Weak references to tensors and to the arrays they hold."""
    refs = []
    for obj in objects:
        refs.append(weakref.ref(obj))
        if isinstance(obj, tj.Tensor) and isinstance(obj._value, np.ndarray):
            refs.append(weakref.ref(obj._value))
    return refs


def dead(refs):
    gc.collect()
    return [ref() is None for ref in refs]


def test_compiled_calls_keep_neither_inputs_nor_outputs_nor_old_variable_values_alive():
    w = tj.Variable(np.full(1000, 0.5))

    @tj.compile
    def step(x):
        with tj.GradientTape() as tape:
            loss = tj.reduce_sum(tj.tanh(x * w) * tj.exp(x))
        grad = tape.gradient(loss, w)
        w.assign_sub(0.01 * grad)
        return loss, grad

    for call in ("traces", "runs the cached program"):
        x = tj.constant(np.linspace(-1.0, 1.0, 1000))
        old_w = weak(w._tensor)
        loss, grad = step(x)
        refs = weak(x, loss, grad)
        del x, loss, grad
        assert all(dead(refs + old_w)), call
    assert step.cache_info().traces == 1


@pytest.fixture
def recorded_vjps(monkeypatch):
    """Weak references to the tape entry of each compiled call made from now on, and to
    its residual arrays: [(entry, [residual, ...]), ...]."""
    recorded = []

    class TrackedVJP(executable.ProgramVJP):
        __slots__ = ("__weakref__",)

        def __init__(self, compiled_program, residuals):
            super().__init__(compiled_program, residuals)
            recorded.append((weakref.ref(self), [weakref.ref(r) for r in residuals if isinstance(r, np.ndarray)]))

    monkeypatch.setattr(executable, "ProgramVJP", TrackedVJP)
    return recorded


@pytest.mark.parametrize("persistent", [False, True], ids=["tape", "persistent_tape"])
def test_a_compiled_call_under_a_tape_frees_its_residuals(recorded_vjps, persistent):
    w = tj.Variable(np.full(1000, 0.5))
    f = tj.compile(lambda x: tj.reduce_sum(tj.tanh(x * w) * tj.exp(x)))

    x = tj.constant(np.linspace(-1.0, 1.0, 1000))
    with tj.GradientTape(persistent=persistent) as tape:
        tape.watch(x)
        y = f(x)
    grads = tape.gradient(y, [x, w])
    ((entry, residuals),) = recorded_vjps
    # A residual may be a Variable's current value: alive with the Variable, by design.
    residuals = [r for r in residuals if r() is not w._tensor._value]
    assert residuals
    refs = [entry] + residuals + weak(x, y, *grads)
    del x, y, grads
    if persistent:
        assert not any(dead([entry] + residuals))  # a persistent tape keeps what it recorded ...
        del tape
    assert all(dead(refs))  # ... until it is deleted; a non-persistent one until gradient() returns
