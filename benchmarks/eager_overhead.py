"""Eager overhead: a 100-op elementwise chain (mul/add/tanh) on a (4,) float32
tensor, forward under a GradientTape and forward + gradient, against the same
forward chain in plain NumPy. Medians of repeats, measured side by side.

    python -m benchmarks.eager_overhead [--repeats 200]
"""
import argparse
import statistics
import time

import numpy as np

import tapejit as tj

CHAIN = 100


def chain(x, a, b, tanh):
    """The benchmark's chain; the same code runs on arrays (np.tanh) and tensors (tj.tanh)."""
    for i in range(CHAIN):
        k = i % 3
        if k == 0:
            x = x * a
        elif k == 1:
            x = x + b
        else:
            x = tanh(x)
    return x


def numpy_chain(x, a, b):
    return chain(x, a, b, np.tanh)


def tj_chain(x, a, b):
    return chain(x, a, b, tj.tanh)


def tj_forward_taped(x, a, b):
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = tj_chain(x, a, b)
    return tape, y


def tj_forward_backward(x, a, b):
    tape, y = tj_forward_taped(x, a, b)
    return tape.gradient(y, x)


def median_us_per_op(fn, repeats, inner=20):
    for _ in range(inner * 5):  # warm up: first calls run slower (allocator, caches, clocks)
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples) / CHAIN * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)

    xs = np.linspace(-1, 1, 4, dtype=np.float32)
    a_np, b_np = np.float32([1.01, 0.99, 1.02, 0.98]), np.float32([0.1, -0.1, 0.05, 0.0])
    x, a, b = tj.constant(xs), tj.constant(a_np), tj.constant(b_np)

    # Same values both ways before timing anything.
    np.testing.assert_allclose(tj_chain(x, a, b).numpy(), numpy_chain(xs, a_np, b_np), rtol=1e-6)
    grad = tj_forward_backward(x, a, b)
    assert grad.shape == (4,) and np.all(np.isfinite(grad.numpy()))

    rows = [
        ("NumPy forward", median_us_per_op(lambda: numpy_chain(xs, a_np, b_np), args.repeats), None),
        ("tapejit eager forward (no tape)", median_us_per_op(lambda: tj_chain(x, a, b), args.repeats), None),
        ("tapejit forward under a tape", median_us_per_op(lambda: tj_forward_taped(x, a, b), args.repeats), 1.5),
        ("tapejit forward + gradient", median_us_per_op(lambda: tj_forward_backward(x, a, b), args.repeats), 2.0),
    ]
    base = rows[0][1]
    print(f"{CHAIN}-op mul/add/tanh chain on a (4,) float32 tensor, median of {args.repeats} repeats")
    print("| system | us/op | x NumPy forward | target us/op |")
    print("|---|---:|---:|---:|")
    for name, us, target in rows:
        print(f"| {name} | {us:.2f} | {us / base:.2f} | {'' if target is None else f'<= {target}'} |")


if __name__ == "__main__":
    main()
