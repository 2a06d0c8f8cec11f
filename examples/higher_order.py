"""Higher-order derivatives with nested tapes: `python examples/higher_order.py`.

A gradient computed inside an outer tape is recorded by that tape, so tapes
nest to any order. This example computes
  1. a Hessian-vector product (reverse over reverse: the gradient of <grad f, v>)
     of f(x) = logsumexp(x), whose Hessian is diag(p) - p p^T with p = softmax(x);
  2. the first three derivatives of tanh, the third being -2 (1 - t^2)(1 - 3 t^2)
     with t = tanh(x);
each eagerly, inside `@tj.compile` (the nested tapes are differentiated
symbolically at trace time: one program), and, for tanh, with eager tapes
around a compiled function (its backward program is differentiable again).
Every result is checked with NumPy against the closed form, and the eager
ones against central finite differences too. Everything is float64, so the
checks are tight.
"""
import numpy as np

import tapejit as tj


def logsumexp_hvp(x, v):
    """H(x) @ v for f = logsumexp, without forming the Hessian H."""
    with tj.GradientTape() as outer:
        outer.watch(x)
        with tj.GradientTape() as inner:
            inner.watch(x)
            f = tj.reduce_logsumexp(x)
        grad = inner.gradient(f, x)              # recorded by `outer`
        grad_dot_v = tj.reduce_sum(grad * v)     # v is a constant: d<grad, v>/dx = H v
    return outer.gradient(grad_dot_v, x)


def derivatives_of(fn, x):
    """The first three derivatives of an elementwise `fn` at each element of x."""
    with tj.GradientTape() as tape3:
        tape3.watch(x)
        with tj.GradientTape() as tape2:
            tape2.watch(x)
            with tj.GradientTape() as tape1:
                tape1.watch(x)
                y = fn(x)
            # Elementwise fn: the gradient of sum(y) is fn'(x) at each element.
            d1 = tape1.gradient(y, x)
        d2 = tape2.gradient(d1, x)
    d3 = tape3.gradient(d2, x)
    return d1, d2, d3


@tj.compile
def compiled_logsumexp_hvp(x, v):
    return logsumexp_hvp(x, v)


@tj.compile
def compiled_tanh_derivatives(x):
    return derivatives_of(tj.tanh, x)


@tj.compile
def compiled_tanh(x):  # no tape inside: eager tapes outside differentiate its compiled program
    return tj.tanh(x)


# ---------------------------------------------------------------- NumPy references
def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def logsumexp_hvp_closed_form(x, v):
    p = softmax(x)
    hessian = np.diag(p) - np.outer(p, p)
    return hessian @ v


def logsumexp_hvp_finite_difference(x, v, h=1e-5):
    """Central difference of the gradient (softmax) along v."""
    return (softmax(x + h * v) - softmax(x - h * v)) / (2 * h)


def tanh_derivatives_closed_form(x):
    t = np.tanh(x)
    d1 = 1 - t**2
    return d1, -2 * t * d1, -2 * d1 * (1 - 3 * t**2)


def third_derivative_finite_difference(fn, x, h=1e-2):
    """Central fourth-order stencil for f''', error O(h^2)."""
    return (fn(x + 2 * h) - 2 * fn(x + h) + 2 * fn(x - h) - fn(x - 2 * h)) / (2 * h**3)


def check(name, value, reference, rtol, atol):
    np.testing.assert_allclose(value, reference, rtol=rtol, atol=atol, err_msg=name)
    print(f"  {name}: ok (max abs error {np.max(np.abs(value - reference)):.1e})")


def main():
    np.set_printoptions(precision=6, suppress=True)
    rng = np.random.default_rng(0)

    print("1. Hessian-vector product of logsumexp")
    x = rng.normal(size=6)
    v = rng.normal(size=6)
    closed_form = logsumexp_hvp_closed_form(x, v)
    finite_difference = logsumexp_hvp_finite_difference(x, v)
    eager = logsumexp_hvp(tj.constant(x), tj.constant(v)).numpy()
    compiled = compiled_logsumexp_hvp(tj.constant(x), tj.constant(v)).numpy()
    print("  closed form  (diag(p) - p p^T) v:", closed_form)
    print("  eager nested tapes:              ", eager)
    print("  @tj.compile nested tapes:        ", compiled)
    check("eager HVP vs closed form", eager, closed_form, rtol=1e-12, atol=1e-14)
    check("compiled HVP vs closed form", compiled, closed_form, rtol=1e-12, atol=1e-14)
    check("eager HVP vs finite differences", eager, finite_difference, rtol=1e-6, atol=1e-9)
    print("HVP check passed")
    print()

    print("2. Derivatives of tanh up to the third")
    points = np.linspace(-2.0, 2.0, 5)
    closed_form = tanh_derivatives_closed_form(points)
    eager = [d.numpy() for d in derivatives_of(tj.tanh, tj.constant(points))]
    compiled = [d.numpy() for d in compiled_tanh_derivatives(tj.constant(points))]
    around_compiled = [d.numpy() for d in derivatives_of(compiled_tanh, tj.constant(points))]
    print("  x:                               ", points)
    print("  closed form  -2 (1-t^2)(1-3t^2): ", closed_form[2])
    print("  eager nested tapes:              ", eager[2])
    print("  @tj.compile nested tapes:        ", compiled[2])
    print("  eager tapes around @tj.compile:  ", around_compiled[2])
    for how, values in (("eager", eager), ("compiled", compiled), ("eager around compiled", around_compiled)):
        check(f"{how} d1, d2, d3 vs closed form", np.stack(values), np.stack(closed_form), rtol=1e-12, atol=1e-14)
    # The stencil checks the closed form itself, independently of tapejit.
    check("eager d3 vs finite differences", eager[2], third_derivative_finite_difference(np.tanh, points),
          rtol=0, atol=1e-3)
    print("third derivative check passed")


if __name__ == "__main__":
    main()
