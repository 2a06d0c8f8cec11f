"""Elementwise ops: arithmetic, transcendentals, rounding, comparisons, logic,
where, cast, clip_by_value, identity, stop_gradient."""
import numpy as np
import scipy.special

import tapejit as tj

from .core import (BOOL, F32, F64, FLOATS, FORWARD, I32, I64, LARGE, NUMERIC, ErrorInput, OpInfo,
                   Sample, away_from, binary_samples, make, nonzero, positive, ref64, scaled, transposed,
                   unary_samples)

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-30]


def unary_float_samples(**kw):
    def samples(dtype, rng):
        out = unary_samples(dtype, rng, **kw)
        out.append(Sample((np.array(SPECIALS, dtype),), {}, FORWARD))
        return out
    return samples


INNER = r"(tj\.\w+: )?"  # a composite's message names the primitive that failed after the composite


def unary_errors(name, accepts_ints=False):
    def errors():
        out = [ErrorInput((np.array([True, False]),), {}, TypeError, rf"tj\.{name}: {INNER}.*bool")]
        if not accepts_ints:
            out.append(ErrorInput((np.arange(3, dtype=np.int32),), {}, TypeError,
                                  rf"tj\.{name}: {INNER}.*shape \(3,\) and dtype int32.* "
                                  r"accepts only float32, float64"))
        return out
    return errors


def binary_errors(name, allowed="numeric"):
    def errors():
        base = np.dtype(bool) if allowed == "bool" else F32
        other = F32 if allowed == "bool" else F64
        out = [
            ErrorInput((np.ones((3,), base), np.ones((3,), other)), {}, TypeError,
                       rf"tj\.{name}: {INNER}y has shape \(3,\) and dtype {other.name} but x has shape \(3,\) "
                       rf"and dtype {base.name}"),
            ErrorInput((np.ones((2, 3), base), np.ones((4,), base)), {}, ValueError,
                       rf"tj\.{name}: {INNER}cannot broadcast x of shape \(2, 3\).* and y of shape \(4,\)"),
        ]
        if allowed == "numeric":
            out.append(ErrorInput((np.ones(2, bool), np.ones(2, bool)), {}, TypeError,
                                  rf"tj\.{name}: {INNER}x has shape \(2,\) and dtype bool, "
                                  r"but tj\.\w+ accepts only"))
        if allowed == "bool":
            out.append(ErrorInput((np.ones(2, np.float32), np.ones(2, np.float32)), {}, TypeError,
                                  rf"tj\.{name}: x has shape \(2,\) and dtype float32, "
                                  rf"but tj\.{name} accepts only bool"))
        return out
    return errors


def unary(name, ref, prim=None, dtypes=FLOATS, domain=None, grad=True, gradgrad=True, primitives=None,
          samples=None, op=None, accepts_ints=None, **kw):
    op = op or getattr(tj, name)
    accepts_ints = any(d.kind == "i" for d in dtypes) if accepts_ints is None else accepts_ints
    return OpInfo(name=name, op=op, ref=ref,
                  samples=samples or (unary_float_samples() if dtypes == FLOATS else unary_samples),
                  dtypes=dtypes, domain=domain, supports_grad=grad, supports_gradgrad=grad and gradgrad,
                  primitives=primitives or (prim or name,),
                  error_inputs=unary_errors(name, accepts_ints), **kw)


def binary(name, ref, prim=None, dtypes=NUMERIC, domain=None, grad=True, gradgrad=True, primitives=None,
           samples=binary_samples, **kw):
    allowed = "bool" if dtypes == (BOOL,) else "any" if BOOL in dtypes else "numeric"
    return OpInfo(name=name, op=getattr(tj, name), ref=ref, samples=samples, dtypes=dtypes, domain=domain,
                  supports_grad=grad, supports_gradgrad=grad and gradgrad, primitives=primitives or (prim or name,),
                  error_inputs=binary_errors(name, allowed), broadcast=(None, None), **kw)


# ----------------------------------------------------------------- domains
def pow_base(a):
    return positive(a) if a.dtype.kind == "f" else a


def pow_exponent(a):
    return a if a.dtype.kind == "f" else np.abs(a) % 3


def round_samples(dtype, rng):
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.49, 0.51], dtype)
    return unary_float_samples()(dtype, rng) + [Sample((halves,), {}, FORWARD)]


def special_samples(dtype, rng):
    return [Sample((np.array(SPECIALS, dtype),)), Sample((np.array(SPECIALS, dtype).reshape(2, 4).T,)),
            Sample((make((2, 3), dtype, rng),)), Sample((np.zeros((0, 2), dtype),)),
            Sample((np.array(np.nan, dtype),))]


def bool_unary_samples(dtype, rng):
    return [Sample((make(s, BOOL, rng),), {}, FORWARD) for s in [(), (5,), (2, 3), (0, 2)]] + [
        Sample((make((3, 2), BOOL, rng).T,), {}, FORWARD)]


def bool_binary_samples(dtype, rng):
    return [forward_only(s) for s in binary_samples(BOOL, rng)]


def forward_only(s):
    return Sample(s.args, s.kwargs, FORWARD)


def compare_samples(dtype, rng):
    out = [forward_only(s) for s in binary_samples(dtype, rng)]
    if dtype.kind == "f":
        out.append(Sample((np.array([np.nan, 1.0, np.nan, np.inf], dtype),
                           np.array([np.nan, np.nan, 1.0, np.inf], dtype)), {}, FORWARD))
    # Ties: equal elements (ints hit them anyway).
    a = make((2, 3), dtype, rng)
    out.append(Sample((a, a.copy()), {}, FORWARD))
    return out


def int_forward(samples):
    """Integer samples are forward-only (no gradients for ints)."""
    def fn(dtype, rng):
        out = samples(dtype, rng)
        return out if dtype.kind == "f" else [forward_only(s) for s in out]
    return fn


def extremum_samples(dtype, rng):
    out = int_forward(binary_samples)(dtype, rng)
    if dtype.kind == "f":
        out.append(Sample((np.array([np.nan, 1.0, np.nan, 2.0], dtype),
                           np.array([np.nan, np.nan, 1.0, 3.0], dtype)), {}, FORWARD))
    a = make((5,), dtype, rng)
    out.append(Sample((a, a.copy()), {}, FORWARD))  # ties
    return out


def where_samples(dtype, rng):
    def cond(shape):
        return make(shape, BOOL, rng)
    shapes = [((), (), ()), ((5,), (5,), (5,)), ((2, 3), (2, 3), (2, 3)), ((3, 1), (4,), ()),
              ((2, 1, 3), (4, 1), (3,)), ((), (2, 2), (2, 1))]
    out = [Sample((cond(c), make(x, dtype, rng), make(y, dtype, rng))) for c, x, y in shapes]
    out.append(Sample((make(transposed(3, 2), BOOL, rng), make(transposed(3, 2), dtype, rng),
                       make((2,), dtype, rng))))
    c = 1.5 if dtype.kind == "f" else 2
    out.append(Sample((cond((2, 3)), make((2, 3), dtype, rng), c)))
    out.append(Sample((cond((2, 3)), c, make((3,), dtype, rng))))
    out.append(Sample((cond((0, 3)), make((0, 3), dtype, rng), make((3,), dtype, rng)), {}, FORWARD))
    out.append(Sample((cond((7, 9)), make((7, 9), dtype, rng), make((9,), dtype, rng)), {}, LARGE))
    if dtype.kind == "f":
        nan = np.array([np.nan, 1.0, np.nan], dtype)
        out.append(Sample((np.array([True, True, False]), nan, np.zeros(3, dtype)), {}, FORWARD))
    if dtype.kind != "f":
        out = [forward_only(s) for s in out]
    return out


def where_errors():
    f32 = np.ones(3, np.float32)
    return [
        ErrorInput((f32, f32, f32), {}, TypeError,
                   r"tj\.where: condition has shape \(3,\) and dtype float32; it must be bool"),
        ErrorInput((np.ones(3, bool), f32, np.ones(3)), {}, TypeError,
                   r"tj\.where: y has shape \(3,\) and dtype float64 but x has shape \(3,\) and dtype float32"),
        ErrorInput((np.ones((2, 3), bool), np.ones(4, np.float32), f32), {}, ValueError,
                   r"tj\.where: cannot broadcast condition of shape \(2, 3\).*x of shape \(4,\).*y of shape \(3,\)"),
        ErrorInput((np.ones((2, 4), bool), np.ones((2, 3), np.float32), f32), {}, ValueError,
                   r"tj\.where: cannot broadcast condition of shape \(2, 4\)"),
    ]


def cast_samples(dtype, rng):
    targets = [d for d in (F32, F64, I32, I64, BOOL) if d != dtype]
    out = []
    for target in targets:
        for shape in [(), (5,), (2, 3)]:
            out.append(Sample((make(shape, dtype, rng, low=-4.0, high=4.0),), {"dtype": target}, FORWARD))
        out.append(Sample((make((3, 2), dtype, rng).T,), {"dtype": target}, FORWARD))
        out.append(Sample((make((0, 2), dtype, rng),), {"dtype": target}, FORWARD))
    if dtype.kind == "f":  # truncation toward zero, as TensorFlow
        out.append(Sample((np.array([-2.7, -1.5, -0.5, 0.5, 1.5, 2.7], dtype),), {"dtype": I32}, FORWARD))
    return out


def cast_ref(x, *, dtype):
    return np.asarray(x).astype(dtype)


def cast_errors():
    return [ErrorInput((np.ones(3, np.float32),), {"dtype": np.complex64}, TypeError, r"tj\.cast: .*complex64"),
            ErrorInput((np.ones(3, np.float32),), {"dtype": "float16"}, TypeError, r"tj\.cast: .*float16")]


def clip_samples(dtype, rng):
    lo, hi = (-1.0, 1.0) if dtype.kind == "f" else (-2, 3)
    out = [Sample((make(s, dtype, rng), lo, hi)) for s in [(), (5,), (2, 3), (3, 1)]]
    out.append(Sample((make((3, 2), dtype, rng).T, lo, hi)))
    # Array bounds broadcasting against t: gradients flow to the bounds too.
    out.append(Sample((make((2, 3), dtype, rng), make((3,), dtype, rng, low=-2.0, high=-0.6),
                       make((2, 1), dtype, rng, low=0.6, high=2.0))))
    out.append(Sample((make((0, 3), dtype, rng), lo, hi), {}, FORWARD))
    out.append(Sample((make((7, 9), dtype, rng), lo, hi), {}, LARGE))
    if dtype.kind != "f":
        out = [forward_only(s) for s in out]
    return out


def clip_domain(a):
    return away_from(-1.0, 1.0)(a) if a.dtype.kind == "f" else a


def any_dtype_samples(dtype, rng):
    out = unary_samples(dtype, rng)
    return out if dtype.kind == "f" else [forward_only(s) for s in out]


_erf = ref64(scipy.special.erf)

OPS = [
    # -------------------------------------------------------- arithmetic
    binary("add", np.add),
    binary("subtract", np.subtract, "sub", samples=int_forward(binary_samples)),
    binary("multiply", np.multiply, "mul", samples=int_forward(binary_samples)),
    binary("divide", np.true_divide, "div", domain=(None, nonzero), samples=int_forward(binary_samples)),
    binary("pow", np.power, domain=(pow_base, pow_exponent), samples=int_forward(binary_samples),
           tolerances={F32: (2e-5, 1e-6)}),
    binary("maximum", np.maximum, samples=extremum_samples),
    binary("minimum", np.minimum, samples=extremum_samples),
    binary("floordiv", np.floor_divide, domain=(None, nonzero), grad=False,
           samples=lambda d, r: [forward_only(s) for s in binary_samples(d, r)]),
    binary("floormod", np.mod, domain=(None, nonzero), samples=int_forward(binary_samples),
           primitives=("floormod", "floordiv")),
    binary("squared_difference", lambda x, y: (np.subtract(x, y)) ** 2, primitives=("sub", "mul"),
           samples=int_forward(binary_samples), tolerances={F64: (1e-12, 1e-13)}),
    unary("negative", np.negative, "neg", dtypes=NUMERIC, samples=int_forward(unary_samples)),
    unary("abs", np.abs, dtypes=NUMERIC, domain=away_from(0.0), samples=int_forward(unary_samples)),
    unary("sign", np.sign, dtypes=NUMERIC, domain=away_from(0.0), samples=int_forward(unary_samples)),
    unary("square", np.square, "mul", dtypes=NUMERIC, samples=int_forward(unary_samples)),
    # 1 / x: integer tensors give float64 (true division), not TensorFlow's integer reciprocal.
    unary("reciprocal", np.reciprocal, "div", domain=nonzero, accepts_ints=True),
    unary("floor", np.floor, grad=False, samples=lambda d, r: [forward_only(s) for s in round_samples(d, r)]),
    unary("ceil", np.ceil, grad=False, samples=lambda d, r: [forward_only(s) for s in round_samples(d, r)]),
    unary("round", np.round, grad=False, samples=lambda d, r: [forward_only(s) for s in round_samples(d, r)]),
    # --------------------------------------------------- transcendentals
    unary("exp", np.exp),
    unary("log", np.log, domain=positive),
    unary("log1p", np.log1p, domain=lambda a: np.abs(a) - 0.5),
    unary("expm1", np.expm1, primitives=("expm1", "exp")),
    unary("sqrt", np.sqrt, domain=positive),
    unary("rsqrt", ref64(lambda x: 1 / np.sqrt(x)), domain=positive, primitives=("sqrt", "div")),
    unary("sin", np.sin),
    unary("cos", np.cos),
    unary("tan", np.tan, domain=scaled(0.6)),
    unary("tanh", np.tanh, primitives=("tanh", "tanh_grad")),
    unary("sigmoid", ref64(scipy.special.expit), primitives=("sigmoid", "sigmoid_grad")),
    unary("softplus", ref64(lambda x: np.logaddexp(0.0, x)), primitives=("softplus", "sigmoid")),
    unary("erf", _erf, primitives=("erf", "exp")),
    # -------------------------------------------------- tests and logic
    unary("is_nan", np.isnan, grad=False, samples=special_samples),
    unary("is_inf", np.isinf, grad=False, samples=special_samples),
    unary("is_finite", np.isfinite, grad=False, samples=special_samples),
    binary("equal", np.equal, dtypes=NUMERIC + (BOOL,), grad=False, samples=compare_samples),
    binary("not_equal", np.not_equal, dtypes=NUMERIC + (BOOL,), grad=False, samples=compare_samples),
    binary("less", np.less, grad=False, samples=compare_samples),
    binary("less_equal", np.less_equal, grad=False, samples=compare_samples),
    binary("greater", np.greater, grad=False, samples=compare_samples),
    binary("greater_equal", np.greater_equal, grad=False, samples=compare_samples),
    binary("logical_and", np.logical_and, dtypes=(BOOL,), grad=False, samples=bool_binary_samples),
    binary("logical_or", np.logical_or, dtypes=(BOOL,), grad=False, samples=bool_binary_samples),
    binary("logical_xor", np.logical_xor, dtypes=(BOOL,), grad=False, samples=bool_binary_samples),
    OpInfo(name="logical_not", op=tj.logical_not, ref=np.logical_not, samples=bool_unary_samples, dtypes=(BOOL,),
           supports_grad=False, supports_gradgrad=False, primitives=("logical_not",),
           error_inputs=lambda: [ErrorInput((np.ones(2, np.float32),), {}, TypeError,
                                            r"tj\.logical_not: .*float32.* accepts only bool")]),
    # -------------------------------------------------- select and cast
    OpInfo(name="where", op=tj.where, ref=np.where, samples=where_samples, dtypes=NUMERIC, grad_argnums=(1, 2),
           primitives=("select",), error_inputs=where_errors, broadcast=(BOOL, None, None)),
    OpInfo(name="cast", op=tj.cast, ref=cast_ref, samples=cast_samples, dtypes=NUMERIC + (BOOL,),
           # Central differences in float64 cannot see a float32 round trip; the
           # float32 <-> float64 gradients are checked in test_cast_gradient_between_float_dtypes.
           supports_grad=False, supports_gradgrad=False, primitives=("cast",), error_inputs=cast_errors),
    OpInfo(name="clip_by_value", op=tj.clip_by_value, ref=np.clip, samples=clip_samples, dtypes=NUMERIC,
           domain=(clip_domain, None, None), primitives=("maximum", "minimum"),
           error_inputs=lambda: [ErrorInput((np.ones(3, np.float32), np.float64(0.0), 1.0), {}, TypeError,
                                            r"tj\.clip_by_value: .*float64.*float32")]),
    OpInfo(name="identity", op=tj.identity, ref=lambda x: np.array(x), samples=any_dtype_samples,
           dtypes=NUMERIC, primitives=("identity",)),
    OpInfo(name="stop_gradient", op=tj.stop_gradient, ref=lambda x: np.array(x), samples=any_dtype_samples,
           dtypes=NUMERIC, supports_grad=False, supports_gradgrad=False, primitives=("stop_gradient",)),
]

