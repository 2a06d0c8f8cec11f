"""The vectorisable transcendentals of compiler/lower/mathlib.py against NumPy's SIMD
ufuncs and against a Numba loop calling math.* (scalar libm), in ns/element over
1e7 elements (inputs and output preallocated, single thread), medians of repeats
measured side by side; plus an in-cache column (4096 elements, repeated) that shows
the compute cost without the memory traffic, and the max ulp error of each on a
dense sweep (float32 against a float64 reference, float64 against long double).

    python -m benchmarks.mathlib [--repeats 15] [--n 10000000] [--only exp,tanh]
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from tapejit.compiler.lower import mathlib
from tapejit.testing import ulp_error

FASTMATH = '{"reassoc", "contract", "arcp", "nsz"}'
HELPER_DECORATOR = mathlib.HELPER_DECORATOR
LOOP_DECORATOR = f'@numba.njit(error_model="numpy", fastmath={FASTMATH}, cache=True)'
LIBM = {"exp": "math.exp(v)", "log": "math.log(v)", "log1p": "math.log1p(v)",
        "expm1": "math.expm1(v)", "tanh": "math.tanh(v)", "sigmoid": "1.0 / (1.0 + math.exp(-v))"}
DTYPES = (np.float32, np.float64)
# Inputs of the timing runs: typical arguments, not special values.
DOMAIN = {"exp": (-10, 10), "log": (1e-3, 1e3), "log1p": (-0.9, 10), "expm1": (-10, 10),
          "tanh": (-5, 5), "sigmoid": (-10, 10)}


def build_kernels(names, cache_dir):
    """One module with every helper, a loop over each helper and a loop over math.*."""
    src = ["import math", "import numba", "import numpy as np", ""]
    for name in names:
        for dt in DTYPES:
            fn = mathlib.helper_name(name, dt)
            src += [HELPER_DECORATOR, mathlib.helper_source(name, dt),
                    LOOP_DECORATOR, f"def loop_{fn}(x, out):",
                    "    for i in range(x.size):", f"        out[i] = {fn}(x[i])", ""]
            lib = LIBM[name] if dt == np.float64 else f"np.float32({LIBM[name]})"
            src += [LOOP_DECORATOR, f"def libm_{fn}(x, out):",
                    "    for i in range(x.size):", "        v = x[i]", f"        out[i] = {lib}", ""]
    text = "\n".join(src)
    modname = "tapejit_bench_mathlib_%x" % (hash(text) & 0xFFFFFFFF)
    path = os.path.join(cache_dir, modname + ".py")
    with open(path, "w") as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def numba_version():
    import numba
    return numba.__version__


def numpy_fn(name):
    if name == "sigmoid":
        def sigmoid(x, out):  # the in-place NumPy formulation: four passes, no temporaries
            np.negative(x, out=out)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        return sigmoid
    f = getattr(np, name)
    return lambda x, out: f(x, out=out)


# ---- accuracy -------------------------------------------------------------------------

def reference(name, x):
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    xw = x.astype(wide)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xw))
        return getattr(np, name)(xw)


def sweep(name, dtype, n=400_001):
    lo, hi = {"exp": (-104, 89) if dtype == np.float32 else (-745, 709.78),
              "log": (0, 100), "log1p": (-1, 100), "expm1": (-20, 89),
              "tanh": (-10, 10), "sigmoid": (-104, 40) if dtype == np.float32 else (-745, 40)}[name]
    rng = np.random.default_rng(0)
    mags = 10.0 ** rng.uniform(-40 if dtype == np.float32 else -300, 30, n)
    return np.concatenate([np.linspace(lo, hi, n), np.linspace(-1, 1, n), mags, -mags]).astype(dtype)


def max_ulp(name, dtype, fn):
    x = sweep(name, dtype)
    if name in ("log",):
        x = np.abs(x)
    if name == "log1p":
        x = x[x >= -1]
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        fn(x, out)
    return float(np.max(ulp_error(out, reference(name, x), dtype)))


# ---- timing ---------------------------------------------------------------------------

def median_ns(fns, args, n, repeats, inner=1):
    """Median ns/element of each fn, the fns measured round-robin (side by side)."""
    samples = [[] for _ in fns]
    for fn in fns:
        fn(*args)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(inner):
                fn(*args)
            samples[k].append((time.perf_counter() - t) / (inner * n) * 1e9)
    return [statistics.median(s) for s in samples]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--only", default=",".join(mathlib.FUNCTIONS))
    args = ap.parse_args(argv)
    names = args.only.split(",")
    cache_dir = os.environ.get("TAPEJIT_BENCH_DIR") or tempfile.mkdtemp(prefix="tapejit_bench_")
    t0 = time.perf_counter()
    mod = build_kernels(names, cache_dir)
    rows = []
    for name in names:
        lo, hi = DOMAIN[name]
        for dt in DTYPES:
            fn = mathlib.helper_name(name, dt)
            ours, libm, npf = getattr(mod, "loop_" + fn), getattr(mod, "libm_" + fn), numpy_fn(name)
            x = np.random.default_rng(1).uniform(lo, hi, args.n).astype(dt)
            out = np.empty_like(x)
            big = median_ns([npf, libm, ours], (x, out), args.n, args.repeats)
            xs, os_ = x[:4096].copy(), out[:4096].copy()
            hot = median_ns([npf, libm, ours], (xs, os_), xs.size, args.repeats, inner=200)
            u_ours = max_ulp(name, dt, ours)
            u_np = max_ulp(name, dt, npf if name != "sigmoid" else
                           (lambda v, o: np.exp(-np.logaddexp(v.dtype.type(0), -v), out=o)))
            rows.append((name, dt.__name__, *big, *hot, u_ours, u_np))
    print(f"({len(rows)} rows in {time.perf_counter() - t0:.0f} s, numba compile included; "
          f"numpy {np.__version__}, numba {numba_version()})\n")
    print("| function | dtype | NumPy | njit math.* | njit tapejit | in-cache NumPy | in-cache math.* "
          "| in-cache tapejit | max ulp tapejit | max ulp NumPy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| {} | {} | {:.2f} | {:.2f} | **{:.2f}** | {:.2f} | {:.2f} | **{:.2f}** | {:.2f} | {:.2f} |".format(*r))
    print("\nns/element (1e7 elements unless 'in-cache'); sigmoid's NumPy column is the in-place "
          "chain 1/(1+exp(-x)), its NumPy ulp column exp(-logaddexp(0,-x)).")


if __name__ == "__main__":
    main()
