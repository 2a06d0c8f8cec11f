"""Vectorisable scalar exp, log, log1p, expm1, tanh and sigmoid for generated Numba kernels.

Inside Numba loops ``math.exp`` and friends are scalar libm calls (no SVML), several
times slower per element than NumPy's SIMD loops.  The helpers here are branch-free
range reduction plus polynomial/rational approximation in plain arithmetic, the
SLEEF / XLA-CPU / Cephes way, so LLVM vectorises them once they are inlined into a
kernel loop.

Contract with the code generator
--------------------------------
``helper_source(name, dtype)`` is Python source text of ONE function
``tj_{name}_{f32|f64}`` taking and returning a scalar of that dtype.  It refers only to
``np`` and builtins; every constant is an inline literal.  The generator pastes it
into the kernel file and decorates it with::

    @numba.njit(inline="always", error_model="numpy",
                fastmath={"reassoc", "contract", "arcp", "nsz"}, cache=True)

Every helper is self-contained: ``helper_dependencies(name, dtype)`` is always ``()``.

Design
------
* float32 helpers compute in float64 internally and round once at the end.  The
  approximations are built for ~2**-30 relative error, so results are correctly
  rounded except for rare double-rounding cases (max error ~0.5 ulp), float32
  subnormals, overflow and underflow fall out of the final conversion, and none of
  the float64 reassociation hazards below matter at float32 precision.  With an
  8-wide float32 loop LLVM widens the float64 part to 512-bit vectors, so this costs
  about what pure-float32 code would.
* float64 helpers need care because the kernel flags include ``reassoc``: LLVM may
  legally rewrite ``(x - q*C1) - q*C2`` into ``x - q*(C1+C2)`` (it does: the
  Cody-Waite split is folded back into one rounded ln2) and ``1 + (r + c)`` into
  ``(1 + r) + c``.  Where the order of rounding matters the value goes through an
  *opaque* integer add, ``v = np.int64(np.float64(v).view(np.int64) + Z).view(np.float64)``
  with ``Z = np.int64(x != x)``: zero for every non-NaN input (NaN inputs return NaN
  through the final select anyway), but not provably zero to LLVM, so no
  floating-point rewrite crosses it.  It costs one vector integer add.
* 2**n is built from integer bits (``np.int64(...).view(np.float64)``); rounding uses
  ``np.rint`` (``llvm.rint``, a vector instruction); selects are conditional
  expressions, which LLVM turns into vector blends.
* Special values (NaN, +-inf, +-0, overflow and underflow edges, log of 0 and of
  negative numbers) are fixed by final selects that compare the original input, so
  the approximation path never has to be NaN-clean (``fastmath`` excludes
  ``nnan``/``ninf`` in the kernels, so the compares are kept).
"""
import numpy as np

FUNCTIONS = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid")

HELPER_DECORATOR = ('@numba.njit(inline="always", error_model="numpy", '
                    'fastmath={"reassoc", "contract", "arcp", "nsz"}, cache=True)')


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
    """Name of the helper function for `name` (one of FUNCTIONS) and a float dtype."""
    if name not in FUNCTIONS:
        raise ValueError(f"mathlib: unknown function {name!r}")
    return f"tj_{name}_{_suffix(dtype)}"


def helper_dependencies(name, dtype):
    """Other helpers `helper_source(name, dtype)` calls: none, every helper is self-contained."""
    helper_name(name, dtype)
    return ()


def helper_source(name, dtype):
    """Python source of the undecorated helper `helper_name(name, dtype)`."""
    fn = helper_name(name, dtype)
    head, body = _BUILDERS[(name, _suffix(dtype))]()
    lines = [f"def {fn}(x):"] + ["    # " + h for h in head] + ["    " + b for b in body]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------
# Coefficients: minimax fits (Remez exchange in mpmath), kept at full double precision.

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
LN2HI = 0.6931471803691238    # ln2 rounded to 32 significant bits: q*LN2HI is exact for |q| < 2**21
LN2LO = 1.9082149292705877e-10  # ln2 - LN2HI
SQRT1_2_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(2)/2: k = (bits - this) >> 52 gives mantissa in [sqrt(2)/2, sqrt(2))
DBL_MAX = 1.7976931348623157e308
TWO52 = 4503599627370496.0
DBL_MIN = 2.2250738585072014e-308

# (e^r - 1 - r - r^2/2) / r^3 on |r| <= ln2/2: 2**-60.7 relative to expm1(r) (so 2**-62 to e^r).
EXP64_P1 = [0.16666666666666674, 0.04166666666666667, 0.008333333333322207, 0.0013888888888880944,
            0.00019841269886591, 2.4801587333953088e-05, 2.7557242336680357e-06,
            2.755726431433642e-07, 2.5110049895858716e-08, 2.091813816945801e-09]
# (e^r - 1 - r) / r^2 on |r| <= ln2/2, weighted for relative error of e^r: 2**-56.9.
EXP64_P = [0.500000000000001, 0.16666666666666674, 0.04166666666652199, 0.008333333333322207,
           0.0013888888947820891, 0.00019841269886591, 2.4801487326012337e-05,
           2.7557242336680357e-06, 2.763265575933203e-07, 2.5110049895858716e-08]
# The same for float32 results: 2**-33.2.
EXP32_P = [0.5000000080848782, 0.16666666756455065, 0.04166624054209443, 0.008333286007318842,
           0.0013948592779495662, 0.0001990758485640314]
# log1p(f) / f on [sqrt(2)/2 - 1, sqrt(2) - 1], relative: 2**-33.2 (float32 results).
LOG32_Q = None  # filled below
# (2 atanh(s)/s - 2) / s^2 as a polynomial in z = s^2, z <= 0.02944 (|s| <= 3 - 2 sqrt 2),
# weighted by z: 2**-57.6.
LOG64_G = [0.666666666666671, 0.39999999999519825, 0.28571428729284787, 0.2222219909089342,
           0.18183571541169416, 0.15313164375076815, 0.1481051999082406]
# (tanh(a) - a) / a^3 = P(z) / Q(z), z = a^2, a <= TANH64_SPLIT, weighted relative: 2**-59.7.
TANH64_SPLIT = 0.625
TANH64_P = [-0.33333333333333326, -0.020496451377407476, -0.00019907408007369275]
TANH64_Q = [1.0, 0.46148935413220826, 0.02328820198860405, 0.00020642239941149967]

LOG32_Q = [0.999999999998344, -0.4999999999189442, 0.33333333460869935, -0.25000002281605327,
           0.19999985273652252, -0.16666476744945258, 0.1428625713359508, -0.1250692263502788,
           0.11105373109014502, -0.09877251622152347, 0.09030016551020827, -0.09331795731989191,
           0.09185039842516977, -0.04833951703260322]


# ---------------------------------------------------------------------------------
# Source building blocks (lists of statement lines, without indentation).

def _lit(v):
    return repr(float(v))


def _horner(var, coeffs, out):
    """`out` = sum(coeffs[i] * var**i), Horner from the top."""
    lines = [f"{out} = {_lit(coeffs[-1])}"]
    for c in reversed(coeffs[:-1]):
        lines.append(f"{out} = {out} * {var} + {_lit(c)}")
    return lines


def _opaque(var):
    """Pass `var` (float64) through an integer add of Z (= 0 for non-NaN input): a reassociation barrier."""
    return f"{var} = np.int64(np.float64({var}).view(np.int64) + Z).view(np.float64)"


_Z = "Z = np.int64(x != x)  # 0 unless x is NaN; LLVM cannot prove it, so opaque() adds survive"


def _pow2(qexpr, bias=1023):
    """2**q for an int64 expression q with q + bias in [1, 2046]."""
    return f"np.int64(({qexpr} + {bias}) << 52).view(np.float64)"


def _split(var, hi, lo):
    """hi = var with the low 27 significand bits cleared (so hi*hi is exact), lo = var - hi."""
    return [f"{hi} = np.int64(np.float64({var}).view(np.int64) & -134217728).view(np.float64)",
            f"{lo} = {var} - {hi}"]


def _sum3(t0, t1, t2, rest, out):
    """out = t0 + t1 + t2 + rest with one final rounding (up to ~2**-60 relative):
    Fast2Sum twice (|t0| >= |t1|, |t0 + t1| >= |t2|, t0..t2 exact values), then the small
    remainder. Each intermediate that cancels goes through opaque() so reassociation cannot
    fold the error terms away."""
    return [f"s1 = {t0} + {t1}", _opaque("s1"),
            f"e1 = {t0} - s1", _opaque("e1"),
            f"e1 = e1 + {t1}", _opaque("e1"),
            f"s2 = s1 + {t2}", _opaque("s2"),
            "e2 = s1 - s2", _opaque("e2"),
            f"e2 = e2 + {t2}", _opaque("e2"),
            f"d = e1 + e2 + {rest}", _opaque("d"),
            f"{out} = s2 + d"]


def _exp64_core_split(xin):
    """e**xin = 2**qi * (1 + t + cm + cl) for finite |xin| <= 750, |t| <= ln2/2 exact, cm exact,
    |cl| < 0.008, to ~2**-57 relative.

    Cody-Waite: t = xin - q*LN2HI exact, r = t - q*LN2LO rounded with its error dr;
    e**r - 1 - r = r*r/2 + r**3 P1(r), with r*r/2 split into an exact cm plus small terms.
    """
    return [f"qf = np.rint({xin} * {_lit(LOG2E)})",
            "qi = np.int64(qf)",
            f"t = {xin} - qf * {_lit(LN2HI)}",
            _opaque("t"),
            f"r = t - qf * {_lit(LN2LO)}",
            _opaque("r"),
            "dr = t - r", _opaque("dr"),
            f"dr = dr - qf * {_lit(LN2LO)}",
            *_split("r", "rh", "rl"),
            "cm = 0.5 * (rh * rh)",
            *_horner("r", EXP64_P1, "p1"),
            f"cl = (rh * rl + 0.5 * (rl * rl)) + r * dr + (r * r) * (r * p1) - qf * {_lit(LN2LO)}"]


def _exp64_core(xin):
    """e**xin = 2**qi * y for finite |xin| <= 750, y in [0.7, 1.42] to ~0.6 ulp.

    Cody-Waite: t = xin - q*LN2HI exact, r = t - q*LN2LO; e**r = 1 + t + c,
    c = r*r*P(r) - q*LN2LO; 1 + t summed exactly (Fast2Sum s, e), so y = s + (e + c)
    rounds once apart from c's own small error.
    """
    return [f"qf = np.rint({xin} * {_lit(LOG2E)})",
            "qi = np.int64(qf)",
            f"t = {xin} - qf * {_lit(LN2HI)}",
            _opaque("t"),
            f"r = t - qf * {_lit(LN2LO)}",
            *_horner("r", EXP64_P, "p"),
            f"c = (r * r) * p - qf * {_lit(LN2LO)}",
            "s = 1.0 + t", _opaque("s"),
            "e = 1.0 - s", _opaque("e"),
            "e = e + t", _opaque("e"),
            "d = e + c", _opaque("d"),
            "y = s + d"]


def _div_fixed(num, den, den_lo, out):
    """`out` = num / (den + den_lo), one division plus a residual correction: ~0.5 ulp."""
    return [f"inv = 1.0 / {den}",
            f"y0 = {num} * inv",
            f"res = {num} - y0 * {den}",
            _opaque("res"),
            f"res = res - y0 * {den_lo}",
            f"{out} = y0 + res * inv"]


# ---------------------------------------------------------------------------------
# float64

def _exp_f64():
    head = ["exp, float64: Cody-Waite reduction by ln2, degree-11 polynomial, exact 1 + t,",
            "scaled by 2**q through the exponent bits (in two steps for subnormal results)."]
    body = [_Z,
            *_exp64_core("x"),
            "yb = np.float64(y).view(np.int64) + (qi << 52)",
            # 2**-1000 * (y * 2**(q + 1000)) for results below 2**-1022
            "y = np.int64(yb).view(np.float64) if qi > -1022 else np.int64(yb + (1000 << 52)).view(np.float64) * 9.332636185032189e-302",
            "y = y if x <= 709.782712893384 else np.inf",   # the last x with a finite result
            "y = y if x > -745.2 else 0.0",
            "return y if x == x else x"]
    return head, body


def _expm1_f64():
    head = ["expm1, float64: the exp reduction; 2**q * (1 + t + c) - 1 summed as",
            "2 * ((h - 1/2) + h*t + h*c), h = 2**(q-1), with an exact Fast2Sum."]
    body = [_Z,
            "xc = x if x > -40.0 else -40.0",
            "xc = xc if xc < 710.0 else 710.0",
            *_exp64_core_split("xc"),
            f"h = {_pow2('qi', 1022)}",
            # h - 1/2 is exact for -52 <= q <= 53; outside, the smaller of the two joins the tail
            "a = h - 0.5", _opaque("a"),
            "a = h if qi > 53 else a",
            "a = -0.5 if qi < -52 else a",
            "tail = h * cl",
            "tail = tail - 0.5 if qi > 53 else tail",
            "tail = tail + h if qi < -52 else tail",
            *_sum3("a", "h * t", "h * cm", "tail", "y"),
            "y = 2.0 * y",
            "y = y if abs(x) > 5.551115123125783e-17 else x",   # expm1(x) rounds to x below 2**-54; keeps -0
            "return y if x == x else x"]
    return head, body


def _log_core64(src):
    """log of the positive normal float64 `src` * 2**-kadj: k*ln2 + log1p(f), f = m - 1 exact,
    fdlibm's s = f/(2+f) series; k*LN2HI + f summed exactly. Needs Z and `kadj`, `cextra`."""
    return [f"ix = np.float64({src}).view(np.int64)",
            f"k = (ix - {SQRT1_2_BITS}) >> 52",
            "m = np.int64(ix - (k << 52)).view(np.float64)",
            "kf = np.float64(k - kadj)",
            "f = m - 1.0",
            "sv = f / (2.0 + f)",
            "z = sv * sv",
            *_horner("z", LOG64_G, "g"),
            *_split("f", "fh", "fl"),
            "hh = 0.5 * (fh * fh)",                        # exact; f*f/2 = hh + hl
            "hl = fl * (fh + 0.5 * fl)",
            f"cl = sv * (hh + hl + z * g) - hl + (kf * {_lit(LN2LO)} + cextra)",
            f"a = kf * {_lit(LN2HI)}",
            "mhh = -hh",
            *_sum3("a", "f", "mhh", "cl", "y")]


def _log_f64():
    head = ["log, float64: x = 2**k * m, m in [sqrt(2)/2, sqrt(2)); log1p(m - 1) by fdlibm's",
            "s = f/(2+f) series (degree-7 in s**2); k*ln2 + f summed exactly."]
    body = [_Z,
            f"sub = x < {_lit(DBL_MIN)}",
            f"xs = x * {_lit(TWO52)} if sub else x",
            "kadj = 52 if sub else 0",
            "cextra = 0.0",
            *_log_core64("xs"),
            "y = y if x != 0.0 else -np.inf",
            "y = y if x >= 0.0 else np.nan",
            f"return y if x <= {_lit(DBL_MAX)} else x + x"]
    return head, body


def _log1p_f64():
    head = ["log1p, float64: log(u) for u = 1 + x, plus the rounding error of u divided by u;",
            "log(u) as in tj_log_f64."]
    body = [_Z,
            "u = 1.0 + x", _opaque("u"),
            "a1 = u - 1.0", _opaque("a1"),
            "a2 = u - x", _opaque("a2"),
            "kadj = 0",
            "ku = (np.float64(u).view(np.int64) >> 52) - 1023",
            "cextra = ((1.0 - a2) if ku >= 1 else (x - a1)) / u",
            *_log_core64("u"),
            "y = y if x != -1.0 else -np.inf",
            "y = y if x >= -1.0 else np.nan",
            f"y = y if x <= {_lit(DBL_MAX)} else x + x",
            "return y if x != 0.0 else x"]
    return head, body


def _tanh_f64():
    head = [f"tanh, float64: |x| < {TANH64_SPLIT}: x + x**3 P(x**2)/Q(x**2); else 1 - 2e/(1 + e),",
            "e = exp(-2|x|) (exp of tj_exp_f64); one shared, residual-corrected division."]
    body = [_Z,
            "ax = abs(x)",
            "ax = ax if ax < 20.0 else 20.0",
            "small = ax < " + _lit(TANH64_SPLIT),
            "xm = -2.0 * ax",
            *_exp64_core("xm"),
            "ee = np.int64(np.float64(y).view(np.int64) + (qi << 52)).view(np.float64)",
            "zz = ax * ax",
            *_horner("zz", TANH64_P, "pp"),
            *_horner("zz", TANH64_Q, "qq"),
            "den = 1.0 + ee", _opaque("den"),
            "dlo = 1.0 - den", _opaque("dlo"),
            "dlo = dlo + ee",
            "num = pp if small else 2.0 * ee",
            "den = qq if small else den",
            "dlo = 0.0 if small else dlo",
            *_div_fixed("num", "den", "dlo", "ratio"),
            "th = ax + ax * zz * ratio if small else 1.0 - ratio",
            "th = np.int64(np.float64(th).view(np.int64) | (np.float64(x).view(np.int64) & -9223372036854775808)).view(np.float64)",
            "return th if x == x else x"]
    return head, body


def _sigmoid_f64():
    head = ["sigmoid, float64: e = exp(-|x|) (as tj_exp_f64); 1/(1 + e) or e/(1 + e),",
            "1 + e kept exact as a pair, one residual-corrected division."]
    body = [_Z,
            "ax = abs(x)",
            "ax = ax if ax < 750.0 else 750.0",
            "xm = -ax",
            *_exp64_core("xm"),
            "yb = np.float64(y).view(np.int64) + (qi << 52)",
            "fast = np.int64(yb).view(np.float64)",
            "slow = np.int64(yb + (1000 << 52)).view(np.float64) * 9.332636185032189e-302",
            "ee = fast if qi > -1022 else slow",
            "den = 1.0 + ee", _opaque("den"),
            "dlo = 1.0 - den", _opaque("dlo"),
            "dlo = dlo + ee",
            "num = 1.0 if x >= 0.0 else ee",
            *_div_fixed("num", "den", "dlo", "y"),
            "return y if x == x else x"]
    return head, body


# ---------------------------------------------------------------------------------
# float32: evaluated in float64, rounded once.

def _exp32_core(xin):
    """e**xin in float64 to ~2**-33, for |xin| <= 1000 (2**q built as a normal double)."""
    return [f"qf = np.rint({xin} * {_lit(LOG2E)})",
            f"r = {xin} - qf * {_lit(LN2)}",
            *_horner("r", EXP32_P, "p"),
            "pm = r + (r * r) * p",          # e**r - 1
            f"sc = {_pow2('np.int64(qf)')}"]


def _log32_core(src):
    """log of the positive normal float64 `src` to ~2**-33 relative."""
    return [f"ix = np.float64({src}).view(np.int64)",
            f"k = (ix - {SQRT1_2_BITS}) >> 52",
            "f = np.int64(ix - (k << 52)).view(np.float64) - 1.0",
            *_horner("f", LOG32_Q, "lq"),
            f"y = np.float64(k) * {_lit(LN2)} + f * lq"]


def _exp_f32():
    head = ["exp, float32: computed in float64 (reduction by ln2, degree-7 polynomial), rounded once."]
    body = ["xd = np.float64(x)",
            "xd = xd if xd < 100.0 else 100.0",
            "xd = xd if xd > -110.0 else -110.0",
            *_exp32_core("xd"),
            "y = np.float32(sc + sc * pm)",
            "return y if x == x else x"]
    return head, body


def _expm1_f32():
    head = ["expm1, float32: computed in float64, 2**q * (e**r - 1) + (2**q - 1), rounded once."]
    body = ["xd = np.float64(x)",
            "xd = xd if xd < 100.0 else 100.0",
            "xd = xd if xd > -30.0 else -30.0",
            *_exp32_core("xd"),
            "y = np.float32(sc * pm + (sc - 1.0))",
            "y = y if x != 0.0 else x",
            "return y if x == x else x"]
    return head, body


def _log_f32():
    head = ["log, float32: computed in float64: x = 2**k * m, m in [sqrt(2)/2, sqrt(2)),",
            "log1p(m - 1) by a degree-14 polynomial, rounded once."]
    body = ["xd = np.float64(x)",
            *_log32_core("xd"),
            "y = np.float32(y)",
            "y = y if x != np.float32(0.0) else np.float32(-np.inf)",
            "y = y if x >= np.float32(0.0) else np.float32(np.nan)",
            "return y if x <= np.float32(3.4028234663852886e38) else x + x"]
    return head, body


def _log1p_f32():
    head = ["log1p, float32: log(1 + x) in float64 (1 + x is exact there for |x| >= 2**-29),",
            "x itself below that; rounded once."]
    body = ["xd = np.float64(x)",
            "u = 1.0 + xd",
            *_log32_core("u"),
            "y = np.float32(y)",
            "y = y if abs(x) >= np.float32(1.862645149230957e-09) else x",  # 2**-29
            "y = y if x != np.float32(-1.0) else np.float32(-np.inf)",
            "y = y if x >= np.float32(-1.0) else np.float32(np.nan)",
            "return y if x <= np.float32(3.4028234663852886e38) else x + x"]
    return head, body


def _tanh_f32():
    head = ["tanh, float32: in float64, em = expm1(-2|x|), tanh|x| = -em / (2 + em), sign of x."]
    body = ["ax = abs(np.float64(x))",
            "ax = ax if ax < 10.0 else 10.0",
            "xm = -2.0 * ax",
            *_exp32_core("xm"),
            "em = sc * pm + (sc - 1.0)",
            "th = np.float32(abs(em) / (2.0 + em))",
            "th = np.int32(np.float32(th).view(np.int32) | (np.float32(x).view(np.int32) & np.int32(-2147483648))).view(np.float32)",
            "return th if x == x else x"]
    return head, body


def _sigmoid_f32():
    head = ["sigmoid, float32: in float64, e = exp(-|x|), 1/(1 + e) or e/(1 + e), rounded once."]
    body = ["xd = np.float64(x)",
            "ax = abs(xd)",
            "ax = ax if ax < 150.0 else 150.0",
            "xm = -ax",
            *_exp32_core("xm"),
            "ee = sc + sc * pm",
            "y = np.float32((1.0 if xd >= 0.0 else ee) / (1.0 + ee))",
            "return y if x == x else x"]
    return head, body


_BUILDERS = {
    ("exp", "f64"): _exp_f64, ("exp", "f32"): _exp_f32,
    ("expm1", "f64"): _expm1_f64, ("expm1", "f32"): _expm1_f32,
    ("log", "f64"): _log_f64, ("log", "f32"): _log_f32,
    ("log1p", "f64"): _log1p_f64, ("log1p", "f32"): _log1p_f32,
    ("tanh", "f64"): _tanh_f64, ("tanh", "f32"): _tanh_f32,
    ("sigmoid", "f64"): _sigmoid_f64, ("sigmoid", "f32"): _sigmoid_f32,
}
