"""The on-disk kernel cache (runtime/kernel_cache.py): TESTING.md T17-T20.

Cross-process tests run `sys.executable -c CHILD` with TAPEJIT_CACHE_DIR in a
tmp dir; each child loads small generated kernels (`out[i] = a[i] * 2.0 + C`),
calls them once and prints what happened as JSON.
"""
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from tapejit.runtime import kernel_cache as kc

# A child process. argv[1]: {"kernels": [{"const", "flags", "version"}], "barrier": path|None}.
CHILD = r'''
import json, os, sys, time, warnings
spec = json.loads(sys.argv[1])
if spec.get("tests_dir"):  # read-only means read-only, to root too (tests/privileges.py)
    sys.path.insert(0, spec["tests_dir"])
    from privileges import permissions_bind
    binding = permissions_bind()
    binding.__enter__()  # for the rest of this process (binding holds it)
from tapejit.runtime import kernel_cache as kc
import numpy as np

SRC = """import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def {name}(a, out):
    for i in range(a.shape[0]):
        out[i] = a[i] * 2.0 + {const!r}
"""
if spec.get("barrier"):  # all children import first, then load at the same moment
    open(f"{spec['barrier']}.ready.{os.getpid()}", "w").close()
    deadline = time.time() + 60
    while not os.path.exists(spec["barrier"]) and time.time() < deadline:
        time.sleep(0.002)
a = np.linspace(-5.0, 5.0, 1001)
report = {"kernels": []}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for k in spec["kernels"]:
        key = kc.source_hash("test", repr(k["const"]), k.get("flags", ""), str(k.get("version")))
        name = kc.kernel_name(key)
        handle = kc.load_kernel(SRC.format(name=name, const=k["const"]), name,
                                flags=k.get("flags", ""), version=k.get("version"))
        out = np.empty_like(a)
        handle(a, out)
        stats = handle.fn.stats
        report["kernels"].append({
            "module": handle.name, "path": handle.path, "loaded_from_disk": handle.loaded_from_disk,
            "compile_seconds": handle.compile_seconds, "first_call_seconds": handle.first_call_seconds,
            "ok": bool(np.array_equal(out, a * 2.0 + k["const"])), "out": out.tobytes().hex(),
            "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
            "numba_cache_path": stats.cache_path})
report["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
report["stats"] = kc.STATS
report["cache_dir"] = kc.cache_dir()
print(json.dumps(report))
'''

KERNEL_A = {"const": 1.0}
KERNEL_B = {"const": 3.5}


def _env(cache, numba_cache=None):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(cache))
    env.pop("NUMBA_CACHE_DIR", None)  # numba's files beside ours, in the test's directory
    env.pop("NUMBA_DISABLE_JIT", None)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    return env


def _start(cache, kernels, barrier=None, numba_cache=None, permissions_bind=False):
    spec = json.dumps({"kernels": kernels, "barrier": str(barrier) if barrier else None,
                       "tests_dir": str(pathlib.Path(__file__).resolve().parent) if permissions_bind else None})
    return subprocess.Popen([sys.executable, "-c", CHILD, spec], env=_env(cache, numba_cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"child failed (rc {proc.returncode}):\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def run(cache, *kernels, numba_cache=None, permissions_bind=False):
    return _finish(_start(cache, list(kernels), numba_cache=numba_cache, permissions_bind=permissions_bind))


def _corrupt_warnings(report):
    return [w for w in report["warnings"] if "corrupt kernel cache entry" in w]


def _tmp_files(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if ".tmp" in f]


def _numba_files(kernel_report):
    """(index file, data files) numba wrote for the kernel's entry function."""
    cache = kernel_report["numba_cache_path"]
    files = sorted(os.listdir(cache))
    index = [f for f in files if f.startswith(kernel_report["module"] + ".") and f.endswith(".nbi")]
    data = [f for f in files if f.startswith(kernel_report["module"] + ".") and f.endswith(".nbc")]
    assert len(index) == 1 and len(data) == 1, files
    return os.path.join(cache, index[0]), os.path.join(cache, data[0])


# ---------------------------------------------------------------------------------- round trip (T20, T17)

CHANGED = [{"const": 1.25}, {**KERNEL_A, "flags": "parallel"}, {**KERNEL_A, "version": "99.0"}]


@pytest.fixture(scope="module")
def round_trip_runs(tmp_path_factory):
    """Process 1 compiles A and B; process 2 loads A and B, then changed variants of A."""
    cache = tmp_path_factory.mktemp("round_trip") / "missing" / "cache"  # created on demand
    first = run(cache, KERNEL_A, KERNEL_B)
    second = run(cache, KERNEL_A, KERNEL_B, *CHANGED)
    return cache, first, second


def test_round_trip_second_process_compiles_nothing(round_trip_runs):
    cache, first, second = round_trip_runs
    assert cache.is_dir()
    for k in first["kernels"]:
        assert k["ok"] and k["loaded_from_disk"] is False and k["compile_seconds"] > 0
        assert k["misses"] == 1 and k["hits"] == 0
        assert os.path.dirname(k["path"]) == str(cache) and os.path.basename(k["path"]).startswith("tapejit_k_")
    assert first["stats"] == {"kernel_compiles": 2, "disk_cache_loads": 0, "corrupt_entries_recovered": 0}
    # numba's index and data files are beside our module, in __pycache__
    assert first["kernels"][0]["numba_cache_path"] == str(cache / "__pycache__")
    _numba_files(first["kernels"][0])

    for before, after in zip(first["kernels"], second["kernels"][:2], strict=True):
        assert after["module"] == before["module"]
        assert after["loaded_from_disk"] is True and after["compile_seconds"] == 0.0
        assert after["hits"] == 1 and after["misses"] == 0
        assert after["out"] == before["out"]  # bit-identical
    assert second["stats"]["disk_cache_loads"] == 2
    # The first load in a process pays numba's one-time init; a further kernel is cheap (2-3 ms typical).
    assert second["kernels"][1]["first_call_seconds"] < 0.1
    assert second["warnings"] == [] and first["warnings"] == []
    assert _tmp_files(cache) == []


def test_changed_source_flags_or_version_is_a_new_module(round_trip_runs):
    cache, first, second = round_trip_runs
    changed = second["kernels"][2:]
    assert len({k["module"] for k in first["kernels"] + changed}) == 2 + len(CHANGED)
    for k in changed:
        assert k["ok"] and k["loaded_from_disk"] is False and k["misses"] == 1 and k["compile_seconds"] > 0
    assert second["stats"]["kernel_compiles"] == len(CHANGED)
    assert len(list(cache.glob("tapejit_k_*.py"))) == 2 + len(CHANGED)


# ---------------------------------------------------------------------------------- corruption (T18)

def _truncate_half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _flip_bytes(path):
    data = bytearray(path.read_bytes())
    for i in (len(data) // 3, len(data) // 2):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# mode -> (file, damage). Each mode damages its own kernel, all in one directory, so
# three processes cover every mode: compile, recover, hit.
CORRUPTIONS = {
    "truncated_nbc": ("nbc", _truncate_half),
    "emptied_nbc": ("nbc", lambda p: p.write_bytes(b"")),
    "bitflipped_nbc": ("nbc", _flip_bytes),  # numba alone: an LLVM assertion aborts the process
    "garbage_nbi": ("nbi", lambda p: p.write_bytes(b"garbage, not a pickle")),
    "emptied_nbi": ("nbi", lambda p: p.write_bytes(b"")),
    "truncated_py": ("py", _truncate_half),
}
CORRUPT_KERNELS = {mode: {"const": 10.0 + i} for i, mode in enumerate(CORRUPTIONS)}


@pytest.fixture(scope="module")
def corruption_runs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("corrupt") / "cache"
    kernels = list(CORRUPT_KERNELS.values())
    first = run(cache, *kernels)
    for mode, k in zip(CORRUPTIONS, first["kernels"], strict=True):
        which, damage = CORRUPTIONS[mode]
        index, data = _numba_files(k)
        k["py_bytes"] = pathlib.Path(k["path"]).read_bytes()
        damage(pathlib.Path({"nbc": data, "nbi": index, "py": k["path"]}[which]))
    second = run(cache, *kernels)
    third = run(cache, *kernels)
    return cache, first, second, third


@pytest.mark.parametrize("mode", list(CORRUPTIONS))
def test_corrupt_entry_warns_once_rebuilds_and_the_next_process_hits(corruption_runs, mode):
    _, first, second, third = corruption_runs
    i = list(CORRUPTIONS).index(mode)
    before, recovered, after = first["kernels"][i], second["kernels"][i], third["kernels"][i]
    assert recovered["ok"] and recovered["out"] == before["out"]
    mine = [w for w in _corrupt_warnings(second) if recovered["module"] in w]
    assert len(mine) == 1, second["warnings"]
    if CORRUPTIONS[mode][0] == "py":
        # the module file is rewritten; numba's entry (stamped with the right content) still serves
        assert "rewriting" in mine[0]
        assert pathlib.Path(recovered["path"]).read_bytes() == before["py_bytes"]
        assert recovered["loaded_from_disk"] is True
    else:
        assert "recompiling" in mine[0] and recovered["loaded_from_disk"] is False and recovered["misses"] == 1
    assert after["ok"] and after["loaded_from_disk"] is True and after["hits"] == 1 and after["out"] == before["out"]


def test_corruption_runs_totals(corruption_runs):
    cache, _, second, third = corruption_runs
    n = len(CORRUPTIONS)
    assert len(_corrupt_warnings(second)) == n
    assert second["stats"]["corrupt_entries_recovered"] == n
    assert second["stats"]["kernel_compiles"] == n - 1  # the .py case still hits numba's cache
    assert third["stats"] == {"kernel_compiles": 0, "disk_cache_loads": n, "corrupt_entries_recovered": 0}
    assert third["warnings"] == []
    assert _tmp_files(cache) == []


def test_numba_cache_dir_elsewhere(tmp_path):
    """With NUMBA_CACHE_DIR set, numba keeps its files there; round trip and recovery still work."""
    cache, numba_cache = tmp_path / "cache", tmp_path / "numba"
    first = run(cache, KERNEL_A, numba_cache=numba_cache)["kernels"][0]
    assert first["numba_cache_path"].startswith(str(numba_cache)) and not (cache / "__pycache__").exists()
    _, data = _numba_files(first)
    _truncate_half(pathlib.Path(data))
    second = run(cache, KERNEL_A, numba_cache=numba_cache)
    assert len(_corrupt_warnings(second)) == 1 and second["kernels"][0]["loaded_from_disk"] is False
    third = run(cache, KERNEL_A, numba_cache=numba_cache)["kernels"][0]
    assert third["loaded_from_disk"] is True and third["out"] == first["out"]
    assert _tmp_files(tmp_path) == []


# ---------------------------------------------------------------------------------- processes sharing a directory (T19)

@pytest.mark.parametrize("n", [2, 4])
def test_processes_started_at_once_share_an_empty_directory(tmp_path, n):
    cache = tmp_path / "cache"
    barrier = tmp_path / "go"
    procs = [_start(cache, [KERNEL_A, KERNEL_B], barrier=barrier) for _ in range(n)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < n and time.time() < deadline:
        time.sleep(0.01)
    barrier.write_text("go")
    reports = [_finish(p) for p in procs]
    print("compiles per process:", [r["stats"]["kernel_compiles"] for r in reports])
    outs = {k["out"] for r in reports for k in r["kernels"][:1]}
    assert len(outs) == 1
    for r in reports:
        assert all(k["ok"] for k in r["kernels"])
        assert _corrupt_warnings(r) == []
    assert _tmp_files(tmp_path) == []
    assert len(list(cache.glob("tapejit_k_*.py"))) == 2
    assert not [f for f in cache.iterdir() if f.name.startswith(".tapejit-probe")]
    if n == 4:  # a fresh process then loads every entry from disk
        last = run(cache, KERNEL_A, KERNEL_B)
        assert all(k["loaded_from_disk"] for k in last["kernels"])


# ---------------------------------------------------------------------------------- unusable directory

@pytest.mark.parametrize("how", ["below_a_file", "read_only"])
def test_unwritable_cache_dir_falls_back_with_one_warning(tmp_path, how):
    if how == "below_a_file":
        (tmp_path / "afile").write_text("not a directory")
        cache = tmp_path / "afile" / "cache"
    else:
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o555)
    try:
        report = run(cache, KERNEL_A, KERNEL_B, permissions_bind=how == "read_only")
    finally:
        if how == "read_only":
            cache.chmod(0o755)
    fallback = [w for w in report["warnings"] if "not writable" in w]
    assert len(fallback) == 1 and fallback[0].startswith("KernelCacheWarning")
    assert report["cache_dir"] != str(cache)
    for k in report["kernels"]:
        assert k["ok"] and os.path.dirname(k["path"]) == report["cache_dir"]
    assert not os.path.exists(report["cache_dir"])  # the temporary directory is removed at exit
    if how == "read_only":
        assert list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------- in process

SOURCE = '''import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def {name}(a, out):
    for i in range(a.shape[0]):
        out[i] = a[i] * 2.0 + 1.0
'''


def test_module_name_hashes_source_flags_and_versions():
    src = SOURCE.format(name="k_x")
    name = kc.module_name(src)
    assert name == kc.module_name(src) and name.startswith("tapejit_k_")
    assert len(name) == len("tapejit_k_") + kc.HASH_CHARS
    assert int(name[len("tapejit_k_"):], 16) >= 0
    others = {kc.module_name(src + "\n"), kc.module_name(src, flags="parallel"), kc.module_name(src, version="0.0.0")}
    assert name not in others and len(others) == 3
    assert kc.kernel_name("abc") == "k_abc"


def test_cache_dir_created_on_demand_and_default_location(tmp_path, monkeypatch):
    monkeypatch.setattr(kc, "_RESOLVED", {})
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(target))
    assert kc.cache_dir() == str(target) and target.is_dir()
    assert os.listdir(target) == []  # the write probe leaves nothing
    monkeypatch.delenv("TAPEJIT_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kc.cache_dir() == str(tmp_path / "home" / ".cache" / "tapejit")


def test_unwritable_directory_warns_once_in_process(tmp_path, monkeypatch):
    def refuse(directory):
        raise PermissionError(13, "Permission denied", directory)
    monkeypatch.setattr(kc, "_RESOLVED", {})
    monkeypatch.setattr(kc, "_TEMPORARY", None)
    monkeypatch.setattr(kc, "_FELL_BACK", False)
    monkeypatch.setattr(kc, "_probe_writable", refuse)
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(tmp_path / "ro"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = kc.cache_dir()
        assert kc.cache_dir() == first != str(tmp_path / "ro")
    assert [str(w.message) for w in record if w.category is kc.KernelCacheWarning] == [str(record[0].message)]
    assert "not writable" in str(record[0].message) and len(record) == 1 and os.path.isdir(first)
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(tmp_path / "ro2"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same per-process directory, no second warning
        assert kc.cache_dir() == first


def test_load_kernel_in_process(tmp_path, monkeypatch):
    import linecache
    monkeypatch.setattr(kc, "_RESOLVED", {})
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(tmp_path))
    key = kc.source_hash("in-process", str(tmp_path))
    name = kc.kernel_name(key)
    src = SOURCE.format(name=name)
    stats = dict(kc.STATS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handle = kc.load_kernel(src, name)
        assert kc.load_kernel(src, name) is handle
        assert handle.loaded_from_disk is None and handle.name in sys.modules
        assert linecache.getline(handle.path, 6).startswith(f"def {name}(")
        assert pathlib.Path(handle.path).read_text() == src
        a = np.arange(5.0)
        out = np.empty(5)
        handle(a, out)
        assert out.tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
        assert handle.loaded_from_disk is False and handle.compile_seconds > 0
        assert kc.STATS["kernel_compiles"] == stats["kernel_compiles"] + 1
        handle.fn(a[:3].astype(np.float32), out[:3])  # a new signature on the hot path: counted too
        assert kc.STATS["kernel_compiles"] == stats["kernel_compiles"] + 2
    assert _tmp_files(tmp_path) == []
    with pytest.raises(ValueError, match="defines no function"):
        kc.load_kernel(src, "k_missing")


# A child process running one compiled function (value and gradient) and reporting its cache_info.
COMPILED_CHILD = r'''
import json, time
start = time.perf_counter()
import numpy as np
import tapejit as tj
from tapejit.runtime import kernel_cache as kc


@tj.compile
def step(x):
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj.reduce_sum(tj.tanh(x) * tj.exp(-x * x))
    return y, tape.gradient(y, x)


x = tj.constant(np.linspace(-2.0, 2.0, 64, dtype=np.float32))
y, g = step(x)
info = step.cache_info()
print(json.dumps({"compile_seconds": info.compile_seconds, "compiles": kc.STATS["kernel_compiles"],
                  "loads": kc.STATS["disk_cache_loads"], "seconds": time.perf_counter() - start,
                  "y": float(y.numpy()), "g": g.numpy().tobytes().hex()}))
'''


def test_a_second_process_runs_a_compiled_function_without_compiling(tmp_path):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(tmp_path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", COMPILED_CHILD], env=env, capture_output=True,
                                      text=True, check=True, timeout=300).stdout) for _ in range(2)]
    cold, warm = runs
    assert cold["compiles"] >= 1 and cold["compile_seconds"] > 0
    # What is left of compile_seconds in the warm process is tracing and loading the
    # kernels, which includes Numba's import (0.3-0.6 s on a loaded 2-core machine).
    assert warm["compiles"] == 0 and warm["loads"] >= 1 and warm["compile_seconds"] < 0.5 * cold["compile_seconds"]
    assert (warm["y"], warm["g"]) == (cold["y"], cold["g"])


def test_compile_cache_false_keeps_nothing_on_disk(tmp_path, monkeypatch):
    """tj.compile(cache=False): the kernels live in this process's temporary
    directory, the cache directory stays empty, and results are the same."""
    import tapejit as tj

    monkeypatch.setattr(kc, "_RESOLVED", {})
    monkeypatch.setenv("TAPEJIT_CACHE_DIR", str(tmp_path / "cache"))
    x = tj.constant(np.linspace(-1.0, 1.0, 33))

    def fn(x):
        return tj.reduce_sum(tj.exp(x) * x) - x * 0.25  # unique to this test: compiled here

    got = tj.compile(fn, cache=False)(x)
    np.testing.assert_allclose(got.numpy(), np.sum(np.exp(x.numpy()) * x.numpy()) - x.numpy() * 0.25, rtol=1e-6)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
    f = tj.compile(fn, cache=False)
    f(x)
    paths = {k.py_func.__code__.co_filename for entry in f._entries.values() for path in entry.paths
             for _, k in path.executable.run.kernels}
    assert paths and all(os.path.dirname(p) == kc.temporary_dir() for p in paths), paths
