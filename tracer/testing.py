"""check_grads: gradients against float64 central differences, to any order."""
import numpy as np

from . import core
from .composites import reduce_sum
from .ops.shape import concat, reshape
from .tape import GradientTape


def _flat_output(f, xs):
    out = f(*xs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return concat([reshape(core.convert(o), (-1,)) for o in outs], axis=0)


def check_grads(f, args, order=2, modes=("rev",), eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, max_full=64):
    """Assert that reverse-mode gradients of `f` match central differences.

    `f` takes and returns tensors (or tuples of them). Arguments are cast to
    float64. Up to `max_full` input elements the whole Jacobian is compared;
    beyond, one random direction and one random cotangent (<c, J t>). For
    order > 1 the same check runs on x -> <grad(x), u> for a random u, with
    the gradient taken by a nested tape.

    >>> import tapejit as tj
    >>> check_grads(lambda x: tj.sin(x) * x, [np.linspace(-1.0, 1.0, 5)], order=2)
    """
    if tuple(modes) != ("rev",):
        raise ValueError("check_grads: tapejit has reverse mode only; pass modes=('rev',)")
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in args]
    _check_first_order(f, arrays, eps, atol, rtol, rng, max_full)
    if order > 1:
        directions = [rng.standard_normal(a.shape) for a in arrays]

        def grad_along(*xs):
            with GradientTape() as tape:
                tape.watch(list(xs))
                y = reduce_sum(_flat_output(f, xs))
            grads = tape.gradient(y, list(xs), unconnected_gradients="zero")
            total = 0.0
            for g, u in zip(grads, directions, strict=True):
                total = total + reduce_sum(g * core.wrap(u))
            return core.convert(total, np.float64)

        check_grads(grad_along, arrays, order - 1, modes, eps, atol, rtol, seed + 1, max_full)


def _evaluate(f, arrays):
    return np.asarray(_flat_output(f, [core.wrap(a) for a in arrays])._value, dtype=np.float64)


def _analytic_vjp(f, arrays, cotangent):
    xs = [core.wrap(a) for a in arrays]
    with GradientTape() as tape:
        tape.watch(xs)
        y = _flat_output(f, xs)
    grads = tape.gradient(y, xs, output_gradients=core.wrap(cotangent), unconnected_gradients="zero")
    for g, a in zip(grads, arrays, strict=True):
        assert g.shape == a.shape, f"gradient shape {g.shape} != input shape {a.shape}"
        assert g._value.dtype == np.float64, f"gradient dtype {g.dtype} is not float64"
    return [np.asarray(g._value, np.float64) for g in grads]


def _check_first_order(f, arrays, eps, atol, rtol, rng, max_full):
    out = _evaluate(f, arrays)
    total = sum(a.size for a in arrays)
    if total <= max_full and out.size <= max_full:
        for k in range(out.size):
            c = np.zeros(out.size)
            c[k] = 1.0
            analytic = _analytic_vjp(f, arrays, c)
            for i, a in enumerate(arrays):
                numeric = np.zeros(a.shape)
                for j in np.ndindex(a.shape):
                    numeric[j] = _central_difference(f, arrays, i, j, eps)[k]
                np.testing.assert_allclose(
                    analytic[i], numeric, rtol=rtol, atol=atol,
                    err_msg=f"d output[{k}] / d argument {i}: tape gradient vs central differences")
        return
    c = rng.standard_normal(out.size)
    directions = [rng.standard_normal(a.shape) for a in arrays]
    analytic = sum(float(np.sum(g * t)) for g, t in zip(_analytic_vjp(f, arrays, c), directions, strict=True))
    plus = _evaluate(f, [a + eps * t for a, t in zip(arrays, directions, strict=True)])
    minus = _evaluate(f, [a - eps * t for a, t in zip(arrays, directions, strict=True)])
    numeric = float(np.dot(c, (plus - minus) / (2 * eps)))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                               err_msg="<J^T c, t> from the tape vs <c, J t> from central differences")


def _central_difference(f, arrays, i, j, eps):
    plus = [a.copy() for a in arrays]
    minus = [a.copy() for a in arrays]
    plus[i][j] += eps
    minus[i][j] -= eps
    return (_evaluate(f, plus) - _evaluate(f, minus)) / (2 * eps)


def ulp_error(got, ref, dtype):
    """|got - ref| in ulps of the exact value (the subnormal ulp below the normal range).
    Where the rounded reference is +-inf or NaN, 0 if got is the same and inf otherwise;
    inf where got is +-inf but the reference rounds to a finite number."""
    mant, emin = (24, -126) if dtype == np.float32 else (53, -1022)
    wide = ref.dtype.type
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        _, e = np.frexp(ref)
        ulp = np.ldexp(wide(1), np.maximum(e.astype(np.int64) - 1, emin) - (mant - 1))
        err = (np.abs(got.astype(wide) - ref) / ulp).astype(np.float64)
    special = ~np.isfinite(rounded)
    same = (got[special] == rounded[special]) | (np.isnan(got[special]) & np.isnan(rounded[special]))
    err[special] = np.where(same, 0.0, np.inf)
    err[np.isinf(got) & np.isfinite(rounded)] = np.inf
    return err
