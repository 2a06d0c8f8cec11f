"""Signature keys: what decides which cached programs a call may use.

Tensor-like leaves are keyed by shape and dtype; Python floats are dynamic
(weakly typed) so a new learning rate does not retrace; ints, bools, strings
and other hashables are static, keyed by value. The key holds no reference to
a caller's arrays.
"""
import numpy as np

from tapejit.tracer import nest
from tapejit.tracer.tensor import Tensor, Variable

FLOAT = "float"  # the key part of a dynamic Python float


def leaf_key(leaf, describe):
    cls = type(leaf)
    if cls is Tensor:
        v = leaf._value
        return (v.shape, v.dtype)
    if cls is np.ndarray or isinstance(leaf, np.generic):
        return (leaf.shape, leaf.dtype)
    if cls is Variable:
        v = leaf._tensor._value
        return ("Variable", v.shape, v.dtype)
    if cls is float:
        return FLOAT
    if isinstance(leaf, Tensor):
        v = leaf._value
        return (v.shape, v.dtype)
    try:
        hash(leaf)
    except TypeError:
        raise TypeError(f"tj.compile: {describe()} is an unhashable {cls.__name__}; pass tensors, arrays, "
                        "numbers, strings or nested lists/tuples/dicts of them, or make it hashable") from None
    return ("static", cls, leaf)


def is_dynamic(part):
    return part is FLOAT or (type(part) is tuple and part[0] != "static")


def signature(args, kwargs, static):
    """(key, leaves, treedef) of a call; `static` holds the static_argnames values."""
    leaves, treedef = nest.flatten((args, kwargs))
    parts = []
    for i, leaf in enumerate(leaves):
        parts.append(leaf_key(leaf, lambda i=i: f"argument leaf {i}"))
    return (treedef, tuple(parts), static), leaves, treedef


def describe_part(part):
    if part is FLOAT:
        return "a Python float"
    if part[0] == "static":
        return f"the static value {part[2]!r}"
    if part[0] == "Variable":
        return f"a Variable of shape {part[1]} and dtype {part[2].name}"
    return f"shape {part[0]} and dtype {part[1].name}"
