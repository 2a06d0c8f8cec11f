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
        return (VARIABLE, v.shape, v.dtype)
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


VARIABLE = "Variable"


def flat_key(args):
    """The key of a call whose arguments are all Tensors, Variables or floats, as
    one flat tuple (shape, dtype, ... ; VARIABLE, shape, dtype ; FLOAT): cheap to
    build and hash. None when some argument needs the general key."""
    parts = []
    for leaf in args:
        cls = type(leaf)
        if cls is Tensor:
            v = leaf._value
            parts.append(v.shape)
            parts.append(v.dtype)
        elif cls is np.ndarray:  # keyed as a Tensor of its shape and dtype (same program)
            parts.append(leaf.shape)
            parts.append(leaf.dtype)
        elif cls is float:
            parts.append(FLOAT)
        elif cls is Variable:
            v = leaf._tensor._value
            parts.append(VARIABLE)
            parts.append(v.shape)
            parts.append(v.dtype)
        else:
            return None
    return tuple(parts)


def signature(args, kwargs, static):
    """(key, leaves, treedef) of a call; `static` holds the static_argnames values.
    Flat positional calls get flat_key and no treedef (None)."""
    if not kwargs and not static:
        key = flat_key(args)
        if key is not None:
            return key, args, None
    leaves, treedef = nest.flatten((args, kwargs))
    parts = []
    for i, leaf in enumerate(leaves):
        parts.append(leaf_key(leaf, lambda i=i: f"argument leaf {i}"))
    return (treedef, tuple(parts), static), leaves, treedef


def key_parts(key):
    """(treedef or arity, per-leaf parts, static) for any key, for explanations."""
    if len(key) == 3 and isinstance(key[0], nest.TreeDef):
        return key
    parts, i = [], 0
    while i < len(key):
        if key[i] is FLOAT:
            parts.append(FLOAT)
            i += 1
        elif key[i] is VARIABLE:
            parts.append((VARIABLE, key[i + 1], key[i + 2]))
            i += 3
        else:
            parts.append((key[i], key[i + 1]))
            i += 2
    return len(parts), tuple(parts), ()


def unflatten_call(treedef, leaves):
    """(args, kwargs) from what `signature` returned."""
    if treedef is None:
        return tuple(leaves), {}
    return nest.unflatten(treedef, leaves)


def describe_part(part):
    if part is FLOAT:
        return "a Python float"
    if part[0] == "static":
        return f"the static value {part[2]!r}"
    if part[0] == VARIABLE:
        return f"a Variable of shape {part[1]} and dtype {part[2].name}"
    return f"shape {part[0]} and dtype {part[1].name}"
