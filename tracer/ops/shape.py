"""Shape primitives: reshape, transpose, broadcast_to, concat, tile, pad."""
import math

import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, register
from ..errors import DTypeError, ShapeError, describe
from .elementwise import PUBLIC
from .rules import broadcast_shapes, normalize_axes


def _public(fn):
    PUBLIC[fn.__name__] = fn
    return fn


class PerInput:
    """vjp rules of a variadic primitive: rule(index, ct, *inputs, out, **params)."""

    __slots__ = ("rule",)

    def __init__(self, rule):
        self.rule = rule

    def __getitem__(self, index):
        rule = self.rule
        return lambda *args, **params: rule(index, *args, **params)


# ------------------------------------------------------------------ reshape
def _reshape_rule(x, *, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ShapeError(f"tj.reshape: cannot reshape tensor of shape {x.shape} and dtype {x.dtype.name} "
                         f"({int(np.prod(x.shape))} elements) to shape {shape}")
    return ShapedArray(shape, x.dtype)


reshape_p = register(Primitive("reshape", lambda x, *, shape: x.reshape(shape), _reshape_rule,
                               (lambda ct, x, out, *, shape: reshape(ct, x.shape),)))


def _resolve_shape(op, x_shape, shape):
    if isinstance(shape, core.Tensor):
        shape = shape.numpy().tolist()
    shape = [int(d) for d in (shape if isinstance(shape, (list, tuple)) else [shape])]
    size = int(np.prod(x_shape))
    if shape.count(-1) > 1:
        raise ShapeError(f"tj.{op}: shape {tuple(shape)} has more than one -1")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        if known == 0 or size % known:
            raise ShapeError(f"tj.{op}: cannot reshape tensor of shape {tuple(x_shape)} ({size} elements) "
                             f"to shape {tuple(shape)}")
        shape[shape.index(-1)] = size // known
    return tuple(shape)


@_public
def reshape(tensor, shape, name=None):
    x = core.convert(tensor, op="reshape")
    shape = _resolve_shape("reshape", x._value.shape, shape)
    if shape == x._value.shape:
        return x
    return core.apply(reshape_p, (x,), {"shape": shape})


@_public
def expand_dims(input, axis, name=None):
    x = core.convert(input, op="expand_dims")
    ndim = x._value.ndim
    if not -ndim - 1 <= axis <= ndim:
        raise ShapeError(f"tj.expand_dims: axis {axis} is out of range for a tensor of rank {ndim}")
    axis = axis % (ndim + 1)
    shape = x._value.shape
    return core.apply(reshape_p, (x,), {"shape": shape[:axis] + (1,) + shape[axis:]})


@_public
def squeeze(input, axis=None, name=None):
    x = core.convert(input, op="squeeze")
    shape = x._value.shape
    if axis is None:
        axes = tuple(i for i, d in enumerate(shape) if d == 1)
    else:
        axes = normalize_axes("squeeze", axis, len(shape))
        for a in axes:
            if shape[a] != 1:
                raise ShapeError(f"tj.squeeze: cannot squeeze axis {a} of size {shape[a]} "
                                 f"(tensor of shape {shape})")
    return reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


# ---------------------------------------------------------------- transpose
def _transpose_rule(x, *, perm):
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError(f"tj.transpose: perm {perm} is not a permutation of the axes of a tensor "
                         f"of shape {x.shape}")
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


transpose_p = register(Primitive(
    "transpose", lambda x, *, perm: np.transpose(x, perm), _transpose_rule,
    (lambda ct, x, out, *, perm: transpose(ct, tuple(perm.index(i) for i in range(len(perm)))),)))


@_public
def transpose(a, perm=None, conjugate=False, name=None):
    x = core.convert(a, op="transpose")
    ndim = x._value.ndim
    perm = tuple(range(ndim))[::-1] if perm is None else tuple(int(p) % max(ndim, 1) for p in perm)
    if perm == tuple(range(ndim)):
        return x
    return core.apply(transpose_p, (x,), {"perm": perm})


def matrix_transpose(x):
    """Swap the last two axes."""
    x = core.convert(x, op="matrix_transpose")
    ndim = x._value.ndim
    if ndim < 2:
        raise ShapeError(f"tj.matrix_transpose: x has {describe(x)}; it needs rank >= 2")
    return transpose(x, tuple(range(ndim - 2)) + (ndim - 1, ndim - 2))


# ------------------------------------------------------------- broadcast_to
def _broadcast_to_rule(x, *, shape):
    target = ShapedArray(shape, x.dtype)
    result = broadcast_shapes("broadcast_to", (x, target), ("input", "shape"))
    if result != tuple(shape):
        raise ShapeError(f"tj.broadcast_to: cannot broadcast input of shape {x.shape} to shape {shape}")
    return target


# The backward walker sums cotangents down to each input's shape, so the
# cotangent passes through unchanged.
def _broadcast_to(x, *, shape):
    if math.prod(shape) > 4096:  # large: a read-only view with zero strides, no copy
        return np.broadcast_to(x, shape)
    out = np.empty(shape, x.dtype)
    np.copyto(out, x)  # small: a copy is cheaper than np.broadcast_to's Python
    return out


broadcast_to_p = register(Primitive(
    "broadcast_to", _broadcast_to, _broadcast_to_rule,
    (lambda ct, x, out, *, shape: ct,)))


@_public
def broadcast_to(input, shape, name=None):
    x = core.convert(input, op="broadcast_to")
    shape = tuple(int(d) for d in (shape.numpy() if isinstance(shape, core.Tensor) else shape))
    if shape == x._value.shape:
        return x
    return core.apply(broadcast_to_p, (x,), {"shape": shape})


# ------------------------------------------------------------------- concat
def _concat_rule(*xs, axis):
    first = xs[0]
    for i, x in enumerate(xs):
        if x.dtype != first.dtype:
            raise DTypeError(f"tj.concat: values[{i}] has shape {x.shape} and dtype {x.dtype.name} but "
                             f"values[0] has shape {first.shape} and dtype {first.dtype.name}")
        if len(x.shape) != len(first.shape) or any(
                a != b for k, (a, b) in enumerate(zip(x.shape, first.shape)) if k != axis):
            raise ShapeError(f"tj.concat: values[{i}] has shape {x.shape} but values[0] has shape "
                             f"{first.shape}; all dimensions except axis {axis} must match")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapedArray(shape, first.dtype)


def _concat_vjp(index, ct, *args, axis):
    xs = args[:-1]  # args: the inputs, then the output
    start = sum(x.shape[axis] for x in xs[:index])
    return slice_axis(ct, axis, start, start + xs[index].shape[axis])


concat_p = register(Primitive("concat", lambda *xs, axis: np.concatenate(xs, axis), _concat_rule,
                              PerInput(_concat_vjp)))


@_public
def concat(values, axis, name=None):
    xs = core.convert_group(list(values), "concat")
    if not xs:
        raise ValueError("tj.concat: values is empty")
    ndim = xs[0]._value.ndim
    if ndim == 0:
        raise ShapeError("tj.concat: cannot concatenate 0-d tensors; use tj.stack")
    (axis,) = normalize_axes("concat", axis, ndim)
    if len(xs) == 1:
        return xs[0]
    return core.apply(concat_p, tuple(xs), {"axis": axis})


@_public
def stack(values, axis=0, name=None):
    xs = core.convert_group(list(values), "stack")
    if not xs:
        raise ValueError("tj.stack: values is empty")
    ndim = xs[0]._value.ndim
    if not -ndim - 1 <= axis <= ndim:
        raise ShapeError(f"tj.stack: axis {axis} is out of range for tensors of rank {ndim}")
    axis = axis % (ndim + 1)
    for i, x in enumerate(xs):
        if x._value.shape != xs[0]._value.shape:
            raise ShapeError(f"tj.stack: values[{i}] has shape {x.shape} but values[0] has shape "
                             f"{xs[0].shape}; stacked tensors must have equal shapes")
        if x._value.dtype != xs[0]._value.dtype:
            raise DTypeError(f"tj.stack: values[{i}] has {describe(x)} but values[0] has {describe(xs[0])}; "
                             "cast one with tj.cast")
    parts = [expand_dims(x, axis) for x in xs]
    return parts[0] if len(parts) == 1 else core.apply(concat_p, tuple(parts), {"axis": axis})


@_public
def unstack(value, num=None, axis=0, name=None):
    x = core.convert(value, op="unstack")
    (axis,) = normalize_axes("unstack", axis, x._value.ndim)
    shape = x._value.shape
    rest = shape[:axis] + shape[axis + 1:]
    return [reshape(slice_axis(x, axis, i, i + 1), rest) for i in range(shape[axis])]


@_public
def split(value, num_or_size_splits, axis=0, num=None, name=None):
    x = core.convert(value, op="split")
    (axis,) = normalize_axes("split", axis, x._value.ndim)
    size = x._value.shape[axis]
    if isinstance(num_or_size_splits, (int, np.integer)):
        n = int(num_or_size_splits)
        if n <= 0 or size % n:
            raise ShapeError(f"tj.split: axis {axis} of size {size} (tensor of shape {x.shape}) "
                             f"cannot be split into {n} equal parts")
        sizes = [size // n] * n
    else:
        sizes = [int(s) for s in num_or_size_splits]
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = size - (sum(sizes) + 1)
        if sum(sizes) != size or min(sizes) < 0:
            raise ShapeError(f"tj.split: sizes {sizes} do not add up to axis {axis} of size {size}")
    starts = np.cumsum([0] + sizes[:-1])
    return [slice_axis(x, axis, int(s), int(s) + n) for s, n in zip(starts, sizes, strict=True)]


# --------------------------------------------------------------------- tile
def _tile_rule(x, *, multiples):
    if len(multiples) != len(x.shape):
        raise ShapeError(f"tj.tile: multiples {multiples} must have one entry per axis of the input "
                         f"of shape {x.shape}")
    return ShapedArray(tuple(d * m for d, m in zip(x.shape, multiples)), x.dtype)


def _tile_vjp(ct, x, out, *, multiples):
    # Split each axis into (multiple, size) and sum over the multiples.
    interleaved = tuple(d for pair in zip(multiples, x.shape) for d in pair)
    summed = tuple(range(0, 2 * len(multiples), 2))
    return reduce_sum(reshape(ct, interleaved), summed)


tile_p = register(Primitive("tile", lambda x, *, multiples: np.tile(x, multiples), _tile_rule, (_tile_vjp,)))


@_public
def tile(input, multiples, name=None):
    x = core.convert(input, op="tile")
    multiples = tuple(int(m) for m in (multiples.numpy() if isinstance(multiples, core.Tensor) else multiples))
    if len(multiples) != x._value.ndim:  # np.tile would pad multiples with ones
        _tile_rule(core.aval(x), multiples=multiples)
    return core.apply(tile_p, (x,), {"multiples": multiples})


# ---------------------------------------------------------------------- pad
def _pad_rule(x, *, paddings, constant):
    if len(paddings) != len(x.shape) or any(lo < 0 or hi < 0 for lo, hi in paddings):
        raise ShapeError(f"tj.pad: paddings {paddings} must hold one non-negative (before, after) pair "
                         f"per axis of the input of shape {x.shape}")
    return ShapedArray(tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, paddings)), x.dtype)


def _pad_vjp(ct, x, out, *, paddings, constant):
    index = tuple((lo, lo + d, 1) for d, (lo, hi) in zip(x.shape, paddings))
    return strided_slice(ct, index)


pad_p = register(Primitive(
    "pad", lambda x, *, paddings, constant: np.pad(x, paddings, constant_values=constant),
    _pad_rule, (_pad_vjp,)))


@_public
def pad(tensor, paddings, mode="CONSTANT", constant_values=0, name=None):
    if str(mode).upper() != "CONSTANT":
        raise ValueError(f"tj.pad: mode {mode!r} is not supported; tapejit pads with mode='CONSTANT' only")
    x = core.convert(tensor, op="pad")
    paddings = np.asarray(paddings.numpy() if isinstance(paddings, core.Tensor) else paddings)
    if paddings.shape != (x._value.ndim, 2):
        raise ShapeError(f"tj.pad: paddings must have shape ({x._value.ndim}, 2) for a tensor of shape "
                         f"{x.shape}; got shape {paddings.shape}")
    pairs = tuple((int(lo), int(hi)) for lo, hi in paddings)
    if not pairs:  # a 0-d tensor: nothing to pad (np.pad rejects empty paddings)
        return x
    if type(constant_values) is int and constant_values == 0:
        constant = np.zeros((), x._value.dtype)  # the default pads bool tensors with False, as TF
    else:
        constant = core.convert_like(constant_values, x._value.dtype, "pad")._value
    return core.apply(pad_p, (x,), {"paddings": pairs, "constant": constant[()]})


from .index import slice_axis, strided_slice  # noqa: E402
from .reduce import reduce_sum  # noqa: E402
