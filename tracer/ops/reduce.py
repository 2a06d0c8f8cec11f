"""Reductions and scans: one block each (kernel, shape/dtype rule, vjp)."""
import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, register
from ..errors import DTypeError
from .elementwise import PUBLIC, cast, equal
from .rules import BOOL, NUMERIC, normalize_axes


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduction_rule(op, allowed, out_dtype=None):
    def rule(x, *, axes, keepdims):
        if allowed is not None and x.dtype not in allowed:
            raise DTypeError(f"tj.{op}: input_tensor has shape {x.shape} and dtype {x.dtype.name}, "
                             f"which tj.{op} does not accept")
        for a in axes:
            if not 0 <= a < len(x.shape):
                raise ValueError(f"tj.{op}: axis {a} is out of range for shape {x.shape}")
        return ShapedArray(_reduced_shape(x.shape, axes, keepdims), out_dtype or x.dtype)
    return rule


def _keepdims_ct(ct, x, axes, keepdims):
    """The cotangent of a reduction, reshaped so it broadcasts against x."""
    if not keepdims:
        ct = reshape(ct, _reduced_shape(x.shape, axes, True))
    return ct


def _sum_vjp(ct, x, out, *, axes, keepdims):
    return broadcast_to(_keepdims_ct(ct, x, axes, keepdims), x.shape)


def _extremum_vjp(ct, x, out, *, axes, keepdims):
    # Ties share the gradient equally (TensorFlow's convention).
    out = _keepdims_ct(out, x, axes, keepdims)
    hits = cast(equal(x, out), x.dtype)
    return _keepdims_ct(ct, x, axes, keepdims) * hits / reduce_sum(hits, axes, keepdims=True)


def _prod_vjp(ct, x, out, *, axes, keepdims):
    # The product of all other elements, by exclusive cumulative products from
    # both sides: exact where x has zeros (out / x is not).
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    perm = kept + axes
    moved = transpose(x, perm)
    count = 1  # the reduced size spelled out: -1 cannot be resolved when x is empty
    for a in axes:
        count *= x.shape[a]
    flat = reshape(moved, tuple(x.shape[i] for i in kept) + (count,))
    others = (cumprod(flat, axis=-1, exclusive=True)
              * cumprod(flat, axis=-1, exclusive=True, reverse=True))
    others = transpose(reshape(others, moved.shape), tuple(perm.index(i) for i in range(len(perm))))
    return _keepdims_ct(ct, x, axes, keepdims) * others


def reduction(name, impl, allowed, vjp, out_dtype=None):
    prim = register(Primitive(name, impl, _reduction_rule(name, allowed, out_dtype),
                              None if vjp is None else (vjp,)))

    def op(input_tensor, axis=None, keepdims=False, name=None):
        x = core.convert(input_tensor, op=prim.name)
        axes = normalize_axes(prim.name, axis, x._value.ndim)
        params = {"axes": axes, "keepdims": bool(keepdims)}
        if allowed is not None and x._value.dtype not in allowed:
            prim.shape_rule(core.aval(x), **params)  # NumPy would reduce bools; the rule names the op
        return core.apply(prim, (x,), params)

    op.__name__ = name
    PUBLIC[name] = op
    return prim, op


# ufunc.reduce directly: np.sum and friends add microseconds of Python on small arrays.
reduce_sum_p, reduce_sum = reduction(
    "reduce_sum", lambda x, *, axes, keepdims: np.add.reduce(x, axes, x.dtype, keepdims=keepdims),
    NUMERIC, _sum_vjp)
reduce_max_p, reduce_max = reduction(
    "reduce_max", lambda x, *, axes, keepdims: np.maximum.reduce(x, axes, keepdims=keepdims),
    NUMERIC, _extremum_vjp)
reduce_min_p, reduce_min = reduction(
    "reduce_min", lambda x, *, axes, keepdims: np.minimum.reduce(x, axes, keepdims=keepdims),
    NUMERIC, _extremum_vjp)
reduce_prod_p, reduce_prod = reduction(
    "reduce_prod", lambda x, *, axes, keepdims: np.multiply.reduce(x, axes, x.dtype, keepdims=keepdims),
    NUMERIC, _prod_vjp)
reduce_any_p, reduce_any = reduction(
    "reduce_any", lambda x, *, axes, keepdims: np.logical_or.reduce(x, axes, keepdims=keepdims), BOOL, None)
reduce_all_p, reduce_all = reduction(
    "reduce_all", lambda x, *, axes, keepdims: np.logical_and.reduce(x, axes, keepdims=keepdims), BOOL, None)


# ------------------------------------------------------------ argmax/argmin
def _arg_rule(op):
    def rule(x, *, axis, output_type):
        if x.dtype not in NUMERIC:
            raise DTypeError(f"tj.{op}: input has shape {x.shape} and dtype {x.dtype.name}; expected a number type")
        return ShapedArray(x.shape[:axis] + x.shape[axis + 1:], output_type)
    return rule


def _arg_reduction(name, impl):
    prim = register(Primitive(name, lambda x, *, axis, output_type: impl(x, axis).astype(output_type)[()],
                              _arg_rule(name)))

    def op(input, axis=None, output_type=np.int64, name=None):
        from ..dtypes import numpy_dtype
        x = core.convert(input, op=prim.name)
        (axis_,) = normalize_axes(prim.name, 0 if axis is None else axis, x._value.ndim)
        params = {"axis": axis_, "output_type": numpy_dtype(output_type)}
        if x._value.dtype not in NUMERIC:
            prim.shape_rule(core.aval(x), **params)
        return core.apply(prim, (x,), params)

    op.__name__ = name
    PUBLIC[name] = op
    return prim, op


argmax_p, argmax = _arg_reduction("argmax", np.argmax)
argmin_p, argmin = _arg_reduction("argmin", np.argmin)


# ------------------------------------------------------------------- scans
def _scan_impl(ufunc_accumulate, identity):
    def impl(x, *, axis, exclusive, reverse):
        if reverse:
            x = np.flip(x, axis)
        out = ufunc_accumulate(x, axis=axis, dtype=x.dtype)
        if exclusive:
            pad = [(0, 0)] * x.ndim
            pad[axis] = (1, 0)
            out = np.pad(out, pad, constant_values=identity)
            out = np.take(out, np.arange(x.shape[axis]), axis=axis)
        if reverse:
            out = np.flip(out, axis)
        return np.ascontiguousarray(out)
    return impl


def _scan_rule(op):
    def rule(x, *, axis, exclusive, reverse):
        if x.dtype not in NUMERIC:
            raise DTypeError(f"tj.{op}: x has shape {x.shape} and dtype {x.dtype.name}; expected a number type")
        return ShapedArray(x.shape, x.dtype)
    return rule


def _cumsum_vjp(ct, x, out, *, axis, exclusive, reverse):
    return cumsum(ct, axis, exclusive, not reverse)


def _cumprod_vjp(ct, x, out, *, axis, exclusive, reverse):
    # TensorFlow's rule; like TensorFlow's it divides by x (no zeros in x).
    return cumsum(out * ct, axis, exclusive, not reverse) / x


def _scan(name, accumulate, identity, vjp):
    prim = register(Primitive(name, _scan_impl(accumulate, identity), _scan_rule(name), (vjp,)))

    def op(x, axis=0, exclusive=False, reverse=False, name=None):
        x = core.convert(x, op=prim.name)
        (axis_,) = normalize_axes(prim.name, axis, x._value.ndim)
        params = {"axis": axis_, "exclusive": bool(exclusive), "reverse": bool(reverse)}
        if x._value.dtype not in NUMERIC:
            prim.shape_rule(core.aval(x), **params)
        return core.apply(prim, (x,), params)

    op.__name__ = name
    PUBLIC[name] = op
    return prim, op


cumsum_p, cumsum = _scan("cumsum", np.add.accumulate, 0, _cumsum_vjp)
cumprod_p, cumprod = _scan("cumprod", np.multiply.accumulate, 1, _cumprod_vjp)

from .shape import broadcast_to, reshape, transpose  # noqa: E402  (shape ops use reductions in their vjps)
