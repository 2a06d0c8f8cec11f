"""Shape/dtype rules shared by op families, with error messages naming the op."""
import numpy as np

from .. import dtypes as dt
from ..core import ShapedArray
from ..errors import DTypeError, ShapeError

ARG_NAMES2 = ("x", "y")


def _desc(a):
    return f"shape {a.shape} and dtype {a.dtype.name}"


def _names(n):
    return ARG_NAMES2 if n == 2 else tuple(f"argument {i}" for i in range(n))


def check_dtypes(op, avals, allowed, names=None):
    names = names or _names(len(avals))
    first = avals[0]
    for name, a in zip(names, avals, strict=True):
        if a.dtype != first.dtype:
            raise DTypeError(f"tj.{op}: {name} has {_desc(a)} but {names[0]} has {_desc(first)}; "
                             "tapejit does not promote between dtypes (as TensorFlow): cast one with tj.cast")
    if allowed is not None and first.dtype not in allowed:
        kinds = ", ".join(sorted(d.name for d in allowed))
        raise DTypeError(f"tj.{op}: {names[0]} has {_desc(first)}, but tj.{op} accepts only {kinds}")
    return first.dtype


def broadcast_shapes(op, avals, names=None):
    names = names or _names(len(avals))
    ndim = max(len(a.shape) for a in avals)
    out = []
    for axis in range(-ndim, 0):
        size = 1
        for name, a in zip(names, avals, strict=True):
            if -axis <= len(a.shape):
                d = a.shape[axis]
                if d != 1:
                    if size != 1 and d != size:
                        detail = " and ".join(f"{n} of {_desc(b)}" for n, b in zip(names, avals, strict=True))
                        raise ShapeError(f"tj.{op}: cannot broadcast {detail}: axis {axis} has sizes "
                                         f"{size} and {d} (NumPy broadcasting needs equal sizes or 1)")
                    size = d
        out.append(size)
    return tuple(out)


def elementwise_rule(op, allowed, out_dtype=None):
    """Same-dtype inputs broadcast together. out_dtype: None (the input dtype),
    a NumPy dtype, or a function of the input dtype."""

    def rule(*avals):
        dtype = check_dtypes(op, avals, allowed)
        shape = broadcast_shapes(op, avals)
        if out_dtype is None:
            return ShapedArray(shape, dtype)
        return ShapedArray(shape, out_dtype(dtype) if callable(out_dtype) else out_dtype)

    return rule


def true_divide_dtype(dtype):
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def normalize_axes(op, axis, ndim, name="axis"):
    """Axis argument (None, int or sequence) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"tj.{op}: {name} {a} is out of range for a tensor of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"tj.{op}: {name} {axis} repeats an axis")
    return tuple(sorted(out))


FLOATS = dt.FLOATS
NUMERIC = dt.NUMERIC
INTEGERS = dt.INTEGERS
BOOL = frozenset([np.dtype(np.bool_)])
ANY = None
