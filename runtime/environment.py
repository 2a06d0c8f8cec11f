"""What a compiled function reads from its globals and closure cells.

Tracing bakes such values into the program (numbers, strings, tensors) or reads
them by reference (Variables, captured arrays). A later rebinding would make the
program silently stale, so every call compares a token of them with the one
seen at trace time: numbers and strings by value, tensors, arrays and Variables
by identity (a captured array's contents are data: read at each call). The
snapshot holds the captured objects themselves, so identity is never confused
by a recycled id. Modules,
functions and classes are not data and are not checked.
"""
import numpy as np

from tapejit.tracer.tensor import Tensor, Variable

_SCALARS = (int, float, bool, str, bytes, complex, type(None), np.generic)
_BY_IDENTITY = (np.ndarray, Tensor, Variable)
_MISSING = object()


def _is_data(value):
    if isinstance(value, _SCALARS + _BY_IDENTITY):
        return True
    return isinstance(value, tuple) and all(_is_data(v) for v in value)


def captured_refs(fn):
    """[(holder, name)]: a global (dict, name) or a closure cell (cell, None) holding data."""
    refs = []
    code = getattr(fn, "__code__", None)
    if code is None:
        return refs
    namespace = fn.__globals__
    for name in code.co_names:
        if name in namespace and _is_data(namespace[name]):
            refs.append((namespace, name))
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _is_data(value):
            refs.append((cell, None))
    return refs


def _value(holder, name):
    if name is None:
        try:
            return holder.cell_contents
        except ValueError:
            return _MISSING
    return holder.get(name, _MISSING)


def _expected(value):
    """(value, by_identity): arrays, tensors and Variables are compared with `is`."""
    if isinstance(value, _BY_IDENTITY) or (isinstance(value, tuple) and not all(
            isinstance(v, _SCALARS) for v in value)):
        return value, True
    return value, False


def snapshot(refs):
    """What a later call compares against: [(holder, name, value, by_identity)]."""
    return [(holder, name) + _expected(_value(holder, name)) for holder, name in refs]


def changed(snap):
    """Whether any captured value was rebound since the snapshot (the per-call check)."""
    for holder, name, expected, by_identity in snap:
        value = _value(holder, name)
        if by_identity:
            if value is not expected:
                return True
        elif type(value) is not type(expected) or (value != expected and value == value):
            return True  # (a NaN stays equal to itself here)
    return False


def captured_arrays(refs):
    """id(array) -> (array, name) for the NumPy arrays among the captured values."""
    arrays = {}
    for holder, name in refs:
        value = _value(holder, name)
        if type(value) is np.ndarray:
            arrays[id(value)] = (value, name or "closure")
    return arrays
