"""File permissions that bind root too, for the read-only cache directory tests.

Root writes into a 0o555 directory through CAP_DAC_OVERRIDE (and reads past
permissions through CAP_DAC_READ_SEARCH). `permissions_bind()` takes both out of
the calling thread's effective capability set and puts them back on exit; they
stay permitted, so the thread may regain them. Threads started inside inherit
the reduced set. For other users it does nothing: permissions bind them already.
"""
import contextlib
import ctypes
import os

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522  # two 32-bit words per set


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Sets(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _call(function, header, sets):
    if function(ctypes.byref(header), sets) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{function.__name__}: {os.strerror(errno)}")


@contextlib.contextmanager
def permissions_bind():
    """Within, file permissions bind the calling thread even as root. Raises
    OSError where the kernel does not let a thread change its capabilities."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, sets = _Header(_LINUX_CAPABILITY_VERSION_3, 0), (_Sets * 2)()
    _call(libc.capget, header, sets)
    effective = sets[0].effective
    sets[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    _call(libc.capset, header, sets)
    try:
        yield
    finally:
        sets[0].effective = effective
        _call(libc.capset, header, sets)
