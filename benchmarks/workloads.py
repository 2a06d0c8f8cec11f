"""The workloads of the benchmark suite (`python -m benchmarks`), each as its inputs,
a float64 NumPy reference, and one builder per system: tapejit eager and compiled,
hand-written NumPy (forward and backward by hand), TensorFlow (eager and
tf.function), JAX (jit of value_and_grad), PyTorch (eager and torch.compile) and HIPS
autograd. The tapejit and TensorFlow rows run one function written against the
TensorFlow API. benchmarks/worker.py runs one row per process; benchmarks/suite.py
times the rows side by side and writes the tables.

Workloads (float32): seed, eager_chain, transcendental, mlp, softmax_xent,
control_flow/if (a branch alternating between calls), control_flow/while (a trip count
alternating between two), hvp.
"""
import importlib
import os
import time
import traceback

import numpy as np

RTOL = 1e-3  # float32 results against the float64 reference


# ============================================================================ timing

def run_batch(run, number):
    """Seconds for `number` calls of run()."""
    start = time.perf_counter()
    for _ in range(number):
        run()
    return time.perf_counter() - start


def batch_size(run, min_batch):
    """How many run()s make a batch of at least `min_batch` seconds."""
    number = 1
    while number < 1 << 20:
        elapsed = run_batch(run, number)
        if elapsed >= min_batch:
            break
        number *= max(2, min(10, int(min_batch / max(elapsed, 1e-9)) + 1))
    return number


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
    """flops: the matmul work of one call (for its physical floor; 0 when memory-bound)."""

    def __init__(self, name, title, setup, reference, builders, calls=1, stateful=False, flops=0):
        self.name, self.title, self.setup, self.reference = name, title, setup, reference
        self.builders, self.calls, self.stateful, self.flops = builders, calls, stateful, flops


def tj_outputs(result):
    """Flatten (nested tuples/lists of) tapejit or TensorFlow tensors and Variables to NumPy arrays."""
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in tj_outputs(r)]
    return [np.asarray(result.numpy())]


def np_outputs(result):
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in np_outputs(r)]
    return [np.asarray(result)]


def _per_call(fn, args):
    """run() for one call per argument tuple: its result, or the list of results."""
    if len(args) == 1:
        (a,) = args
        return lambda: fn(*a)
    return lambda: [fn(*a) for a in args]


# How each tape row wraps the workload's function: (library, wrap(lib, fn) -> callable).
# The workloads are written once against the TensorFlow API (tapejit's), so the same
# function runs on tapejit and on TensorFlow.
TAPE_ROWS = {
    "tj-eager": ("tapejit", lambda lib, fn: fn),
    "tj-numba": ("tapejit", lambda lib, fn: lib.compile(fn)),
    "tj-numba-parallel": ("tapejit", lambda lib, fn: lib.compile(fn, parallel=True)),
    "tj-numpy": ("tapejit", lambda lib, fn: lib.compile(fn, backend="numpy")),
    "tf-eager": ("tensorflow", lambda lib, fn: fn),
    "tf-function": ("tensorflow", lambda lib, fn: lib.function(fn)),
}


def tape_builders(make_fn, inputs):
    """The tapejit and TensorFlow rows of a stateless workload: make_fn(lib) gives a
    fresh function of lib's tensors; inputs(data) gives the per-call argument tuples."""
    def build(library, wrap):
        def builder(data):
            lib = importlib.import_module(library)
            args = [tuple(lib.constant(a) if isinstance(a, np.ndarray) else a for a in call) for call in inputs(data)]
            fn = wrap(lib, make_fn(lib))
            return _per_call(fn, args), tj_outputs, (fn if hasattr(fn, "cache_info") else None)
        return builder
    return {system: build(library, wrap) for system, (library, wrap) in TAPE_ROWS.items()}


def numpy_builder(fn, inputs):
    def builder(data):
        return _per_call(fn, inputs(data)), np_outputs, None
    return {"numpy": builder}


def autograd_builder(make, inputs):
    """HIPS autograd: make() gives a function of NumPy arrays returning value and gradient."""
    def builder(data):
        return _per_call(make(), inputs(data)), np_outputs, None
    return {"autograd": builder}


# ---------------------------------------------------------------------------- 1. seed

def seed_setup(quick):
    return {"x": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}


def seed_reference(d):
    x = d["x"].astype(np.float64)
    s = x.sum()
    return [s * s, np.full_like(x, 2 * s)]


def seed_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def seed_autograd():
    import autograd
    import autograd.numpy as anp
    return autograd.value_and_grad(lambda x: anp.sum(x) ** 2)


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


def trans_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def trans_autograd():
    import autograd
    import autograd.numpy as anp
    return autograd.value_and_grad(
        lambda x: anp.sum(anp.tanh(x) / (1 + anp.exp(-x)) + 0.5 * x * x * anp.exp(-anp.abs(x))))


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


def mlp_tape_builders():
    """The tapejit and TensorFlow rows: the same step, Variables updated inside it."""
    def build(library, wrap):
        def builder(data):
            lib = importlib.import_module(library)
            params = [lib.Variable(data[k].copy()) for k in MLP_PARAMS]
            w1, b1, w2, b2 = params

            def mlp_step(x, y, lr):
                with lib.GradientTape() as tape:
                    h = lib.nn.relu(x @ w1 + b1)
                    logits = h @ w2 + b2
                    loss = lib.reduce_mean(lib.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
                grads = tape.gradient(loss, [w1, b1, w2, b2])
                for var, grad in zip([w1, b1, w2, b2], grads, strict=True):
                    var.assign_sub(lr * grad)
                return loss

            fn = wrap(lib, mlp_step)
            x, y = lib.constant(data["x"]), lib.constant(data["y"])
            compiled = fn if hasattr(fn, "cache_info") else None
            return (lambda: fn(x, y, MLP_LR)), (lambda loss: tj_outputs([loss] + params)), compiled
        return builder
    return {system: build(library, wrap) for system, (library, wrap) in TAPE_ROWS.items()}


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


def mlp_torch_builder(data, compile_loss=False):
    """PyTorch eager, or with the loss compiled (torch.compile; AOTAutograd compiles
    its backward too) and the SGD update in eager PyTorch."""
    import torch
    params = [torch.tensor(data[k].copy(), requires_grad=True) for k in MLP_PARAMS]
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"].astype(np.int64))

    def loss_of(w1, b1, w2, b2):
        return torch.nn.functional.cross_entropy(torch.relu(x @ w1 + b1) @ w2 + b2, y)
    loss_fn = torch.compile(loss_of) if compile_loss else loss_of

    def run():
        loss = loss_fn(*params)
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


def xent_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def xent_autograd():
    import autograd
    import autograd.numpy as anp

    def loss(logits, labels):
        z = logits - anp.max(logits, axis=1, keepdims=True)
        picked = z[anp.arange(z.shape[0]), labels]
        return anp.mean(anp.log(anp.sum(anp.exp(z), axis=1)) - picked)
    return autograd.value_and_grad(loss)


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


def branch_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def loop_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def branch_autograd():
    import autograd
    import autograd.numpy as anp

    def f(x):
        return anp.sum(anp.tanh(x) * x) if anp.sum(x) > 0 else anp.sum(x * x)
    return autograd.value_and_grad(f)


def branch_torch(x):
    import torch
    x = x.detach().requires_grad_(True)
    y = torch.sum(torch.tanh(x) * x) if torch.sum(x) > 0 else torch.sum(x * x)
    y.backward()
    return y.detach(), x.grad


def loop_autograd():
    import autograd
    import autograd.numpy as anp

    def f(x):
        y = x
        while anp.sum(y * y) > 1.0:
            y = 0.5 * y + 0.1 * anp.tanh(y)
        return anp.sum(y * y)
    return autograd.value_and_grad(f)


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


def hvp_fn(tj):  # tj: tapejit, or tensorflow (same API)

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


def hvp_autograd():
    import autograd
    import autograd.numpy as anp

    def hvp(w, x, v):
        grad_x = autograd.grad(lambda y: anp.sum(anp.tanh(anp.dot(w, y))))
        return autograd.grad(lambda y: anp.sum(grad_x(y) * v))(x)
    return hvp


def hvp_torch(w, x, v):
    # Forward-over-reverse with torch.func, the form torch.compile also compiles
    # (torch.autograd.grad with create_graph=True failed under it).
    import torch
    grad_x = torch.func.grad(lambda y: torch.sum(torch.tanh(w @ y)))
    return torch.func.jvp(grad_x, (x,), (v,))[1]


# ---------------------------------------------------------------------------- 7. eager op chain

def chain_setup(quick):
    return {"x": np.random.default_rng(4).normal(0, 1, 64).astype(np.float32)}


def chain_reference(d):
    x = d["x"].astype(np.float64)
    s = np.sin(x)
    e = np.exp(s * x)
    q = 1 + x * x
    value = np.sum(e / q + np.tanh(x))
    grad = e * (np.cos(x) * x + s) / q - e * 2 * x / q ** 2 + 1 - np.tanh(x) ** 2
    return [value, grad]


def chain_fn(tj):  # tj: tapejit, or tensorflow (same API)
    def chain(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(tj.exp(tj.sin(x) * x) / (1.0 + x * x) + tj.tanh(x))
        return y, tape.gradient(y, x)
    return chain


def chain_np(x):
    s = np.sin(x)
    e = np.exp(s * x)
    q = 1 + x * x
    t = np.tanh(x)
    value = np.sum(e / q + t)
    return value, e * (np.cos(x) * x + s) / q - e * 2 * x / (q * q) + 1 - t * t


def chain_jax():
    import jax
    import jax.numpy as jnp
    return jax.jit(jax.value_and_grad(lambda x: jnp.sum(jnp.exp(jnp.sin(x) * x) / (1.0 + x * x) + jnp.tanh(x))))


def chain_autograd():
    import autograd
    import autograd.numpy as anp
    return autograd.value_and_grad(lambda x: anp.sum(anp.exp(anp.sin(x) * x) / (1.0 + x * x) + anp.tanh(x)))


def chain_torch(x):
    import torch
    x = x.detach().requires_grad_(True)
    y = torch.sum(torch.exp(torch.sin(x) * x) / (1.0 + x * x) + torch.tanh(x))
    y.backward()
    return y.detach(), x.grad


# ============================================================================ peers

def jax_builder(make, inputs):
    def builder(data):
        import jax
        import jax.numpy as jnp
        fn = make()
        args = [tuple(jnp.asarray(a) for a in call) for call in inputs(data)]
        return (lambda: jax.block_until_ready([fn(*a) for a in args])), np_outputs, None
    return {"jax": builder}


def torch_builders(fn, inputs):
    def arguments(data):
        import torch
        return [tuple(torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a) for a in call)
                for call in inputs(data)]

    def outputs(result):  # one result per call: a tensor or a tuple of tensors
        return [t.detach().numpy() for r in result for t in (r if isinstance(r, (list, tuple)) else [r])]

    def builder(data):
        args = arguments(data)
        return (lambda: [fn(*a) for a in args]), outputs, None

    def compiled_builder(data):  # torch.compile of the same function (Inductor, C++ kernels)
        import torch
        compiled = torch.compile(fn)
        args = arguments(data)
        return (lambda: [compiled(*a) for a in args]), outputs, None
    return {"torch": builder, "torch-compile": compiled_builder}


def mlp_autograd_builder(data):
    import autograd
    import autograd.numpy as anp

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        z = anp.maximum(anp.dot(x, w1) + b1, 0.0)
        logits = anp.dot(z, w2) + b2
        logits = logits - anp.max(logits, axis=1, keepdims=True)
        picked = logits[anp.arange(logits.shape[0]), y]
        return anp.mean(anp.log(anp.sum(anp.exp(logits), axis=1)) - picked)

    value_and_grad = autograd.value_and_grad(loss)
    params = [data[k].copy() for k in MLP_PARAMS]
    x, y = data["x"], data["y"]

    def run():
        value, grads = value_and_grad(params, x, y)
        for p, g in zip(params, grads):
            p -= np.float32(MLP_LR) * g
        return value
    return run, (lambda loss: [np.asarray(loss)] + [p.copy() for p in params]), None


# ============================================================================ registry
#
# Systems in table order: id -> (name in tables, module it needs).
SYSTEMS = {
    "tj-eager": ("tapejit eager", "tapejit"),
    "tj-numba": ("tapejit compiled", "tapejit"),
    "tj-numba-parallel": ("tapejit compiled, parallel=True", "tapejit"),
    "tj-numpy": ("tapejit compiled, NumPy executor", "tapejit"),
    "numpy": ("NumPy by hand", "numpy"),
    "tf-eager": ("TensorFlow eager", "tensorflow"),
    "tf-function": ("tf.function", "tensorflow"),
    "jax": ("JAX jit", "jax"),
    "torch": ("PyTorch eager", "torch"),
    "torch-compile": ("torch.compile", "torch"),
    "autograd": ("HIPS autograd", "autograd"),
}
FLOAT32 = 4  # bytes


def _stateless(name, title, setup, reference, make_fn, np_fn, inputs, jax_make, torch_fn, autograd_make,
               calls=1, flops=0):
    builders = dict(tape_builders(make_fn, inputs))
    builders.update(numpy_builder(np_fn, inputs))
    builders.update(jax_builder(jax_make, inputs))
    builders.update(torch_builders(torch_fn, inputs))
    builders.update(autograd_builder(autograd_make, inputs))
    return Workload(name, title, setup, reference, builders, calls=calls, flops=flops)


def workloads(quick):
    n_trans = "1M" if quick else "10M"
    rows_xent = 1024 if quick else 4096
    mlp_builders = dict(mlp_tape_builders())
    mlp_builders.update({"numpy": mlp_numpy_builder, "jax": mlp_jax_builder, "torch": mlp_torch_builder,
                         "torch-compile": lambda data: mlp_torch_builder(data, compile_loss=True),
                         "autograd": mlp_autograd_builder})
    # forward x@w1, h@w2; backward dw2, dh, dw1 (x is not differentiated)
    mlp_flops = 2 * 256 * (784 * 512 + 512 * 10) + 2 * 256 * (512 * 10 * 2 + 784 * 512)
    return [
        _stateless("seed", "seed: z = reduce_sum(x)**2 and dz/dx, x (2, 2) float32",
                   seed_setup, seed_reference, seed_fn, seed_np, lambda d: [(d["x"],)], seed_jax, seed_torch,
                   seed_autograd),
        _stateless("eager_chain", "eager_chain: sum(exp(sin(x)*x)/(1+x*x) + tanh(x)) and its gradient, "
                   "x (64,) float32: a chain of small ops",
                   chain_setup, chain_reference, chain_fn, chain_np, lambda d: [(d["x"],)], chain_jax, chain_torch,
                   chain_autograd),
        _stateless("transcendental",
                   f"transcendental: reduce_sum(tanh(x)*sigmoid(x) + 0.5*x*x*exp(-abs(x))) and its gradient, "
                   f"{n_trans} float32",
                   trans_setup, trans_reference, trans_fn, trans_np, lambda d: [(d["x"],)], trans_jax, trans_torch,
                   trans_autograd),
        Workload("mlp", "mlp: one SGD step of a 784-512-10 relu MLP, sparse softmax cross-entropy, batch 256, "
                 "Variables updated in the step", mlp_setup, mlp_reference, mlp_builders, stateful=True,
                 flops=mlp_flops),
        _stateless("softmax_xent", f"softmax_xent: mean sparse softmax cross-entropy of ({rows_xent}, 1000) logits "
                   "and its gradient", xent_setup, xent_reference, xent_fn, xent_np,
                   lambda d: [(d["logits"], d["labels"])], xent_jax, xent_torch, xent_autograd),
        _stateless("control_flow/if", "control_flow/if: `if reduce_sum(x) > 0` picks the loss, branch alternating "
                   "between calls, (4,) float32", branch_setup, branch_reference, branch_fn, branch_np,
                   lambda d: [(d["pos"],), (d["neg"],)], branch_jax, branch_torch, branch_autograd, calls=2),
        _stateless("control_flow/while", "control_flow/while: `while reduce_sum(y*y) > 1`, 2 and 4 trips alternating "
                   "between calls, (4,) float32", loop_setup, loop_reference, loop_fn, loop_np,
                   lambda d: [(d["short"],), (d["long"],)], loop_jax, loop_torch, loop_autograd, calls=2),
        _stateless("hvp", "hvp: Hessian-vector product of sum(tanh(W @ x)), W 512x512, nested tapes",
                   hvp_setup, hvp_reference, hvp_fn, hvp_np, lambda d: [(d["w"], d["x"], d["v"])],
                   hvp_jax, hvp_torch, hvp_autograd, flops=3 * 2 * 512 * 512),
    ]


def workload_named(name, quick):
    return next(w for w in workloads(quick) if w.name == name)


def floor_bytes(data, expected):
    """The least memory traffic of a call: read every input once, write every output once."""
    inputs = sum(a.nbytes for a in data.values())
    outputs = sum(np.asarray(e).size * FLOAT32 for e in expected)
    return inputs + outputs


# ============================================================================ one row

def kernel_stats():
    from tapejit.runtime.kernel_cache import STATS
    return STATS["kernel_compiles"], STATS["disk_cache_loads"]


class SystemRun:
    """One row, in its own process: build, time and check the first call, then time
    batches (benchmarks/worker.py drives it)."""

    def __init__(self, workload, system, data, expected):
        self.workload, self.system = workload, system
        self.data, self.expected = data, expected
        self.run = self.outputs = self.compiled = None
        self.first = None
        self.kernels = self.note = ""

    def fail(self, note):
        self.run = None
        self.note = note

    def prepare(self):
        """Build, time the first call, check it (and the second step of a stateful workload)."""
        expected = self.expected
        try:
            self.run, self.outputs, self.compiled = self.workload.builders[self.system](self.data)
            counts = kernel_stats() if self.system.startswith("tj-numba") else None
            start = time.perf_counter()
            result = self.run()
            self.first = time.perf_counter() - start
            if counts is not None:
                compiles, loads = kernel_stats()
                self.kernels = f"{compiles - counts[0]} compiled, {loads - counts[1]} from disk"
            problem = compare(self.outputs(result), expected[0])
            if problem is None and self.workload.stateful:
                problem = compare(self.outputs(self.run()), expected[1])
                problem = problem and f"second step: {problem}"
            if problem is not None:
                self.fail(f"MISMATCH: {problem}")
        except Exception as e:  # noqa: BLE001 (reported in the row; the other systems go on)
            self.fail(describe_error(e))

    def finish(self):
        """Check once more after timing (stateless workloads) and look at the trace counts."""
        try:
            if not self.workload.stateful:
                problem = compare(self.outputs(self.run()), self.expected[0])
                if problem is not None:
                    self.fail(f"MISMATCH after timing: {problem}")
                    return
            if self.compiled is not None:
                info = self.compiled.cache_info()
                if info.paths != self.workload.calls or info.traces != self.workload.calls:
                    self.note = f"unexpected {info}"
        except Exception as e:  # noqa: BLE001
            self.fail(describe_error(e))


def describe_error(e):
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" ({os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    message = str(e).splitlines()[0] if str(e) else ""
    return f"ERROR {type(e).__name__}: {message}{where}"


def expected_outputs(workload, data):
    """The float64 reference: [outputs] of a stateless workload, [step 1, step 2] of a stateful one."""
    expected = workload.reference(data)
    return expected if workload.stateful else [expected]
