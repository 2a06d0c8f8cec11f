"""Primitives, the thread-local recorder stack, and the eager dispatch path.

Every op, eager or traced, goes through `apply` (or the inlined copies of it
in `unary_op`/`binary_op`, the hot path): run the NumPy kernel, wrap the
result, and offer the equation to every active recorder. Recorders are
gradient tapes now and compiler traces later; this module knows neither.
"""
import threading

import numpy as np

from . import dtypes as dt
from .errors import DTypeConversionError, DTypeError, ShapeError, describe, type_name

EMPTY = {}


class _ThreadState(threading.local):
    def __init__(self):
        # Active recorders, innermost last. Thread-local: a tape opened on one
        # thread never sees ops run on another (as TensorFlow's tape stack).
        self.recorders = []


STATE = _ThreadState()


class ShapedArray:
    """The abstract value of a tensor: what shape rules see."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def size(self):
        size = 1
        for d in self.shape:
            size *= d
        return size

    def __repr__(self):
        return f"ShapedArray({self.shape}, {self.dtype.name})"

    def __eq__(self, other):
        return isinstance(other, ShapedArray) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))


def aval(x):
    return ShapedArray(x._value.shape, x._value.dtype)


class Primitive:
    """One op of the registry.

    impl: the eager NumPy kernel, impl(*arrays, **params) -> array.
    shape_rule: shape_rule(*avals, **params) -> ShapedArray; raises ShapeError or
        DTypeError naming the op, argument, shape and dtype on bad input.
    vjp: a tuple with one rule per input, rule(ct, *inputs, out, **params) -> Tensor
        or None (no gradient), written with tapejit ops so it is differentiable
        again. None for ops declared non-differentiable.
    """

    __slots__ = ("name", "impl", "shape_rule", "vjp", "public_name", "__weakref__")

    def __init__(self, name, impl, shape_rule, vjp=None, public_name=None):
        self.name = name
        self.impl = impl
        self.shape_rule = shape_rule
        self.vjp = vjp
        self.public_name = public_name or name

    @property
    def differentiable(self):
        return self.vjp is not None

    def __repr__(self):
        return self.name

    def abstract_eval(self, avals, params):
        return self.shape_rule(*avals, **params)

    def failure(self, inputs, params, exc):
        """The error to raise when the kernel failed: the shape rule's, or a wrapped one."""
        try:
            self.shape_rule(*[aval(x) for x in inputs], **params)
        except (ShapeError, DTypeError) as rule_error:
            return rule_error
        args = ", ".join(f"argument {i} has {describe(x)}" for i, x in enumerate(inputs))
        message = str(exc)
        prefix = f"tj.{self.public_name}: "
        return type(exc)(f"{'' if message.startswith(prefix) else prefix}{message} ({args})")


REGISTRY = {}


def register(prim):
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    REGISTRY[prim.name] = prim
    return prim


# Set by tensor.py; core only needs to build and recognise tensors.
Tensor = None
Variable = None
_new = object.__new__


def wrap(value):
    out = _new(Tensor)
    out._value = value
    return out


def apply(prim, inputs, params=EMPTY):
    """Run `prim` eagerly on Tensors and record it. The generic path."""
    if len(inputs) > 1:
        # Inputs of different dtypes: let the shape rule reject what NumPy would
        # silently promote (float32 @ float64), and pass gathers and selects.
        first = inputs[0]._value.dtype
        for x in inputs:
            if x._value.dtype != first:
                prim.shape_rule(*[aval(x) for x in inputs], **params)
                break
    try:
        value = prim.impl(*[x._value for x in inputs], **params)
    except (ValueError, TypeError, IndexError) as exc:
        raise prim.failure(inputs, params, exc) from None
    out = _new(Tensor)
    out._value = value
    recorders = STATE.recorders
    if recorders:
        for recorder in recorders:
            recorder.record(prim, inputs, params, out)
    return out


# ---------------------------------------------------------------- conversion

def _python_scalar_array(value, np_dtype, op):
    """A Python scalar adopting a tensor's dtype, refusing lossy conversion as TF does."""
    if np_dtype.kind in "iu" and isinstance(value, float) and not value.is_integer():
        raise DTypeError(f"tj.{op}: cannot convert Python float {value!r} to a tensor of dtype "
                         f"{np_dtype.name} without losing its fraction; cast the tensor first")
    if np_dtype.kind == "b" and not isinstance(value, bool):
        raise DTypeError(f"tj.{op}: cannot convert {value!r} to a bool tensor")
    try:
        return np_dtype.type(value)
    except OverflowError:
        raise DTypeError(f"tj.{op}: Python int {value!r} does not fit dtype {np_dtype.name}") from None


def _default_array(value, op):
    """Python and NumPy values to an array with TensorFlow's default dtypes."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.array(value)
        dt.from_numpy(array.dtype)
        return array
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int32(value) if -2**31 <= value < 2**31 else np.int64(value)
    if isinstance(value, float):
        return np.float32(value)
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (Tensor, Variable)) for v in _leaves(value)):
            value = _nested_values(value)
        array = np.array(value)
        if array.dtype.kind == "f" and not _has_numpy_float(value):
            array = array.astype(np.float32)
        elif array.dtype.kind == "i" and array.dtype != np.int32:
            if array.size == 0 or (array.min() >= -2**31 and array.max() < 2**31):
                array = array.astype(np.int32)
        elif array.dtype.kind == "f" and array.size == 0:
            array = array.astype(np.float32)
        dt.from_numpy(array.dtype)
        return array
    raise _not_convertible(value, op)


def _not_convertible(value, op):
    return TypeError(f"tj.{op}: cannot convert {type_name(value)} {_short_repr(value)} to a tensor")


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaves(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            yield v


def _has_numpy_float(value):
    return any(isinstance(v, (np.ndarray, np.generic)) and np.asarray(v).dtype == np.float64
               for v in _leaves(value))


def _nested_values(value):
    if isinstance(value, (list, tuple)):
        return [_nested_values(v) for v in value]
    if isinstance(value, (Tensor, Variable)):
        return value.numpy()
    return value


def to_array(value, np_dtype=None, op="convert_to_tensor"):
    """Convert a non-tensor value to a NumPy array or scalar of a supported dtype."""
    if np_dtype is None:
        return _default_array(value, op)
    if isinstance(value, (bool, int, float)):
        return _python_scalar_array(value, np_dtype, op)
    if not isinstance(value, (np.ndarray, np.generic, list, tuple)):
        raise _not_convertible(value, op)  # None, strings, objects: never numbers (None would be NaN)
    array = np.array(value)
    if array.dtype.kind in "OSUV":
        raise _not_convertible(value, op)
    if np_dtype.kind in "iu" and array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise DTypeError(f"tj.convert_to_tensor: cannot convert float values to {np_dtype.name} "
                         "without losing their fractions")
    return array.astype(np_dtype)


def convert(value, dtype=None, op="convert_to_tensor"):
    """Anything tensor-like to a Tensor (Variables are read, and tapes told)."""
    cls = type(value)
    if cls is Tensor or (isinstance(value, Tensor)):
        if dtype is not None and value._value.dtype != dt.numpy_dtype(dtype):
            raise DTypeConversionError(f"tj.{op}: requested dtype {dt.as_dtype(dtype).name} for a tensor "
                                       f"of {describe(value)}; use tj.cast to change a tensor's dtype")
        return value
    if cls is Variable:
        return value._read(dtype, op)
    if cls in WEAK_SCALARS:
        return WEAK_SCALARS[cls](value, dt.numpy_dtype(float if dtype is None else dtype))
    if cls is np.ndarray and dtype is None and STATE.recorders:
        captured = _captured(value)
        if captured is not None:
            return captured
    return wrap(to_array(value, None if dtype is None else dt.numpy_dtype(dtype), op))


def _captured(array):
    """A recorder's tensor for an array the traced function captured (read per call)."""
    for recorder in STATE.recorders:
        tensor = recorder.capture_array(array)
        if tensor is not None:
            return tensor
    return None


# Weakly typed scalars a compiler trace passes in place of Python floats:
# type -> convert(value, np_dtype) giving a Tensor of the dtype they meet.
WEAK_SCALARS = {}


def convert_like(value, np_dtype, op):
    """An op's non-tensor argument, converted to the dtype of the tensors it meets."""
    cls = type(value)
    if cls is Tensor or isinstance(value, Tensor):
        return value
    if cls is Variable:
        return value._read(None, op)
    if cls is float or cls is int or cls is bool:
        return wrap(_python_scalar_array(value, np_dtype, op))
    if cls in WEAK_SCALARS:
        return WEAK_SCALARS[cls](value, np_dtype)
    if isinstance(value, (np.ndarray, np.generic)):
        if cls is np.ndarray and STATE.recorders:
            captured = _captured(value)
            if captured is not None:
                return captured
        return wrap(to_array(value, op=op))
    return wrap(to_array(value, np_dtype, op))


def _strong_dtype(values):
    for v in values:
        if isinstance(v, Tensor):
            return v._value.dtype
        if type(v) is Variable:
            return v._tensor._value.dtype
        if isinstance(v, (np.ndarray, np.generic)):
            return v.dtype
    return None


def convert_group(values, op):
    """Convert an op's tensor arguments together: Python scalars adopt the dtype
    of the first tensor-like argument (or their own default if there is none)."""
    if not values:
        return []
    np_dtype = _strong_dtype(values)
    if np_dtype is None:
        first = convert(values[0], op=op)
        np_dtype = first._value.dtype
    return [convert_like(v, np_dtype, op) for v in values]


def same_dtype(op, inputs, names=None):
    """TypeError naming both dtypes when tensors of different dtypes meet (as TF)."""
    first = inputs[0]._value.dtype
    for i, x in enumerate(inputs[1:], 1):
        if x._value.dtype != first:
            a = names[0] if names else "argument 0"
            b = names[i] if names else f"argument {i}"
            raise DTypeError(
                f"tj.{op}: {b} has {describe(x)} but {a} has {describe(inputs[0])}; "
                f"tapejit does not promote between dtypes (as TensorFlow): cast one with tj.cast")


# ------------------------------------------------------- hot-path op factories

def unary_op(prim, allowed):
    """The public function of a one-input primitive without params (hot path)."""
    impl = prim.impl

    def op(x, name=None):
        if type(x) is not Tensor:
            x = convert(x, op=prim.public_name)
        v = x._value
        if v.dtype not in allowed:
            raise prim.failure((x,), EMPTY, TypeError(v.dtype))
        out = _new(Tensor)
        out._value = impl(v)
        recorders = STATE.recorders
        if recorders:
            inputs = (x,)
            for recorder in recorders:
                recorder.record(prim, inputs, EMPTY, out)
        return out

    op.__name__ = prim.public_name
    return op


def _coerce_pair(x, y, op):
    """Python scalars and arrays meeting a Tensor take or keep their dtype."""
    if type(x) is Tensor:
        return x, convert_like(y, x._value.dtype, op)
    if type(y) is Tensor:
        return convert_like(x, y._value.dtype, op), y
    return convert_group((x, y), op)


def binary_op(prim, allowed):
    """The public function of a two-input elementwise primitive (hot path:
    every line here runs for every `a * b`, so checks are merged)."""
    impl = prim.impl
    name_ = prim.public_name

    def op(x, y, name=None):
        if type(x) is not Tensor or type(y) is not Tensor:
            x, y = _coerce_pair(x, y, name_)
        xv = x._value
        yv = y._value
        dtype = xv.dtype
        if dtype is not yv.dtype or dtype not in allowed:
            if dtype != yv.dtype:
                same_dtype(name_, (x, y), ("x", "y"))
            if dtype not in allowed:
                raise prim.failure((x, y), EMPTY, TypeError(dtype))
        out = _new(Tensor)
        try:
            out._value = impl(xv, yv)
        except (ValueError, TypeError) as exc:
            raise prim.failure((x, y), EMPTY, exc) from None
        recorders = STATE.recorders
        if recorders:
            inputs = (x, y)
            for recorder in recorders:
                recorder.record(prim, inputs, EMPTY, out)
        return out

    op.__name__ = name_
    return op
