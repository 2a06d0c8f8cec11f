"""Algebraic simplification that keeps IEEE semantics bit for bit.

Only identities exact for every input, NaN, inf and -0.0 included:
x*1, 1*x, x/1, x-0, x**1 (the constant a literal or a broadcast of one), -(-x), and no-op shape ops (reshape or broadcast_to
to the same shape, the identity transpose, cast to the same dtype, identity).
Never x+0 (-0.0 + 0 is +0.0), x*0 (NaN, inf) or reassociation. stop_gradient
stays: programs are simplified before their backward programs are derived.
"""
import numpy as np

from ..ir import Eqn, Literal
from .util import resolver, substitute


def _is(atom, number):
    if type(atom) is not Literal:
        return False
    value = np.asarray(atom.value)
    return bool(np.all(value == number)) and not np.signbit(value).any()


def _constant(atom, producers):
    """The literal an atom stands for: itself, or the scalar a broadcast_to spreads
    (the trace writes uniform constants, such as a gradient's seed of ones, that way)."""
    inner = producers.get(id(atom))
    if inner is not None and inner.prim.name == "broadcast_to" and type(inner.inputs[0]) is Literal:
        return inner.inputs[0]
    return atom


def _same_type(atom, eqn):
    return atom.aval == eqn.out.aval


def _rewrite(eqn, producers):
    name = eqn.prim.name
    ins = eqn.inputs
    if name == "mul":
        for keep, other in ((ins[0], ins[1]), (ins[1], ins[0])):
            if _is(_constant(other, producers), 1) and _same_type(keep, eqn):
                return keep
    elif name in ("div", "pow"):
        if _is(_constant(ins[1], producers), 1) and _same_type(ins[0], eqn):
            return ins[0]
    elif name == "sub":
        if _is(_constant(ins[1], producers), 0) and _same_type(ins[0], eqn):
            return ins[0]
    elif name == "neg":
        inner = producers.get(id(ins[0]))
        if inner is not None and inner.prim.name == "neg":
            return inner.inputs[0]
    if name == "transpose":  # transpose(transpose(x)) that restores x's axes
        inner = producers.get(id(ins[0]))
        if inner is not None and inner.prim.name == "transpose":
            composed = tuple(inner.params["perm"][i] for i in eqn.params["perm"])
            if composed == tuple(range(len(composed))):
                return inner.inputs[0]
    if name in ("reshape", "broadcast_to", "transpose", "cast", "identity"):
        if _same_type(ins[0], eqn) and (name != "transpose" or eqn.params["perm"] == tuple(sorted(eqn.params["perm"]))):
            return ins[0]
    return None


def simplify(program):
    mapping = {}
    producers = {}
    body = []
    resolve = resolver(mapping)

    for item in program.body:
        if type(item) is Eqn:
            resolved = Eqn(item.prim, [resolve(a) for a in item.inputs], item.params, item.out, item.source)
            replacement = _rewrite(resolved, producers)
            if replacement is not None:
                mapping[id(item.out)] = replacement
                continue
            producers[id(item.out)] = resolved
            item = resolved
        body.append(item)
    return substitute(program, body, mapping)
