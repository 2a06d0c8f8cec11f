"""The vectorisable transcendentals (compiler/lower/mathlib.py): ulp error over dense
sweeps, special values, vectorisation, and inlining into a surrounding expression.

Each helper is compiled exactly as a generated kernel file has it (the helper under
mathlib.HELPER_DECORATOR, called from an njit loop with the kernels' fastmath set),
all in one module written to a temporary directory and imported, compiled once.

Bounds: float32 within 2 ulp of the correctly rounded result (reference: float64);
float64 within 2 ulp and at most NumPy's own max error on the same sweep plus
F64_MARGIN (reference: x86 long double). TAPEJIT_LONG_TESTS=1 adds an exhaustive
float32 check (all 2**32 inputs) and larger float64 sweeps (minutes).
"""
import importlib.util
import os
import re
import sys
import zlib

import numpy as np
import pytest

from tapejit.compiler.lower import mathlib
from tapejit.testing import ulp_error

numba = pytest.importorskip("numba")

LONG = os.environ.get("TAPEJIT_LONG_TESTS") == "1"
FUNCTIONS = mathlib.FUNCTIONS
DTYPES = (np.float32, np.float64)
F32_MAX_ULP = 2.0
F64_MAX_ULP = 2.0
F64_MARGIN = 0.15   # float64: max error <= NumPy's max error on the same inputs + this
HAVE_LONGDOUBLE = np.finfo(np.longdouble).nmant >= 63

FASTMATH = '{"reassoc", "contract", "arcp", "nsz"}'
LOOP_DECORATOR = f'@numba.njit(error_model="numpy", fastmath={FASTMATH}, cache=True)'


def _module_source():
    src = ["import numba", "import numpy as np", ""]
    for name in FUNCTIONS:
        for dt in DTYPES:
            fn = mathlib.helper_name(name, dt)
            src += [mathlib.HELPER_DECORATOR, mathlib.helper_source(name, dt),
                    LOOP_DECORATOR, f"def loop_{fn}(x, out):",
                    "    for i in range(x.size):", f"        out[i] = {fn}(x[i])", "",
                    # the helper inside a larger expression: s == 1, z == 0 at run time
                    LOOP_DECORATOR, f"def fused_{fn}(x, s, z, out):",
                    "    for i in range(x.size):",
                    f"        out[i] = {fn}(x[i] * s[i] + z[i]) * s[i] + z[i]", ""]
    return "\n".join(src)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    src = _module_source()
    name = "tapejit_test_mathlib_%x" % (hash(src) & 0xFFFFFFFF)
    path = tmp_path_factory.mktemp("mathlib") / (name + ".py")
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # needed for numba's cache=True to find the module again
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(name, None)


def run(kernels, name, x):
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        getattr(kernels, "loop_" + mathlib.helper_name(name, x.dtype))(x, out)
    return out


# ---- references ------------------------------------------------------------------------

def reference(name, x):
    """float64 for float32 inputs, long double for float64 inputs."""
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):
        xw = x.astype(wide)  # signalling NaNs warn
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xw))
        return getattr(np, name)(xw)


def numpy_value(name, x):
    with np.errstate(all="ignore"):
        if name == "sigmoid":  # what NumPy users write; scipy.special.expit is the same formula
            return np.exp(-np.logaddexp(x.dtype.type(0), -x))
        return getattr(np, name)(x)


# ---- sweeps ------------------------------------------------------------------------------

# Where each function's result is finite and non-trivial, per dtype: (lo, hi).
DOMAIN = {
    ("exp", np.float32): (-104.0, 89.0), ("exp", np.float64): (-746.0, 710.0),
    ("log", np.float32): (0.0, 1e3), ("log", np.float64): (0.0, 1e3),
    ("log1p", np.float32): (-1.0, 1e3), ("log1p", np.float64): (-1.0, 1e3),
    ("expm1", np.float32): (-20.0, 89.0), ("expm1", np.float64): (-40.0, 710.0),
    ("tanh", np.float32): (-10.0, 10.0), ("tanh", np.float64): (-20.0, 20.0),
    ("sigmoid", np.float32): (-105.0, 20.0), ("sigmoid", np.float64): (-746.0, 40.0),
}
# Thresholds where the result changes character (overflow, underflow, subnormal, the
# switch between branches of the approximation): swept float by float around them.
EDGES = {
    ("exp", np.float32): [88.72283, -87.33655, -103.27893, -103.97208],
    ("exp", np.float64): [709.782712893384, -708.3964185322641, -744.4400719213812, -745.1332191019412],
    ("log", np.float32): [1.0, 0.70710677, 1.4142135, 1.1754944e-38],
    ("log", np.float64): [1.0, 0.7071067811865476, 1.4142135623730951, 2.2250738585072014e-308],
    ("log1p", np.float32): [0.0, -0.29289323, 0.41421357, 1.0, 1.862645149230957e-09, -1.0],
    ("log1p", np.float64): [0.0, -0.2928932188134524, 0.41421356237309515, 1.0, -1.0],
    ("expm1", np.float32): [0.0, 0.34657359, -0.34657359, 88.72283, -17.32868],
    ("expm1", np.float64): [0.0, 0.34657359027997264, -0.34657359027997264, 709.782712893384,
                            -36.7368005696771, 37.42994775023705],
    ("tanh", np.float32): [0.0, 9.010913, 9.5],
    ("tanh", np.float64): [0.0, 0.625, -0.625, 19.061547465398498],
    ("sigmoid", np.float32): [0.0, -87.33655, -103.27893, 16.635532],
    ("sigmoid", np.float64): [0.0, -708.3964185322641, -744.4400719213812, 36.7368005696771],
}


def float_window(v, dtype, count):
    """`count` consecutive floats on each side of v."""
    x0 = dtype(v)
    itype = np.int32 if dtype == np.float32 else np.int64
    bits = np.array([x0], dtype).view(itype)[0]
    if x0 == 0:
        pos = np.arange(0, count, dtype=itype)
        return np.concatenate([pos.view(dtype), -pos.view(dtype)])
    w = (bits + np.arange(-count, count + 1, dtype=itype)).view(dtype)
    return w[np.sign(w) == np.sign(x0)]


def sweep(name, dtype, n):
    lo, hi = DOMAIN[(name, dtype)]
    rng = np.random.default_rng(zlib.crc32(f"{name} {dtype.__name__}".encode()))  # same inputs every run
    tiny_exp, big_exp = (-45, 38) if dtype == np.float32 else (-323, 308)
    mags = 10.0 ** rng.uniform(tiny_exp, big_exp, n // 4)
    itype = np.int32 if dtype == np.float32 else np.int64
    nmant = 23 if dtype == np.float32 else 52
    subnormal = rng.integers(1, 2**nmant, n // 20, dtype=np.int64).astype(itype).view(dtype)
    with np.errstate(all="ignore"):
        twos = np.ldexp(1.0, np.arange(tiny_exp * 10 // 3, big_exp * 10 // 3)).astype(dtype)
    parts = [np.linspace(lo, hi, n), np.linspace(-1, 1, n // 4),
             rng.uniform(max(lo, -50), min(hi, 50), n // 4),
             mags, -mags, subnormal, -subnormal, twos, -twos,
             np.nextafter(twos, dtype(0)), np.nextafter(twos, dtype(np.inf))]
    parts += [float_window(e, dtype, 2000) for e in EDGES[(name, dtype)]]
    x = np.concatenate([p.astype(dtype) for p in parts])
    return x[np.isfinite(x)]


def check_sweep(kernels, name, dtype, x, loop=None):
    got = run(kernels, name, x) if loop is None else loop(x)
    ref = reference(name, x)
    err = ulp_error(got, ref, dtype)
    i = int(np.argmax(err))
    worst = f"{name} {dtype.__name__}: max {err[i]:.3f} ulp at x={x[i]!r} (got {got[i]!r}, ref {ref[i]!r})"
    if dtype == np.float32:
        assert err[i] <= F32_MAX_ULP, worst
        return err[i], None
    err_np = ulp_error(numpy_value(name, x), ref, dtype)
    bound = min(F64_MAX_ULP, float(np.max(err_np)) + F64_MARGIN)
    assert err[i] <= bound, worst + f"; NumPy max {np.max(err_np):.3f}"
    return err[i], np.max(err_np)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_accuracy(kernels, name, dtype):
    if dtype == np.float64 and not HAVE_LONGDOUBLE:
        pytest.skip("needs an 80-bit long double for the float64 reference")
    check_sweep(kernels, name, dtype, sweep(name, dtype, 1_000_000 if not LONG else 20_000_000))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_inlined_in_expression(kernels, name):
    """The helper inside `f(x*s + z)*s + z` (s = 1, z = 0 at run time) keeps its accuracy:
    reassociation with the surrounding arithmetic must not reach into it."""
    if not HAVE_LONGDOUBLE:
        pytest.skip("needs an 80-bit long double for the float64 reference")
    dtype = np.float64
    x = sweep(name, dtype, 200_000)
    x = x[x != 0]  # x*1 + 0 turns -0 into +0
    fused = getattr(kernels, "fused_" + mathlib.helper_name(name, dtype))

    def loop(v):
        out = np.empty_like(v)
        with np.errstate(all="ignore"):
            fused(v, np.ones_like(v), np.zeros_like(v), out)
        return out
    check_sweep(kernels, name, dtype, x, loop)


# ---- special values ------------------------------------------------------------------

def _inputs(dtype):
    fi = np.finfo(dtype)
    return np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5,
                     1000.0, -1000.0, 1e30, -1e30, float(fi.max), -float(fi.max),
                     float(fi.smallest_subnormal), -float(fi.smallest_subnormal),
                     float(fi.tiny), -float(fi.tiny), float(fi.eps), -float(fi.eps),
                     88.8, -88.0, -104.0, 710.0, -746.0, 20.0, -20.0], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_special_values(kernels, name, dtype):
    """Where the correctly rounded result is one of inf, NaN, +-0, +-1, 0.5 or the input
    itself, the helper gives exactly that, with the sign of zero (as NumPy does)."""
    x = _inputs(dtype)
    got = run(kernels, name, x)
    with np.errstate(all="ignore"):
        exact = reference(name, x).astype(dtype)
        if name in ("log1p", "expm1", "tanh"):  # odd near 0: tiny x -> x, keeping -0
            exact = np.where(np.abs(x) <= np.finfo(dtype).eps / 4, x, exact)
        if name == "log":
            exact = np.where(x == 0, -np.inf, exact)
        clear = ulp_error(exact, reference(name, x), dtype) < 0.25  # not near a rounding tie
    special = (~np.isfinite(exact) | (np.isin(exact, [0.0, 1.0, -1.0, 0.5]) & clear)
               | ((x == exact) & (np.abs(x) < np.finfo(dtype).eps ** 2)))
    np.testing.assert_array_equal(got[special], exact[special], err_msg=f"{name} at {x[special]}")
    np.testing.assert_array_equal(np.signbit(got[special]) | np.isnan(got[special]),
                                  np.signbit(exact[special]) | np.isnan(exact[special]),
                                  err_msg=f"{name}: sign of zero")
    if name != "sigmoid":  # NumPy agrees on all of these
        np.testing.assert_array_equal(got[special], numpy_value(name, x)[special])
    assert np.all(np.isfinite(got[np.isfinite(exact)])), (name, x[~np.isfinite(got) & np.isfinite(exact)])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_named_cases(kernels, dtype):
    """The cases the issue names. None: finite, within the accuracy bound (not exact)."""
    t = dtype
    f32 = t == np.float32
    cases = {
        "exp": [(88.8, np.inf if f32 else None), (-104.0, 0.0 if f32 else None), (-746.0, 0.0),
                (709.782712893384, np.inf if f32 else None), (709.7827128933841, np.inf)],
        "log": [(0.0, -np.inf), (-0.0, -np.inf), (-1e-30, np.nan), (1.0, 0.0),
                (float(np.finfo(t).smallest_subnormal), None)],
        "log1p": [(-1.0, -np.inf), (-1.5, np.nan), (-0.0, -0.0), (1e-30, 1e-30), (-1e-30, -1e-30)],
        "expm1": [(-0.0, -0.0), (-np.inf, -1.0), (-1000.0, -1.0), (1000.0, np.inf), (1e-30, 1e-30)],
        "tanh": [(1e4, 1.0), (-1e4, -1.0), (30.0, 1.0), (-30.0, -1.0), (-0.0, -0.0), (1e-30, 1e-30)],
        "sigmoid": [(1000.0, 1.0), (-1000.0, 0.0), (-0.0, 0.5), (np.inf, 1.0), (-np.inf, 0.0),
                    (-88.0, None), (-100.0 if f32 else -700.0, None), (-103.0 if f32 else -740.0, None)],
    }
    for name, pairs in cases.items():
        for xv, want in pairs:
            x = np.array([xv], dtype=t)
            got = run(kernels, name, x)
            if want is None:
                err = ulp_error(got, reference(name, x), t)[0]
                assert np.isfinite(got[0]) and err <= 1.5, f"{name}({xv!r}) {t.__name__}: {got[0]!r}, {err:.2f} ulp"
            else:
                np.testing.assert_equal(got[0], t(want), err_msg=f"{name}({xv!r}) {t.__name__}")
                assert np.signbit(got[0]) == np.signbit(t(want)) or np.isnan(want), f"{name}({xv!r}) sign"


# ---- compiled form -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_vectorised(kernels, name, dtype):
    """The loop over the helper is vectorised and calls no libm function."""
    loop = getattr(kernels, "loop_" + mathlib.helper_name(name, dtype))
    x = np.ones(8, dtype)
    loop(x, np.empty_like(x))
    ir = loop.inspect_llvm(loop.signatures[0])
    assert re.search(r"<\d+ x (float|double)>", ir), f"{name} {dtype.__name__}: no vector code"
    calls = set(re.findall(r"call [^@]*@([\w.]+)", ir))
    libm = {c for c in calls if re.fullmatch(r"(exp|log|log1p|expm1|tanh|pow)f?", c)}
    assert not libm, f"{name} {dtype.__name__}: calls {libm}"


def test_source_contract():
    """One function per helper, named as helper_name says, referring to no globals but np and
    numba, no dependencies; unknown names and dtypes raise."""
    import ast
    import builtins
    for name in FUNCTIONS:
        for dt in (np.float32, np.float64, "float32", np.dtype("float64")):
            src = mathlib.helper_source(name, dt)
            tree = ast.parse(src)
            assert len(tree.body) == 1 and tree.body[0].name == mathlib.helper_name(name, dt)
            assert mathlib.helper_dependencies(name, dt) == ()
            assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            free = loaded - assigned - {"x"}
            assert free <= {"np", "numba"} | set(dir(builtins)), (name, free)
    assert mathlib.helper_name("exp", np.float32) == "tj_exp_f32"
    with pytest.raises(ValueError):
        mathlib.helper_name("sin", np.float32)
    with pytest.raises(ValueError):
        mathlib.helper_source("exp", np.int32)


@pytest.mark.parametrize("name,dtype", [("log", np.float64), ("expm1", np.float64), ("log", np.float32)])
def test_view_spelling(kernels, name, dtype):
    """The fallback spelling of the bit casts (``np.float64(v).view(np.int64)``, public API,
    3x slower to compile) gives the same results as the default (Numba's viewer intrinsic)."""
    assert "V(" not in mathlib.helper_source(name, dtype, bitcast="view").replace("np.", "")
    ns = {"np": np, "numba": numba}
    exec(mathlib.helper_source(name, dtype, bitcast="view"), ns)
    fm = {"reassoc", "contract", "arcp", "nsz"}
    h = numba.njit(inline="always", error_model="numpy", fastmath=fm)(ns[mathlib.helper_name(name, dtype)])

    @numba.njit(error_model="numpy", fastmath=fm)
    def loop(v, out):
        for i in range(v.size):
            out[i] = h(v[i])
    x = np.concatenate([_inputs(dtype), sweep(name, dtype, 4000)])
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        loop(x, out)
    np.testing.assert_array_equal(out, run(kernels, name, x))


# ---- exhaustive float32 (long) ------------------------------------------------------------

def _f32_max_ulp():
    """A compiled ulp_error(...).max() for float32 results against a float64 reference."""
    import math

    @numba.njit(error_model="numpy")
    def max_ulp(got, ref):
        worst, at = 0.0, 0
        for i in range(got.size):
            r = ref[i]
            g = np.float64(got[i])
            rr = np.float32(r)
            if not np.isfinite(rr):
                if g == rr or (g != g and rr != rr):
                    continue
                return np.inf, i
            if not np.isfinite(g):
                return np.inf, i
            e = math.frexp(r)[1] if r != 0 else -200
            err = abs(g - r) / math.ldexp(1.0, max(e - 1, -126) - 23)
            if err > worst:
                worst, at = err, i
        return worst, at
    return max_ulp


@pytest.mark.skipif(not LONG, reason="TAPEJIT_LONG_TESTS=1")
@pytest.mark.parametrize("name", FUNCTIONS)
def test_exhaustive_float32(kernels, name):
    """Every one of the 2**32 float32 inputs within F32_MAX_ULP (~1.5 min per function)."""
    loop = getattr(kernels, "loop_" + mathlib.helper_name(name, np.float32))
    max_ulp = _f32_max_ulp()
    chunk = 1 << 24
    out = np.empty(chunk, np.float32)
    worst = (0.0, None)
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        with np.errstate(all="ignore"):
            loop(x, out)
        err, i = max_ulp(out, reference(name, x))
        if err > worst[0]:
            worst = (err, x[i])
    assert worst[0] <= F32_MAX_ULP, f"{name}: {worst[0]:.3f} ulp at {worst[1]!r}"
