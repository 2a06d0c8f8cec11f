"""Indexing primitives: strided slices and gathers, each paired with its linear
transpose (slice_grad, scatter_add) so every gradient is differentiable again."""
import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, register
from ..errors import DTypeError, ShapeError, type_name
from .elementwise import PUBLIC
from .rules import INTEGERS, normalize_axes


def _sliced_shape(shape, index):
    return tuple(len(range(start, stop, step)) for (start, stop, step) in index)


def _slices(index):
    """NumPy slices for normalised triples. A normalised -1 (reverse slices reaching
    or starting before index 0) means "past the start", which NumPy would read as
    the last element: an empty range becomes 0:0, a stop of -1 becomes None."""
    return tuple(slice(0, 0) if not range(start, stop, step) else slice(start, None if stop < 0 else stop, step)
                 for start, stop, step in index)


# ------------------------------------------------------------ strided_slice
# index: one normalised (start, stop, step) triple per axis.
def _strided_slice_rule(x, *, index):
    if len(index) != len(x.shape):
        raise ShapeError(f"tj.strided_slice: index has {len(index)} entries for a tensor of shape {x.shape}")
    return ShapedArray(_sliced_shape(x.shape, index), x.dtype)


def _slice_grad_rule(ct, *, shape, index):
    return ShapedArray(shape, ct.dtype)


def _slice_grad_impl(ct, *, shape, index):
    out = np.zeros(shape, ct.dtype)
    out[_slices(index)] = ct
    return out


strided_slice_p = register(Primitive(
    "strided_slice", lambda x, *, index: x[_slices(index)], _strided_slice_rule,
    (lambda ct, x, out, *, index: slice_grad(ct, x.shape, index),)))
slice_grad_p = register(Primitive(
    "slice_grad", _slice_grad_impl, _slice_grad_rule,
    (lambda ct, g, out, *, shape, index: strided_slice(ct, index),)))


def strided_slice(x, index):
    x = core.convert(x, op="strided_slice")
    if all(start == 0 and stop == d and step == 1 for (start, stop, step), d in zip(index, x.shape)):
        return x
    return core.apply(strided_slice_p, (x,), {"index": tuple(index)})


def slice_grad(ct, shape, index):
    return core.apply(slice_grad_p, (core.convert(ct),), {"shape": tuple(shape), "index": tuple(index)})


def slice_axis(x, axis, start, stop):
    x = core.convert(x)
    index = tuple((start, stop, 1) if a == axis else (0, d, 1) for a, d in enumerate(x.shape))
    return strided_slice(x, index)


def slice_(input_, begin, size, name=None):
    """tf.slice: `size[i] == -1` takes everything from begin[i] on."""
    x = core.convert(input_, op="slice")
    shape = x._value.shape
    if len(begin) != len(shape) or len(size) != len(shape):
        raise ShapeError(f"tj.slice: begin {tuple(begin)} and size {tuple(size)} need one entry per axis "
                         f"of the input of shape {shape}")
    index = []
    for axis, (b, n, d) in enumerate(zip(begin, size, shape)):
        b, n = int(b), int(n)
        stop = d if n == -1 else b + n
        if not 0 <= b <= stop <= d:
            raise ShapeError(f"tj.slice: axis {axis}: begin {b} and size {n} do not fit size {d} "
                             f"(input shape {shape})")
        index.append((b, stop, 1))
    return strided_slice(x, tuple(index))


slice_.__name__ = "slice"
PUBLIC["slice"] = slice_


# ------------------------------------------------------------------- gather
def _check_indices(op, indices, size, axis):
    if indices.size and (indices.min() < -size or indices.max() >= size):
        bad = indices[(indices < -size) | (indices >= size)].ravel()[0]
        raise IndexError(f"tj.{op}: index {bad} is out of range for axis {axis} of size {size}")


def _gather_impl(x, indices, *, axis):
    _check_indices("gather", indices, x.shape[axis], axis)
    return np.take(x, indices, axis=axis)


def _gather_rule(x, indices, *, axis):
    if indices.dtype not in INTEGERS:
        raise DTypeError(f"tj.gather: indices have shape {indices.shape} and dtype {indices.dtype.name}; "
                         "they must be int32 or int64")
    if not 0 <= axis < len(x.shape):
        raise ShapeError(f"tj.gather: axis {axis} is out of range for params of shape {x.shape}")
    return ShapedArray(x.shape[:axis] + indices.shape + x.shape[axis + 1:], x.dtype)


def _scatter_add_impl(indices, updates, *, shape, axis):
    out = np.zeros(shape, updates.dtype)
    # Move the gathered axis to the front so np.add.at accumulates repeats.
    moved = np.moveaxis(out, axis, 0)
    upd = np.moveaxis(updates, tuple(range(axis, axis + indices.ndim)), tuple(range(indices.ndim)))
    np.add.at(moved, indices, upd)
    return out


def _scatter_add_rule(indices, updates, *, shape, axis):
    return ShapedArray(shape, updates.dtype)


gather_p = register(Primitive(
    "gather", _gather_impl, _gather_rule,
    (lambda ct, x, indices, out, *, axis: scatter_add(indices, ct, x.shape, axis), None)))
scatter_add_p = register(Primitive(
    "scatter_add", _scatter_add_impl, _scatter_add_rule,
    (None, lambda ct, indices, updates, out, *, shape, axis: gather(ct, indices, axis=axis))))


def gather(params, indices, validate_indices=None, axis=None, batch_dims=0, name=None):
    """tf.gather with batch_dims=0: slices of params along axis at the given indices."""
    if batch_dims != 0:
        raise ValueError("tj.gather: batch_dims other than 0 is not supported")
    x = core.convert(params, op="gather")
    idx = core.convert(indices, op="gather")
    (axis,) = normalize_axes("gather", 0 if axis is None else axis, x._value.ndim)
    return core.apply(gather_p, (x, idx), {"axis": axis})


def scatter_add(indices, updates, shape, axis):
    return core.apply(scatter_add_p, (core.convert(indices), core.convert(updates)),
                      {"shape": tuple(shape), "axis": axis})


PUBLIC["gather"] = gather


# ---------------------------------------------------------------- __getitem__
def _is_advanced(item):
    return isinstance(item, (list, np.ndarray, core.Tensor, core.Variable)) and not isinstance(item, bool)


def getitem(x, key):
    """x[key]: ints, slices, None, ..., and one integer tensor/array (a gather)."""
    x = core.convert(x, op="__getitem__")
    shape = x._value.shape
    key = key if isinstance(key, tuple) else (key,)
    if sum(item is Ellipsis for item in key) > 1:
        raise IndexError("tj.__getitem__: an index can only have a single ellipsis ('...')")
    consumed = sum(1 for item in key if item is not None and item is not Ellipsis)
    if consumed > len(shape):
        raise IndexError(f"tj.__getitem__: too many indices ({consumed}) for a tensor of shape {shape}")
    if Ellipsis in [k for k in key if not _is_advanced(k)]:
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - consumed) + key[at + 1:]
        consumed = len(shape)  # the ellipsis took every axis not indexed explicitly
    key = key + (slice(None),) * (len(shape) - consumed)

    index, out_shape, advanced = [], [], None
    axis = 0
    for item in key:
        if item is None:
            out_shape.append(1)
            continue
        d = shape[axis]
        if isinstance(item, core.Tensor) and item.ndim == 0 and item.dtype.is_integer:
            item = int(item)
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            i = int(item)
            if not -d <= i < d:
                raise IndexError(f"tj.__getitem__: index {i} is out of range for axis {axis} of size {d} "
                                 f"(tensor of shape {shape})")
            i %= d
            index.append((i, i + 1, 1))
        elif isinstance(item, slice):
            start, stop, step = item.indices(d)
            index.append((start, stop, step))
            out_shape.append(len(range(start, stop, step)))
        elif _is_advanced(item):
            if advanced is not None:
                raise TypeError("tj.__getitem__: only one integer tensor/array index is supported; "
                                "use tj.gather for more")
            advanced = (len(out_shape), item)
            index.append((0, d, 1))
            out_shape.append(d)
        else:
            raise TypeError(f"tj.__getitem__: unsupported index {item!r} of type {type_name(item)}; "
                            "use ints, slices, None, ... or one integer tensor")
        axis += 1

    y = strided_slice(x, tuple(index))
    y = reshape(y, tuple(out_shape))
    if advanced is not None:
        position, item = advanced
        item = core.convert(item, op="__getitem__")
        if item._value.dtype.kind == "b":
            raise TypeError("tj.__getitem__: boolean mask indexing is not supported; "
                            "use tj.where to select values")
        y = gather(y, item, axis=position)
    return y


from .shape import reshape  # noqa: E402
