"""What a compiled function reads from globals and closure cells.

Tracing bakes such values into the program (numbers, strings, tensors) or reads
them by reference (Variables, captured arrays). A later rebinding would make the
program silently stale, so every call compares a token of them with the one
seen at trace time: numbers and strings by value, tensors, arrays and Variables
by identity (a captured array's contents are data: read at each call). The
snapshot holds the captured objects themselves, so identity is never confused
by a recycled id. Modules, functions and classes are not data and are not checked.

The reads are found in the code, before tracing: the function's own, and that of
every user function it reaches by name (helpers in its module or another,
`module.helper`, nested functions and lambdas, closures, decorated and compiled
functions), with `module.CONSTANT` reads among them. Library code (the standard
library, installed packages, tapejit itself) is not followed: its globals are
not rebound between calls.
"""
import inspect
import os
import sysconfig
import types

import numpy as np

from tapejit.compiler.trace import is_user_file
from tapejit.tracer.tensor import Tensor, Variable

_SCALARS = (int, float, bool, str, bytes, complex, type(None), np.generic)
_BY_IDENTITY = (np.ndarray, Tensor, Variable)
_MISSING = object()


def _is_data(value):
    if isinstance(value, _SCALARS + _BY_IDENTITY):
        return True
    return isinstance(value, tuple) and all(_is_data(v) for v in value)


def captured_refs(fn):
    """[(holder, name)]: the globals (dict, name) and closure cells (cell, None)
    holding data that fn reads, itself or through the user functions it reaches."""
    refs = {}
    _read_by(fn, refs, {}, library_too=True)
    return list(refs.values())


def _read_by(fn, refs, seen, library_too=False):
    fn = _python_function(fn)
    if fn is None or id(fn) in seen or (not library_too and _is_library(fn.__code__)):
        return
    seen[id(fn)] = fn  # kept alive, so no id is recycled during the walk
    _read_by_code(fn.__code__, fn.__globals__, refs, seen)
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if _is_data(value):
            refs[id(cell), None] = (cell, None)
        else:
            _read_by(value, refs, seen)


def _read_by_code(code, namespace, refs, seen):
    for name in code.co_names:  # global names and attribute names alike: a spare check costs nothing stale
        if name.startswith("__"):  # module metadata (__name__, __file__), not program data
            continue
        value = namespace.get(name, _MISSING)
        if _is_data(value):
            refs[id(namespace), name] = (namespace, name)
        elif isinstance(value, types.ModuleType):  # module.CONSTANT, module.helper
            members = vars(value)
            for attr in code.co_names:
                member = _MISSING if attr.startswith("__") else members.get(attr, _MISSING)
                if _is_data(member):
                    refs[id(members), attr] = (members, attr)
                elif member is not _MISSING:
                    _read_by(member, refs, seen)
        elif value is not _MISSING:
            _read_by(value, refs, seen)
    for const in code.co_consts:  # nested functions, lambdas and comprehensions share the namespace
        if isinstance(const, types.CodeType):
            _read_by_code(const, namespace, refs, seen)


def _python_function(value):
    """The Python function behind value (itself, or what a tj.compile or functools.wraps
    wrapper wraps), or None for anything else (classes, builtins, data)."""
    if isinstance(value, (type, types.ModuleType)) or not callable(value):
        return None
    try:
        value = inspect.unwrap(value)
    except Exception:  # noqa: BLE001 - a __wrapped__ cycle, or a proxy whose attributes raise: not followed
        return None
    if isinstance(value, types.MethodType):  # a bound method read by name
        value = value.__func__
    return value if isinstance(value, types.FunctionType) else None


def _is_library(code):
    return not is_user_file(code.co_filename) or code.co_filename.startswith(_INSTALLED)


# The standard library and installed packages, each with a trailing separator.
_INSTALLED = tuple({os.path.join(os.path.abspath(path), "") for key, path in sysconfig.get_paths().items()
                    if key in ("stdlib", "platstdlib", "purelib", "platlib")})


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
    """Whether any captured value was rebound since the snapshot (the per-call
    check, on the hot path: _value inlined, the same object passes first)."""
    for holder, name, expected, by_identity in snap:
        if name is None:
            try:
                value = holder.cell_contents
            except ValueError:
                value = _MISSING
        else:
            value = holder.get(name, _MISSING)
        if value is expected:
            continue
        if by_identity or type(value) is not type(expected) or (value != expected and value == value):
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
