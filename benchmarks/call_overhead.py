"""The compiled call path on a signature already seen: signature key, trace-tree
walk, Variable reads, output wrapping. Measured as the time of the whole call
minus the time of the generated program run directly, on two (4,) float32
tensors (and a variant reading one Variable); and, for the seed's value and
gradient (one Numba kernel), the whole call minus the raw call of that kernel's
dispatcher on preallocated outputs (issue 4: at most 2 us). Medians of repeats.

    python -m benchmarks.call_overhead
"""
import statistics
import timeit

import numpy as np

import tapejit as tj


def per_call_ns(fn, number=20000, repeats=15):
    runs = timeit.repeat(fn, number=number, repeat=repeats)
    return statistics.median(runs) / number * 1e9


def main():
    x = tj.constant(np.arange(4, dtype=np.float32))
    y = tj.constant(np.ones(4, np.float32))
    w = tj.Variable(np.full(4, 2.0, np.float32))

    @tj.compile
    def add(a, b):
        return a + b

    @tj.compile
    def scaled(a, b):
        return a * w + b

    rows = []
    for name, f in (("f(x, y) = x + y", add), ("f(x, y) = x * w + y (reads a Variable)", scaled)):
        expected = f.fn(x, y).numpy()
        np.testing.assert_array_equal(f(x, y).numpy(), expected)
        path = next(iter(f._entries.values())).paths[0]
        run = path.executable.run
        arrays = [x._value, y._value] + [w._tensor._value for _ in path.program.reads]
        np.testing.assert_array_equal(run(*arrays)[0][0], expected)
        whole = per_call_ns(lambda: f(x, y))
        program = per_call_ns(lambda: run(*arrays))
        eager = per_call_ns(lambda: f.fn(x, y))
        rows.append((name, whole, program, whole - program, eager))
    print("| function | compiled call ns | program alone ns | call path ns (target <= 1500) | eager ns |")
    print("|---|---:|---:|---:|---:|")
    for name, whole, program, overhead, eager in rows:
        print(f"| {name} | {whole:.0f} | {program:.0f} | {overhead:.0f} | {eager:.0f} |")
    print()
    whole, kernel = seed_against_raw_kernel()
    print("| function | compiled call ns | raw Numba kernel call ns | difference ns (target <= 2000) |")
    print("|---|---:|---:|---:|")
    print(f"| seed: reduce_sum(x)**2 and its gradient, (2, 2) | {whole:.0f} | {kernel:.0f} | {whole - kernel:.0f} |")


def seed_against_raw_kernel():
    """(whole call ns, raw kernel dispatcher call ns) of a one-kernel value-and-gradient."""
    @tj.compile
    def seed(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            z = tj.reduce_sum(x) ** 2
        return z, tape.gradient(z, x)

    x = tj.constant(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    seed(x)
    run = next(iter(seed._entries.values())).paths[0].executable.run
    ((source, kernel),) = run.kernels
    args = [x._value] + [np.empty(v.aval.shape, v.aval.dtype) for v in source.region.stored + source.scalar_outputs]
    args.append(np.array(source.dims, np.int64))
    assert kernel(*args) == 0
    return per_call_ns(lambda: seed(x)), per_call_ns(lambda: kernel(*args))


if __name__ == "__main__":
    main()
