"""Reductions (sum, max, min, prod, any, all), argmax/argmin and scans (cumsum, cumprod)."""
import numpy as np

import tapejit as tj

from .core import (BOOL, FORWARD, LARGE, NUMERIC, ErrorInput, OpInfo, Sample, make, nonzero,
                   transposed)

# (shape, kwargs): axis None / int / negative / tuple / list, keepdims, empty axis tuple.
REDUCE_CASES = [
    ((), {}), ((), {"axis": None, "keepdims": True}), ((5,), {}), ((5,), {"axis": 0}),
    ((2, 3), {"axis": 1}), ((2, 3), {"axis": -1, "keepdims": True}), ((2, 3), {"keepdims": True}),
    ((2, 3, 4), {"axis": (0, 2)}), ((2, 3, 2), {"axis": [-1, 0], "keepdims": True}),
    ((3, 1), {"axis": 1}), ((2, 3), {"axis": ()}), (transposed(3, 2), {"axis": 0}),
]
REDUCE_FORWARD = [((0, 3), {"axis": 1}), ((2, 0), {"axis": 0, "keepdims": True})]
REDUCE_EMPTY_AXIS = [((0, 3), {"axis": 0}), ((0,), {})]  # reductions over no elements: identities
REDUCE_LARGE = [((7, 9), {"axis": 1}), ((7, 9), {})]


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def reduce_ref(fn):
    def ref(x, axis=None, keepdims=False):
        x = np.asarray(x)
        return np.asarray(fn(x, axis=_axis(axis), keepdims=keepdims)).astype(x.dtype)
    return ref


def reduce_samples(identity=True, nan=False):
    def samples(dtype, rng):
        out = [Sample((make(s, dtype, rng),), dict(kw)) for s, kw in REDUCE_CASES]
        out += [Sample((make(s, dtype, rng),), dict(kw), FORWARD) for s, kw in REDUCE_FORWARD]
        if identity:
            out += [Sample((make(s, dtype, rng),), dict(kw), FORWARD) for s, kw in REDUCE_EMPTY_AXIS]
        out += [Sample((make(s, dtype, rng),), dict(kw), LARGE) for s, kw in REDUCE_LARGE]
        if nan and dtype.kind == "f":
            x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], dtype)
            out += [Sample((x,), {"axis": 1}, FORWARD), Sample((x,), {}, FORWARD)]
        if dtype.kind != "f":
            out = [Sample(s.args, s.kwargs, FORWARD) for s in out]
        return out
    return samples


def reduce_errors(name, accepts="numeric"):
    def errors():
        x = np.ones((2, 3), np.float32) if accepts == "numeric" else np.ones((2, 3), bool)
        bad = np.ones((2, 3), bool) if accepts == "numeric" else np.ones((2, 3), np.float32)
        return [
            ErrorInput((x,), {"axis": 2}, ValueError, rf"tj\.{name}: axis 2 is out of range for a tensor of rank 2"),
            ErrorInput((x,), {"axis": -3}, ValueError, rf"tj\.{name}: axis -3 is out of range"),
            ErrorInput((x,), {"axis": (0, -2)}, ValueError, rf"tj\.{name}: axis \(0, -2\) repeats an axis"),
            ErrorInput((bad,), {}, TypeError, rf"tj\.{name}: .*shape \(2, 3\) and dtype {bad.dtype.name}"),
        ]
    return errors


def reduction(name, fn, dtypes=NUMERIC, grad=True, **kw):
    samples = kw.pop("samples", None) or reduce_samples(**kw.pop("sample_kw", {}))
    return OpInfo(name=name, op=getattr(tj, name), ref=reduce_ref(fn), samples=samples, dtypes=dtypes,
                  supports_grad=grad, supports_gradgrad=grad, primitives=kw.pop("primitives", (name,)),
                  error_inputs=reduce_errors(name, "bool" if dtypes == (BOOL,) else "numeric"), **kw)


def bool_reduce_samples(dtype, rng):
    out = [Sample((make(s, BOOL, rng),), dict(kw), FORWARD) for s, kw in REDUCE_CASES + REDUCE_FORWARD]
    out += [Sample((make(s, BOOL, rng),), dict(kw), FORWARD) for s, kw in REDUCE_EMPTY_AXIS]
    out.append(Sample((np.ones((2, 3), bool),), {"axis": 1}, FORWARD))
    out.append(Sample((np.zeros((2, 3), bool),), {"axis": 0}, FORWARD))
    return out


# ------------------------------------------------------------ argmax/argmin
def arg_samples(dtype, rng):
    cases = [((5,), {}), ((2, 3), {"axis": 1}), ((2, 3), {"axis": -1, "output_type": tj.int32}),
             ((2, 3, 4), {"axis": 1, "output_type": np.int64}), ((3, 1), {"axis": 1}),
             (transposed(3, 2), {"axis": 0}), ((0, 3), {"axis": 1})]
    out = [Sample((make(s, dtype, rng),), dict(kw), FORWARD) for s, kw in cases]
    ties = np.array([[1, 3, 3], [2, 2, 0]], dtype)  # ties pick the first index
    out.append(Sample((ties,), {"axis": 1}, FORWARD))
    return out


def arg_ref(fn):
    def ref(x, axis=None, output_type=np.int64):
        target = np.dtype(getattr(output_type, "_np", output_type))
        return np.asarray(fn(x, axis=0 if axis is None else axis)).astype(target)
    return ref


def arg_errors(name):
    def errors():
        return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 2}, ValueError,
                           rf"tj\.{name}: axis 2 is out of range for a tensor of rank 2"),
                ErrorInput((np.ones((2, 3), bool),), {}, TypeError, rf"tj\.{name}: .*shape \(2, 3\) and dtype bool")]
    return errors


# ------------------------------------------------------------------- scans
SCAN_CASES = [((5,), {}), ((2, 3), {"axis": 1}), ((2, 3), {"axis": -1, "exclusive": True}),
              ((2, 3), {"axis": 0, "reverse": True}), ((3, 4), {"axis": 1, "exclusive": True, "reverse": True}),
              ((3, 1), {"axis": 0, "exclusive": True}), ((1,), {"exclusive": True}),
              (transposed(3, 2), {"axis": 1, "reverse": True})]


def scan_samples(dtype, rng):
    out = [Sample((make(s, dtype, rng),), dict(kw)) for s, kw in SCAN_CASES]
    out += [Sample((make((0, 3), dtype, rng),), {"axis": 0}, FORWARD),
            Sample((make((2, 0), dtype, rng),), {"axis": 1, "exclusive": True}, FORWARD)]
    out += [Sample((make((7, 9), dtype, rng),), {"axis": 1, "exclusive": True}, LARGE)]
    if dtype.kind != "f":
        out = [Sample(s.args, s.kwargs, FORWARD) for s in out]
    return out


def scan_ref(accumulate, identity):
    def ref(x, axis=0, exclusive=False, reverse=False):
        x = np.moveaxis(np.asarray(x), axis, -1)
        if reverse:
            x = x[..., ::-1]
        out = accumulate(x, axis=-1, dtype=x.dtype)
        if exclusive:
            shifted = np.full_like(out, identity)
            shifted[..., 1:] = out[..., :-1]
            out = shifted
        if reverse:
            out = out[..., ::-1]
        return np.moveaxis(out, -1, axis)
    return ref


def scan_errors(name):
    def errors():
        return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 2}, ValueError,
                           rf"tj\.{name}: axis 2 is out of range for a tensor of rank 2"),
                ErrorInput((np.ones((2, 3), bool),), {}, TypeError, rf"tj\.{name}: .*shape \(2, 3\) and dtype bool")]
    return errors


OPS = [
    reduction("reduce_sum", np.sum),
    reduction("reduce_max", np.max, sample_kw=dict(identity=False, nan=True)),
    reduction("reduce_min", np.min, sample_kw=dict(identity=False, nan=True)),
    reduction("reduce_prod", np.prod, primitives=("reduce_prod", "transpose", "reshape", "cumprod")),
    reduction("reduce_any", np.any, dtypes=(BOOL,), grad=False, samples=bool_reduce_samples),
    reduction("reduce_all", np.all, dtypes=(BOOL,), grad=False, samples=bool_reduce_samples),
    OpInfo(name="argmax", op=tj.argmax, ref=arg_ref(np.argmax), samples=arg_samples, dtypes=NUMERIC,
           supports_grad=False, supports_gradgrad=False, primitives=("argmax",), error_inputs=arg_errors("argmax")),
    OpInfo(name="argmin", op=tj.argmin, ref=arg_ref(np.argmin), samples=arg_samples, dtypes=NUMERIC,
           supports_grad=False, supports_gradgrad=False, primitives=("argmin",), error_inputs=arg_errors("argmin")),
    OpInfo(name="cumsum", op=tj.cumsum, ref=scan_ref(np.add.accumulate, 0), samples=scan_samples, dtypes=NUMERIC,
           primitives=("cumsum",), error_inputs=scan_errors("cumsum")),
    # cumprod's gradient divides by x (TensorFlow's rule): samples stay away from zero.
    OpInfo(name="cumprod", op=tj.cumprod, ref=scan_ref(np.multiply.accumulate, 1), samples=scan_samples,
           dtypes=NUMERIC, domain=nonzero, primitives=("cumprod",), error_inputs=scan_errors("cumprod")),
]

