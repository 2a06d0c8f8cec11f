"""Vectorisable scalar exp, log, log1p, expm1, tanh and sigmoid for generated Numba kernels.

Inside Numba loops ``math.exp`` and friends are scalar libm calls (no SVML), several
times slower per element than NumPy's SIMD loops.  The helpers here are branch-free
range reduction plus polynomial/rational approximation in plain arithmetic, the
SLEEF / XLA-CPU / Cephes way, so LLVM vectorises them once they are inlined into a
kernel loop.

Contract with the code generator
--------------------------------
``helper_source(name, dtype)`` is the Python source of ONE function
``tj_{name}_{f32|f64}`` taking and returning a scalar of that dtype.  It refers only to
``np``, ``numba`` and builtins; every constant is an inline literal.  The generator
pastes it into the kernel file and decorates it with ``HELPER_DECORATOR``::

    @numba.njit(forceinline=True, error_model="numpy", no_cpython_wrapper=True,
                no_cfunc_wrapper=True, fastmath={"reassoc", "contract", "arcp", "nsz"}, cache=True)

``forceinline`` is LLVM's alwaysinline: the helper is compiled once per module and
inlined into every loop by LLVM, its instructions keeping the helper's own flags
(so its multiply-adds fuse even in kernels without ``contract``).  Numba's
``inline="always"`` instead re-types the helper at every call site and gives it
the kernel's flags; measured 1.2-1.4x slower per element (float64 tanh 5.9 vs
4.1 ns) and no faster to compile.  Without either, LLVM declines to inline the
larger float64 helpers and the loop stays scalar (4-6x slower).

Every helper is self-contained: ``helper_dependencies(name, dtype)`` is always ``()``.

Approach per function (float64; float32 evaluates the same ideas in float64)
------------------------------------------------------------------------------
* exp: q = rint(x/ln2), Cody-Waite r = x - q ln2 (two-part ln2), e**r by a degree-11
  minimax polynomial, 2**q from integer bits in two exact multiplies (subnormal
  results round once, overflow gives inf).
* expm1: the same reduction; r*r/2 split exactly; 2**q (1 + t + c) - 1 summed as a
  chain of exact Fast2Sums so it rounds once.  float32: 2**q p + (2**q - 1).
* log: x = 2**k m with m in [sqrt(2)/2, sqrt(2)) by integer ops (subnormals scaled by
  2**52 first); log1p(m - 1) by fdlibm's s = f/(2+f) series (float32: a degree-10
  polynomial in f, no division); k ln2 + f - f*f/2 summed exactly.
* log1p: log(u), u = 1 + x, plus the rounding error of u over u.
* tanh: |x| < 0.625 a rational x + x**3 P/Q, else 1 - 2e/(1 + e) with e = exp(-2|x|),
  one division with a residual correction.  float32: one rational x P(x*x)/Q(x*x)
  on |x| <= 9.5.
* sigmoid: e = exp(-|x|), 1/(1 + e) or e/(1 + e); float64 keeps e and 1 + e as
  exact pairs and corrects the division.

Accuracy (max error against a correctly rounded reference; tests/test_mathlib.py,
``python -m benchmarks.mathlib``): float32 at most 0.57 ulp over all 2**32 inputs
(exp 0.54, log 0.57, log1p 0.57, expm1 0.51, tanh 0.50, sigmoid 0.54); float64 on
dense sweeps against long double, NumPy 2.4's max on the same inputs in brackets:
exp 0.71, 0.77 for subnormal results (0.70), log 0.63 (0.61), log1p 0.66 (0.61),
expm1 0.60 (0.53), tanh 1.06 (1.19), sigmoid 0.80 (exp(-logaddexp(0, -x)): 32).

Design
------
* float32 helpers compute in float64 and round once at the end.  Their
  approximations are built for ~2**-28..2**-31 relative error, so float32
  subnormals, overflow and underflow fall out of the final conversion, and none of
  the float64 reassociation hazards below matter at float32 precision.  LLVM
  widens an 8-wide float32 loop's float64 part to 512-bit vectors (8 lanes per
  instruction either way), so this costs little over pure float32 code.
* float64 helpers need care because the helper flags include ``reassoc``: LLVM may
  legally rewrite ``(x - q*C1) - q*C2`` into ``x - q*(C1 + C2)`` (it does: the
  Cody-Waite split of ln2 gets folded back into one rounded constant) and
  ``1 + (r + c)`` into ``(1 + r) + c``.  Where the order of rounding matters the
  value passes through ``opaque``: ``v = V(V(v, np.int64) + Z, np.float64)`` with
  ``V`` Numba's scalar bit cast and ``Z = np.int64(x != x)``, zero for every
  non-NaN input (a NaN input gives NaN anyway) but not provably zero to LLVM, so no
  floating-point rewrite crosses it.  It costs one vector integer add.
* 2**n is built from integer bits, rounding is ``np.rint`` (``llvm.rint``, one
  vector instruction), clamps are ``min``/``max`` (vector min/max; the order of the
  arguments decides whether a NaN passes through or is replaced), the few other
  selects are conditional expressions, which LLVM turns into vector blends.
  Conditional expressions and bit casts are what cost compile time (~10 ms and
  ~5 ms each), so the helpers use few.
* NaN and infinities propagate through the arithmetic (the clamp that feeds the
  float-to-integer conversion replaces NaN, the one that feeds the arithmetic keeps
  it); +-0 and the special values of log and log1p are fixed by final selects on
  the input.  The kernels' fastmath set excludes ``nnan``/``ninf``, so those
  compares are kept.
"""
import numpy as np

FUNCTIONS = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid")

HELPER_DECORATOR = ('@numba.njit(forceinline=True, error_model="numpy", no_cpython_wrapper=True, '
                    'no_cfunc_wrapper=True, fastmath={"reassoc", "contract", "arcp", "nsz"}, cache=True)')


def _suffix(dtype):
    if isinstance(dtype, str) and dtype in ("f32", "f64"):
        return dtype
    dt = np.dtype(dtype)
    if dt == np.float32:
        return "f32"
    if dt == np.float64:
        return "f64"
    raise ValueError(f"mathlib: no helpers for dtype {dt}")


def helper_name(name, dtype):
    """Name of the helper for `name` (one of FUNCTIONS) and dtype float32/float64."""
    if name not in FUNCTIONS:
        raise ValueError(f"mathlib: unknown function {name!r}")
    return f"tj_{name}_{_suffix(dtype)}"


def helper_dependencies(name, dtype):
    """Helpers that `helper_source(name, dtype)` calls: none, each one is self-contained."""
    helper_name(name, dtype)
    return ()


def helper_source(name, dtype, *, bitcast=None):
    """Python source of the undecorated helper `helper_name(name, dtype)`.

    `bitcast` picks how float <-> int bit casts are spelt: "viewer" (Numba's
    ``numba.cpython.unsafe.numbers.viewer`` intrinsic, 3x cheaper to compile) or "view"
    (``np.float64(v).view(np.int64)``, public API); default: "viewer" when this Numba
    has it.
    """
    fn = helper_name(name, dtype)
    mode = bitcast or _default_bitcast()
    if mode not in ("viewer", "view"):
        raise ValueError(f"mathlib: bitcast must be 'viewer' or 'view', not {mode!r}")
    head, body = _BUILDERS[(name, _suffix(dtype))]()
    if any("V(" in b for b in body) and mode == "viewer":
        body = ["V = numba.cpython.unsafe.numbers.viewer  # scalar bit cast"] + body
    lines = [f"def {fn}(x):"] + ["    # " + h for h in head]
    lines += ["    " + (b if mode == "viewer" else _spell_view(b)) for b in body]
    return "\n".join(lines) + "\n"


_BITCAST = []


def _default_bitcast():
    if not _BITCAST:
        try:
            from numba.cpython.unsafe.numbers import viewer  # noqa: F401
            _BITCAST.append("viewer")
        except ImportError:  # pragma: no cover - older/newer Numba without the intrinsic
            _BITCAST.append("view")
    return _BITCAST[0]


def _spell_view(line):
    """Rewrite V(expr, np.T) calls as np.<type of expr>(expr).view(np.T)."""
    out = []
    i = 0
    while True:
        j = line.find("V(", i)
        if j < 0 or (j > 0 and (line[j - 1].isalnum() or line[j - 1] == "_")):
            if j < 0:
                out.append(line[i:])
                return "".join(out)
            out.append(line[i:j + 2])
            i = j + 2
            continue
        out.append(line[i:j])
        depth, k = 1, j + 2
        while depth:
            depth += {"(": 1, ")": -1}.get(line[k], 0)
            k += 1
        inner = _spell_view(line[j + 2:k - 1])
        arg, target = inner.rsplit(", ", 1)
        src_ty = {"np.int64": "np.float64", "np.float64": "np.int64",
                  "np.int32": "np.float32", "np.float32": "np.int32"}[target]
        out.append(f"{src_ty}({arg}).view({target})")
        i = k


# ---------------------------------------------------------------------------------
# Constants and coefficients (minimax fits by a Remez exchange in mpmath, in double).

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
LN2HI = 0.6931471803691238      # ln2 to 32 significant bits: q * LN2HI is exact for |q| < 2**21
LN2LO = 1.9082149292705877e-10  # ln2 - LN2HI
SQRT1_2_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(2)/2: (bits - this) >> 52 = k with x/2**k in [sqrt(2)/2, sqrt(2))
DBL_MAX = 1.7976931348623157e308
DBL_MIN = 2.2250738585072014e-308

# (e^r - 1 - r) / r^2 on |r| <= ln2/2, weighted for relative error of e^r: 2**-56.9.
EXP64_P = [0.500000000000001, 0.16666666666666674, 0.04166666666652199, 0.008333333333322207,
           0.0013888888947820891, 0.00019841269886591, 2.4801487326012337e-05,
           2.7557242336680357e-06, 2.763265575933203e-07, 2.5110049895858716e-08]
# (e^r - 1 - r - r^2/2) / r^3 on |r| <= ln2/2: 2**-60.7 relative to expm1(r).
EXP64_P1 = [0.16666666666666674, 0.04166666666666667, 0.008333333333322207, 0.0013888888888880944,
            0.00019841269886591, 2.4801587333953088e-05, 2.7557242336680357e-06,
            2.755726431433642e-07, 2.5110049895858716e-08, 2.091813816945801e-09]
# (2 atanh(s)/s - 2) / s^2 as a polynomial in z = s^2 <= (3 - 2 sqrt 2)^2, weighted by z: 2**-57.6.
LOG64_G = [0.666666666666671, 0.39999999999519825, 0.28571428729284787, 0.2222219909089342,
           0.18183571541169416, 0.15313164375076815, 0.1481051999082406]
# (tanh(a) - a) / a^3 = P(a^2) / Q(a^2) for a <= TANH64_SPLIT, relative to tanh: 2**-59.7.
TANH64_SPLIT = 0.625
TANH64_P = [-0.33333333333333326, -0.020496451377407476, -0.00019907408007369275]
TANH64_Q = [1.0, 0.46148935413220826, 0.02328820198860405, 0.00020642239941149967]
# float32 results (evaluated in double):
# (e^r - 1 - r) / r^2, relative to e^r: 2**-28.3.
EXP32_P = [0.4999999344778312, 0.16666520631685852, 0.04166838804697834, 0.008368716881997933,
           0.0013814598603634869]
# The same relative to expm1(r): 2**-31.0.
EXPM1_32_P = [0.5000000080848782, 0.16666666756455065, 0.04166624054209443, 0.008333286007318842,
              0.0013948592779495662, 0.0001990758485640314]
# log1p(f) / f on [sqrt(2)/2 - 1, sqrt(2) - 1], relative: 2**-27.9.
LOG32_Q = [0.9999999999590913, -0.49999988289622405, 0.33333325992352086, -0.25001586562476097,
           0.20001968563802305, -0.16609012686259061, 0.14181834027311585, -0.13243461297632303,
           0.1290466651334098, -0.07621123361808116]
# tanh(a)/a = P(a^2)/Q(a^2) on a <= 9.5 (float32 tanh rounds to 1 above 9.01), relative: 2**-33.7.
TANH32_P = [0.9999999999294198, 0.14081519718199725, 0.004402387255694648, 4.166779440122084e-05,
            1.0771627638039955e-07, 3.460817247212922e-11]
TANH32_Q = [1.0, 0.47414852976829874, 0.02911856515827387, 0.0004963051559059663,
            2.5476811092006995e-06, 2.823518949260935e-09]


# ---------------------------------------------------------------------------------
# Source building blocks: lists of statements (no indentation).

def _lit(v):
    return repr(float(v))


def _horner(var, coeffs, out):
    """`out` = sum(coeffs[i] * var**i)."""
    lines = [f"{out} = {_lit(coeffs[-1])}"]
    for c in reversed(coeffs[:-1]):
        lines.append(f"{out} = {out} * {var} + {_lit(c)}")
    return lines


def _opaque(var):
    """Pass float64 `var` through an integer add of Z: a reassociation barrier."""
    return f"{var} = V(V({var}, np.int64) + Z, np.float64)"


_Z = "Z = np.int64(x != x)  # 0 (1 for NaN input); LLVM cannot prove it, so opaque() adds stay"


def _pow2(qexpr, bias=1023):
    """2**q as a float64 for an int64 expression q with q + bias in [1, 2046]."""
    return f"V(({qexpr} + {bias}) << 52, np.float64)"


def _clamp(var, src, lo, hi):
    """`var` = src clamped to [lo, hi], NaN kept; `var`q = the same with NaN -> lo, for
    the float-to-integer conversion (which NaN would make undefined)."""
    return [f"{var} = min(max({src}, {_lit(lo)}), {_lit(hi)})",
            f"{var}q = min({_lit(hi)}, max({_lit(lo)}, {src}))"]


def _exp64_core(xc, xq):
    """2**qi * y = e**xc, y in [0.7, 1.42] to ~0.6 ulp, for |xc| <= 750 (xq: xc, NaN-free).

    Cody-Waite: t = xc - q*LN2HI exact, r = t - q*LN2LO; e**r = 1 + t + c with
    c = r*r*P(r) - q*LN2LO; 1 + t summed exactly (Fast2Sum s, e), so y = s + (e + c)
    rounds once apart from c's small error.
    """
    return [f"qf = np.rint({xq} * {_lit(LOG2E)})",
            "qi = np.int64(qf)",
            f"t = {xc} - qf * {_lit(LN2HI)}", _opaque("t"),
            f"r = t - qf * {_lit(LN2LO)}",
            *_horner("r", EXP64_P, "p"),
            f"c = (r * r) * p - qf * {_lit(LN2LO)}",
            "s = 1.0 + t", _opaque("s"),
            "e = 1.0 - s", _opaque("e"),
            "e = e + t", _opaque("e"),
            "d = e + c", _opaque("d"),
            "y = s + d"]


def _scale64(var):
    """`var` *= 2**qi for qi in [-1100, 1024]: two exact steps, so only the last one rounds
    (subnormal results) or overflows (to inf)."""
    return ["q1 = qi >> 1",
            f"{var} = {var} * {_pow2('q1')}", _opaque(var),
            f"{var} = {var} * {_pow2('qi - q1')}"]


def _split(var, hi, lo):
    """hi = var with the low 27 significand bits cleared (hi*hi is exact), lo = var - hi."""
    return [f"{hi} = V(V({var}, np.int64) & -134217728, np.float64)",
            f"{lo} = {var} - {hi}"]


def _sum3(t0, t1, t2, rest, out):
    """out = t0 + t1 + t2 + rest rounded once (to ~2**-60): t0..t2 exact values with
    |t0| >= |t1| and |t0 + t1| >= |t2|, two Fast2Sums, then the small rest."""
    return [f"s1 = {t0} + {t1}", _opaque("s1"),
            f"e1 = {t0} - s1", _opaque("e1"),
            f"e1 = e1 + {t1}", _opaque("e1"),
            f"s2 = s1 + {t2}", _opaque("s2"),
            "e2 = s1 - s2", _opaque("e2"),
            f"e2 = e2 + {t2}", _opaque("e2"),
            f"d = e1 + e2 + {rest}", _opaque("d"),
            f"{out} = s2 + d"]


def _log64_core(ix, kadj):
    """log of the positive normal float64 with bits `ix`, plus k adjustment `kadj` and
    the correction `cextra` (defined by the caller): x = 2**k m, m in [sqrt(2)/2, sqrt(2)),
    f = m - 1 exact; log1p(f) = f - f*f/2 + s*(f*f/2 + R(s*s)), s = f/(2+f) (fdlibm);
    k*LN2HI + f - (f*f/2)_hi summed exactly, the rest rounded once on top."""
    return [f"k = ({ix} - {SQRT1_2_BITS}) >> 52",
            f"f = V({ix} - (k << 52), np.float64) - 1.0",
            f"kf = np.float64(k - {kadj})",
            "sv = f / (2.0 + f)",
            "z = sv * sv",
            *_horner("z", LOG64_G, "g"),
            *_split("f", "fh", "fl"),
            "hh = 0.5 * (fh * fh)",            # f*f/2 = hh (exact) + hl
            "hl = fl * (fh + 0.5 * fl)",
            f"cl = sv * (hh + hl + z * g) - hl + (kf * {_lit(LN2LO)} + cextra)",
            f"a = kf * {_lit(LN2HI)}",
            "mhh = -hh",
            *_sum3("a", "f", "mhh", "cl", "y")]


# ---------------------------------------------------------------------------------
# float64

def _exp_f64():
    head = ["exp, float64: Cody-Waite reduction by ln2, degree-11 polynomial, 1 + t summed",
            "exactly, 2**q applied through the exponent bits in two exact steps."]
    body = [_Z, *_clamp("xc", "x", -750.0, 710.0),
            *_exp64_core("xc", "xcq"), *_scale64("y"),
            "return y"]
    return head, body


def _expm1_f64():
    head = ["expm1, float64: the exp reduction with c = r*r/2 + r**3 P(r) split exactly;",
            "2**q (1 + t + c) - 1 = 2 ((h - 1/2) + h t + h c), h = 2**(q-1), summed exactly."]
    body = [_Z, *_clamp("xc", "x", -40.0, 710.0),
            "qf = np.rint(xcq * 1.4426950408889634)",
            "qi = np.int64(qf)",
            f"t = xc - qf * {_lit(LN2HI)}", _opaque("t"),
            f"r = t - qf * {_lit(LN2LO)}", _opaque("r"),
            "dr = t - r", _opaque("dr"),
            f"dr = dr - qf * {_lit(LN2LO)}",            # r + dr = t - q*LN2LO to ~2**-100
            *_split("r", "rh", "rl"),
            "cm = 0.5 * (rh * rh)",
            *_horner("r", EXP64_P1, "p1"),
            f"cl = (rh * rl + 0.5 * (rl * rl)) + r * dr + (r * r) * (r * p1) - qf * {_lit(LN2LO)}",
            f"h = {_pow2('qi', 1022)}",
            # h - 1/2 is exact for -52 <= q <= 53; outside, the smaller of the two joins the tail
            "ge = np.float64(qi >= -52)",
            "le = np.float64(qi <= 53)",
            "a = h * ge - 0.5 * le", _opaque("a"),
            "tail = h * (1.0 - ge) - 0.5 * (1.0 - le)", _opaque("tail"),   # else h*cl + h*... is refactored
            "tail = tail + h * cl",
            *_sum3("a", "h * t", "h * cm", "tail", "y"),
            "y = 2.0 * y",
            "return y if abs(x) > 5.551115123125783e-17 else x  # x below 2**-54 (keeps -0)"]
    return head, body


def _log_f64():
    head = ["log, float64: x = 2**k m, m in [sqrt(2)/2, sqrt(2)), fdlibm's s = f/(2+f) series",
            "(degree 7 in s*s) for log1p(m - 1); k*ln2 + f - f*f/2 summed exactly."]
    body = [_Z,
            f"sub = np.int64(x < {_lit(DBL_MIN)})",         # subnormal: scale by 2**52 first
            "ix = V(x * V((1023 + 52 * sub) << 52, np.float64), np.int64)",
            "cextra = 0.0",
            *_log64_core("ix", "52 * sub"),
            "y = y if x != 0.0 else -np.inf",
            "y = y if x >= 0.0 else np.nan",
            f"return y if x <= {_lit(DBL_MAX)} else x + x"]
    return head, body


def _log1p_f64():
    head = ["log1p, float64: log(u), u = 1 + x, as in tj_log_f64, plus the rounding error",
            "of u divided by u."]
    body = [_Z,
            "u = 1.0 + x", _opaque("u"),
            "a1 = u - 1.0", _opaque("a1"),
            "a2 = u - x", _opaque("a2"),
            "ix = V(u, np.int64)",
            "w = np.float64(ix >= 4611686018427387904)",   # u >= 2: 1 - (u - x) is the exact error
            "cextra = ((x - a1) * (1.0 - w) + (1.0 - a2) * w) / u",
            *_log64_core("ix", "0"),
            "y = y if x != -1.0 else -np.inf",
            "y = y if x >= -1.0 else np.nan",
            f"y = y if x <= {_lit(DBL_MAX)} else x + x",
            "return y if x != 0.0 else x"]
    return head, body


def _exp64_pair():
    """After _exp64_core: y (rounded s + d) and yl = s + d - y exactly, a double-double e**r."""
    return [_opaque("y"),
            "yl = s - y", _opaque("yl"),
            "yl = yl + d"]


def _tanh_f64():
    head = [f"tanh, float64: |x| < {TANH64_SPLIT}: x + x**3 P(x*x)/Q(x*x); else 1 - 2e/(1 + e) with",
            "e = exp(-2|x|) as in tj_exp_f64; one shared division, residual-corrected."]
    body = [_Z,
            "ax = abs(x)",
            "axc = min(ax, 20.0)",      # NaN stays NaN
            "axq = min(20.0, ax)",      # NaN -> 20
            "small = ax < " + _lit(TANH64_SPLIT),
            "xm = -2.0 * axc",
            "xmq = -2.0 * axq",
            *_exp64_core("xm", "xmq"),
            f"ee = y * {_pow2('qi')}",  # q in [-58, 0]
            "zz = ax * ax",
            *_horner("zz", TANH64_P, "pp"),
            *_horner("zz", TANH64_Q, "qq"),
            "den = 1.0 + ee", _opaque("den"),
            "dlo = 1.0 - den", _opaque("dlo"),
            "dlo = dlo + ee",
            # ratio = num / (den + dlo): P/Q for small |x|, 2e/(1 + e) otherwise
            "num = pp if small else 2.0 * ee",
            "den = qq if small else den",
            "dlo = 0.0 if small else dlo",
            "inv = 1.0 / den",
            "y0 = num * inv",
            "res = num - y0 * den", _opaque("res"),
            "ratio = y0 + (res - y0 * dlo) * inv",
            "th = ax + ax * zz * ratio if small else 1.0 - ratio",
            "return V(V(th, np.int64) | (V(x, np.int64) & -9223372036854775808), np.float64)  # sign of x"]
    return head, body


def _sigmoid_f64():
    head = ["sigmoid, float64: e = exp(-|x|) as in tj_exp_f64, kept as a pair; 1/(1 + e) or",
            "e/(1 + e) with 1 + e as an exact pair; one division, residual-corrected."]
    body = [_Z,
            "ax = abs(x)",
            "xm = -min(ax, 750.0)",
            "xmq = -min(750.0, ax)",
            *_exp64_core("xm", "xmq"), *_exp64_pair(),
            "q1 = qi >> 1",
            f"s1 = {_pow2('q1')}",
            f"s2 = {_pow2('qi - q1')}",
            "y = y * s1", _opaque("y"),
            "y = y * s2",                               # e, rounded once even when subnormal
            "yl = yl * s1 * s2",
            "den = 1.0 + y", _opaque("den"),
            "dlo = 1.0 - den", _opaque("dlo"),
            "dlo = dlo + y", _opaque("dlo"),
            "dlo = dlo + yl",
            "st = np.float64(x >= 0.0)",
            "num = max(y, st)",                         # 1 for x >= 0, else e; NaN stays
            "numl = yl * (1.0 - st)",
            "inv = 1.0 / den",
            "y0 = num * inv",
            "res = num - y0 * den", _opaque("res"),
            "return y0 + (res + numl - y0 * dlo) * inv"]
    return head, body


# ---------------------------------------------------------------------------------
# float32: evaluated in float64, rounded once.

def _exp32_core(xc, xq, coeffs):
    """sc * (1 + pm) = e**xc in float64 (pm = e**r - 1), |xc| <= 1000, xq: NaN-free xc."""
    return [f"qf = np.rint({xq} * {_lit(LOG2E)})",
            f"r = {xc} - qf * {_lit(LN2)}",
            *_horner("r", coeffs, "p"),
            "pm = r + (r * r) * p",
            f"sc = {_pow2('np.int64(qf)')}"]


def _log32_core(src):
    """log of the positive normal float64 `src` to ~2**-30 relative."""
    return [f"ix = V({src}, np.int64)",
            f"k = (ix - {SQRT1_2_BITS}) >> 52",
            "f = V(ix - (k << 52), np.float64) - 1.0",
            *_horner("f", LOG32_Q, "lq"),
            f"y = np.float32(np.float64(k) * {_lit(LN2)} + f * lq)"]


def _exp_f32():
    head = ["exp, float32: in float64 (reduction by ln2, degree-6 polynomial), rounded once."]
    body = ["xd = np.float64(x)",
            "xc = max(xd, -110.0)",                  # NaN and +inf pass (and give NaN, inf)
            "xcq = min(100.0, max(-110.0, xd))",     # NaN-free, for the integer conversion
            *_exp32_core("xc", "xcq", EXP32_P),
            "return np.float32(sc + sc * pm)"]
    return head, body


def _expm1_f32():
    head = ["expm1, float32: in float64, 2**q (e**r - 1) + (2**q - 1), rounded once."]
    body = ["xd = np.float64(x)",
            "xc = max(xd, -30.0)",                   # NaN and +inf pass (and give NaN, inf)
            "xcq = min(100.0, max(-30.0, xd))",      # NaN-free, for the integer conversion
            *_exp32_core("xc", "xcq", EXPM1_32_P),
            "y = np.float32(sc * pm + (sc - 1.0))",
            "return y if x != np.float32(0.0) else x  # keeps -0"]
    return head, body


def _log_f32():
    head = ["log, float32: in float64, x = 2**k m, m in [sqrt(2)/2, sqrt(2)), log1p(m - 1) by a",
            "degree-10 polynomial, rounded once."]
    body = [*_log32_core("np.float64(x)"),
            "y = y if x != np.float32(0.0) else np.float32(-np.inf)",
            "y = y if x >= np.float32(0.0) else np.float32(np.nan)",
            "return y if x <= np.float32(3.4028234663852886e38) else x + x"]
    return head, body


def _log1p_f32():
    head = ["log1p, float32: log(1 + x) in float64, where 1 + x is exact for |x| >= 2**-29;",
            "x itself below that."]
    body = ["u = 1.0 + np.float64(x)",
            *_log32_core("u"),
            "y = y if abs(x) >= np.float32(1.862645149230957e-09) else x",
            "y = y if x != np.float32(-1.0) else np.float32(-np.inf)",
            "y = y if x >= np.float32(-1.0) else np.float32(np.nan)",
            "return y if x <= np.float32(3.4028234663852886e38) else x + x"]
    return head, body


def _tanh_f32():
    head = ["tanh, float32: in float64, x P(x*x) / Q(x*x) on |x| <= 9.5 (degree 11/10), rounded once."]
    body = ["xc = min(max(np.float64(x), -9.5), 9.5)",   # NaN stays NaN
            "z = xc * xc",
            *_horner("z", TANH32_P, "pp"),
            *_horner("z", TANH32_Q, "qq"),
            "return np.float32(xc * pp / qq)"]
    return head, body


def _sigmoid_f32():
    head = ["sigmoid, float32: in float64, e = exp(-|x|), 1/(1 + e) or e/(1 + e), rounded once."]
    body = ["xd = np.float64(x)",
            "ax = abs(xd)",
            "xm = -min(ax, 150.0)",
            "xmq = -min(150.0, ax)",
            *_exp32_core("xm", "xmq", EXP32_P),
            "ee = sc + sc * pm",
            "return np.float32(max(ee, np.float64(xd >= 0.0)) / (1.0 + ee))  # 1 or e, over 1 + e"]
    return head, body


_BUILDERS = {
    ("exp", "f64"): _exp_f64, ("exp", "f32"): _exp_f32,
    ("expm1", "f64"): _expm1_f64, ("expm1", "f32"): _expm1_f32,
    ("log", "f64"): _log_f64, ("log", "f32"): _log_f32,
    ("log1p", "f64"): _log1p_f64, ("log1p", "f32"): _log1p_f32,
    ("tanh", "f64"): _tanh_f64, ("tanh", "f32"): _tanh_f32,
    ("sigmoid", "f64"): _sigmoid_f64, ("sigmoid", "f32"): _sigmoid_f32,
}
