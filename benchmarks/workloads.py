"""Value and gradient per call on the workloads of issue 4's "Speed" table, side by
side in one run: tapejit eager (tapes, no compile), @tj.compile with backend="numpy",
backend="numba" and backend="numba" with parallel=True, and hand-written NumPy
(forward and backward by hand); JAX (jax.jit of value_and_grad), PyTorch eager and,
with --torch-compile, torch.compile, when importable (`pip install -e ".[bench]"`).

Every system's values and gradients are checked against a float64 NumPy reference
before timing (and again after timing, for the stateless workloads); a system that
disagrees shows MISMATCH instead of a time. Times are medians of repeats; the first
call (tracing and kernel compilation for the compiled rows) is timed apart and left
out of the median. "kernels" says how many Numba kernels the first call compiled and
how many it loaded from the disk cache (TAPEJIT_CACHE_DIR; --cold-cache uses a fresh
empty directory, so the first-call column shows a cold compile). The first Numba row of
a run also pays Numba's one-off start in the process (LLVM initialisation, ~0.2-0.4 s).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python -m benchmarks.workloads [--quick] [--workloads seed,mlp] [--repeats N] [--cold-cache] [--torch-compile]

On a shared machine, a process holding one core slows OpenBLAS's two-thread matmul
10-30x (threads spin waiting for each other), which swamps the mlp rows; rerun with
OPENBLAS_NUM_THREADS=1 to see them without that. Issue 4 asks to unset
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the benchmark command only (they hold
OpenBLAS to its AVX2 kernels); the header shows them and, with threadpoolctl, which
kernel OpenBLAS picked.

Workloads (float32): seed, transcendental, mlp, softmax_xent, control_flow (an `if`
whose branch alternates between calls, and a `while` whose trip count depends on the
data, calls alternating between two trip counts), hvp.
"""
import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

RTOL = 1e-3  # float32 results against the float64 reference
# Shown in the header: they decide which OpenBLAS kernel and how many threads the BLAS-bound rows use.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
TORCH_COMPILE = False  # --torch-compile: add torch.compile rows (each compiles for tens of seconds)


# ============================================================================ timing

def _batch(run, number):
    start = time.perf_counter()
    for _ in range(number):
        run()
    return time.perf_counter() - start


def batch_size(run, min_batch):
    """How many run()s make a batch of at least `min_batch` seconds."""
    number = 1
    while number < 1 << 20:
        elapsed = _batch(run, number)
        if elapsed >= min_batch:
            break
        number *= max(2, min(10, int(min_batch / max(elapsed, 1e-9)) + 1))
    return number


def interleaved_medians(runs, repeats, min_batch=0.02):
    """Median seconds per run() of each of `runs`, timed in rounds (one batch of each per
    round), so that a load change on the machine hits every system alike. GC is off while
    timing, as in timeit."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        numbers = [batch_size(run, min_batch) for run in runs]
        samples = [[] for _ in runs]
        for _ in range(repeats):
            for run, number, out in zip(runs, numbers, samples, strict=True):
                out.append(_batch(run, number) / number)
    finally:
        if enabled:
            gc.enable()
    return [statistics.median(s) for s in samples]


def format_seconds(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


# ============================================================================ checking

def compare(got, expected, rtol=RTOL):
    """None when every output agrees with the reference, else a short description.
    Each array gets an absolute tolerance of rtol times its largest reference magnitude."""
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        g = np.asarray(g)
        e = np.asarray(e)
        if g.shape != e.shape:
            return f"output {i}: shape {g.shape}, expected {e.shape}"
        if not np.all(np.isfinite(g)):
            return f"output {i}: {int(np.sum(~np.isfinite(g)))} non-finite values"
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        err = np.abs(g.astype(np.float64) - e)
        bad = err > rtol * np.abs(e) + rtol * scale
        if np.any(bad):
            j = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
            return (f"output {i}{list(j) if j else ''}: {float(g[j]):.7g} vs reference {float(e[j]):.7g} "
                    f"(max abs err {float(err.max()):.3g}, scale {scale:.3g})")
    return None


# ============================================================================ workloads
#
# A workload's setup(quick) returns a dict of float32 NumPy inputs. Each system's
# builder(data) returns (run, outputs, compiled): run() makes `calls` calls (one per
# alternating input) and returns their results; outputs(result) turns them into a flat
# list of NumPy arrays, compared with reference(data) (float64); compiled is the
# tj.compile function, if any (its cache_info is checked after timing). Stateful
# workloads (the MLP step) give the reference of their first two runs. The references
# reuse the hand-written NumPy code in float64 where one exists; the tapejit eager rows,
# differentiated by the tape, are the independent check of those hand derivations.

class Workload:
    def __init__(self, name, title, setup, reference, builders, calls=1, stateful=False):
        self.name, self.title, self.setup, self.reference = name, title, setup, reference
        self.builders, self.calls, self.stateful = builders, calls, stateful


def tj_outputs(result):
    """Flatten (nested tuples/lists of) tapejit tensors and Variables to NumPy arrays."""
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in tj_outputs(r)]
    return [np.asarray(result.numpy())]


def np_outputs(result):
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in np_outputs(r)]
    return [np.asarray(result)]


def tapejit_builders(make_fn, inputs):
    """The three tapejit rows of a stateless workload: make_fn() gives a fresh Python
    function of tensors; inputs(data) gives the per-call argument tuples."""
    import tapejit as tj

    def build(backend, parallel=False):
        def builder(data):
            args = [tuple(tj.constant(a) if isinstance(a, np.ndarray) else a for a in call) for call in inputs(data)]
            fn = make_fn() if backend is None else tj.compile(make_fn(), backend=backend, parallel=parallel)
            compiled = None if backend is None else fn
            if len(args) == 1:
                (a,) = args
                return (lambda: fn(*a)), tj_outputs, compiled
            return (lambda: [fn(*a) for a in args]), tj_outputs, compiled
        return builder

    return {"tapejit eager": build(None), "tapejit compiled numpy": build("numpy"),
            "tapejit compiled numba": build("numba"), "tapejit compiled numba parallel": build("numba", True)}


def numpy_builder(fn, inputs):
    def builder(data):
        args = inputs(data)
        if len(args) == 1:
            (a,) = args
            return (lambda: fn(*a)), np_outputs, None
        return (lambda: [fn(*a) for a in args]), np_outputs, None
    return {"NumPy by hand": builder}


# ---------------------------------------------------------------------------- 1. seed

def seed_setup(quick):
    return {"x": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}


def seed_reference(d):
    x = d["x"].astype(np.float64)
    s = x.sum()
    return [s * s, np.full_like(x, 2 * s)]


def seed_tj():
    import tapejit as tj

    def seed(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            z = tj.reduce_sum(x) ** 2
        return z, tape.gradient(z, x)
    return seed


def seed_np(x):
    s = x.sum()
    return s * s, np.full_like(x, s + s)


def seed_jax():
    import jax
    import jax.numpy as jnp
    return jax.jit(jax.value_and_grad(lambda x: jnp.sum(x) ** 2))


def seed_torch(x):
    x = x.detach().requires_grad_(True)
    z = x.sum() ** 2
    z.backward()
    return z.detach(), x.grad


# ---------------------------------------------------------------------------- 2. transcendental

def trans_setup(quick):
    n = 1_000_000 if quick else 10_000_000
    return {"x": np.random.default_rng(0).normal(0.0, 2.0, n).astype(np.float32)}


def trans_reference(d):
    x = d["x"].astype(np.float64)
    t, s, e = np.tanh(x), 1 / (1 + np.exp(-x)), np.exp(-np.abs(x))
    value = np.sum(t * s + 0.5 * x * x * e)
    grad = (1 - t * t) * s + t * s * (1 - s) + x * e - 0.5 * x * x * e * np.sign(x)
    return [value, grad]


def trans_tj():
    import tapejit as tj

    def transcendental(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(tj.tanh(x) * tj.sigmoid(x) + 0.5 * x * x * tj.exp(-tj.abs(x)))
        return y, tape.gradient(y, x)
    return transcendental


def trans_np(x):
    # Forward keeping what the backward needs; temporaries reused (out=) as a careful NumPy user would.
    t = np.tanh(x)
    s = np.negative(x)
    np.exp(s, out=s)
    s += 1
    np.reciprocal(s, out=s)                       # sigmoid(x)
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)                              # exp(-|x|)
    xe = x * e
    hx2e = 0.5 * x * xe                           # 0.5 x^2 exp(-|x|)
    ts = t * s
    value = np.sum(ts + hx2e)
    # d/dx: (1 - t^2) s + t s (1 - s) + x e - 0.5 x^2 e sign(x)
    g = 1 - t * t
    g *= s
    g += ts * (1 - s)
    g += xe
    g -= hx2e * np.sign(x)
    return value, g


def trans_jax():
    import jax
    import jax.numpy as jnp
    def f(x):
        return jnp.sum(jnp.tanh(x) * jax.nn.sigmoid(x) + 0.5 * x * x * jnp.exp(-jnp.abs(x)))
    return jax.jit(jax.value_and_grad(f))


def trans_torch(x):
    import torch
    x = x.detach().requires_grad_(True)
    y = torch.sum(torch.tanh(x) * torch.sigmoid(x) + 0.5 * x * x * torch.exp(-torch.abs(x)))
    y.backward()
    return y.detach(), x.grad


# ---------------------------------------------------------------------------- 3. mlp

MLP_LR = 0.1


def mlp_setup(quick):
    rng = np.random.default_rng(1)
    return {"x": rng.normal(0, 1, (256, 784)).astype(np.float32),
            "y": rng.integers(0, 10, 256).astype(np.int32),
            "w1": (rng.normal(0, 1, (784, 512)) / np.sqrt(784)).astype(np.float32),
            "b1": np.zeros(512, np.float32),
            "w2": (rng.normal(0, 1, (512, 10)) / np.sqrt(512)).astype(np.float32),
            "b2": np.zeros(10, np.float32)}


def mlp_step_np(x, y, params, lr):
    """One SGD step by hand (any float dtype); updates `params` in place and returns the loss."""
    w1, b1, w2, b2 = params
    n = x.shape[0]
    rows = np.arange(n)
    h = x @ w1
    h += b1
    a = np.maximum(h, 0)
    logits = a @ w2
    logits += b2
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    total = p.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - logits[rows, y])
    p /= total
    p[rows, y] -= 1
    p *= p.dtype.type(1.0 / n)                    # d loss / d logits
    dw2 = a.T @ p
    db2 = p.sum(axis=0)
    da = p @ w2.T
    da *= h > 0                                   # relu'(h), 0 at 0 as in TensorFlow
    dw1 = x.T @ da
    db1 = da.sum(axis=0)
    lr = p.dtype.type(lr)
    for param, grad in ((w1, dw1), (b1, db1), (w2, dw2), (b2, db2)):
        param -= lr * grad
    return loss


MLP_PARAMS = ("w1", "b1", "w2", "b2")


def mlp_reference(d):
    params = [d[k].astype(np.float64) for k in MLP_PARAMS]
    x = d["x"].astype(np.float64)
    outs = []
    for _ in range(2):
        loss = mlp_step_np(x, d["y"], params, MLP_LR)
        outs.append([loss] + [p.copy() for p in params])
    return outs


def mlp_tapejit_builders():
    import tapejit as tj

    def build(backend, parallel=False):
        def builder(data):
            params = [tj.Variable(data[k].copy()) for k in MLP_PARAMS]
            w1, b1, w2, b2 = params

            def mlp_step(x, y, lr):
                with tj.GradientTape() as tape:
                    h = tj.nn.relu(x @ w1 + b1)
                    logits = h @ w2 + b2
                    loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
                grads = tape.gradient(loss, [w1, b1, w2, b2])
                for var, grad in zip([w1, b1, w2, b2], grads, strict=True):
                    var.assign_sub(lr * grad)
                return loss

            compiled = None if backend is None else tj.compile(mlp_step, backend=backend, parallel=parallel)
            fn = compiled or mlp_step
            x, y = tj.constant(data["x"]), tj.constant(data["y"])
            return (lambda: fn(x, y, MLP_LR)), (lambda loss: tj_outputs([loss] + params)), compiled
        return builder

    return {"tapejit eager": build(None), "tapejit compiled numpy": build("numpy"),
            "tapejit compiled numba": build("numba"), "tapejit compiled numba parallel": build("numba", True)}


def mlp_numpy_builder(data):
    params = [data[k].copy() for k in MLP_PARAMS]
    x, y = data["x"], data["y"]
    def outputs(loss):
        return [np.asarray(loss)] + [p.copy() for p in params]
    return (lambda: mlp_step_np(x, y, params, MLP_LR)), outputs, None


def mlp_jax_builder(data):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, x, y):
        w1, b1, w2, b2 = params
        logits = jax.nn.relu(x @ w1 + b1) @ w2 + b2
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return loss, [p - MLP_LR * g for p, g in zip(params, grads)]

    state = [[jnp.asarray(data[k]) for k in MLP_PARAMS]]
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])

    def run():
        loss, state[0] = step(state[0], x, y)
        return jax.block_until_ready(loss)
    return run, (lambda loss: [np.asarray(loss)] + [np.asarray(p) for p in state[0]]), None


def mlp_torch_builder(data):
    import torch
    params = [torch.tensor(data[k].copy(), requires_grad=True) for k in MLP_PARAMS]
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"].astype(np.int64))

    def run():
        w1, b1, w2, b2 = params
        loss = torch.nn.functional.cross_entropy(torch.relu(x @ w1 + b1) @ w2 + b2, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= MLP_LR * g
        return loss.detach()
    return run, (lambda loss: [loss.numpy()] + [p.detach().numpy().copy() for p in params]), None


# ---------------------------------------------------------------------------- 4. softmax_xent

def xent_setup(quick):
    rng = np.random.default_rng(2)
    rows = 1024 if quick else 4096
    return {"logits": rng.normal(0, 3, (rows, 1000)).astype(np.float32),
            "labels": rng.integers(0, 1000, rows).astype(np.int32)}


def xent_np(logits, labels):
    rows = np.arange(logits.shape[0])
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    total = p.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(total[:, 0]) - z[rows, labels])
    p /= total
    p[rows, labels] -= 1
    p *= p.dtype.type(1.0 / logits.shape[0])
    return loss, p


def xent_reference(d):
    loss, grad = xent_np(d["logits"].astype(np.float64), d["labels"])
    return [loss, grad]


def xent_tj():
    import tapejit as tj

    def softmax_xent(logits, labels):
        with tj.GradientTape() as tape:
            tape.watch(logits)
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        return loss, tape.gradient(loss, logits)
    return softmax_xent


def xent_jax():
    import jax
    import jax.numpy as jnp

    def f(logits, labels):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))
    return jax.jit(jax.value_and_grad(f))


def xent_torch(logits, labels):
    import torch
    logits = logits.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    return loss.detach(), logits.grad


# ---------------------------------------------------------------------------- 5. control flow

def branch_setup(quick):
    return {"pos": np.float32([0.5, -0.25, 1.0, 0.75]), "neg": np.float32([-0.5, 0.25, -1.0, -0.75])}


def branch_np(x):
    if x.sum() > 0:                               # y = sum(tanh(x) * x)
        t = np.tanh(x)
        return np.sum(t * x), (1 - t * t) * x + t
    return np.sum(x * x), x + x                   # y = sum(x * x)


def branch_reference(d):
    return [a for k in ("pos", "neg") for a in branch_np(d[k].astype(np.float64))]


def branch_tj():
    import tapejit as tj

    def branch(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            if tj.reduce_sum(x) > 0:
                y = tj.reduce_sum(tj.tanh(x) * x)
            else:
                y = tj.reduce_sum(x * x)
        return y, tape.gradient(y, x)
    return branch


def loop_setup(quick):
    # 2 and 4 trips of the loop below.
    return {"short": np.float32([1.0, -1.0, 1.0, -1.0]), "long": np.float32([5.0, -4.0, 3.0, 6.0])}


def loop_np(x):
    """y <- 0.5 y + 0.1 tanh(y) while sum(y^2) > 1; value sum(y^2) and its gradient."""
    y, derivs = x, []
    while np.sum(y * y) > 1:
        t = np.tanh(y)
        derivs.append(0.6 - 0.1 * t * t)           # d(0.5 y + 0.1 tanh y)/dy
        y = 0.5 * y + 0.1 * t
    g = y + y
    for dv in reversed(derivs):
        g = g * dv
    return np.sum(y * y), g


def loop_reference(d):
    return [a for k in ("short", "long") for a in loop_np(d[k].astype(np.float64))]


def loop_tj():
    import tapejit as tj

    def loop(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = x
            while tj.reduce_sum(y * y) > 1.0:
                y = 0.5 * y + 0.1 * tj.tanh(y)
            z = tj.reduce_sum(y * y)
        return z, tape.gradient(z, x)
    return loop


def branch_jax():
    import jax
    import jax.numpy as jnp

    def f(x):
        return jax.lax.cond(jnp.sum(x) > 0, lambda v: jnp.sum(jnp.tanh(v) * v), lambda v: jnp.sum(v * v), x)
    return jax.jit(jax.value_and_grad(f))


def loop_jax():
    # lax.while_loop has no reverse-mode derivative: a bounded loop that stops updating
    # once the condition fails (what JAX users write) gives the same values for <= 32 trips.
    import jax
    import jax.numpy as jnp

    def f(x):
        def body(_, y):
            return jnp.where(jnp.sum(y * y) > 1.0, 0.5 * y + 0.1 * jnp.tanh(y), y)
        y = jax.lax.fori_loop(0, 32, body, x)
        return jnp.sum(y * y)
    return jax.jit(jax.value_and_grad(f))


def branch_torch(x):
    import torch
    x = x.detach().requires_grad_(True)
    y = torch.sum(torch.tanh(x) * x) if torch.sum(x) > 0 else torch.sum(x * x)
    y.backward()
    return y.detach(), x.grad


def loop_torch(x):
    import torch
    x = x.detach().requires_grad_(True)
    y = x
    while torch.sum(y * y) > 1.0:
        y = 0.5 * y + 0.1 * torch.tanh(y)
    z = torch.sum(y * y)
    z.backward()
    return z.detach(), x.grad


# ---------------------------------------------------------------------------- 6. hvp

def hvp_setup(quick):
    rng = np.random.default_rng(3)
    return {"w": (rng.normal(0, 1, (512, 512)) / np.sqrt(512)).astype(np.float32),
            "x": rng.normal(0, 1, 512).astype(np.float32),
            "v": rng.normal(0, 1, 512).astype(np.float32)}


def hvp_np(w, x, v):
    """H v for f(x) = sum(tanh(W x)): H = W^T diag(-2 t (1 - t^2)) W with t = tanh(W x)."""
    t = np.tanh(w @ x)
    d = t * t
    d -= 1
    d *= t
    d *= 2                                        # -2 t (1 - t^2) = 2 t (t^2 - 1)
    d *= w @ v
    return w.T @ d


def hvp_reference(d):
    return [hvp_np(*(d[k].astype(np.float64) for k in ("w", "x", "v")))]


def hvp_tj():
    import tapejit as tj

    def hvp(w, x, v):
        with tj.GradientTape() as outer:
            outer.watch(x)
            with tj.GradientTape() as inner:
                inner.watch(x)
                y = tj.reduce_sum(tj.tanh(tj.tensordot(w, x, axes=1)))
            g = inner.gradient(y, x)
            gv = tj.reduce_sum(g * v)
        return outer.gradient(gv, x)
    return hvp


def hvp_jax():
    import jax
    import jax.numpy as jnp

    def f(w, x):
        return jnp.sum(jnp.tanh(w @ x))

    @jax.jit
    def hvp(w, x, v):
        return jax.jvp(lambda y: jax.grad(f, argnums=1)(w, y), (x,), (v,))[1]
    return hvp


def hvp_torch(w, x, v):
    import torch
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.sum(torch.tanh(w @ x)), x, create_graph=True)
    (hv,) = torch.autograd.grad(torch.sum(g * v), x)
    return hv


# ============================================================================ peers

def _peer_available(module):
    """Installed? Found without importing it: an import would load the peer's own OpenMP
    runtime before tapejit's parallel rows set it up (an MLP step ran 4-5x slower)."""
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def jax_builder(make, inputs):
    def builder(data):
        import jax
        import jax.numpy as jnp
        fn = make()
        args = [tuple(jnp.asarray(a) for a in call) for call in inputs(data)]
        return (lambda: jax.block_until_ready([fn(*a) for a in args])), np_outputs, None
    return {"JAX jit": builder}


def torch_builder(fn, inputs):
    def builder(data):
        import torch
        args = [tuple(torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a) for a in call)
                for call in inputs(data)]
        def outputs(result):  # one result per call: a tensor or a tuple of tensors
            return [t.detach().numpy() for r in result for t in (r if isinstance(r, (list, tuple)) else [r])]
        return (lambda: [fn(*a) for a in args]), outputs, None

    def compiled_builder(data):  # torch.compile of the same function (Inductor, C++ kernels)
        import torch
        run, outputs, _ = builder(data)
        compiled = torch.compile(fn)
        args = [tuple(torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a) for a in call)
                for call in inputs(data)]
        return (lambda: [compiled(*a) for a in args]), outputs, None
    rows = {"PyTorch eager": builder}
    if TORCH_COMPILE:
        rows["torch.compile"] = compiled_builder
    return rows


# ============================================================================ registry

def _stateless(name, title, setup, reference, make_tj, np_fn, inputs, jax_make=None, torch_fn=None, calls=1):
    builders = dict(tapejit_builders(make_tj, inputs))
    builders.update(numpy_builder(np_fn, inputs))
    if jax_make is not None and _peer_available("jax"):
        builders.update(jax_builder(jax_make, inputs))
    if torch_fn is not None and _peer_available("torch"):
        builders.update(torch_builder(torch_fn, inputs))
    return Workload(name, title, setup, reference, builders, calls=calls)


def workloads(quick):
    n_trans = "1M" if quick else "10M"
    rows_xent = 1024 if quick else 4096
    mlp_builders = dict(mlp_tapejit_builders())
    mlp_builders["NumPy by hand"] = mlp_numpy_builder
    if _peer_available("jax"):
        mlp_builders["JAX jit"] = mlp_jax_builder
    if _peer_available("torch"):
        mlp_builders["PyTorch eager"] = mlp_torch_builder
    return [
        _stateless("seed", "seed: z = reduce_sum(x)**2 and dz/dx, x (2, 2) float32",
                   seed_setup, seed_reference, seed_tj, seed_np, lambda d: [(d["x"],)], seed_jax, seed_torch),
        _stateless("transcendental",
                   f"transcendental: reduce_sum(tanh(x)*sigmoid(x) + 0.5*x*x*exp(-abs(x))) and its gradient, "
                   f"{n_trans} float32",
                   trans_setup, trans_reference, trans_tj, trans_np, lambda d: [(d["x"],)], trans_jax, trans_torch),
        Workload("mlp", "mlp: one SGD step of a 784-512-10 relu MLP, sparse softmax cross-entropy, batch 256, "
                 "Variables updated in the step", mlp_setup, mlp_reference, mlp_builders, stateful=True),
        _stateless("softmax_xent", f"softmax_xent: mean sparse softmax cross-entropy of ({rows_xent}, 1000) logits "
                   "and its gradient", xent_setup, xent_reference, xent_tj, xent_np,
                   lambda d: [(d["logits"], d["labels"])], xent_jax, xent_torch),
        _stateless("control_flow/if", "control_flow/if: `if reduce_sum(x) > 0` picks the loss, branch alternating "
                   "between calls, (4,) float32", branch_setup, branch_reference, branch_tj, branch_np,
                   lambda d: [(d["pos"],), (d["neg"],)], branch_jax, branch_torch, calls=2),
        _stateless("control_flow/while", "control_flow/while: `while reduce_sum(y*y) > 1`, 2 and 4 trips alternating "
                   "between calls, (4,) float32", loop_setup, loop_reference, loop_tj, loop_np,
                   lambda d: [(d["short"],), (d["long"],)], loop_jax, loop_torch, calls=2),
        _stateless("hvp", "hvp: Hessian-vector product of sum(tanh(W @ x)), W 512x512, nested tapes",
                   hvp_setup, hvp_reference, hvp_tj, hvp_np, lambda d: [(d["w"], d["x"], d["v"])],
                   hvp_jax, hvp_torch),
    ]


# ============================================================================ running

def kernel_stats():
    from tapejit.runtime.kernel_cache import STATS
    return STATS["kernel_compiles"], STATS["disk_cache_loads"]


class SystemRun:
    """One row: the system's run(), its first call, its check, then its timing."""

    def __init__(self, workload, name, builder):
        self.workload, self.name, self.builder = workload, name, builder
        self.run = self.outputs = self.compiled = None
        self.seconds = self.first = None
        self.kernels = self.note = ""

    def fail(self, note):
        self.run = None
        self.note = note

    def prepare(self, data, expected):
        """Build, time the first call, check it (and the second step of a stateful workload)."""
        try:
            self.run, self.outputs, self.compiled = self.builder(data)
            compiles, loads = kernel_stats()
            start = time.perf_counter()
            result = self.run()
            self.first = time.perf_counter() - start
            if "numba" in self.name:
                self.kernels = f"{kernel_stats()[0] - compiles} compiled, {kernel_stats()[1] - loads} from disk"
            problem = compare(self.outputs(result), expected[0])
            if problem is None and self.workload.stateful:
                problem = compare(self.outputs(self.run()), expected[1])
                problem = problem and f"second step: {problem}"
            if problem is not None:
                self.fail(f"MISMATCH: {problem}")
        except Exception as e:  # noqa: BLE001 (report and go on with the other systems)
            self.fail(describe_error(e))

    def finish(self, expected):
        """Check once more after timing (stateless workloads) and look at the trace counts."""
        try:
            if not self.workload.stateful:
                problem = compare(self.outputs(self.run()), expected[0])
                if problem is not None:
                    self.seconds = None
                    self.fail(f"MISMATCH after timing: {problem}")
                    return
            if self.compiled is not None:
                info = self.compiled.cache_info()
                if info.paths != self.workload.calls or info.traces != self.workload.calls:
                    self.note = f"unexpected {info}"
        except Exception as e:  # noqa: BLE001
            self.seconds = None
            self.fail(describe_error(e))


def describe_error(e):
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" ({os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    message = str(e).splitlines()[0] if str(e) else ""
    return f"ERROR {type(e).__name__}: {message}{where}"


def run_workload(workload, quick, repeats):
    data = workload.setup(quick)
    expected = workload.reference(data)
    if not workload.stateful:
        expected = [expected]
    rows = [SystemRun(workload, name, builder) for name, builder in workload.builders.items()]
    for row in rows:
        row.prepare(data, expected)
    timed = [row for row in rows if row.run is not None]
    try:
        for row, seconds in zip(timed, interleaved_medians([row.run for row in timed], repeats), strict=True):
            row.seconds = seconds / workload.calls
    except Exception:  # noqa: BLE001 (a failure while timing: time the rows one by one to find it)
        for row in timed:
            try:
                row.seconds = interleaved_medians([row.run], repeats)[0] / workload.calls
            except Exception as e:  # noqa: BLE001
                row.fail(describe_error(e))
    for row in timed:
        if row.run is not None:
            row.finish(expected)
    return rows


def print_table(workload, rows):
    base = next((row.seconds for row in rows if row.name == "NumPy by hand"), None)
    print(f"### {workload.title}")
    print("| system | per call | x NumPy | first call | kernels | note |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        if row.seconds is not None:
            per_call = format_seconds(row.seconds)
        else:
            per_call = "MISMATCH" if "MISMATCH" in row.note else "ERROR"
        ratio = f"{row.seconds / base:.2f}" if row.seconds is not None and base else ""
        shows_first = row.first is not None and ("compiled" in row.name or "jit" in row.name)
        first = format_seconds(row.first) if shows_first else ""
        note = row.note.replace("|", "\\|")
        print(f"| {row.name} | {per_call} | {ratio} | {first} | {row.kernels} | {note} |")
    print()
    sys.stdout.flush()


def blas_kernels():
    """Which BLAS libraries and kernels NumPy (and the peers) loaded, as threadpoolctl sees them."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed"
    np.ones((2, 2)) @ np.ones((2, 2))  # load BLAS
    infos = threadpoolctl.threadpool_info()
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
                     f"{i.get('num_threads')} threads" for i in infos if i.get("user_api") == "blas") or "no BLAS seen"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (< ~3 min)")
    parser.add_argument("--workloads", default="", help="comma-separated names or prefixes (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed batches per system (default 7 quick, 15)")
    parser.add_argument("--cold-cache", action="store_true",
                        help="point TAPEJIT_CACHE_DIR at a fresh empty directory (cold Numba compiles)")
    parser.add_argument("--torch-compile", action="store_true", help="add torch.compile rows (slow to compile)")
    args = parser.parse_args(argv)
    global TORCH_COMPILE
    TORCH_COMPILE = args.torch_compile
    repeats = args.repeats or (7 if args.quick else 15)
    if args.cold_cache:
        os.environ["TAPEJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tapejit-bench-cache-")

    import numba
    from tapejit.runtime.kernel_cache import cache_dir

    import tapejit as tj

    every = workloads(args.quick)
    wanted = [s.strip() for s in args.workloads.split(",") if s.strip()]
    for s in wanted:
        if not any(w.name.startswith(s) for w in every):
            parser.error(f"no workload named {s!r}; choose from {', '.join(w.name for w in every)}")
    selected = [w for w in every if not wanted or any(w.name.startswith(s) for s in wanted)]

    peers = [f"{m} {'found' if _peer_available(m) else 'not installed: no rows'}" for m in ("jax", "torch")]
    print(f"tapejit {tj.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    blas_env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in BLAS_ENV)
    print(f"kernel cache: {cache_dir()}{' (fresh, cold)' if args.cold_cache else ''}; {'; '.join(peers)}")
    print(f"BLAS: {blas_env}; {blas_kernels()}")
    print(f"load average {os.getloadavg()[0]:.2f} at start (other work on the machine skews every row; "
          f"rows are timed in interleaved rounds so that it skews them alike)")
    print(f"median of {repeats} repeats per call (value and gradient), first call timed apart; "
          f"checked against float64 NumPy at rtol {RTOL}\n")
    sys.stdout.flush()

    started = time.perf_counter()
    for workload in selected:
        print_table(workload, run_workload(workload, args.quick, repeats))
    print(f"total {time.perf_counter() - started:.1f} s, load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
