"""Backends: how a program becomes the function the call path runs.

"numpy" calls each primitive's NumPy kernel in turn (the reference). "numba"
fuses elementwise chains and their reductions into Numba loop nests, loaded
through the on-disk kernel cache, and keeps the NumPy kernels for the rest
(matmul through BLAS, gathers, shape ops) between them.
"""
from typing import NamedTuple

from tapejit.compiler import executor
from tapejit.compiler.ir import pretty
from tapejit.compiler.lower import codegen, fusion

BACKENDS = ("numba", "numpy")


class KernelOptions(NamedTuple):
    """tj.compile's options for the Numba kernels: threads for large loop nests,
    LLVM's fast-math flags, and whether compiled kernels persist in the disk cache."""

    parallel: bool = False
    fastmath: bool = False
    cache: bool = True


def build_runner(program, backend, options=KernelOptions()):
    """The program as a function; `.source` is its driver's source and `.kernels` the
    (RegionSource, Numba dispatcher) of each region it calls."""
    if backend == "numpy":
        run = executor.build(program)
        run.kernels = []
        return run
    if backend != "numba":
        raise ValueError(f"tj.compile: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    from . import kernel_cache, threads
    pretty(program)  # names the variables the kernel comments mention
    kernels = {}
    overlap = not options.parallel or threads.use_threadsafe_layer()
    for region in fusion.plan(program):
        source = codegen.region_source(region, options.parallel, options.fastmath)
        # The driver calls the dispatcher itself: no wrapper on the hot path.
        fn = kernel_cache.load_kernel(source.source, source.name, persist=options.cache).fn
        kernels[region.start] = (source, fn if overlap else threads.serialised(fn))
    run = executor.build(program, kernels)
    run.kernels = list(kernels.values())
    return run

