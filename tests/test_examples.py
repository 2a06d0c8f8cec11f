"""Smoke tests: each script in examples/ runs to the end and prints what it promises.

Each example runs in its own process from the repository root, with the test
process's environment (so TAPEJIT_CACHE_DIR, if set, is shared). The scripts
assert their own numerical checks; these tests look at their key output lines.
examples/gradient_tape.py is covered by test_seed.py::test_example_script_runs.
"""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 300  # seconds; each example takes well under a minute, but a cold kernel cache on a loaded machine is slower


def run_example(name, *args, env=None):
    """Run examples/<name> with `args`; return its stdout, failing the test on a non-zero exit."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=str(ROOT),
                          env=env if env is not None else os.environ.copy(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, \
        f"{name} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc.stdout


def test_control_flow():
    out = run_example("control_flow.py")
    assert "signed_square [1. 2. 3.] -> [1. 4. 9.]" in out
    assert "signed_square [-1. -2. -3.] -> [-1. -4. -9.]" in out
    # Two paths of `if`, each traced once and then hit once.
    assert "CacheInfo(hits=2, misses=2, traces=2, paths=2," in out
    assert "would reuse compiled path" in out
    assert "would retrace: argument 'x' changed from shape (3,)" in out
    assert "guard[0, bool, expect=True]" in out
    # `while`: one path per trip count.
    assert "after 0 halvings" in out and "after 3 halvings" in out and "after 4 halvings" in out
    assert "paths=4," in out
    assert "would trace a new control-flow path" in out


def test_higher_order():
    out = run_example("higher_order.py")
    assert "HVP check passed" in out
    assert "third derivative check passed" in out
    for how in ("eager", "compiled", "eager around compiled"):
        assert f"  {how} d1, d2, d3 vs closed form: ok" in out
    assert "compiled HVP vs closed form: ok" in out


def test_inspect_compiled():
    out = run_example("inspect_compiled.py")
    for heading in ("squared_error.lower(x, y, w).ir", "squared_error.lower(x, y, w).grad_ir",
                    "sgd_step.lower(x, y, 0.1).ir", "sgd_step.lower(x, y, 0.1).source"):
        assert f"==== 1. {heading}" in out or f"==== 2. {heading}" in out, heading
    assert "ir squared_error(" in out and "ir squared_error_bwd(" in out
    # The tape inside sgd_step is part of its program, and so are the Variable updates.
    assert "write_variable 'weights'" in out and "write_variable 'bias'" in out
    assert "def run(" in out and "# ---- kernel module" in out and "@numba.njit" in out
    assert "matches 2/n X^T (X w - y)" in out
    # lower() traced sgd_step; the three calls after it, with new learning rates, reuse that program.
    assert "CacheInfo(hits=3, misses=0, traces=1, paths=1," in out


def test_train_mlp(tmp_path):
    pytest.importorskip("sklearn")
    png = tmp_path / "loss.png"
    out = run_example("train_mlp.py", "--out", png)
    accuracy = float(re.search(r"^test accuracy: ([0-9.]+)$", out, re.MULTILINE).group(1))
    assert accuracy >= 0.95
    eager_ms, compiled_ms = map(float, re.search(r"time per epoch: eager ([0-9.]+) ms, compiled ([0-9.]+) ms",
                                                 out).groups())
    assert eager_ms > 0 and compiled_ms > 0
    # Same batch shape throughout, decaying learning rate as a Python float: one trace.
    assert "traces=1, paths=1," in out
    if importlib.util.find_spec("matplotlib") is not None:
        assert f"loss curve: saved to {png}" in out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "loss curve: skipped" in out


def test_train_mlp_without_tqdm_and_matplotlib(tmp_path):
    """The optional dependencies are optional: with both unimportable the script still runs."""
    pytest.importorskip("sklearn")
    blockers = tmp_path / "blockers"
    blockers.mkdir()
    for module in ("tqdm", "matplotlib"):  # found first on sys.path, so `import` raises ImportError
        (blockers / f"{module}.py").write_text(f"raise ImportError('{module} is blocked by the test')\n")
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blockers), env.get("PYTHONPATH")]))
    png = tmp_path / "loss.png"
    out = run_example("train_mlp.py", "--epochs", 8, "--out", png, env=env)
    assert "loss curve: skipped (matplotlib is not installed)" in out
    assert not png.exists()
    assert float(re.search(r"^test accuracy: ([0-9.]+)$", out, re.MULTILINE).group(1)) >= 0.95
