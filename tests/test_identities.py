"""Gradient identities, eager and compiled on both backends (TESTING.md T3, T13).

* The VJP inner-product identity <J t, c> == <t, J^T c> for every differentiable
  OP_DB row, on each of its LARGE samples, in float64 (rtol 1e-6): J t by central
  differences of the eager op along a random tangent t, J^T c by a GradientTape
  seeded with a random cotangent c. The tape runs eagerly, and inside a function
  compiled with backend="numpy" and backend="numba", where it is differentiated
  symbolically at trace time (a training step's pattern; an eager tape around a
  compiled call is tests/test_compile_ops.py's).
* Kink conventions (abs'(0) = 0, relu'(0) = 0, d(x**2)/dx = 0 at 0, sqrt'(0) = +inf,
  the double where keeping gradients finite, ties): the documented values eagerly,
  and the same bits from a tape inside a compiled function and from an eager tape
  around one, on both backends.
"""
import functools
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tapejit as tj

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from opdb import OPS_BY_NAME, op_params  # noqa: E402
from opdb.core import F64, LARGE, outputs  # noqa: E402

BACKENDS = ("numpy", "numba")
MODES = ("eager",) + BACKENDS
# Central differences at this step err by ~eps**2 (truncation) plus ~1e-16 / eps
# (rounding) relative to the output: far below the 1e-6 asked of the identity.
EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def as_tensors(args):
    """The sample's arrays as tensors (a tape watches tensors); Python scalars stay as they are."""
    return [tj.constant(a) if isinstance(a, np.ndarray) else a for a in args]


def floating(result):
    return [o for o in outputs(result) if o.dtype.is_floating]


# ============================================================ VJP identity
@dataclass(frozen=True)
class IdentityCase:
    args: list              # the sample's arguments, arrays as tensors
    kwargs: dict
    argnums: tuple          # the differentiable arguments
    tangents: list          # t, one array per differentiable argument
    cotangents: list        # c, one tensor per floating output
    jvp_dot_c: float        # <J t, c>, J t by central differences


def flat_outputs(op, kwargs, args):
    """The op's floating outputs, concatenated into one float64 vector."""
    return np.concatenate([np.ravel(o.numpy()) for o in floating(op.op(*args, **kwargs))])


def moved(args, argnums, tangents, step):
    """args with each args[argnums[k]] moved by step * tangents[k]."""
    out = list(args)
    for i, t in zip(argnums, tangents, strict=True):
        out[i] = out[i] + step * t
    return out


@functools.cache
def identity_cases(op_name):
    """One case per LARGE sample of the row; computed once per process, shared by the modes."""
    op = OPS_BY_NAME[op_name]
    samples = [s for s in op.sample_inputs(F64, use=LARGE) if op.diff_argnums(s)]
    assert samples, f"{op.name} supports gradients but has no LARGE sample"
    cases = []
    for seed, sample in enumerate(samples):
        rng = np.random.default_rng(seed)
        argnums = op.diff_argnums(sample)
        tangents = [rng.standard_normal(sample.args[i].shape) for i in argnums]
        plus, minus = (flat_outputs(op, sample.kwargs, moved(sample.args, argnums, tangents, step))
                       for step in (EPS, -EPS))
        jvp = (plus - minus) / (2 * EPS)
        cotangents = [rng.standard_normal(o.shape) for o in floating(op.op(*sample.args, **sample.kwargs))]
        c = np.concatenate([np.ravel(ct) for ct in cotangents])
        cases.append(IdentityCase(as_tensors(sample.args), dict(sample.kwargs), argnums, tangents,
                                  [tj.constant(ct) for ct in cotangents], float(np.dot(jvp, c))))
    return cases


def vjp_function(op, case):
    """(cotangents, args) -> J^T c: the tape's gradients of the op's floating outputs
    with respect to args[argnums], seeded with the cotangents."""
    def vjp(cotangents, args):
        xs = [args[i] for i in case.argnums]
        with tj.GradientTape() as tape:
            tape.watch(xs)
            outs = floating(op.op(*args, **case.kwargs))
        return tape.gradient(outs, xs, output_gradients=cotangents)
    return vjp


@pytest.mark.parametrize("op, mode", op_params(MODES, lambda op: op.supports_grad, "vjp_identity"))
def test_vjp_inner_product_identity(op, mode):
    """T3: <J t, c> == <t, J^T c> (float64, rtol 1e-6), the tape eager or compiled."""
    for n, case in enumerate(identity_cases(op.name)):
        vjp = vjp_function(op, case)
        if mode != "eager":
            vjp = tj.compile(vjp, backend=mode)
        grads = vjp(case.cotangents, case.args)
        what = f"{op.name} ({mode}), LARGE sample {n}"
        t_dot_jtc = 0.0
        for g, i, t in zip(grads, case.argnums, case.tangents, strict=True):
            assert g is not None, f"{what}: no gradient for argument {i}"
            assert g.dtype == tj.float64 and g.shape == case.args[i].shape, (
                f"{what}: gradient of argument {i} has dtype {g.dtype.name} and shape {g.shape}")
            t_dot_jtc += float(np.vdot(t, g.numpy()))
        np.testing.assert_allclose(t_dot_jtc, case.jvp_dot_c, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what}: <t, J^T c> from the tape vs <J t, c> from central differences")


# ======================================================= kink conventions
@dataclass(frozen=True)
class Kink:
    loss: Callable        # tensor -> scalar tensor
    x: tuple              # float64 inputs, kinks among them
    gradient: tuple       # the documented d loss / dx


def square_at_zero(power):
    return Kink(lambda x: tj.reduce_sum(power(x)), (0.0, -0.0, 1.5, -2.0), (0.0, 0.0, 3.0, -4.0))


KINKS = {
    "abs": Kink(lambda x: tj.reduce_sum(tj.abs(x)), (0.0, -0.0, 2.0, -3.0), (0.0, 0.0, 1.0, -1.0)),
    "relu": Kink(lambda x: tj.reduce_sum(tj.nn.relu(x)), (0.0, -0.0, 2.0, -3.0), (0.0, 0.0, 1.0, 0.0)),
    "relu6": Kink(lambda x: tj.reduce_sum(tj.nn.relu6(x)), (0.0, 6.0, 3.0, 7.0), (0.0, 0.0, 1.0, 0.0)),
    # The power rule's log(x) must not leak a 0 * -inf = NaN at x = 0 (TESTING.md section 5).
    "square_operator": square_at_zero(lambda x: x ** 2),
    "square_pow": square_at_zero(lambda x: tj.pow(x, 2.0)),
    "square_tensor_exponent": square_at_zero(lambda x: x ** tj.constant(2.0, dtype=x.dtype)),
    "square": square_at_zero(tj.square),
    "square_mul": square_at_zero(lambda x: x * x),
    "sqrt_at_zero": Kink(lambda x: tj.reduce_sum(tj.sqrt(x)), (0.0, 4.0, 1.0, 0.25), (np.inf, 0.25, 0.5, 1.0)),
    # The double where (JAX FAQ): the inner where keeps the unselected branch's
    # input in the domain, so its gradient is finite and the outer where zeroes it.
    "sqrt_double_where": Kink(lambda x: tj.reduce_sum(tj.where(x > 0, tj.sqrt(tj.where(x > 0, x, 1.0)), 0.0)),
                              (0.0, -1.0, 4.0, 1.0), (0.0, 0.0, 0.25, 0.5)),
    "log_double_where": Kink(lambda x: tj.reduce_sum(tj.where(x > 0, tj.log(tj.where(x > 0, x, 1.0)), 0.0)),
                             (0.0, -1.0, 4.0, 0.5), (0.0, 0.0, 0.25, 2.0)),
    # Ties: reduce_max shares the gradient equally, maximum sends it to its first argument.
    "reduce_max_tie": Kink(tj.reduce_max, (1.0, 3.0, 3.0, -2.0), (0.0, 0.5, 0.5, 0.0)),
    "maximum_tie": Kink(lambda x: tj.reduce_sum(tj.maximum(x, 2.0)), (1.0, 2.0, 2.0, 3.0), (0.0, 1.0, 1.0, 1.0)),
}


def kink_inputs():
    return {name: tj.constant(np.array(kink.x)) for name, kink in KINKS.items()}


def losses(xs):
    return {name: KINKS[name].loss(x) for name, x in xs.items()}


def gradients_inside(xs):
    """Every kink's gradient from one tape (the losses depend on disjoint inputs, so
    the gradient of their sum is each one's own)."""
    with tj.GradientTape() as tape:
        tape.watch(xs)
        total = losses(xs)
    return tape.gradient(total, xs)


def gradients_outside(f, xs):
    with tj.GradientTape() as tape:
        tape.watch(xs)
        total = f(xs)
    return tape.gradient(total, xs)


ROUTES = ["eager"] + [f"{where}-{backend}" for where in ("inside", "outside") for backend in BACKENDS]


@functools.cache
def kink_gradients(route):
    """{kink name: gradient as an array} for one route; every kink shares one compiled
    function per route, so each route compiles once."""
    xs = kink_inputs()
    if route == "eager":
        grads = gradients_inside(xs)
    elif route.startswith("inside-"):
        f = tj.compile(gradients_inside, backend=route.removeprefix("inside-"))
        grads = f(xs)
        if route == "inside-numba":  # the kinks run in a fused kernel, not in NumPy
            assert "numba.njit" in f.lower(xs).source
    else:
        grads = gradients_outside(tj.compile(losses, backend=route.removeprefix("outside-")), xs)
    return {name: g.numpy() for name, g in grads.items()}


def kink_params():
    out = []
    for name in sorted(KINKS):
        for route in ROUTES:
            out.append(pytest.param(name, route, id=f"{name}-{route}"))
    return out


@pytest.mark.parametrize("name, route", kink_params())
def test_kink_gradient_conventions(name, route):
    """T13: the documented gradient at kinks, eagerly; every compiled route gives the eager bits."""
    with np.errstate(divide="ignore"):  # sqrt'(0) = 1 / (2 * 0) = inf, documented
        got = kink_gradients(route)[name]
        eager = kink_gradients("eager")[name]
    np.testing.assert_array_equal(eager, np.array(KINKS[name].gradient), err_msg=f"{name}: eager gradient")
    same_bits = got.dtype == eager.dtype and got.tobytes() == eager.tobytes()
    assert same_bits, f"{name}: {route} gives {got!r}, eager {eager!r}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unconnected_compiled_output_has_no_gradient_as_eagerly(backend):
    """TESTING.md section 1: no dependence gives None consistently, eager and compiled."""
    x = tj.constant([1.0, -2.0])
    f = tj.compile(tj.zeros_like, backend=backend)
    assert gradients_outside(tj.zeros_like, x) is None
    assert gradients_outside(f, x) is None
