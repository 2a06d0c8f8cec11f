"""How each primitive lowers into a fused Numba loop: a scalar expression for
elementwise primitives, an accumulation for reductions. Keyed by the
registry's primitive objects; a primitive (or dtype) absent here runs through
its NumPy kernel in the driver instead."""
import numpy as np

from tapejit.tracer.ops import elementwise as E
from tapejit.tracer.ops import reduce as R
from tapejit.tracer.ops import shape as S
from tapejit.tracer import tape as T

FLOAT = frozenset("f")
NUMBER = frozenset("fi")
ANY = frozenset("fib")
BOOL = frozenset("b")


class Ctx:
    """What a rule may ask while writing one expression."""

    def __init__(self, out_dtype, in_dtypes, literal, transcendental):
        self.out = out_dtype
        self.ins = in_dtypes
        self.lit = literal          # lit(value) -> name of a constant of the output dtype
        self.fn = transcendental    # fn("exp") -> name of the scalar function for the output dtype


def _bin(op):
    return lambda a, c: f"({a[0]} {op} {a[1]})"


def _call(name):
    return lambda a, c: f"{c.fn(name)}({a[0]})"


def _np(name):
    return lambda a, c: f"np.{name}({a[0]})"


def _true_divide(a, c):
    if c.ins[0].kind == "f":
        return f"({a[0]} / {a[1]})"
    return f"(np.float64({a[0]}) / np.float64({a[1]}))"


def _sign(a, c):
    x = a[0]
    # x - x: +0 for either zero (as NumPy), NaN for NaN
    return f"({c.lit(1)} if {x} > 0 else ({c.lit(-1)} if {x} < 0 else {x} - {x}))"


def _softplus(a, c):
    x = a[0]
    return f"(max({x}, {c.lit(0)}) + {c.fn('log1p')}({c.fn('exp')}(-abs({x}))))"


# primitive -> (dtype kinds of the inputs it lowers for, template(args, ctx) -> expression)
ELEMENTWISE = {
    E.add_p: (NUMBER, _bin("+")),
    E.sub_p: (NUMBER, _bin("-")),
    E.mul_p: (NUMBER, _bin("*")),
    E.div_p: (NUMBER, _true_divide),
    E.pow_p: (FLOAT, _bin("**")),
    # NaN-propagating, second argument on ties (as np.maximum(-0.0, 0.0) == 0.0).
    E.maximum_p: (NUMBER, lambda a, c: f"({a[0]} if ({a[0]} > {a[1]} or {a[0]} != {a[0]}) else {a[1]})"),
    E.minimum_p: (NUMBER, lambda a, c: f"({a[0]} if ({a[0]} < {a[1]} or {a[0]} != {a[0]}) else {a[1]})"),
    E.neg_p: (NUMBER, lambda a, c: f"(-{a[0]})"),
    E.abs_p: (NUMBER, lambda a, c: f"abs({a[0]})"),
    E.sign_p: (NUMBER, _sign),
    E.floor_p: (FLOAT, _np("floor")),
    E.ceil_p: (FLOAT, _np("ceil")),
    E.round_p: (FLOAT, _np("rint")),  # half to even, as np.round
    E.exp_p: (FLOAT, _call("exp")),
    E.log_p: (FLOAT, _call("log")),
    E.log1p_p: (FLOAT, _call("log1p")),
    E.expm1_p: (FLOAT, _call("expm1")),
    E.tanh_p: (FLOAT, _call("tanh")),
    E.sigmoid_p: (FLOAT, _call("sigmoid")),
    E.sqrt_p: (FLOAT, _np("sqrt")),
    E.sin_p: (FLOAT, _np("sin")),
    E.cos_p: (FLOAT, _np("cos")),
    E.tan_p: (FLOAT, _np("tan")),
    E.erf_p: (FLOAT, lambda a, c: f"math.erf({a[0]})"),
    E.softplus_p: (FLOAT, _softplus),
    E.tanh_grad_p: (FLOAT, lambda a, c: f"({a[1]} - {a[1]} * {a[0]} * {a[0]})"),
    E.sigmoid_grad_p: (FLOAT, lambda a, c: f"({a[1]} * {a[0]} * ({c.lit(1)} - {a[0]}))"),
    E.equal_p: (ANY, _bin("==")),
    E.not_equal_p: (ANY, _bin("!=")),
    E.less_p: (NUMBER, _bin("<")),
    E.less_equal_p: (NUMBER, _bin("<=")),
    E.greater_p: (NUMBER, _bin(">")),
    E.greater_equal_p: (NUMBER, _bin(">=")),
    E.logical_and_p: (BOOL, _bin("and")),
    E.logical_or_p: (BOOL, _bin("or")),
    E.logical_xor_p: (BOOL, _bin("!=")),
    E.logical_not_p: (BOOL, lambda a, c: f"(not {a[0]})"),
    E.is_nan_p: (FLOAT, _np("isnan")),
    E.is_inf_p: (FLOAT, _np("isinf")),
    E.is_finite_p: (FLOAT, _np("isfinite")),
    E.select_p: (ANY, lambda a, c: f"({a[1]} if {a[0]} else {a[2]})"),
    E.cast_p: (ANY, lambda a, c: a[0]),  # every result is converted to its IR dtype
    T.identity_p: (ANY, lambda a, c: a[0]),
    T.stop_gradient_p: (ANY, lambda a, c: a[0]),
    # Broadcasting is index substitution in the loop nest: the value passes through.
    S.broadcast_to_p: (ANY, lambda a, c: a[0]),
}

# Worth a store and a load rather than computing again in a second loop.
EXPENSIVE = frozenset({E.exp_p, E.log_p, E.log1p_p, E.expm1_p, E.tanh_p, E.sigmoid_p, E.sin_p, E.cos_p,
                       E.tan_p, E.erf_p, E.softplus_p, E.pow_p})
RECOMPUTE_LIMIT = 8  # operations: a longer expression is stored once

# primitive -> (identity element, update(acc, value) statement template, intrinsics it calls)
REDUCTIONS = {
    R.reduce_sum_p: (0, "{acc} = {acc} + {ctor}({v})", ()),
    # NaN-propagating: once the accumulator is NaN it stays NaN.
    R.reduce_max_p: (-np.inf, "{acc} = tj_maximum({acc}, {v})", ("tj_maximum",)),
    R.reduce_min_p: (np.inf, "{acc} = tj_minimum({acc}, {v})", ("tj_minimum",)),
}


def accumulator_dtype(eqn):
    """A float32 sum down to one number accumulates in float64: it may add millions of
    terms (NumPy's pairwise sum keeps that error O(log n)). Row sums stay float32: a
    float64 accumulator halves the vector width of the whole loop (measured 2.5x slower
    on a softmax row pass), and rows are short."""
    dtype = eqn.out.aval.dtype
    if eqn.prim is R.reduce_sum_p and dtype == np.float32 and all(d == 1 for d in eqn.out.aval.shape):
        return np.dtype(np.float64)
    return dtype


def elementwise_rule(eqn):
    """The template for this equation, or None when it is not lowered."""
    entry = ELEMENTWISE.get(eqn.prim)
    if entry is None:
        return None
    kinds, template = entry
    dtypes = [a.aval.dtype for a in eqn.inputs]
    if eqn.prim is E.select_p:
        dtypes = dtypes[1:]
    if any(d.kind not in kinds for d in dtypes):
        return None
    return template


def reduction_rule(eqn):
    entry = REDUCTIONS.get(eqn.prim)
    if entry is None or eqn.inputs[0].aval.dtype.kind not in NUMBER or not eqn.params["axes"]:
        return None
    if entry[0] != 0 and eqn.inputs[0].aval.dtype.kind != "f":
        return None  # integer max/min need integer identities; NumPy does these
    return entry
