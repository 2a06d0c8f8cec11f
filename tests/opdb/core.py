"""The op table's row type (OpInfo, after PyTorch's) and the sample helpers the
family modules share.

A row enrols one public op in every generic test of tests/test_ops.py: forward
against a NumPy reference, shape rules against eager results, gradients
against central differences (first and second order), the VJP identity on a
larger input, float32 gradient dtypes, broadcasting gradients (Hypothesis),
error messages, and input immutability.

Samples are plain NumPy arrays and Python scalars; the tests convert nothing
themselves, so the op sees exactly what a user would pass.
"""
import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
I32 = np.dtype(np.int32)
I64 = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)
FLOATS = (F32, F64)
INTS = (I32, I64)
NUMERIC = FLOATS + INTS

# Default forward tolerances (rtol, atol) per dtype. float64 refs are NumPy
# itself or a float64 formula, so 1e-12 leaves room for a few ulp of a
# differently ordered but equally accurate formula.
DEFAULT_TOL = {F32: (1e-5, 1e-6), F64: (1e-12, 1e-13)}

# What a sample is good for. Gradient checks take full Jacobians, so their
# samples stay small (<= 24 elements per argument) and away from kinks.
ALL = "all"          # forward tests and gradient checks
FORWARD = "forward"  # forward tests only: size-0, kinks, ties, ints
LARGE = "large"      # forward tests and the random-direction VJP identity


@dataclass(frozen=True)
class Sample:
    """One call: op(*args, **kwargs). args hold NumPy arrays (any layout) and Python scalars."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    use: str = ALL

    def __repr__(self):
        def show(a):
            if isinstance(a, np.ndarray):
                layout = "" if a.flags.c_contiguous else ",view"
                return f"{a.dtype.name}{list(a.shape)}{layout}"
            return repr(a)
        args = ", ".join(show(a) for a in self.args)
        kwargs = "".join(f", {k}={show(v)}" for k, v in self.kwargs.items())
        return f"Sample({args}{kwargs}; {self.use})"


@dataclass(frozen=True)
class ErrorInput:
    """op(*args, **kwargs) must raise exc_type with a message matching `match` (re.search)."""

    args: tuple
    kwargs: dict
    exc_type: type
    match: str


# The generic tests of tests/test_ops.py an OpInfo.xfail entry can mark (strict xfail).
XFAIL_KEYS = ("forward", "shape_rule", "grad", "gradgrad", "vjp_identity", "grad_dtype", "broadcast", "no_mutation")


@dataclass(frozen=True)
class OpInfo:
    name: str
    op: Callable
    ref: Callable
    samples: Callable                     # (dtype, rng) -> [Sample]
    dtypes: tuple = FLOATS
    # Maps a random array into the op's domain: one callable for every data
    # argument (arrays of the sample's dtype), or a tuple with one entry
    # (callable or None) per positional argument.
    domain: Any = None
    supports_grad: bool = True
    supports_gradgrad: bool = True
    grad_argnums: tuple | None = None     # None: every floating array argument
    primitives: tuple = ()                # REGISTRY names this entry exercises
    error_inputs: Callable | None = None  # () -> [ErrorInput]
    error_name: str | None = None         # the name errors must carry; default "tj.<name>"
    tolerances: dict = field(default_factory=dict)  # dtype -> (rtol, atol), overriding DEFAULT_TOL
    grad_tolerances: dict = field(default_factory=dict)  # check_grads overrides (eps, atol, rtol)
    # Positional arguments that broadcast elementwise against each other, as
    # one dtype per argument (None: the sample dtype). Enrols the op in the
    # Hypothesis broadcasting test.
    broadcast: tuple = ()
    xfail: dict = field(default_factory=dict)  # a key of XFAIL_KEYS -> reason

    def __repr__(self):
        return f"OpInfo({self.name})"

    # ------------------------------------------------------------ samples
    def rng(self, salt=0):
        return np.random.default_rng(zlib.crc32(self.name.encode()) + salt)

    def sample_inputs(self, dtype, use=None, rng=None):
        """Samples for `dtype`, mapped into the domain; `use` filters by Sample.use
        (a string or a tuple of them)."""
        dtype = np.dtype(dtype)
        rng = self.rng() if rng is None else rng
        out = []
        for s in self.samples(dtype, rng):
            if use is not None and s.use not in ((use,) if isinstance(use, str) else use):
                continue
            out.append(dataclasses.replace(s, args=self.apply_domain(s.args, dtype)))
        return out

    def apply_domain(self, args, dtype):
        """Map the data arguments into the domain, in place, so views keep their layout."""
        if self.domain is None:
            return tuple(args)
        fns = self.domain if isinstance(self.domain, tuple) else (self.domain,) * len(args)
        out = []
        for a, fn in zip(args, fns + (None,) * (len(args) - len(fns)), strict=False):
            if fn is not None and isinstance(a, np.ndarray) and a.dtype == dtype:
                mapped = np.asarray(fn(a)).astype(a.dtype)
                if a.flags.writeable:
                    np.copyto(a, mapped)
                else:
                    a = mapped
            out.append(a)
        return tuple(out)

    def tol(self, dtype):
        dtype = np.dtype(dtype)
        return self.tolerances.get(dtype, DEFAULT_TOL.get(dtype, (0, 0)))

    def diff_argnums(self, sample):
        candidates = range(len(sample.args)) if self.grad_argnums is None else self.grad_argnums
        return tuple(i for i in candidates if i < len(sample.args)
                     and isinstance(sample.args[i], np.ndarray) and sample.args[i].dtype.kind == "f")

    @property
    def error_prefix(self):
        return self.error_name or f"tj.{self.name}"


# ------------------------------------------------------------- arrays
@dataclass(frozen=True)
class View:
    """A non-contiguous argument of `shape`: 'T' a transposed array, 'S' every other element."""

    shape: tuple
    kind: str


def transposed(*shape):
    return View(tuple(shape), "T")


def strided(*shape):
    return View(tuple(shape), "S")


def raw(shape, dtype, rng, low=-2.0, high=2.0):
    """A fresh C-contiguous random array: floats in [low, high), small ints, or bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.asarray(rng.uniform(low, high, shape)).astype(dtype)
    if dtype.kind in "iu":
        return np.asarray(rng.integers(-5, 6, shape)).astype(dtype)
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    raise TypeError(dtype)


def make(spec, dtype, rng, **kw):
    """An argument from a shape tuple (contiguous) or a View (non-contiguous)."""
    if isinstance(spec, View):
        shape = spec.shape
        if spec.kind == "T":
            return raw(shape[::-1], dtype, rng, **kw).T
        return raw(shape[:-1] + (2 * shape[-1],), dtype, rng, **kw)[..., ::2]
    return raw(tuple(spec), dtype, rng, **kw)


def scalar_for(dtype):
    """A Python scalar that adopts `dtype` without loss."""
    kind = np.dtype(dtype).kind
    return 1.5 if kind == "f" else True if kind == "b" else 2


# -------------------------------------------------------- shape lists
# Gradient-sized shapes, then forward-only ones (size 0), then one large.
UNARY_SHAPES = [(), (5,), (2, 3), (3, 1), (1, 2, 3), transposed(3, 2), strided(4,)]
UNARY_EMPTY = [(0,), (2, 0, 3)]
UNARY_LARGE = [(7, 9)]

BINARY_SHAPES = [((), ()), ((5,), (5,)), ((2, 3), (2, 3)), ((3, 1), (4,)), ((2, 3, 4), (3, 1)),
                 ((1,), (3,)), ((), (2, 2)), (transposed(3, 2), (3, 2)), ((2, 3), strided(3,))]
BINARY_EMPTY = [((0, 3), (3,)), ((2, 0), (1, 0)), ((0,), ())]
BINARY_LARGE = [((7, 9), (9,))]


def unary_samples(dtype, rng, kwargs=None, low=-2.0, high=2.0):
    kwargs = kwargs or {}
    kw = dict(low=low, high=high)
    out = [Sample((make(s, dtype, rng, **kw),), dict(kwargs)) for s in UNARY_SHAPES]
    out += [Sample((make(s, dtype, rng, **kw),), dict(kwargs), FORWARD) for s in UNARY_EMPTY]
    out += [Sample((make(s, dtype, rng, **kw),), dict(kwargs), LARGE) for s in UNARY_LARGE]
    return out


def binary_samples(dtype, rng, scalars=True, low=-2.0, high=2.0):
    kw = dict(low=low, high=high)
    out = [Sample((make(a, dtype, rng, **kw), make(b, dtype, rng, **kw))) for a, b in BINARY_SHAPES]
    if scalars:
        c = scalar_for(dtype)
        out += [Sample((make((2, 3), dtype, rng, **kw), c)), Sample((c, make((4,), dtype, rng, **kw)))]
    out += [Sample((make(a, dtype, rng, **kw), make(b, dtype, rng, **kw)), {}, FORWARD) for a, b in BINARY_EMPTY]
    out += [Sample((make(a, dtype, rng, **kw), make(b, dtype, rng, **kw)), {}, LARGE) for a, b in BINARY_LARGE]
    return out


# ------------------------------------------------------------ domains
def positive(a):
    """|a| + 0.5: log, sqrt, pow's base."""
    return np.abs(a) + (0.5 if a.dtype.kind == "f" else 1)


def nonzero(a):
    """a pushed at least 0.5 (ints: 1) away from zero, keeping its sign."""
    if a.dtype.kind == "f":
        return np.where(a >= 0, a + 0.5, a - 0.5)
    return np.where(a >= 0, a + 1, a)


def away_from(*points, gap=0.05):
    """Values moved at least `gap` away from each kink in `points` (central
    differences at eps 1e-6 must not straddle a kink)."""
    def fn(a):
        a = a.copy()
        for p in points:
            near = np.abs(a - p) < gap
            a = np.where(near, p + np.where(a >= p, gap, -gap), a)
        return a
    return fn


def scaled(factor, then=None):
    def fn(a):
        a = a * factor
        return then(a) if then else a
    return fn


# ------------------------------------------------------------- refs
def ref64(fn):
    """A reference computed in float64 and rounded to the dtype of the first
    floating array argument (composites whose float32 NumPy formula would
    itself be the less accurate side)."""
    def ref(*args, **kwargs):
        dtype = next((a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"), None)
        wide = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
        out = fn(*wide, **kwargs)
        if dtype is None:
            return out
        if isinstance(out, (list, tuple)):
            return type(out)(np.asarray(o).astype(dtype) for o in out)
        return np.asarray(out).astype(dtype)
    ref.__name__ = getattr(fn, "__name__", "ref")
    return ref


def same_dtype_ref(fn):
    """A NumPy function whose result is cast back to the first array argument's
    dtype (np.sum of int32 would widen to int64; tapejit keeps int32, as TF)."""
    def ref(*args, **kwargs):
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
        return np.asarray(fn(*args, **kwargs)).astype(dtype)
    return ref


# ------------------------------------------------------------ running rows
def outputs(result):
    """An op's result as a list of tensors (split and unstack return lists)."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def call_with(op_info, sample, diff_args, argnums):
    """op(*args) with args[argnums] replaced by diff_args (tensors under a tape or check_grads)."""
    args = list(sample.args)
    for i, x in zip(argnums, diff_args, strict=True):
        args[i] = x
    return op_info.op(*args, **sample.kwargs)


def partial_op(op_info, sample, argnums):
    """The function of the differentiable arguments that check_grads differentiates."""
    def f(*diff_args):
        return call_with(op_info, sample, diff_args, argnums)
    return f


def tape_gradients(op_info, sample, argnums):
    """Gradients of the sum of every floating output w.r.t. args[argnums], on the eager tape."""
    import tapejit as tj
    xs = [tj.constant(sample.args[i]) for i in argnums]
    with tj.GradientTape() as tape:
        tape.watch(xs)
        outs = [o for o in outputs(call_with(op_info, sample, xs, argnums)) if o.dtype.is_floating]
    return xs, tape.gradient(outs, xs)


class PrimitiveLog:
    """A recorder (pushed on tracer.core.STATE.recorders) that sees every
    primitive applied, forward and backward, and checks its shape rule:
    prim.shape_rule(*avals(inputs), **params) must equal aval(out)."""

    def __init__(self, check_rules=True):
        from tapejit.tracer import core
        from tapejit.tracer.tape import Recorder
        self.core = core
        self.seen = set()
        self.check_rules = check_rules
        log = self

        class _Recorder(Recorder):
            def record(self, prim, inputs, params, out):
                log.record(prim, inputs, params, out)

            def record_custom(self, rule, inputs, outs):
                pass

        self.recorder = _Recorder()

    def record(self, prim, inputs, params, out):
        core = self.core
        self.seen.add(prim.name)
        if not self.check_rules:
            return
        expected = prim.shape_rule(*[core.aval(x) for x in inputs], **params)
        actual = core.aval(out)
        assert expected == actual, (
            f"{prim.name}: shape rule says {expected} but the eager result is {actual} "
            f"(inputs {[core.aval(x) for x in inputs]}, params {params})")

    def __enter__(self):
        self.core.STATE.recorders.append(self.recorder)
        return self

    def __exit__(self, *exc):
        recorders = self.core.STATE.recorders
        if self.recorder in recorders:
            recorders.remove(self.recorder)
        return False
