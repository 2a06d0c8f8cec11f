"""Constant folding: equations of literals become literals; guards on
literals that hold disappear."""
import numpy as np

from ..ir import Eqn, Guard, Literal
from .util import resolver, substitute


def fold(program):
    mapping = {}
    body = []
    resolve = resolver(mapping)

    for item in program.body:
        if (type(item) is Eqn and item.inputs and all(type(resolve(a)) is Literal for a in item.inputs)
                and item.out.aval.size <= max(resolve(a).aval.size for a in item.inputs)):
            # (never folded into a constant larger than its operands: broadcast_to(2.0) stays symbolic)
            value = item.prim.impl(*[resolve(a).value for a in item.inputs], **item.params)
            mapping[id(item.out)] = Literal(np.asarray(value))
            continue
        if type(item) is Guard and type(resolve(item.input)) is Literal and item.holds(resolve(item.input).value):
            continue
        body.append(item)
    return substitute(program, body, mapping)
