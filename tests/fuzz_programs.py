"""Random tapejit programs for differential testing (TESTING.md T6).

A `Program` is a DAG of OP_DB rows over 1-3 inputs of one dtype (float64; float32
and integers for the exact tests), drawn by the Hypothesis strategy
`programs()`. One description runs two ways: `run()` calls each row's tapejit
op, `run(reference=True)` its NumPy reference, so the tests can hold eager,
compiled and NumPy results against each other. Which rows take part, and how,
comes from the rows themselves (their samples, references, domains, dtypes,
broadcast declarations and gradient support); only the parameters of `where`
(its condition: comparisons, is_finite/is_nan/is_inf, logical ops, any/all),
`clip_by_value`, argmax/argmin (cast to data), the losses (l2, sigmoid and
softmax cross-entropy) and the
shape ops (matmul, einsum, tensordot, reshape, transpose, matrix_transpose,
indexing, slice, expand_dims, squeeze, broadcast_to, tile, pad, concat, stack)
are drawn by hand.

`cases()` adds the calls to make (inputs, Python scalar parameters,
cotangents), `control_flow_cases()` wraps random programs in a data-dependent
`if` and a bounded `while`, with thresholds calibrated on the drawn inputs so
that the inputs take different paths. Both print as Python source, ready to
paste into a regression test.
"""
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.special
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tapejit as tj
from opdb import OP_DB, OPS_BY_NAME, OpInfo  # tests/ is on sys.path: the test modules importing this put it there
from opdb.core import BOOL, F32, F64, I32, I64
from opdb.elementwise import SPECIALS

# Small shapes keep Numba kernels and reference checks fast; size-0 and size-1
# axes and 0-d inputs are in.
INPUT_SHAPES = {"min_dims": 0, "max_dims": 3, "min_side": 0, "max_side": 6}
MAX_RANK = 3
# Python scalars a binary op may take instead of a tensor: 0 and 1 meet the
# simplifier's x*1, x-0, x**1 rules.
CONSTANTS = (0.0, 1.0, -1.0, 0.5, 2.0, 3.0)
INT_CONSTANTS = (0, 1, -1, 2, 3, -3)


# =================================================================== rows
# Which OP_DB rows fit which slot of a random program, decided from each row's
# float64 samples and by calling its reference on probe arrays.
PROBE = np.linspace(-3.0, 3.0, 61)  # typical values, 0.0 included
PROBE_2X3 = np.linspace(-1.0, 1.0, 6).reshape(2, 3)  # asymmetric, so a transpose shows


def _reference(row, *args, **kwargs):
    """row.ref's result as an array, or None when the reference rejects the arguments."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "Mean of empty slice"
        try:
            return np.asarray(row.ref(*args, **kwargs))
        except (ValueError, TypeError, IndexError):
            return None


def _keeps_shape(row, **kwargs):
    out = _reference(row, PROBE_2X3, **kwargs)
    return out is not None and out.shape == PROBE_2X3.shape and out.dtype == F64


def _keeps_dtype(row, dtype, arity, out_dtype=None):
    """Whether row takes `arity` arrays of dtype and gives out_dtype (default: dtype)."""
    probe = np.arange(6).reshape(2, 3).astype(dtype)  # no negative integer powers
    out = _reference(row, *[probe] * arity) if arity == 2 else _reference(row, probe, **_probe_kwargs(row))
    return dtype in row.dtypes and out is not None and out.dtype == (out_dtype or dtype)


def _float64_samples(row):
    return row.sample_inputs(F64) if F64 in row.dtypes else []


def _one_array_each(samples):
    return bool(samples) and all(len(s.args) == 1 and isinstance(s.args[0], np.ndarray) for s in samples)


def _kwarg_names(samples):
    return set().union(*(s.kwargs for s in samples))


def _is_unary(row):
    """Elementwise on one array, with the same keyword arguments in every sample (gelu's approximate=True)."""
    samples = _float64_samples(row)
    return (_one_array_each(samples) and all(s.kwargs == samples[0].kwargs for s in samples)
            and _keeps_shape(row, **samples[0].kwargs))


def _is_binary(row, out_dtype):
    """Broadcasting two float64 arrays into one of out_dtype (float64: arithmetic; bool: comparisons)."""
    if not (F64 in row.dtypes and row.broadcast == (None, None)):
        return False
    out = _reference(row, PROBE_2X3, PROBE_2X3[0])
    return out is not None and out.dtype == out_dtype


def _is_reduction(row):
    samples = _float64_samples(row)
    if not (_one_array_each(samples) and _kwarg_names(samples) == {"axis", "keepdims"}):
        return False
    out = _reference(row, PROBE_2X3, axis=1)
    return out is not None and out.dtype == F64


def _is_axis_op(row):
    """Shape-preserving along one axis (softmax, cumsum): axis plus boolean flags."""
    samples = _float64_samples(row)
    names = _kwarg_names(samples)
    flags = names - {"axis"}
    return (_one_array_each(samples) and "axis" in names
            and all(isinstance(s.kwargs[f], bool) for s in samples for f in flags if f in s.kwargs)
            and _keeps_shape(row, axis=-1))


def _probe_kwargs(row):
    """Keyword arguments that make a one-array row run on a (2, 3) probe."""
    names = _kwarg_names(_float64_samples(row))
    if "axis" in names:
        return {"axis": 1}
    return dict(_float64_samples(row)[0].kwargs)


def _axis_op_flags(row):
    return tuple(sorted(_kwarg_names(_float64_samples(row)) - {"axis"}))


def _has_identity(row):
    """Reduces no elements to a finite value (sum, prod), unlike max or mean."""
    out = _reference(row, np.zeros((2, 0)), axis=1)
    return out is not None and bool(np.all(np.isfinite(out)))


def _takes_empty_axis(row):
    """The reference runs along a size-0 axis (SciPy's softmax does not)."""
    return _reference(row, np.zeros((2, 0)), axis=1) is not None


def _domain_interval(row, argnum, arity, kwargs):
    """None when row's reference is finite wherever argument `argnum` lies in
    PROBE (the other arguments at 0.5); otherwise the interval the generator
    squashes that argument into: the hull of what the row's domain function
    makes of PROBE, or its positive part when the hull holds a pole (nonzero
    divisors: 1/0)."""
    args = [np.full_like(PROBE, 0.5) for _ in range(arity)]
    args[argnum] = PROBE
    if np.all(np.isfinite(_reference(row, *args, **kwargs))):
        return None
    domain = row.domain[argnum] if isinstance(row.domain, tuple) else row.domain
    if domain is None:
        raise ValueError(f"OP_DB row {row.name}: argument {argnum} needs a domain but the row declares none")
    image = np.asarray(domain(PROBE.copy()))
    for lo, hi in [(image.min(), image.max()), (image[image > 0].min(), image.max())]:
        args[argnum] = np.linspace(lo, hi, 61)
        if np.all(np.isfinite(_reference(row, *args, **kwargs))):
            return float(lo), float(hi)
    raise ValueError(f"OP_DB row {row.name}: no interval keeps argument {argnum} in its domain")


def _valid_on_integers(row, argnum, arity, values):
    """Whether row's reference takes integer argument `argnum` at `values` (the
    others at 2) without an error or a floating-point warning (x // 0)."""
    args = [np.full(len(values), 2, np.int64) for _ in range(arity)]
    args[argnum] = np.asarray(values, np.int64)
    try:
        with np.errstate(all="raise"):
            row.ref(*args)
    except (ArithmeticError, ValueError):  # FloatingPointError; "Integers to negative integer powers"
        return False
    return True


def _int_domain(row, argnum, arity):
    """None when row's reference takes every integer constant as argument
    `argnum`; otherwise the constants its domain function maps INT_CONSTANTS
    to (nonzero divisors, pow's exponents 0-2)."""
    if _valid_on_integers(row, argnum, arity, INT_CONSTANTS):
        return None
    domain = row.domain[argnum] if isinstance(row.domain, tuple) else row.domain
    allowed = tuple(sorted({int(v) for v in domain(np.array(INT_CONSTANTS))}))
    if not _valid_on_integers(row, argnum, arity, allowed):
        raise ValueError(f"OP_DB row {row.name}: no integer constants keep argument {argnum} in its domain")
    return allowed


@dataclass(frozen=True, eq=False)
class Rows:
    """The OP_DB rows a program draws from, by slot."""

    unary: tuple
    binary: tuple
    comparisons: tuple
    reductions: tuple
    axis_ops: tuple

    def shuffled(self, draw):
        """The same rows, each group in a drawn order. Hypothesis favours the first
        of sampled_from's choices; a per-program order spreads that favour over all
        rows, and still shrinks toward OP_DB's order."""
        return replace(self, **{group: tuple(draw(st.permutations(getattr(self, group))))
                                for group in ("unary", "binary", "comparisons", "reductions", "axis_ops")})

    def exactly_rounded(self):
        """The elementwise rows whose primitives all round as NumPy's (EXACT_PRIMITIVES), but
        not the unary ones needing a domain (programs keeping exact values squash nothing)."""
        def exact(rows):
            return tuple(r for r in rows if set(r.primitives) <= EXACT_PRIMITIVES)
        return replace(self, unary=tuple(r for r in exact(self.unary) if DOMAINS[r.name] == (None,)),
                       binary=exact(self.binary), comparisons=exact(self.comparisons), reductions=(), axis_ops=())

    def for_dtype(self, dtype):
        """The rows taking dtype to dtype (comparisons: to bool)."""
        return replace(self, unary=tuple(r for r in self.unary if _keeps_dtype(r, dtype, 1)),
                       binary=tuple(r for r in self.binary if _keeps_dtype(r, dtype, 2)),
                       comparisons=tuple(r for r in self.comparisons if _keeps_dtype(r, dtype, 2, BOOL)),
                       reductions=tuple(r for r in self.reductions if _keeps_dtype(r, dtype, 1)),
                       axis_ops=tuple(r for r in self.axis_ops if _keeps_dtype(r, dtype, 1)))

    def differentiable_twice(self):
        """The rows whose entries declare supports_gradgrad (for second-order programs)."""
        def keep(rows):
            return tuple(r for r in rows if r.supports_gradgrad)
        return replace(self, unary=keep(self.unary), binary=keep(self.binary), reductions=keep(self.reductions),
                       axis_ops=keep(self.axis_ops))


# Primitives whose results round exactly as NumPy's in every backend (README:
# "Arithmetic rounds exactly as NumPy's"; transcendentals and sums may differ in the last bits).
EXACT_PRIMITIVES = {"add", "sub", "mul", "div", "neg", "abs", "sign", "floor", "ceil", "round", "sqrt", "maximum",
                    "minimum", "floordiv", "floormod", "identity", "stop_gradient", "select", "equal", "not_equal",
                    "less", "less_equal", "greater", "greater_equal"}
ROWS = Rows(unary=tuple(r for r in OP_DB if _is_unary(r)),
            binary=tuple(r for r in OP_DB if _is_binary(r, F64)),
            comparisons=tuple(r for r in OP_DB if _is_binary(r, BOOL)),
            reductions=tuple(r for r in OP_DB if _is_reduction(r)),
            axis_ops=tuple(r for r in OP_DB if _is_axis_op(r)))
UNARY_KWARGS = {r.name: dict(_float64_samples(r)[0].kwargs) for r in ROWS.unary}
DOMAINS = {r.name: tuple(_domain_interval(r, i, arity, UNARY_KWARGS.get(r.name, {})) for i in range(arity))
           for arity, rows in [(1, ROWS.unary), (2, ROWS.binary)] for r in rows}
ROWS_BY_DTYPE = {dtype: ROWS.for_dtype(dtype) for dtype in (F64, F32, I32, I64)}
INT_DOMAINS = {r.name: tuple(_int_domain(r, i, arity) for i in range(arity))
               for arity, rows in [(1, ROWS_BY_DTYPE[I64].unary), (2, ROWS_BY_DTYPE[I64].binary)] for r in rows}
WITH_IDENTITY = {r.name for r in ROWS.reductions if _has_identity(r)}
AXIS_OP_FLAGS = {r.name: _axis_op_flags(r) for r in ROWS.axis_ops}
ALONG_EMPTY_AXES = {r.name for r in ROWS.axis_ops if _takes_empty_axis(r)}


# ================================================================ programs
@dataclass(frozen=True)
class Squash:
    """Value `value` mapped into (lo, hi) by a sigmoid: an argument kept in its op's domain."""

    value: int
    lo: float
    hi: float


@dataclass(frozen=True)
class Const:
    """A Python scalar argument, written into the program."""

    value: float | int


@dataclass(frozen=True)
class Param:
    """The program's Python scalar parameter `index` (tj.compile must not bake its value in)."""

    index: int


@dataclass(frozen=True, eq=False)
class Node:
    row: OpInfo
    args: tuple   # per argument: a value index (int), a Const, a Param or a Squash
    kwargs: dict


def _sigmoid(x, reference):
    return scipy.special.expit(x) if reference else tj.sigmoid(x)


def _argument(arg, values, params, reference):
    if isinstance(arg, Squash):
        return arg.lo + (arg.hi - arg.lo) * _sigmoid(values[arg.value], reference)
    if isinstance(arg, Param):
        return params[arg.index]
    if isinstance(arg, Const):
        return arg.value
    return values[arg]


def _value_read(arg):
    """The value index an argument reads, or None (constants and parameters)."""
    if isinstance(arg, Squash):
        return arg.value
    return arg if isinstance(arg, int) else None


@dataclass(frozen=True, eq=False)
class Program:
    """Values 0..n_inputs-1 are the inputs; node k computes value n_inputs + k."""

    input_shapes: tuple
    nodes: tuple
    outputs: tuple        # value indices
    param_choices: tuple  # per Param, the values it may take

    def values(self, xs, params=(), reference=False):
        """Every value: with tapejit ops on tensors, or with NumPy references on arrays."""
        values = list(xs)
        for node in self.nodes:
            fn = node.row.ref if reference else node.row.op
            values.append(fn(*[_argument(a, values, params, reference) for a in node.args], **node.kwargs))
        return values

    def run(self, xs, params=(), reference=False):
        values = self.values(xs, params, reference)
        return [values[i] for i in self.outputs]

    @property
    def has_true_derivative(self):
        """Whether the tape's gradient is the derivative of the NumPy reference: not
        with rows that support no gradient (stop_gradient's reference is the identity).
        Comparisons and logical ops feed `where` conditions, which carry no gradient
        anyway; an argmax's index, cast to data, is piecewise constant."""
        return all(n.row.supports_grad or n.row in ROWS.comparisons or n.row in NO_GRADIENT for n in self.nodes)

    def __repr__(self):
        return self.source()

    def source(self, name="program"):
        """The program as a Python function of tensors x0, x1, ... and floats p0, p1, ..."""
        n = len(self.input_shapes)
        names = [f"x{i}" for i in range(n)] + [f"v{k}" for k in range(len(self.nodes))]
        params = [f"p{k}" for k in range(len(self.param_choices))]
        lines = [f"def {name}({', '.join(names[:n] + params)}):"]
        lines += [f"    {names[n + k]} = {_call_source(node, names)}" for k, node in enumerate(self.nodes)]
        lines.append(f"    return [{', '.join(names[i] for i in self.outputs)}]")
        return "\n".join(lines)


def _argument_source(arg, names):
    if isinstance(arg, Squash):
        return f"{arg.lo!r} + {arg.hi - arg.lo!r} * tj.sigmoid({names[arg.value]})"
    if isinstance(arg, Param):
        return f"p{arg.index}"
    return repr(arg.value) if isinstance(arg, Const) else names[arg]


def _literal(value):
    if isinstance(value, list):
        return f"[{', '.join(map(_literal, value))}]"
    if isinstance(value, np.ndarray):
        if not value.size:
            return f"np.zeros({value.shape}, np.{value.dtype})"
        text = f"np.array({value.tolist()}{'' if value.dtype == F64 else f', np.{value.dtype}'})"
        return text if value.flags.c_contiguous else f"np.asfortranarray({text})"
    if isinstance(value, tuple):
        return f"({', '.join(map(_literal, value))}{',' if len(value) == 1 else ''})"
    if isinstance(value, np.dtype):
        return f"tj.{value.name}"
    return repr(value)


PUBLIC_NAMES = {id(fn): f"{prefix}.{attr}" for prefix, module in [("tj.linalg", tj.linalg), ("tj.nn", tj.nn),
                                                                   ("tj.math", tj.math), ("tj", tj)]
                for attr, fn in vars(module).items() if callable(fn) and not attr.startswith("_")}


def _call_source(node, names):
    args = [_argument_source(a, names) for a in node.args]
    if node.row is HAND_DRAWN["getitem"]:
        return f"{args[0]}[{_literal(node.kwargs['key'])}]"
    if node.row in (HAND_DRAWN["concat"], HAND_DRAWN["stack"]):
        return f"tj.{node.row.name}([{', '.join(args)}], axis={node.kwargs['axis']})"
    if node.row is HAND_DRAWN["einsum"]:
        return f"tj.einsum({node.kwargs['equation']!r}, {', '.join(args)})"
    kwargs = [f"{k}={_literal(v)}" for k, v in node.kwargs.items()]
    return f"{PUBLIC_NAMES[id(node.row.op)]}({', '.join(args + kwargs)})"


# ================================================================= builder
class _Builder:
    """A program under construction: the shape of every value so far, and whether
    it is a condition (bool, from a comparison) or data (the program's dtype).
    Float programs squash arguments into their op's domain (unless `squash` is
    off); integer ones, and those not squashing, put a constant there instead."""

    def __init__(self, draw, input_shapes, rows, dtype, parameters, squash):
        self.draw = draw
        self.rows = rows
        self.dtype = np.dtype(dtype)
        self.integers = self.dtype.kind == "i"
        self.constants = INT_CONSTANTS if self.integers else CONSTANTS
        self.parameters = parameters
        self.squash = squash and not self.integers
        self.input_shapes = tuple(tuple(s) for s in input_shapes)
        self.avals = [(s, False) for s in self.input_shapes]  # (shape, not data: a condition or an index)
        self.nodes = []
        self.consumed = set()
        self.param_choices = []

    def shape(self, value):
        return self.avals[value][0]

    def values(self, fits=lambda shape: True):
        """The data values whose shape fits."""
        return [i for i, (shape, not_data) in enumerate(self.avals) if not not_data and fits(shape)]

    def pick(self, fits=lambda shape: True):
        """A data value whose shape fits, or None; shrinks toward the latest (long chains)."""
        candidates = self.values(fits)
        if not candidates:
            return None
        return candidates[-1 - self.draw(st.integers(0, len(candidates) - 1))]

    def pick_partner(self, *shapes):
        """A data value broadcasting with `shapes`, or None for a Python constant."""
        if self.draw(st.booleans()):
            return None
        return self.pick(lambda shape: _broadcasts(shape, *shapes))

    def constant(self, allowed=None):
        """A Python scalar (one of `allowed`, default all constants of the dtype): a
        literal or, in programs with parameters, a new parameter."""
        allowed = tuple(self.constants if allowed is None else allowed)
        if self.parameters and self.draw(st.booleans()):
            self.param_choices.append(allowed)
            return Param(len(self.param_choices) - 1)
        return Const(self.draw(st.sampled_from(allowed)))

    def constrained(self, row):
        """Per argument of an elementwise row: None, or the constants its domain allows."""
        if self.integers:
            return INT_DOMAINS[row.name]
        return tuple(None if interval is None else [c for c in CONSTANTS if interval[0] <= c <= interval[1]]
                     for interval in DOMAINS[row.name])

    def in_domain(self, row, argnum, arg):
        """`arg` (a value index, or None for a constant) as row's argument `argnum`, kept in its domain."""
        allowed = self.constrained(row)[argnum]
        if arg is None or (allowed is not None and not self.squash):
            return self.constant(allowed)
        return arg if allowed is None else Squash(arg, *DOMAINS[row.name][argnum])

    def add(self, row, args, kwargs=None):
        """Append row(*args, **kwargs); its shape comes from the NumPy reference on dummy values."""
        kwargs = kwargs or {}
        dummies = [np.ones(shape, bool if not_data else F64) for shape, not_data in self.avals]
        params = [choices[0] for choices in self.param_choices]
        out = np.asarray(row.ref(*[_argument(a, dummies, params, True) for a in args], **kwargs))
        self.nodes.append(Node(row, tuple(args), kwargs))
        self.consumed.update(_value_read(a) for a in args)
        self.avals.append((out.shape, out.dtype != F64))  # data is float64 on the dummies
        return len(self.avals) - 1

    def program(self, outputs=None):
        """By default every data value nothing consumes (unused inputs too) is an output."""
        if outputs is None:
            outputs = [i for i in self.values() if i not in self.consumed]
        return Program(self.input_shapes, tuple(self.nodes), tuple(outputs), tuple(self.param_choices))


def _broadcasts(*shapes):
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


def _size(shape):
    return math.prod(shape)


def _matrix(shape):
    return len(shape) >= 2


def _not_scalar(shape):
    return len(shape) >= 1


def _below_max_rank(shape):
    return len(shape) < MAX_RANK


# One function per kind of node; each appends one node (where: two).
def add_unary(b):
    row = b.draw(st.sampled_from(b.rows.unary))
    b.add(row, (b.in_domain(row, 0, b.pick()),), UNARY_KWARGS[row.name])


def add_binary(b):
    row = b.draw(st.sampled_from(b.rows.binary))
    x = b.pick()
    args = [x, b.pick_partner(b.shape(x))]
    if b.draw(st.booleans()):
        args.reverse()
    constrained = b.constrained(row)
    if not b.squash and constrained != (None, None):
        # A constant takes the argument with a domain (a divisor), x the other.
        args = [x if allowed is None else None for allowed in constrained]
    b.add(row, tuple(b.in_domain(row, i, a) for i, a in enumerate(args)))


def add_condition(b, depth=1):
    """A new bool value: a comparison of data; a float value's is_finite, is_nan or
    is_inf; and, up to `depth` levels, logical_not, logical_and/or/xor of two
    conditions, or reduce_any/reduce_all of one over drawn axes."""
    kinds = ["compare"] + ([] if b.integers else ["classify"]) + (["not", "combine", "reduce"] if depth else [])
    kind = b.draw(st.sampled_from(kinds))
    if kind == "compare":
        p = b.pick()
        q = b.pick_partner(b.shape(p))
        return b.add(b.draw(st.sampled_from(b.rows.comparisons)), (p, b.constant() if q is None else q))
    if kind == "classify":
        return b.add(CONDITION_ROWS[b.draw(st.sampled_from(("is_finite", "is_nan", "is_inf")))], (b.pick(),))
    first = add_condition(b, depth - 1)
    if kind == "not":
        return b.add(CONDITION_ROWS["logical_not"], (first,))
    if kind == "combine":
        second = add_condition(b, depth - 1)
        if not _broadcasts(b.shape(first), b.shape(second)):
            return first
        row = CONDITION_ROWS[b.draw(st.sampled_from(("logical_and", "logical_or", "logical_xor")))]
        return b.add(row, (first, second))
    row = CONDITION_ROWS[b.draw(st.sampled_from(("reduce_any", "reduce_all")))]
    return b.add(row, (first,), {"axis": _draw_axes(b.draw, len(b.shape(first))), "keepdims": b.draw(st.booleans())})


def add_where(b):
    """where(condition, x, y), the condition drawn by add_condition."""
    cond = add_condition(b)
    x = b.pick(lambda shape: _broadcasts(shape, b.shape(cond)))
    if x is None:  # a reduced condition no data value broadcasts with: the condition stays unused
        return
    y = b.pick_partner(b.shape(cond), b.shape(x))
    branches = [x, b.constant() if y is None else y]
    if b.draw(st.booleans()):
        branches.reverse()
    b.add(HAND_DRAWN["where"], (cond, *branches))


def _draw_axes(draw, rank):
    """None (all axes), one axis, or a tuple or list of distinct axes (maybe empty); any sign."""
    how = draw(st.sampled_from(["all", "several"] + (["one"] if rank else [])))
    if how == "all":
        return None
    if how == "one":
        axis = draw(st.integers(0, rank - 1))
        return axis - rank if draw(st.booleans()) else axis
    axes = draw(st.lists(st.integers(0, rank - 1), unique=True, max_size=rank)) if rank else []
    axes = [a - rank if draw(st.booleans()) else a for a in axes]
    return tuple(axes) if draw(st.booleans()) else axes


def add_reduction(b):
    x = b.pick()
    shape = b.shape(x)
    axis = _draw_axes(b.draw, len(shape))
    reduced = shape if axis is None else [shape[a] for a in ([axis] if isinstance(axis, int) else axis)]
    # max, mean, std... of no elements have no value: only sum and prod reduce empty axes.
    rows = [r for r in b.rows.reductions if _size(reduced) > 0 or r.name in WITH_IDENTITY]
    row = b.draw(st.sampled_from(rows))
    b.add(row, (x,), {"axis": axis, "keepdims": b.draw(st.booleans())})


def add_axis_op(b):
    x = b.pick(_not_scalar)
    shape = b.shape(x)
    axis = b.draw(st.integers(-len(shape), len(shape) - 1))
    row = b.draw(st.sampled_from([r for r in b.rows.axis_ops if shape[axis] or r.name in ALONG_EMPTY_AXES]))
    kwargs = {"axis": axis}
    kwargs.update({flag: b.draw(st.booleans()) for flag in AXIS_OP_FLAGS[row.name]})
    b.add(row, (x,), kwargs)


def add_matmul(b):
    """a @ b with batch dimensions broadcasting; a @ a^T (or a^T @ a) always fits."""
    x = b.pick(_matrix)
    transpose_a = b.draw(st.booleans())
    inner = b.shape(x)[-2 if transpose_a else -1]

    def fits(shape, transpose_b):
        return len(shape) >= 2 and shape[-1 if transpose_b else -2] == inner and _broadcasts(
            b.shape(x)[:-2], shape[:-2])
    partners = [(v, t) for v in b.values() for t in (False, True) if fits(b.shape(v), t)]
    y, transpose_b = partners[b.draw(st.integers(0, len(partners) - 1))]
    b.add(HAND_DRAWN["matmul"], (x, y), {"transpose_a": transpose_a, "transpose_b": transpose_b})


def _draw_shape_of_size(draw, size):
    """A shape of rank <= 3 holding `size` elements, maybe with one -1."""
    rank = draw(st.integers(0 if size == 1 else 1, MAX_RANK))
    if size == 0:
        shape = [draw(st.integers(0, 6)) for _ in range(rank)]
        shape[draw(st.integers(0, rank - 1))] = 0
        return tuple(shape)
    shape, left = [], size
    for _ in range(rank - 1):
        dim = draw(st.sampled_from([d for d in range(1, left + 1) if left % d == 0]))
        shape.append(dim)
        left //= dim
    if rank:
        shape.append(left)
    if rank and draw(st.booleans()):
        shape[draw(st.integers(0, rank - 1))] = -1
    return tuple(shape)


def add_reshape(b):
    x = b.pick()
    b.add(HAND_DRAWN["reshape"], (x,), {"shape": _draw_shape_of_size(b.draw, _size(b.shape(x)))})


def add_transpose(b):
    x = b.pick()
    rank = len(b.shape(x))
    kwargs = {} if b.draw(st.booleans()) else {"perm": tuple(b.draw(st.permutations(range(rank))))}
    b.add(HAND_DRAWN["transpose"], (x,), kwargs)


def _draw_index(draw, shape):
    """A basic-or-gather index for x[...]: ints, slices (any step sign), at most one
    integer array (a gather), a None; applied to leading axes or, after an
    Ellipsis, to trailing ones. The result keeps rank <= 3."""
    count = draw(st.integers(0, len(shape)))
    trailing = count < len(shape) and draw(st.booleans())
    axes = shape[len(shape) - count:] if trailing else shape[:count]
    rank, parts, gathered = len(shape), [], False
    for n in axes:
        kinds = ["slice"] + (["int"] if n else []) + (["array"] if n and not gathered else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "slice":
            bound = st.none() | st.integers(-n - 1, n + 1)
            parts.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1, -2]))))
        elif kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
            rank -= 1
        else:
            index_shape = draw(st.sampled_from([(), (3,), (2, 2)] if rank < MAX_RANK else [(), (3,)]))
            parts.append(np.asarray(draw(st.lists(st.integers(-n, n - 1), min_size=_size(index_shape),
                                                  max_size=_size(index_shape)))).reshape(index_shape))
            rank += len(index_shape) - 1
            gathered = True
    if rank < MAX_RANK and draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if trailing:
        parts.insert(0, Ellipsis)
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]
    return tuple(parts)


def add_getitem(b):
    x = b.pick()
    b.add(HAND_DRAWN["getitem"], (x,), {"key": _draw_index(b.draw, b.shape(x))})


def add_slice(b):
    x = b.pick()
    begin = [b.draw(st.integers(0, n)) for n in b.shape(x)]
    size = [b.draw(st.integers(-1, n - start)) for n, start in zip(b.shape(x), begin)]
    b.add(HAND_DRAWN["slice"], (x,), {"begin": begin, "size": size})


def add_expand_dims(b):
    x = b.pick(_below_max_rank)
    rank = len(b.shape(x))
    b.add(HAND_DRAWN["expand_dims"], (x,), {"axis": b.draw(st.integers(-rank - 1, rank))})


def add_squeeze(b):
    x = b.pick()
    ones = [a for a, n in enumerate(b.shape(x)) if n == 1]
    # An empty axis list means "every size-1 axis" to TensorFlow but "none" to NumPy: None instead.
    axes = b.draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    b.add(HAND_DRAWN["squeeze"], (x,), {"axis": axes or None})


def add_broadcast_to(b):
    """New leading axes and size-1 axes stretched (to 0 too)."""
    x = b.pick()
    shape = b.shape(x)
    leading = b.draw(st.lists(st.integers(0, 4), max_size=MAX_RANK - len(shape)))
    target = [*leading, *[b.draw(st.integers(0, 4)) if n == 1 else n for n in shape]]
    b.add(HAND_DRAWN["broadcast_to"], (x,), {"shape": tuple(target)})


def add_tile(b):
    x = b.pick()
    b.add(HAND_DRAWN["tile"], (x,), {"multiples": [b.draw(st.integers(0, 2)) for _ in b.shape(x)]})


def add_pad(b):
    x = b.pick(_not_scalar)
    kwargs = {"paddings": [[b.draw(st.integers(0, 2)), b.draw(st.integers(0, 2))] for _ in b.shape(x)]}
    if b.draw(st.booleans()):
        kwargs["constant_values"] = b.draw(st.sampled_from(b.constants))
    b.add(HAND_DRAWN["pad"], (x,), kwargs)


def add_concat(b):
    """x with 1-2 values (x itself fits) equal to it in every axis but the joined one."""
    x = b.pick(_not_scalar)
    shape = b.shape(x)
    axis = b.draw(st.integers(-len(shape), len(shape) - 1))

    def fits(other):
        return len(other) == len(shape) and all(m == n for a, (m, n) in enumerate(zip(other, shape))
                                                if a != axis % len(shape))
    others = [b.pick(fits) for _ in range(b.draw(st.integers(1, 2)))]
    b.add(HAND_DRAWN["concat"], (x, *others), {"axis": axis})


def add_einsum(b):
    """einsum of x and maybe another value: axes of equal size may share a letter
    (contracted unless the output keeps it); the output keeps a drawn subset of
    the letters in a drawn order, at most MAX_RANK."""
    x = b.pick()
    letters = "abcdefgh"
    sizes = list(b.shape(x))  # per letter
    operands, subscripts = [x], ["".join(letters[:len(sizes)])]
    if b.draw(st.booleans()):
        y = b.pick()
        mine = []
        for n in b.shape(y):
            shared = [letters[k] for k, m in enumerate(sizes) if m == n and letters[k] not in mine]
            if shared and b.draw(st.booleans()):
                mine.append(b.draw(st.sampled_from(shared)))
            else:
                mine.append(letters[len(sizes)])
                sizes.append(n)
        operands.append(y)
        subscripts.append("".join(mine))
    used = letters[:len(sizes)]
    kept = b.draw(st.lists(st.sampled_from(used), unique=True, max_size=MAX_RANK)) if used else []
    b.add(HAND_DRAWN["einsum"], tuple(operands), {"equation": f"{','.join(subscripts)}->{''.join(kept)}"})


def add_loss(b):
    """A loss of tj.nn: l2_loss(x); sigmoid or softmax cross-entropy of labels (x
    squashed into [0, 1]) and logits of x's shape (softmax: along the last axis)."""
    def has_classes(shape):  # a softmax needs a last axis, with something in it
        return len(shape) >= 1 and shape[-1] > 0
    names = ["l2_loss", "sigmoid_cross_entropy_with_logits"] + ["softmax_cross_entropy_with_logits"] * bool(
        b.values(has_classes))
    name = b.draw(st.sampled_from(names))
    x = b.pick(has_classes if name.startswith("softmax") else lambda shape: True)
    if name == "l2_loss":
        b.add(HAND_DRAWN[name], (x,))
        return
    logits = b.pick(lambda shape: shape == b.shape(x))
    b.add(HAND_DRAWN[name], (Squash(x, 0.0, 1.0), logits))


def add_stack(b):
    x = b.pick(_below_max_rank)
    others = [b.pick(lambda shape: shape == b.shape(x)) for _ in range(b.draw(st.integers(0, 2)))]
    rank = len(b.shape(x))
    b.add(HAND_DRAWN["stack"], (x, *others), {"axis": b.draw(st.integers(-rank - 1, rank))})


def add_matrix_transpose(b):
    b.add(HAND_DRAWN["matrix_transpose"], (b.pick(_matrix),))


def add_tensordot(b):
    """tensordot(x, y, axes=k): x's last k axes against y's first k, the result of rank <= MAX_RANK."""
    x = b.pick()
    shape = b.shape(x)

    def fits(other, k):
        return (k <= len(other) and tuple(shape[len(shape) - k:]) == tuple(other[:k])
                and len(shape) + len(other) - 2 * k <= MAX_RANK)
    partners = [(v, k) for v in b.values() for k in range(len(shape) + 1) if fits(b.shape(v), k)]
    if not partners:
        return
    y, k = partners[b.draw(st.integers(0, len(partners) - 1))]
    b.add(HAND_DRAWN["tensordot"], (x, y), {"axes": k})


def add_arg_reduction(b):
    """argmax or argmin of x along an axis, cast to the program's dtype: an index as data."""
    x = b.pick(lambda shape: len(shape) >= 1 and all(shape))  # no arg of an empty axis
    rank = len(b.shape(x))
    index = b.add(INDEX_ROWS[b.draw(st.sampled_from(("argmax", "argmin")))], (x,),
                  {"axis": b.draw(st.integers(-rank, rank - 1))})
    b.add(INDEX_ROWS["cast"], (index,), {"dtype": b.dtype})


def add_clip_by_value(b):
    x = b.pick()
    low = b.constant([c for c in b.constants if c <= 0])
    b.add(HAND_DRAWN["clip_by_value"], (x, low, b.constant([c for c in b.constants if c > 0])))


# Kinds of node by family; a program draws a family, then a kind in it.
# Elementwise kinds come twice as often: long elementwise chains are what the Numba backend fuses.
ELEMENTWISE_KINDS = (add_unary, add_binary, add_where, add_clip_by_value)
REDUCING_KINDS = (add_reduction, add_axis_op, add_loss, add_arg_reduction)
DATA_MOVEMENT_KINDS = (add_reshape, add_transpose, add_matrix_transpose, add_getitem, add_slice, add_expand_dims,
                       add_squeeze, add_broadcast_to, add_tile, add_pad, add_concat, add_stack)
SHAPE_KINDS = (add_matmul, add_einsum, add_tensordot, *DATA_MOVEMENT_KINDS)
FAMILIES = (ELEMENTWISE_KINDS, ELEMENTWISE_KINDS, REDUCING_KINDS, SHAPE_KINDS)
EXACT_FAMILIES = (ELEMENTWISE_KINDS, ELEMENTWISE_KINDS, DATA_MOVEMENT_KINDS)
# The rows of the kinds that draw their parameters by hand; second-order programs use them too.
HAND_DRAWN = {name: OPS_BY_NAME[name] for name in (
    "where", "clip_by_value", "matmul", "einsum", "tensordot", "reshape", "transpose", "matrix_transpose",
    "getitem", "slice", "expand_dims", "squeeze", "broadcast_to", "tile", "pad", "concat", "stack", "l2_loss",
    "sigmoid_cross_entropy_with_logits", "softmax_cross_entropy_with_logits")}
assert all(row.supports_gradgrad for row in HAND_DRAWN.values())
# The rows making where's conditions (bool in or out: no gradients).
CONDITION_ROWS = {name: OPS_BY_NAME[name] for name in (
    "is_finite", "is_nan", "is_inf", "logical_not", "logical_and", "logical_or", "logical_xor", "reduce_any",
    "reduce_all")}
# argmax/argmin, and the cast that turns their index into data: piecewise constant.
INDEX_ROWS = {name: OPS_BY_NAME[name] for name in ("argmax", "argmin", "cast")}
# Rows whose tape gradient is None by design, where the reference's derivative is 0 (or unused).
NO_GRADIENT = (*CONDITION_ROWS.values(), *INDEX_ROWS.values())
# Every OP_DB row a program may draw.
DRAWN_ROWS = (*ROWS.unary, *ROWS.binary, *ROWS.comparisons, *ROWS.reductions, *ROWS.axis_ops, *HAND_DRAWN.values(),
              *CONDITION_ROWS.values(), *INDEX_ROWS.values())

# The shapes a kind can start from, where not every shape will do.
NEEDS = {add_matmul: _matrix, add_matrix_transpose: _matrix, add_axis_op: _not_scalar, add_pad: _not_scalar,
         add_arg_reduction: lambda shape: len(shape) >= 1 and all(shape),
         add_concat: _not_scalar, add_expand_dims: _below_max_rank, add_stack: _below_max_rank}
FLOAT_ONLY = (add_loss,)


def _applicable(kind, b):
    return not (b.integers and kind in FLOAT_ONLY) and bool(b.values(NEEDS.get(kind, lambda shape: True)))


@st.composite
def programs(draw, input_shapes=None, min_ops=2, max_ops=30, dtype=F64, second_order=False, exact=False,
             families=FAMILIES, last_only=False, parameters=True):
    """A random Program of min_ops..max_ops nodes over 1-3 inputs of mutually
    broadcastable shapes (or `input_shapes`), drawing kinds of node from
    `families`, and rows taking `dtype`. second_order: only rows declaring
    supports_gradgrad. exact: only exactly rounded rows and data movement (values
    must match NumPy's bit for bit). last_only: the last node is the only output.
    parameters: some constants become Python scalar parameters."""
    if input_shapes is None:
        count = draw(st.integers(1, 3))
        input_shapes = draw(mutually_broadcastable_shapes(num_shapes=count, **INPUT_SHAPES)).input_shapes
    rows = ROWS_BY_DTYPE[np.dtype(dtype)]
    rows = rows.exactly_rounded() if exact else rows.differentiable_twice() if second_order else rows
    families = EXACT_FAMILIES if exact else families
    b = _Builder(draw, input_shapes, rows.shuffled(draw), dtype, parameters, squash=not exact)
    families = [draw(st.permutations(family)) for family in families]  # as Rows.shuffled
    size = draw(st.integers(min_ops, max_ops))
    while len(b.nodes) < size:
        family = draw(st.sampled_from(families))
        kind = draw(st.sampled_from([k for k in family if _applicable(k, b)]))
        kind(b)
    return b.program([len(b.avals) - 1] if last_only else None)


# ==================================================================== cases
def draw_inputs(draw, shapes, label="inputs", dtype=F64, special=False):
    """Arrays of `shapes`. Floats: uniform in [-2, 2), or on a half-integer grid
    (grid values tie and sit on kinks on purpose); with `special`, some elements
    are NaN, infinities, signed zeros... (OP_DB's SPECIALS). Integers: in [-5, 5],
    or anywhere in the dtype's range (on the "grid": sums and products wrap
    around). Matrices maybe in Fortran order (kernels must follow the strides).
    Returns (arrays, on_grid)."""
    on_grid = draw(st.booleans(), label=f"{label} on a grid")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label=f"{label} seed"))
    if np.dtype(dtype).kind == "i":
        low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if on_grid else (-5, 5)
        arrays = [np.asarray(rng.integers(low, high, s, endpoint=True), dtype) for s in shapes]
    else:
        arrays = [np.asarray(rng.integers(-4, 5, s) / 2.0 if on_grid else rng.uniform(-2.0, 2.0, s), dtype)
                  for s in shapes]
    if special:
        for a in arrays:
            chosen = rng.random(a.shape) < 0.3
            a[chosen] = rng.choice(SPECIALS, np.count_nonzero(chosen))
    fortran = [len(s) >= 2 and draw(st.booleans(), label=f"{label} in Fortran order") for s in shapes]
    return [np.asfortranarray(a) if f else a for a, f in zip(arrays, fortran)], on_grid


def draw_captured(draw, count):
    """Which of `count` inputs a compiled function captures as tj.Variables (read at call time)."""
    return tuple(i for i in range(count) if draw(st.booleans(), label=f"x{i} captured as a Variable"))


def draw_resized(draw, shapes):
    """Shapes of the same ranks with new sizes: each axis of the broadcast result
    gets a new size, which every input takes where its size is not 1 (so the
    broadcast pattern holds unless the new size is 1)."""
    result = np.broadcast_shapes(*shapes)
    sizes = [draw(st.integers(0, 6), label="new size") for _ in result]
    return [tuple(1 if n == 1 else m for n, m in zip(shape, sizes[len(sizes) - len(shape):])) for shape in shapes]


@dataclass(frozen=True, eq=False)
class Call:
    """A program's inputs and parameters for one call, with cotangents for its
    outputs and directions in its inputs (for second order)."""

    inputs: list
    params: list
    cotangents: list
    directions: list


@dataclass(frozen=True, eq=False)
class Case:
    """A program, the calls to make (the second with new values, the third, when
    the program allows, with new shapes of the same ranks), and which inputs a
    compiled function captures as tj.Variables."""

    program: Program
    calls: list
    captured: tuple
    on_grid: bool

    def __repr__(self):
        lines = [self.program.source()]
        for k, call in enumerate(self.calls):
            lines += [f"calls[{k}].{name} = {_literal(getattr(call, name))}"
                      for name in ("inputs", "params", "cotangents", "directions")]
        return "\n".join([*lines, f"captured = {self.captured}"])

    def _repr_pretty_(self, printer, cycle):
        """Hypothesis prints falsifying examples with this (IPython's protocol): the source, not the fields."""
        printer.text(repr(self))


# Hand-drawn rows whose parameters fit only the shapes they were drawn for.
SHAPE_SPECIFIC = ("reshape", "getitem", "slice", "broadcast_to", "squeeze")


def _takes_shapes(program, shapes):
    """Whether the program runs on inputs of `shapes`: no node has shape-specific
    parameters and the NumPy reference accepts them (matmul's inner sizes, concat's)."""
    if any(node.row is HAND_DRAWN[name] for node in program.nodes for name in SHAPE_SPECIFIC):
        return False
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            program.run([np.ones(s) for s in shapes], [c[0] for c in program.param_choices], reference=True)
    except ValueError:
        return False
    return True


def _draw_call(draw, program, shapes, label, dtype, special):
    inputs, on_grid = draw_inputs(draw, shapes, label, dtype, special)
    params = [draw(st.sampled_from(choices)) for choices in program.param_choices]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label=f"{label} cotangent seed"))
    with np.errstate(all="ignore"):
        output_shapes = [np.shape(v) for v in program.run(inputs, params, reference=True)]
    return Call(inputs, params, cotangents=[rng.uniform(-1, 1, s).astype(dtype) for s in output_shapes],
                directions=[rng.uniform(-1, 1, s).astype(dtype) for s in shapes]), on_grid


@st.composite
def cases(draw, program_strategy, dtype=F64, special=False):
    """A Case of a drawn program; inputs of `dtype`, with special values (see draw_inputs)."""
    program = draw(program_strategy)
    first, on_grid = _draw_call(draw, program, program.input_shapes, "first call", dtype, special)
    calls = [first, _draw_call(draw, program, program.input_shapes, "second call", dtype, special)[0]]
    resized = draw_resized(draw, program.input_shapes)
    if _takes_shapes(program, resized):
        calls.append(_draw_call(draw, program, resized, "resized call", dtype, special)[0])
    # A Variable keeps its shape: inputs that change shape arrive as arguments.
    captured = draw_captured(draw, len(program.input_shapes)) if len(calls) == 2 else ()
    return Case(program, calls, captured, on_grid)


# ============================================================ control flow
MAX_TRIPS = 3  # with two branches: at most 8 paths, tj.compile's max_paths


@dataclass(frozen=True, eq=False)
class ControlFlowProgram:
    """if sum(head(xs)[0]) > threshold: outs = then(xs) else: outs = otherwise(xs);
    then `step` runs on outs[0] while a level, gain * sum(outs[0]) + offset at
    first and one higher each trip, is below 0 (at most MAX_TRIPS trips)."""

    head: Program
    threshold: float
    then: Program
    otherwise: Program
    step: Program
    gain: float
    offset: float

    @property
    def input_shapes(self):
        return self.head.input_shapes

    def run(self, xs, params=(), reference=False):
        """As Program.run; the parts take no parameters."""
        total = np.sum if reference else tj.reduce_sum
        if total(self.head.run(xs, reference=reference)[0]) > self.threshold:
            outs = self.then.run(xs, reference=reference)
        else:
            outs = self.otherwise.run(xs, reference=reference)
        state = outs[0]
        level = total(state) * self.gain + self.offset
        trips = 0
        while trips < MAX_TRIPS and level < 0.0:
            state = self.step.run([state], reference=reference)[0]
            level = level + 1.0
            trips += 1
        return [state, *outs[1:]]

    def path(self, xs):
        """(branch taken, trips) per the NumPy reference."""
        with np.errstate(all="ignore"):
            taken = bool(np.sum(self.head.run(xs, reference=True)[0]) > self.threshold)
            state = (self.then if taken else self.otherwise).run(xs, reference=True)[0]
        level = np.sum(state) * self.gain + self.offset
        return taken, min(MAX_TRIPS, max(0, math.ceil(-level)))

    def __repr__(self):
        parts = [self.head.source("head"), self.then.source("then"), self.otherwise.source("otherwise"),
                 self.step.source("step"),
                 f"threshold, gain, offset = {self.threshold!r}, {self.gain!r}, {self.offset!r}"]
        return "\n".join(parts)


@dataclass(frozen=True, eq=False)
class ControlFlowCase:
    """A control-flow program, its input sets and the order to call them in."""

    program: ControlFlowProgram
    input_sets: list
    call_order: list  # indices into input_sets
    captured: tuple   # as Case.captured
    max_paths: int    # tj.compile's

    def __repr__(self):
        sets = [f"inputs[{k}] = {_literal(xs)}" for k, xs in enumerate(self.input_sets)]
        return "\n".join([repr(self.program), *sets, f"call_order = {self.call_order}", f"captured = {self.captured}",
                          f"max_paths = {self.max_paths}"])

    _repr_pretty_ = Case._repr_pretty_


def _separated(values, cut, margin):
    return all(abs(v - cut) > margin for v in values)


@st.composite
def control_flow_cases(draw):
    """A ControlFlowProgram and 3-5 input sets that take different paths, called
    in a random order (with repeats)."""
    shapes = draw(mutually_broadcastable_shapes(num_shapes=draw(st.integers(1, 3)), **INPUT_SHAPES)).input_shapes
    head = draw(programs(shapes, max_ops=6, parameters=False))
    then = draw(programs(shapes, max_ops=10, parameters=False))
    otherwise = draw(programs(shapes, max_ops=10, parameters=False))
    step = draw(programs([()], min_ops=1, max_ops=5, families=(ELEMENTWISE_KINDS,), last_only=True,
                         parameters=False))
    sets = [draw_inputs(draw, shapes, f"set {k}")[0] for k in range(draw(st.integers(3, 5)))]
    with np.errstate(all="ignore"):
        head_totals = [float(np.sum(head.run(xs, reference=True)[0])) for xs in sets]
        assume(np.all(np.isfinite(head_totals)))
        # The threshold splits the sets between the branches (unless all totals are
        # equal), away from every total (eager and compiled sums may differ in the last bits).
        distinct = sorted(set(head_totals))
        if len(distinct) == 1:
            threshold = distinct[0] - 1.0
        else:
            split = draw(st.integers(1, len(distinct) - 1))
            threshold = (distinct[split - 1] + distinct[split]) / 2
        assume(_separated(head_totals, threshold, 1e-6 * (1 + max(map(abs, head_totals)))))
        state_totals = [float(np.sum((then if total > threshold else otherwise).run(xs, reference=True)[0]))
                        for total, xs in zip(head_totals, sets)]
    assume(np.all(np.isfinite(state_totals)))
    # The lowest total starts the loop at level 0.5 (no trip), the highest at
    # -MAX_TRIPS - 0.5 (all trips); the others spread between. Equal totals make
    # the same drawn number of trips.
    low, high = min(state_totals), max(state_totals)
    if high - low < 1e-6 * (1 + abs(high)):
        gain, offset = 0.0, 0.5 - draw(st.integers(0, MAX_TRIPS))
    else:
        gain = -(MAX_TRIPS + 1) / (high - low)
        offset = 0.5 - gain * low
    levels = [gain * t + offset for t in state_totals]
    assume(all(_separated(levels, -k, 1e-6) for k in range(MAX_TRIPS + 1)))
    program = ControlFlowProgram(head, threshold, then, otherwise, step, gain, offset)
    order = list(draw(st.permutations(range(len(sets)))))
    order += draw(st.lists(st.integers(0, len(sets) - 1), max_size=2 * len(sets)))
    # max_paths 2: the paths beyond the first two run eagerly.
    max_paths = draw(st.sampled_from([8, 2]))
    return ControlFlowCase(program, sets, order, draw_captured(draw, len(shapes)), max_paths)
