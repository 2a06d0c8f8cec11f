"""Tensor (immutable, wraps a NumPy array) and Variable (mutable, holds a Tensor).

Operators, indexing and iteration are attached by tracer/operators.py once the
ops exist, so both classes share one implementation of each.
"""
import itertools

import numpy as np

from . import core
from . import dtypes as dt
from .errors import DTypeConversionError, ShapeError, describe


class Tensor:
    """An immutable n-dimensional array with a dtype (tf.Tensor's eager semantics).

    >>> import tapejit as tj
    >>> tj.constant([[1.0, 2.0]]).shape
    (1, 2)
    """

    __slots__ = ("_value", "__weakref__")
    # ndarray <op> Tensor defers to the Tensor's reflected operator.
    __array_priority__ = 100
    __hash__ = None  # == is elementwise, as in TensorFlow 2

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return dt._BY_NUMPY[self._value.dtype]

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    def numpy(self):
        """The value as a read-only NumPy array (a scalar for 0-d tensors)."""
        value = self._value
        if core.STATE.recorders:
            for recorder in core.STATE.recorders:
                recorder.concretize(self, "array")
        if isinstance(value, np.ndarray):
            if value.ndim == 0:
                return value[()]
            view = value.view()
            view.flags.writeable = False
            return view
        return value

    def __array__(self, dtype=None, copy=None):
        if core.STATE.recorders:
            for recorder in core.STATE.recorders:
                recorder.concretize(self, "array")
        array = np.asarray(self._value)
        if dtype is not None and array.dtype != dtype:
            return array.astype(dtype)
        if copy:
            return array.copy()
        view = array.view()
        view.flags.writeable = False  # tensors are immutable; so are views of them
        return view

    def _scalar(self, kind):
        value = self._value
        if value.size != 1:
            # bool() raises ValueError, float()/int()/index TypeError (as TF, via NumPy)
            error = ValueError if kind == "bool" else TypeError
            raise error(f"only a one-element tensor can be converted to a Python {kind}; "
                        f"this tensor has {describe(self)}")
        if core.STATE.recorders:
            for recorder in core.STATE.recorders:
                recorder.concretize(self, kind)
        return value.reshape(()).item() if isinstance(value, np.ndarray) else value.item()

    def __bool__(self):
        return bool(self._scalar("bool"))

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __index__(self):
        if self._value.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index; this tensor has {describe(self)}")
        return int(self._scalar("int"))

    def __len__(self):
        if self._value.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._value.shape[0]

    def __repr__(self):
        return (f"<tj.Tensor: shape={self.shape}, dtype={self.dtype.name}, "
                f"numpy={_numpy_repr(self._value)}>")

    def __str__(self):
        return f"tj.Tensor({np.asarray(self._value)}, shape={self.shape}, dtype={self.dtype.name})"

    def __reduce__(self):
        return (_rebuild, (np.asarray(self._value),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _rebuild(array):
    return core.wrap(array)


def _numpy_repr(value):
    if np.ndim(value) == 0:
        return str(np.asarray(value)[()])
    text = repr(np.asarray(value))
    return "\n" + text if "\n" in text else text


class Variable:
    """A mutable tensor: assign, assign_add, assign_sub; usable wherever a tensor is.

    Trainable Variables read inside a GradientTape are watched automatically.

    >>> import tapejit as tj
    >>> v = tj.Variable(1.0)
    >>> _ = v.assign_add(2.0)
    >>> float(v)
    3.0
    """

    __slots__ = ("_tensor", "trainable", "name", "_uid", "__weakref__")
    __array_priority__ = 100
    __hash__ = object.__hash__  # Variables are used as dict keys (optimizer slots)
    _count = 0
    _created = itertools.count()  # creation order: watched_variables() sorts by it (as TF)

    def __init__(self, initial_value, trainable=True, name=None, dtype=None):
        if callable(initial_value):
            initial_value = initial_value()
        if isinstance(initial_value, Variable):
            initial_value = initial_value._tensor
        tensor = core.convert(initial_value, dtype)
        if not isinstance(tensor._value, np.ndarray):
            tensor = core.wrap(np.asarray(tensor._value))
        if name is None:
            Variable._count += 1
            name = "Variable" if Variable._count == 1 else f"Variable_{Variable._count - 1}"
        self._tensor = tensor
        self.trainable = bool(trainable)
        self.name = name
        self._uid = next(Variable._created)

    # Reading: every op that takes a Variable calls _read, so tapes can watch it.
    def _read(self, dtype=None, op="read"):
        tensor = self._tensor
        if dtype is not None and tensor._value.dtype != dt.numpy_dtype(dtype):
            raise DTypeConversionError(f"tj.{op}: requested dtype {dt.as_dtype(dtype).name} for Variable "
                                       f"'{self.name}' of {describe(tensor)}")
        if core.STATE.recorders:
            for recorder in core.STATE.recorders:
                recorder.read_variable(self, tensor)
        return tensor

    def read_value(self):
        return self._read()

    def value(self):
        return self._read()

    @property
    def shape(self):
        return self._tensor._value.shape

    @property
    def dtype(self):
        return dt._BY_NUMPY[self._tensor._value.dtype]

    @property
    def ndim(self):
        return self._tensor._value.ndim

    @property
    def _value(self):
        return self._read()._value

    def numpy(self):
        return self._tensor.numpy()

    def __array__(self, dtype=None, copy=None):
        return self._tensor.__array__(dtype, copy)

    def _write(self, tensor, op):
        if tensor.shape != self.shape:
            raise ShapeError(f"tj.Variable.{op}: Variable '{self.name}' has shape {self.shape} "
                             f"but the new value has {describe(tensor)}")
        # The Variable holds a fresh Tensor: its later reads must not alias a
        # tensor some tape already tracks as something else (TF copies too).
        stored = core.wrap(tensor._value)
        if core.STATE.recorders:
            for recorder in core.STATE.recorders:
                recorder.write_variable(self, tensor, stored)
        self._tensor = stored
        return self

    def _operand(self, value, op):
        tensor = core.convert_like(value, self._tensor._value.dtype, f"Variable.{op}")
        if tensor._value.dtype != self._tensor._value.dtype:
            # ValueError as TF's convert_to_tensor(value, dtype=variable.dtype), and a TypeError
            raise DTypeConversionError(
                f"tj.Variable.{op}: value has {describe(tensor)} but Variable '{self.name}' has "
                f"{describe(self._tensor)}; tapejit does not convert between dtypes: cast with tj.cast")
        return tensor

    def assign(self, value, use_locking=None, name=None, read_value=True):
        tensor = self._operand(value, "assign")
        return self._write(tensor, "assign")

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        return self._write(self._updated("add", delta, "assign_add"), "assign_add")

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        return self._write(self._updated("sub", delta, "assign_sub"), "assign_sub")

    def _updated(self, prim_name, delta, op):
        """old (+/-) delta. Not on any tape (TensorFlow's assignments are not
        differentiable), but seen by compiler traces, which record every op."""
        delta = self._operand(delta, op)
        if delta.shape != self.shape and not _broadcasts_to(delta.shape, self.shape):
            raise ShapeError(f"tj.Variable.{op}: delta has {describe(delta)} but Variable '{self.name}' "
                             f"has shape {self.shape}")
        recorders = core.STATE.recorders
        saved = list(recorders)
        recorders[:] = [r for r in saved if r.records_all_ops]
        try:
            old = self._read()
            return core.apply(core.REGISTRY[prim_name], (old, delta))
        finally:
            recorders[:] = saved

    def __repr__(self):
        return (f"<tj.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}, "
                f"numpy={_numpy_repr(self._tensor._value)}>")

    def __len__(self):
        return len(self._tensor)

    def __bool__(self):
        return bool(self._read())

    def __float__(self):
        return float(self._read())

    def __int__(self):
        return int(self._read())

    def __index__(self):
        return self._read().__index__()

    def __deepcopy__(self, memo):
        return Variable(self._tensor, trainable=self.trainable, name=self.name)


core.Tensor = Tensor
core.Variable = Variable


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:  # not broadcastable at all
        return False
