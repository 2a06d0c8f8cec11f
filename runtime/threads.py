"""Numba's threading layer for parallel kernels.

Numba's default `workqueue` layer aborts the whole process when two Python
threads run parallel kernels at once ("Concurrent access has been detected",
NUMBA_NOTES section 5). Before the first parallel kernel runs, tapejit picks a
layer that is safe under concurrent calls (OpenMP, else TBB); if neither is
installed, parallel kernels are called one at a time (`SERIAL`). OpenMP's idle
threads are told to sleep (OMP_WAIT_POLICY=PASSIVE, unless set) so that they leave
the cores to BLAS between kernels.
"""
import os
import threading

SERIAL = threading.Lock()  # held around parallel kernel calls when no thread-safe layer exists
_CHOSEN = []


def use_threadsafe_layer():
    """Configure numba before its first parallel launch; True when calls may overlap."""
    if _CHOSEN:
        return _CHOSEN[0]
    import numba
    try:
        safe = numba.threading_layer() in ("omp", "tbb")  # already launched: it cannot change now
    except ValueError:  # not launched yet
        safe = numba.config.THREADING_LAYER in ("omp", "tbb", "safe", "threadsafe")
        if numba.config.THREADING_LAYER == "default":
            # Idle OpenMP threads sleep instead of spinning: spinning ones fight OpenBLAS's
            # threads for the cores between kernels (an MLP step ran 4-5x slower on 2
            # cores). Read when libgomp loads, so before the import below; a value the
            # user set wins.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            for name, module in (("omp", "numba.np.ufunc.omppool"), ("tbb", "numba.np.ufunc.tbbpool")):
                try:
                    __import__(module)
                except ImportError:
                    continue
                numba.config.THREADING_LAYER = name
                safe = True
                break
    _CHOSEN.append(safe)
    return safe


def serialised(kernel):
    """The kernel, called under SERIAL (for a threading layer that is not thread-safe)."""
    def call(*args):
        with SERIAL:
            return kernel(*args)
    call.__wrapped__ = kernel
    return call
