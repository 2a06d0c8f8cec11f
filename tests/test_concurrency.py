"""Concurrency (TESTING.md T10, T11, T19): threads sharing one compiled function,
tapes recording compiled calls in several threads at once, parallel kernels under
numba's non-thread-safe `workqueue` layer, and processes started with fork and
with spawn sharing one empty kernel cache directory.

tests/test_numba_backend.py already runs 8 threads over 3 shapes x 2 paths and
counts paths; here the trace and miss counters are exact, and the calls mix ranks,
size-1 dimensions and both call routes (plain, and under a tape, with gradients).
"""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tapejit as tj

N_THREADS = 8


def branchy_loss(x):
    """Each (shape, sign of the sum) of x is its own compiled path."""
    if tj.reduce_sum(x) > 0:
        return tj.reduce_sum(x * x * x - x)
    return tj.reduce_sum(tj.abs(x)) * 0.5


# Ranks 1 and 2, size-1 dimensions, each shape with a positive and a negative sum.
SHAPES = [(3,), (7,), (2, 3), (5, 3), (1, 4), (4, 1)]
INPUTS = [tj.constant(sign * (np.abs(np.random.default_rng(n).standard_normal(shape)) + 0.1))
          for n, shape in enumerate(SHAPES) for sign in (1.0, -1.0)]
ROUNDS = 3


def value_and_grad(f, x):
    """f(x) on the hot path (no tape), then f(x) and its gradient under an eager tape."""
    plain = f(x)
    with tj.GradientTape() as tape:
        tape.watch(x)
        taped = f(x)
    return plain.numpy(), taped.numpy(), tape.gradient(taped, x).numpy()


def run_threads(target):
    """target(index, barrier) in N_THREADS threads started together; re-raises the first error.
    The threads switch every 10 microseconds (not 5 ms) so that races have a chance to show."""
    barrier = threading.Barrier(N_THREADS, timeout=120)
    errors = []

    def guarded(index):
        try:
            target(index, barrier)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(N_THREADS)]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        sys.setswitchinterval(switch_interval)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.filterwarnings("ignore:tj.compile.*traced")  # 12 keys: the retrace warning is expected
def test_threads_sharing_one_function_trace_each_shape_and_path_once_and_agree_with_a_serial_run():
    serial = tj.compile(branchy_loss)
    expected = [value_and_grad(serial, x) for x in INPUTS]

    f = tj.compile(branchy_loss)
    results = {}  # (thread, round, input) -> value_and_grad

    def work(index, barrier):
        barrier.wait()
        for r in range(ROUNDS):
            for k, x in enumerate(INPUTS):  # in the same order: every thread asks for each new key at once
                results[index, r, k] = value_and_grad(f, x)

    run_threads(work)
    assert len(results) == N_THREADS * ROUNDS * len(INPUTS)
    for (_, _, k), got in results.items():
        for g, e in zip(got, expected[k], strict=True):
            np.testing.assert_array_equal(g, e)  # the same kernels as the serial run: bit for bit
    keys = len(INPUTS)  # every input is its own (shape, path)
    info = f.cache_info()
    assert (info.traces, info.misses, info.paths) == (keys, keys, keys), info


def test_tapes_in_several_threads_record_only_their_own_compiled_calls():
    """All threads watch the same tensor and call the same compiled function while
    every tape is open; each tape differentiates its own thread's call only."""
    f = tj.compile(branchy_loss)
    x = INPUTS[2]
    expected = value_and_grad(tj.compile(branchy_loss), x)[2]
    tapes, outputs = [None] * N_THREADS, [None] * N_THREADS

    def work(index, barrier):
        with tj.GradientTape(persistent=True) as tape:
            tape.watch(x)
            barrier.wait()  # every tape is open ...
            outputs[index] = f(x) * float(index + 1)
            barrier.wait()  # ... until every thread has called f
        tapes[index] = tape

    run_threads(work)
    for i, tape in enumerate(tapes):
        for j, y in enumerate(outputs):
            grad = tape.gradient(y, x)
            if i == j:
                np.testing.assert_allclose(grad.numpy(), expected * (i + 1), rtol=1e-12)
            else:
                assert grad is None, f"the tape of thread {i} recorded the call of thread {j}"


# ------------------------------------------------------------------ subprocesses

def child_env(cache_dir, **extra):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(cache_dir), **extra)
    for name in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "TAPEJIT_DISABLE_JIT"):
        env.pop(name, None)  # numba's files beside tapejit's, in the test's directory; kernels really compiled
    return env


def run_python(args, env):
    """Run `python *args`; its last stdout line is a JSON report."""
    proc = subprocess.run([sys.executable, *args], check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"child failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


PARALLEL_THREADS_CHILD = r'''
import json, threading
import numba
import numpy as np
import tapejit as tj


def work(x, w):
    y = x * w + 0.5 * x
    return tj.reduce_max(y, axis=1), tj.reduce_sum(y * y)


f = tj.compile(work, parallel=True)
x = tj.constant(np.random.default_rng(0).standard_normal((2048, 64)))  # above the parallel threshold
w = tj.constant(np.linspace(-1.0, 1.0, 64))
first = [a.numpy() for a in f(x, w)]
barrier = threading.Barrier(8)
agree = []


def call():
    barrier.wait()
    for _ in range(3):
        agree.append(all(np.array_equal(a.numpy(), b) for a, b in zip(f(x, w), first)))


threads = [threading.Thread(target=call) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"layer": numba.threading_layer(), "agree": agree}))
'''


def test_parallel_kernels_called_from_eight_threads_under_the_workqueue_layer(tmp_path):
    """numba's workqueue layer aborts the process (SIGABRT) when two threads run parallel
    kernels at once; tapejit must serialise its parallel kernels there."""
    env = child_env(tmp_path, NUMBA_THREADING_LAYER="workqueue")
    report = run_python(["-c", PARALLEL_THREADS_CHILD], env)
    assert report["layer"] == "workqueue"
    assert report["agree"] == [True] * 24


# A driver script, run as a file: spawned processes import their target from it.
PROCESSES_DRIVER = r'''
"""TAPEJIT_CACHE_DIR=... python driver.py shared|fresh

shared: processes started with fork and with spawn run `work` at the same moment
in the kernel cache directory. fresh: this process runs every process's work, one
after the other. Prints one JSON report."""
import json
import multiprocessing
import sys
import warnings

import numpy as np
import tapejit as tj  # a parent that uses tapejit, then forks (spawned children import it again)

START_METHODS = ["fork"] * 4 + ["spawn"] * 4


def step(x):
    with tj.GradientTape() as tape:
        tape.watch(x)
        if tj.reduce_sum(x) > 0:
            y = tj.reduce_sum(x * x * 1.5)
        else:
            y = tj.reduce_sum(tj.abs(x) - x * x)
    return y, tape.gradient(y, x)


def power(x, n):
    """x**n + 1 by n - 1 multiplications: n, a Python int, is static, so each process
    has a kernel of its own."""
    y = x
    for _ in range(n - 1):
        y = y * x
    return y + 1.0


def work(index):
    """Every process runs the same graphs (two paths, two ranks) and one of its own."""
    from tapejit.runtime import kernel_cache

    x = np.linspace(0.1, 2.0, 24)
    cases = {"step+": (step, (x,)), "step-": (step, (-x,)), "step2d": (step, (x.reshape(4, 6),)),
             f"power{index + 2}": (power, (x, index + 2))}
    results = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, (fn, args) in cases.items():
            args = [tj.constant(a) if isinstance(a, np.ndarray) else a for a in args]
            compiled, eager = tj.compile(fn)(*args), fn(*args)
            results[name] = [[t.numpy().tolist() for t in (r if isinstance(r, tuple) else (r,))]
                             for r in (compiled, eager)]
    return {"results": results, "warnings": [str(w.message) for w in caught], "stats": dict(kernel_cache.STATS)}


def worker(index, barrier, reports):
    barrier.wait(timeout=300)  # every process has imported tapejit: all compile at once
    reports.put(work(index))


if __name__ == "__main__":
    if sys.argv[1] == "fresh":
        reports, exitcodes = [work(i) for i in range(len(START_METHODS))], []
    else:
        spawn = multiprocessing.get_context("spawn")  # its barrier and queue serve forked children too
        barrier, queue = spawn.Barrier(len(START_METHODS)), spawn.Queue()
        processes = [multiprocessing.get_context(method).Process(target=worker, args=(i, barrier, queue))
                     for i, method in enumerate(START_METHODS)]
        for p in processes:
            p.start()
        reports = [queue.get(timeout=600) for _ in processes]
        for p in processes:
            p.join(60)
        exitcodes = [p.exitcode for p in processes]
    print(json.dumps({"reports": reports, "exitcodes": exitcodes}))
'''


def cache_files(cache_dir, suffix):
    return sorted(os.path.relpath(os.path.join(d, f), cache_dir)
                  for d, _, files in os.walk(cache_dir) for f in files if f.endswith(suffix))


def leftovers(cache_dir):
    """Temporary files (ours: .py.tmp<pid>.<uuid>, numba's: .tmp.<uuid>) and write probes."""
    return [f for d, _, files in os.walk(cache_dir) for f in files if ".tmp" in f or f.startswith(".tapejit-probe")]


def assert_correct_and_identical(reports, reference):
    """Compiled results equal eager ones, and a graph gives the same bits in every process."""
    for report in reports:
        assert report["warnings"] == []
        for name, (compiled, eager) in report["results"].items():
            for c, e in zip(compiled, eager, strict=True):
                np.testing.assert_allclose(c, e, rtol=1e-12, err_msg=name)
            assert compiled == reference.setdefault(name, compiled), f"{name} differs between processes"


def test_forked_and_spawned_processes_share_an_empty_cache_dir_then_a_fresh_process_compiles_nothing(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(PROCESSES_DRIVER)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = child_env(cache)

    shared = run_python([str(driver), "shared"], env)
    assert shared["exitcodes"] == [0] * 8
    reference = {}
    assert_correct_and_identical(shared["reports"], reference)
    assert len(reference) == 3 + 8
    assert leftovers(cache) == []
    modules = cache_files(cache, ".py")
    # The shared graphs' kernels, and one kernel per process (its own graph, under a name of its own).
    assert len(modules) >= 8 + 1 and all(m.startswith("tapejit_k_") for m in modules)

    fresh = run_python([str(driver), "fresh"], env)
    assert_correct_and_identical(fresh["reports"], reference)
    stats = fresh["reports"][-1]["stats"]  # counters of the whole process
    assert stats["kernel_compiles"] == 0 and stats["corrupt_entries_recovered"] == 0
    assert stats["disk_cache_loads"] == len(modules)  # every module's entry function (helpers are inlined)
    assert cache_files(cache, ".py") == modules
    assert leftovers(cache) == []
