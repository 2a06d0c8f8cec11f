"""Ops written in primitives: they need no kernel or vjp of their own."""
import functools
import math
import re

import numpy as np

from . import core
from .errors import DTypeError, ShapeError, describe
from .ops.elementwise import (PUBLIC, abs, cast, equal, erf, exp, expm1, floordiv, is_inf, log, log1p, maximum,
                              minimum, sigmoid, sign, sqrt, tanh, where)
from .ops.reduce import reduce_max, reduce_sum
from .ops.rules import normalize_axes
from .ops.shape import expand_dims, reshape, transpose
from .tape import stop_gradient


def _public(fn):
    """Export a composite whose errors name it: a failing inner op's message
    'tj.maximum: ...' becomes 'tj.clip_by_value: tj.maximum: ...'."""
    name = fn.__name__

    @functools.wraps(fn)
    def op(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, IndexError) as exc:
            renamed = _renamed(exc, name)
            if renamed is None:
                raise
            raise renamed from None

    PUBLIC[name] = op
    return op


_COMPOSITE_PREFIX = re.compile(r"tj\.[\w.]+: (?=tj\.)")


def _renamed(exc, name):
    """exc with its message prefixed by 'tj.<name>: ', or None when it already
    names the op or is not one of tapejit's messages. An outer composite
    replaces an inner composite's prefix, so the message names the op the user
    called and the primitive that failed."""
    message = str(exc)
    if not message.startswith("tj.") or message.startswith((f"tj.{name}:", f"tj.nn.{name}:")):
        return None
    prefix = _COMPOSITE_PREFIX.match(message)
    try:
        return type(exc)(f"tj.{name}: {message[prefix.end() if prefix else 0:]}")
    except Exception:  # an exception type that takes other constructor arguments
        return None


@_public
def square(x, name=None):
    x = core.convert(x, op="square")
    return x * x


@_public
def reciprocal(x, name=None):
    return 1 / core.convert(x, op="reciprocal")


@_public
def rsqrt(x, name=None):
    return 1 / sqrt(x)


@_public
def squared_difference(x, y, name=None):
    d = core.convert_group((x, y), "squared_difference")
    diff = d[0] - d[1]
    return diff * diff


@_public
def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return minimum(maximum(t, clip_value_min), clip_value_max)


@_public
def reduce_mean(input_tensor, axis=None, keepdims=False, name=None):
    x = core.convert(input_tensor, op="reduce_mean")
    axes = normalize_axes("reduce_mean", axis, x._value.ndim)
    count = int(np.prod([x._value.shape[a] for a in axes]))
    total = reduce_sum(x, axes, keepdims)
    if x._value.dtype.kind == "f":
        return total / count
    # Integer means truncate toward zero, as TensorFlow's.
    return sign(total) * floordiv(abs(total), max(count, 1))


@_public
def reduce_variance(input_tensor, axis=None, keepdims=False, name=None):
    x = core.convert(input_tensor, op="reduce_variance")
    mean = reduce_mean(x, axis, keepdims=True)
    return reduce_mean(square(x - mean), axis, keepdims)


@_public
def reduce_std(input_tensor, axis=None, keepdims=False, name=None):
    return sqrt(reduce_variance(input_tensor, axis, keepdims))


@_public
def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    """log(sum(exp(x))) without overflow: the max is taken out first."""
    x = core.convert(input_tensor, op="reduce_logsumexp")
    axes = normalize_axes("reduce_logsumexp", axis, x._value.ndim)
    m = stop_gradient(reduce_max(x, axes, keepdims=True))
    m = where(is_inf(m), 0, m)  # all -inf (or +inf) rows: keep exp's argument finite
    out = log(reduce_sum(exp(x - m), axes, keepdims=True)) + m
    if not keepdims:
        out = reshape(out, tuple(d for i, d in enumerate(x._value.shape) if i not in axes))
    return out


# ----------------------------------------------------------- activations
@_public
def relu(features, name=None):
    """max(x, 0) with relu'(0) = 0 (TensorFlow's convention)."""
    x = core.convert(features, op="relu")
    return where(x > 0, x, 0)


@_public
def relu6(features, name=None):
    x = core.convert(features, op="relu6")
    return where(x > 0, where(x < 6, x, 6), 0)


@_public
def elu(features, name=None):
    x = core.convert(features, op="elu")
    # expm1 of min(x, 0): the unselected branch stays finite, so its zero
    # cotangent cannot become 0 * inf = NaN (the double-where pattern).
    return where(x > 0, x, expm1(minimum(x, 0)))


@_public
def selu(features, name=None):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x = core.convert(features, op="selu")
    return scale * where(x > 0, x, alpha * expm1(minimum(x, 0)))


@_public
def gelu(features, approximate=False, name=None):
    x = core.convert(features, op="gelu")
    if approximate:
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


@_public
def silu(features, beta=1.0, name=None):
    x = core.convert(features, op="silu")
    return x * sigmoid(beta * x)


@_public
def leaky_relu(features, alpha=0.2, name=None):
    x = core.convert(features, op="leaky_relu")
    return where(x > 0, x, alpha * x)


@_public
def softmax(logits, axis=-1, name=None):
    return exp(_log_softmax(core.convert(logits, op="softmax"), axis, "softmax"))


@_public
def log_softmax(logits, axis=-1, name=None):
    """(x - max) - log(sum(exp(x - max))), as TensorFlow's kernel: subtracting
    logsumexp whole would round log(sum) against a large max (float32 at +-1000
    gave log(1/2) to 4e-5 instead of 1e-7)."""
    return _log_softmax(core.convert(logits, op="log_softmax"), axis, "log_softmax")


def _log_softmax(x, axis, op):
    if x._value.dtype.kind != "f":
        raise DTypeError(f"tj.{op}: logits have {describe(x)}, but tj.{op} accepts only float32, float64")
    axes = normalize_axes(op, axis, x._value.ndim)
    m = stop_gradient(reduce_max(x, axes, keepdims=True))
    shifted = x - where(is_inf(m), 0, m)
    return shifted - log(reduce_sum(exp(shifted), axes, keepdims=True))


# --------------------------------------------------------------- losses
def _check_same_shape(op, labels, logits):
    if labels._value.shape != logits._value.shape:
        raise ShapeError(f"tj.nn.{op}: labels have {describe(labels)} but logits have {describe(logits)}; "
                         "they must have the same shape")


@_public
def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """max(x, 0) - x * z + log(1 + exp(-|x|)), TensorFlow's stable form; both
    kinks use the same condition so the gradient at x = 0 is exact."""
    labels, logits = core.convert_group((labels, logits), "sigmoid_cross_entropy_with_logits")
    _check_same_shape("sigmoid_cross_entropy_with_logits", labels, logits)
    cond = logits >= 0
    relu_logits = where(cond, logits, 0)
    neg_abs_logits = where(cond, -logits, logits)
    return relu_logits - logits * labels + log1p(exp(neg_abs_logits))


@_public
def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    labels, logits = core.convert_group((labels, logits), "softmax_cross_entropy_with_logits")
    _check_same_shape("softmax_cross_entropy_with_logits", labels, logits)
    return -reduce_sum(labels * log_softmax(logits, axis), axis)


@_public
def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    labels = core.convert(labels, op="sparse_softmax_cross_entropy_with_logits")
    logits = core.convert(logits, op="sparse_softmax_cross_entropy_with_logits")
    if labels._value.dtype.kind not in "iu":
        raise DTypeError(f"tj.nn.sparse_softmax_cross_entropy_with_logits: labels have {describe(labels)}; "
                         "they must be int32 or int64 class indices")
    if labels._value.shape != logits._value.shape[:-1]:
        raise ShapeError(f"tj.nn.sparse_softmax_cross_entropy_with_logits: labels have {describe(labels)} "
                         f"but logits have {describe(logits)}; labels must have logits' shape without "
                         "the last axis")
    classes = logits._value.shape[-1]
    if labels._value.size and (labels._value.min() < 0 or labels._value.max() >= classes):
        raise ValueError(f"tj.nn.sparse_softmax_cross_entropy_with_logits: labels must lie in [0, {classes})")
    if logits._value.dtype.kind != "f":
        raise DTypeError(f"tj.nn.sparse_softmax_cross_entropy_with_logits: logits have {describe(logits)}, "
                         "but it accepts only float32, float64")
    # log(sum(exp(shifted))) - shifted[label], as TensorFlow's fused kernel. The label's
    # logit is picked by a select, not a one-hot product: its gradient is then a select
    # too, and forward and backward take three passes over the logits when fused.
    m = stop_gradient(reduce_max(logits, -1, keepdims=True))
    shifted = logits - where(is_inf(m), 0, m)
    classes_iota = core.wrap(np.arange(classes, dtype=labels._value.dtype))
    picked = equal(expand_dims(labels, -1), classes_iota)
    return log(reduce_sum(exp(shifted), -1)) - reduce_sum(where(picked, shifted, 0), -1)


@_public
def l2_loss(t, name=None):
    t = core.convert(t, op="l2_loss")
    return reduce_sum(t * t) / 2


@_public
def one_hot(indices, depth, on_value=None, off_value=None, axis=-1, dtype=None, name=None):
    from .dtypes import numpy_dtype
    indices = core.convert(indices, op="one_hot")
    target = numpy_dtype(dtype) if dtype is not None else np.dtype(np.float32)
    classes = core.wrap(np.arange(int(depth), dtype=indices._value.dtype))
    hot = cast(equal(expand_dims(indices, -1), classes), target)
    if on_value is not None or off_value is not None:
        on = 1 if on_value is None else on_value
        off = 0 if off_value is None else off_value
        hot = cast(where(equal(hot, 1), on, off), target)
    if axis != -1:
        ndim = hot._value.ndim
        axis = axis % ndim
        perm = list(range(ndim - 1))
        perm.insert(axis, ndim - 1)
        hot = transpose(hot, tuple(perm))
    return hot

