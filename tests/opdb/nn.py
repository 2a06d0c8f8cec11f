"""Composites: activations, softmax/log_softmax, the cross-entropies, l2_loss,
and the composite reductions (mean, variance, std, logsumexp)."""
import math

import numpy as np
import scipy.special

import tapejit as tj

from .core import (FLOATS, FORWARD, I32, I64, LARGE, NUMERIC, ErrorInput, OpInfo, Sample, away_from, make, ref64,
                   scaled, transposed, unary_samples)
from .reduce import _axis, reduce_samples


def int_forward(samples):
    def fn(dtype, rng):
        out = samples(dtype, rng)
        return out if dtype.kind == "f" else [Sample(s.args, s.kwargs, FORWARD) for s in out]
    return fn


def activation_errors(name):
    def errors():
        return [ErrorInput((np.array([True, False]),), {}, TypeError, rf"tj\.{name}: .*bool")]
    return errors


def activation(name, ref, primitives, domain=None, dtypes=FLOATS, op=None, kwargs=None, label=None, **kw):
    def samples(dtype, rng):
        return unary_samples(dtype, rng, kwargs=kwargs)
    return OpInfo(name=label or name, op=op or getattr(tj.nn, name), ref=ref, samples=int_forward(samples),
                  dtypes=dtypes, domain=domain, primitives=primitives, error_inputs=activation_errors(name),
                  error_name=f"tj.{name}", **kw)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _gelu(x, approximate=False):
    if approximate:
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2)))


def _relu_ref(x):
    return np.where(x > 0, x, np.zeros_like(x))


def _relu6_ref(x):
    return np.clip(x, np.zeros_like(x), np.full_like(x, 6))


# --------------------------------------------------------- softmax family
SOFTMAX = [((5,), {}), ((2, 3), {}), ((2, 3), {"axis": 0}), ((2, 3, 2), {"axis": 1}), ((3, 1), {"axis": -1}),
           (transposed(3, 2), {"axis": -1}), ((0, 3), {}, FORWARD), ((7, 9), {"axis": 1}, LARGE)]


def softmax_samples(dtype, rng):
    out = []
    for spec in SOFTMAX:
        shape, kw = spec[:2]
        out.append(Sample((make(shape, dtype, rng),), dict(kw), spec[2] if len(spec) > 2 else "all"))
    big = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]], dtype)  # no overflow
    out.append(Sample((big,), {}, FORWARD))
    return out


def softmax_errors(name):
    def errors():
        return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 2}, ValueError,
                           rf"tj\.{name}: .*axis 2 is out of range for a tensor of rank 2"),
                ErrorInput((np.ones((2, 3), np.int32),), {}, TypeError, rf"tj\.{name}: .*dtype int32")]
    return errors


# ------------------------------------------------------------ cross-entropy
def sigmoid_ce_samples(dtype, rng):
    out = []
    for shape in [(), (5,), (2, 3), transposed(3, 2)]:
        labels = make(shape, dtype, rng, low=0.0, high=1.0)
        out.append(Sample((labels, make(shape, dtype, rng, low=-3.0, high=3.0))))
    out.append(Sample((make((0, 2), dtype, rng), make((0, 2), dtype, rng)), {}, FORWARD))
    big = np.array([1000.0, -1000.0, 1000.0, -1000.0], dtype)
    out.append(Sample((np.array([0.0, 1.0, 1.0, 0.3], dtype), big), {}, FORWARD))
    out.append(Sample((make((7, 9), dtype, rng, low=0.0, high=1.0), make((7, 9), dtype, rng)), {}, LARGE))
    return out


@ref64
def sigmoid_ce_ref(labels, logits):
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def sigmoid_ce_errors():
    return [ErrorInput((np.ones((2, 3), np.float32), np.ones((3,), np.float32)), {}, ValueError,
                       r"tj\.nn\.sigmoid_cross_entropy_with_logits: labels have shape \(2, 3\) "
                       r"and dtype float32 but "
                       r"logits have shape \(3,\)"),
            ErrorInput((np.ones((3,), np.float64), np.ones((3,), np.float32)), {}, TypeError,
                       r"tj\.sigmoid_cross_entropy_with_logits: .*(float32.*float64|float64.*float32)")]


def softmax_ce_samples(dtype, rng):
    def probs(shape, axis=-1):
        p = make(shape, dtype, rng, low=0.1, high=1.0)
        return (p / p.sum(axis, keepdims=True)).astype(dtype)
    out = [Sample((probs((3,)), make((3,), dtype, rng))),
           Sample((probs((2, 3)), make((2, 3), dtype, rng))),
           Sample((probs((2, 3), 0), make((2, 3), dtype, rng)), {"axis": 0}),
           Sample((probs((2, 2, 3)), make((2, 2, 3), dtype, rng))),
           Sample((probs((3, 2)).T.copy().T, make(transposed(3, 2), dtype, rng))),
           Sample((np.zeros((0, 3), dtype), make((0, 3), dtype, rng)), {}, FORWARD),
           Sample((np.array([[0.0, 1.0, 0.0]], dtype), np.array([[1000.0, -1000.0, 0.0]], dtype)), {}, FORWARD),
           Sample((probs((7, 9)), make((7, 9), dtype, rng)), {}, LARGE)]
    return out


@ref64
def softmax_ce_ref(labels, logits, axis=-1):
    return -np.sum(labels * scipy.special.log_softmax(logits, axis), axis)


def softmax_ce_errors():
    return [ErrorInput((np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)), {}, ValueError,
                       r"tj\.nn\.softmax_cross_entropy_with_logits: labels have shape \(2, 3\) "
                       r"and dtype float32 but "
                       r"logits have shape \(2, 4\)")]


def sparse_ce_samples(dtype, rng):
    def labels(shape, classes, index_dtype=I32):
        return rng.integers(0, classes, shape).astype(index_dtype)
    return [Sample((labels((), 4), make((4,), dtype, rng))),
            Sample((labels((3,), 4, I64), make((3, 4), dtype, rng))),
            Sample((labels((2, 2), 3), make((2, 2, 3), dtype, rng))),
            Sample((labels((2,), 3), make(transposed(2, 3), dtype, rng))),
            Sample((labels((0,), 3), make((0, 3), dtype, rng)), {}, FORWARD),
            Sample((np.array([0, 1], np.int32), np.array([[1000.0, -1000.0], [1000.0, -1000.0]], dtype)), {},
                   FORWARD),
            Sample((labels((7,), 9), make((7, 9), dtype, rng)), {}, LARGE)]


def sparse_ce_ref(labels, logits):
    wide = logits.astype(np.float64)
    logp = scipy.special.log_softmax(wide, -1)
    return -np.take_along_axis(logp, labels[..., None].astype(np.int64), -1)[..., 0].astype(logits.dtype)


def sparse_ce_errors():
    name = r"tj\.nn\.sparse_softmax_cross_entropy_with_logits"
    logits = np.ones((2, 3), np.float32)
    return [ErrorInput((np.array([0.0, 1.0], np.float32), logits), {}, TypeError,
                       rf"{name}: labels have shape \(2,\) and dtype float32; they must be int32 or int64"),
            ErrorInput((np.array([0, 1, 2], np.int32), logits), {}, ValueError,
                       rf"{name}: labels have shape \(3,\) and dtype int32 but logits have shape \(2, 3\)"),
            ErrorInput((np.array([0, 3], np.int32), logits), {}, ValueError,
                       rf"{name}: labels must lie in \[0, 3\)")]


# --------------------------------------------------------- composite reductions
def reduce_mean_ref(x, axis=None, keepdims=False):
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return np.asarray(np.mean(x.astype(np.float64), axis=_axis(axis), keepdims=keepdims)).astype(x.dtype)
    total = np.sum(x.astype(np.int64), axis=_axis(axis), keepdims=keepdims)
    count = x.size // max(np.asarray(total).size, 1) if x.size else 1
    return np.asarray(np.trunc(total / count)).astype(x.dtype)  # truncation toward zero, as TensorFlow


def reduce_mean_samples(dtype, rng):
    out = reduce_samples(identity=False)(dtype, rng)
    if dtype.kind != "f":  # negative totals: truncation toward zero, not floor
        out.append(Sample((np.array([[-5, 2, 0], [7, -1, -1]], dtype),), {"axis": 1}, FORWARD))
    return out


def variance_ref(x, axis=None, keepdims=False):
    return np.var(x, axis=_axis(axis), keepdims=keepdims)


def std_samples(dtype, rng):
    # std'(x) is infinite where the variance is 0: reduce over more than one element.
    out = []
    for s in reduce_samples(identity=False)(dtype, rng):
        x = s.args[0]
        axis = s.kwargs.get("axis")
        axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
        count = int(np.prod([x.shape[a] for a in axes]))
        out.append(s if count > 1 or s.use == FORWARD else Sample(s.args, s.kwargs, FORWARD))
    return out


def logsumexp_samples(dtype, rng):
    out = reduce_samples(identity=False)(dtype, rng)
    x = np.array([[1000.0, 999.0, -np.inf], [-np.inf, -np.inf, -np.inf], [-1000.0, -1000.0, 0.0]], dtype)
    out += [Sample((x,), {"axis": 1}, FORWARD), Sample((x,), {"axis": 0, "keepdims": True}, FORWARD)]
    return out


@ref64
def logsumexp_ref(x, axis=None, keepdims=False):
    axis = _axis(axis)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=tuple(range(x.ndim)) if axis is None else axis)


def composite_reduce_errors(name):
    def errors():
        x = np.ones((2, 3), np.float32)
        return [ErrorInput((x,), {"axis": 2}, ValueError,
                           rf"tj\.{name}: .*axis 2 is out of range for a tensor of rank 2"),
                ErrorInput((np.ones((2, 3), bool),), {}, TypeError, rf"tj\.{name}: .*dtype bool")]
    return errors


def l2_loss_samples(dtype, rng):
    return unary_samples(dtype, rng)


OPS = [
    activation("relu", _relu_ref, ("greater", "select"), domain=away_from(0.0), dtypes=NUMERIC),
    activation("relu6", _relu6_ref, ("greater", "less", "select"), domain=scaled(4.0, away_from(0.0, 6.0)),
               dtypes=NUMERIC),
    activation("elu", ref64(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
               ("greater", "minimum", "expm1", "select"), domain=away_from(0.0)),
    activation("selu", ref64(lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))),
               ("greater", "minimum", "expm1", "mul", "select"), domain=away_from(0.0)),
    activation("gelu", ref64(_gelu), ("mul", "erf", "add")),
    activation("gelu", ref64(lambda x, approximate: _gelu(x, approximate)), ("mul", "add", "tanh"),
               kwargs={"approximate": True}, label="gelu_approximate"),
    activation("silu", ref64(lambda x: x * scipy.special.expit(x)), ("mul", "sigmoid")),
    activation("leaky_relu", ref64(lambda x, alpha=0.2: np.where(x > 0, x, alpha * x)), ("greater", "mul", "select"),
               domain=away_from(0.0)),
    activation("leaky_relu", ref64(lambda x, alpha: np.where(x > 0, x, alpha * x)), ("greater", "mul", "select"),
               domain=away_from(0.0), kwargs={"alpha": 0.01}, label="leaky_relu_alpha"),
    OpInfo(name="softmax", op=tj.nn.softmax, ref=ref64(lambda x, axis=-1: scipy.special.softmax(x, axis)),
           samples=softmax_samples,
           primitives=("reduce_max", "stop_gradient", "is_inf", "select", "sub", "exp", "reduce_sum", "log", "add"),
           error_inputs=softmax_errors("softmax")),
    OpInfo(name="log_softmax", op=tj.nn.log_softmax,
           ref=ref64(lambda x, axis=-1: scipy.special.log_softmax(x, axis)),
           samples=softmax_samples,
           primitives=("reduce_max", "stop_gradient", "is_inf", "select", "sub", "exp", "reduce_sum", "log", "add"),
           error_inputs=softmax_errors("log_softmax")),
    OpInfo(name="sigmoid_cross_entropy_with_logits", op=tj.nn.sigmoid_cross_entropy_with_logits, ref=sigmoid_ce_ref,
           samples=sigmoid_ce_samples,
           primitives=("greater_equal", "select", "neg", "mul", "sub", "exp", "log1p", "add"),
           error_inputs=sigmoid_ce_errors),
    OpInfo(name="softmax_cross_entropy_with_logits", op=tj.nn.softmax_cross_entropy_with_logits, ref=softmax_ce_ref,
           samples=softmax_ce_samples,
           primitives=("reduce_max", "stop_gradient", "is_inf", "select", "exp", "log", "sub", "mul", "reduce_sum",
                       "neg"),
           error_inputs=softmax_ce_errors),
    OpInfo(name="sparse_softmax_cross_entropy_with_logits", op=tj.nn.sparse_softmax_cross_entropy_with_logits,
           ref=sparse_ce_ref, samples=sparse_ce_samples,
           primitives=("equal", "reshape", "reduce_max", "stop_gradient", "is_inf", "select", "exp", "log",
                       "sub", "reduce_sum"),
           error_inputs=sparse_ce_errors),
    OpInfo(name="l2_loss", op=tj.nn.l2_loss, ref=ref64(lambda x: np.sum(x * x) / 2), samples=l2_loss_samples,
           primitives=("mul", "reduce_sum", "div"),
           error_inputs=lambda: [ErrorInput((np.array([True]),), {}, TypeError, r"tj\.l2_loss: .*dtype bool")]),
    OpInfo(name="reduce_mean", op=tj.reduce_mean, ref=reduce_mean_ref, samples=reduce_mean_samples, dtypes=NUMERIC,
           primitives=("reduce_sum", "div", "sign", "abs", "floordiv", "mul"),
           error_inputs=composite_reduce_errors("reduce_mean")),
    OpInfo(name="reduce_variance", op=tj.reduce_variance, ref=ref64(variance_ref),
           samples=reduce_samples(identity=False),
           primitives=("reduce_sum", "div", "sub", "mul"), error_inputs=composite_reduce_errors("reduce_variance")),
    OpInfo(name="reduce_std", op=tj.reduce_std, ref=ref64(lambda x, axis=None, keepdims=False:
                                                         np.sqrt(variance_ref(x, axis, keepdims))),
           samples=std_samples, primitives=("reduce_sum", "div", "sub", "mul", "sqrt"),
           error_inputs=composite_reduce_errors("reduce_std")),
    OpInfo(name="reduce_logsumexp", op=tj.reduce_logsumexp, ref=logsumexp_ref, samples=logsumexp_samples,
           primitives=("reduce_max", "stop_gradient", "is_inf", "select", "sub", "exp", "reduce_sum", "log", "add",
                       "reshape"),
           error_inputs=composite_reduce_errors("reduce_logsumexp")),
]

