"""Elementwise primitives: one block each (kernel, shape/dtype rule, vjp)."""
import math

import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, register
from ..errors import DTypeError
from .rules import (ANY, BOOL, FLOATS, NUMERIC, broadcast_shapes, check_dtypes, elementwise_rule,
                    true_divide_dtype)

PUBLIC = {}  # public name -> function; the facade exports these


def _public(name, fn):
    fn.__name__ = name
    PUBLIC[name] = fn
    return fn


def unary(name, impl, allowed, vjp=None, public=None, out_dtype=None):
    public = public or name
    prim = register(Primitive(name, impl, elementwise_rule(public, allowed, out_dtype),
                              None if vjp is None else (vjp,), public))
    return prim, _public(public, core.unary_op(prim, allowed or _ANY_DTYPE))


def binary(name, impl, allowed, vjp=None, public=None, out_dtype=None):
    public = public or name
    prim = register(Primitive(name, impl, elementwise_rule(public, allowed, out_dtype), vjp, public))
    return prim, _public(public, core.binary_op(prim, allowed or _ANY_DTYPE))


class _AnyDType:
    def __contains__(self, item):
        return True


_ANY_DTYPE = _AnyDType()


# ---------------------------------------------------------------- arithmetic
add_p, add = binary("add", np.add, NUMERIC,
                    vjp=(lambda ct, x, y, out: ct, lambda ct, x, y, out: ct))
sub_p, subtract = binary("sub", np.subtract, NUMERIC, public="subtract",
                         vjp=(lambda ct, x, y, out: ct, lambda ct, x, y, out: -ct))
mul_p, multiply = binary("mul", np.multiply, NUMERIC, public="multiply",
                         vjp=(lambda ct, x, y, out: ct * y, lambda ct, x, y, out: ct * x))
div_p, divide = binary("div", np.true_divide, NUMERIC, public="divide", out_dtype=true_divide_dtype,
                       vjp=(lambda ct, x, y, out: ct / y, lambda ct, x, y, out: -ct * out / y))
# d/dy x**y = out * log(x); log(where(x > 0, x, 1)) is 0 where x <= 0 without a
# NaN or -inf that a later 0 * could turn into NaN (the double-where pattern).
pow_p, pow = binary("pow", np.power, NUMERIC,
                    vjp=(lambda ct, x, y, out: ct * y * x ** (y - 1),
                         lambda ct, x, y, out: ct * out * log(where(x > 0, x, 1))))
# Ties send the whole gradient to x (TensorFlow's convention).
maximum_p, maximum = binary("maximum", np.maximum, NUMERIC,
                            vjp=(lambda ct, x, y, out: where(x >= y, ct, 0),
                                 lambda ct, x, y, out: where(x >= y, 0, ct)))
minimum_p, minimum = binary("minimum", np.minimum, NUMERIC,
                            vjp=(lambda ct, x, y, out: where(x <= y, ct, 0),
                                 lambda ct, x, y, out: where(x <= y, 0, ct)))
floordiv_p, floordiv = binary("floordiv", np.floor_divide, NUMERIC, vjp=None)
floormod_p, floormod = binary("floormod", np.mod, NUMERIC,
                              vjp=(lambda ct, x, y, out: ct, lambda ct, x, y, out: -ct * floordiv(x, y)))

neg_p, negative = unary("neg", np.negative, NUMERIC, public="negative", vjp=lambda ct, x, out: -ct)
abs_p, abs = unary("abs", np.abs, NUMERIC, vjp=lambda ct, x, out: ct * sign(x))
sign_p, sign = unary("sign", np.sign, NUMERIC, vjp=lambda ct, x, out: zeros_like(x))
# TensorFlow declares floor, ceil and round to have no gradient.
floor_p, floor = unary("floor", np.floor, FLOATS)
ceil_p, ceil = unary("ceil", np.ceil, FLOATS)
round_p, round = unary("round", np.round, FLOATS)  # half to even, as tf.round

# ----------------------------------------------------------- transcendentals
exp_p, exp = unary("exp", np.exp, FLOATS, vjp=lambda ct, x, out: ct * out)
log_p, log = unary("log", np.log, FLOATS, vjp=lambda ct, x, out: ct / x)
log1p_p, log1p = unary("log1p", np.log1p, FLOATS, vjp=lambda ct, x, out: ct / (x + 1))
expm1_p, expm1 = unary("expm1", np.expm1, FLOATS, vjp=lambda ct, x, out: ct * exp(x))
# d sqrt(x) = 0.5 / sqrt(x): +inf at 0, as TensorFlow.
sqrt_p, sqrt = unary("sqrt", np.sqrt, FLOATS, vjp=lambda ct, x, out: ct * 0.5 / out)
sin_p, sin = unary("sin", np.sin, FLOATS, vjp=lambda ct, x, out: ct * cos(x))
cos_p, cos = unary("cos", np.cos, FLOATS, vjp=lambda ct, x, out: -ct * sin(x))
tan_p, tan = unary("tan", np.tan, FLOATS, vjp=lambda ct, x, out: ct * (1 + out * out))
tanh_p, tanh = unary("tanh", np.tanh, FLOATS, vjp=lambda ct, x, out: tanh_grad(out, ct))


def _sigmoid(x):
    # exp(-log(1 + exp(-x))): no overflow warning and full relative accuracy at +-1000.
    return np.exp(-np.logaddexp(0, -x))


sigmoid_p, sigmoid = unary("sigmoid", _sigmoid, FLOATS, vjp=lambda ct, x, out: sigmoid_grad(out, ct))

# The backward kernels of tanh and sigmoid as primitives of their own (as
# TensorFlow's TanhGrad and SigmoidGrad): one op on the backward pass instead
# of three, and still differentiable, so higher orders work.
tanh_grad_p, tanh_grad = binary(
    "tanh_grad", lambda y, ct: ct - ct * y * y, FLOATS,
    vjp=(lambda g, y, ct, out: -2 * g * ct * y, lambda g, y, ct, out: tanh_grad(y, g)))
sigmoid_grad_p, sigmoid_grad = binary(
    "sigmoid_grad", lambda y, ct: ct * y * (1 - y), FLOATS,
    vjp=(lambda g, y, ct, out: g * ct * (1 - 2 * y), lambda g, y, ct, out: sigmoid_grad(y, g)))
del PUBLIC["tanh_grad"], PUBLIC["sigmoid_grad"]


def _softplus(x):
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


# A primitive, not max(x, 0) + log1p(exp(-|x|)): that composite's kinks give
# softplus'(0) = 1 instead of 0.5.
softplus_p, softplus = unary("softplus", _softplus, FLOATS, vjp=lambda ct, x, out: ct * sigmoid(x))

_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    return np.asarray(_erf_scalar(x), dtype=x.dtype)[()]


erf_p, erf = unary("erf", _erf, FLOATS,
                   vjp=lambda ct, x, out: ct * (2 / math.sqrt(math.pi)) * exp(-(x * x)))

# -------------------------------------------- comparisons and logic (no vjp)
_BOOL_OUT = np.dtype(np.bool_)
equal_p, equal = binary("equal", np.equal, ANY, out_dtype=_BOOL_OUT)
not_equal_p, not_equal = binary("not_equal", np.not_equal, ANY, out_dtype=_BOOL_OUT)
less_p, less = binary("less", np.less, NUMERIC, out_dtype=_BOOL_OUT)
less_equal_p, less_equal = binary("less_equal", np.less_equal, NUMERIC, out_dtype=_BOOL_OUT)
greater_p, greater = binary("greater", np.greater, NUMERIC, out_dtype=_BOOL_OUT)
greater_equal_p, greater_equal = binary("greater_equal", np.greater_equal, NUMERIC, out_dtype=_BOOL_OUT)
logical_and_p, logical_and = binary("logical_and", np.logical_and, BOOL)
logical_or_p, logical_or = binary("logical_or", np.logical_or, BOOL)
logical_xor_p, logical_xor = binary("logical_xor", np.logical_xor, BOOL)
logical_not_p, logical_not = unary("logical_not", np.logical_not, BOOL)
is_nan_p, is_nan = unary("is_nan", np.isnan, FLOATS, out_dtype=_BOOL_OUT)
is_inf_p, is_inf = unary("is_inf", np.isinf, FLOATS, out_dtype=_BOOL_OUT)
is_finite_p, is_finite = unary("is_finite", np.isfinite, FLOATS, out_dtype=_BOOL_OUT)


# ------------------------------------------------------------------- select
def _select_rule(c, x, y):
    if c.dtype != np.bool_:
        raise DTypeError(f"tj.where: condition has shape {c.shape} and dtype {c.dtype.name}; it must be bool")
    dtype = check_dtypes("where", (x, y), None, ("x", "y"))
    return ShapedArray(broadcast_shapes("where", (c, x, y), ("condition", "x", "y")), dtype)


select_p = register(Primitive(
    "select", np.where, _select_rule, public_name="where",
    vjp=(None,
         lambda ct, c, x, y, out: where(c, ct, 0),
         lambda ct, c, x, y, out: where(c, 0, ct))))


def where(condition, x=None, y=None, name=None):
    """Elementwise select with NumPy broadcasting (tf.where with x and y)."""
    if x is None or y is None:
        raise TypeError("tj.where: pass both x and y; the one-argument form (indices of true "
                        "elements, a data-dependent shape) is not supported")
    c = core.convert(condition, op="where")
    x, y = core.convert_group((x, y), "where")
    if c._value.dtype.kind != "b":  # np.where would take any condition
        _select_rule(core.aval(c), core.aval(x), core.aval(y))
    return core.apply(select_p, (c, x, y))


PUBLIC["where"] = where


# -------------------------------------------------------------------- cast
def _cast_rule(x, *, dtype):
    return ShapedArray(x.shape, dtype)


def _cast_vjp(ct, x, out, *, dtype):
    if x._value.dtype.kind == "f" and dtype.kind == "f":
        return cast(ct, x._value.dtype)
    return None


cast_p = register(Primitive("cast", lambda x, *, dtype: np.asarray(x).astype(dtype)[()],
                            _cast_rule, vjp=(_cast_vjp,)))


def cast(x, dtype, name=None):
    """Change the dtype (float -> int truncates toward zero, as TensorFlow)."""
    from ..dtypes import numpy_dtype
    try:
        target = numpy_dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"tj.cast: cannot cast to {dtype!r}: {exc}") from None
    x = core.convert(x, op="cast")
    if x._value.dtype == target:
        return x
    return core.apply(cast_p, (x,), {"dtype": target})


PUBLIC["cast"] = cast


def _like(x, dtype, fill, op):
    from ..dtypes import numpy_dtype
    x = core.convert(x, op=op)
    target = x._value.dtype if dtype is None else numpy_dtype(dtype)
    return core.wrap(np.full(x._value.shape, fill, target))


def zeros_like(x, dtype=None, name=None):
    """A constant: zeros_like has no gradient (as TensorFlow)."""
    return _like(x, dtype, 0, "zeros_like")


def ones_like(x, dtype=None, name=None):
    return _like(x, dtype, 1, "ones_like")


PUBLIC["zeros_like"] = zeros_like
PUBLIC["ones_like"] = ones_like
