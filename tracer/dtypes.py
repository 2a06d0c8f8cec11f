"""The five dtypes tapejit supports and the conversions between them and NumPy."""
import numpy as np


class DType:
    """A tensor element type; compares equal to itself and to its NumPy dtype."""

    __slots__ = ("name", "as_numpy_dtype", "is_floating", "is_integer", "is_bool", "_np")

    def __init__(self, name, np_dtype):
        self.name = name
        self._np = np.dtype(np_dtype)
        self.as_numpy_dtype = self._np.type
        self.is_floating = self._np.kind == "f"
        self.is_integer = self._np.kind in "iu"
        self.is_bool = self._np.kind == "b"

    def __repr__(self):
        return f"tj.{self.name}"

    def __eq__(self, other):
        if isinstance(other, DType):
            return self is other
        try:
            return self._np == np.dtype(other)
        except TypeError:
            return False

    def __hash__(self):
        return hash(self._np)

    def __reduce__(self):
        return (as_dtype, (self.name,))


float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
bool_ = DType("bool", np.bool_)

ALL = (float32, float64, int32, int64, bool_)
FLOATS = frozenset(d._np for d in (float32, float64))
NUMERIC = frozenset(d._np for d in (float32, float64, int32, int64))
INTEGERS = frozenset(d._np for d in (int32, int64))

_BY_NUMPY = {d._np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME["bool_"] = bool_


def from_numpy(np_dtype):
    """The DType of a NumPy dtype, or TypeError naming the supported ones."""
    try:
        return _BY_NUMPY[np_dtype]
    except KeyError:
        raise TypeError(
            f"tapejit does not support NumPy dtype {np.dtype(np_dtype).name}; "
            "supported: float32, float64, int32, int64, bool") from None


def as_dtype(value):
    """Accept a DType, a NumPy dtype or type, or a name such as 'float32'."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    if value is bool:
        return bool_
    if value is float:
        return float32
    if value is int:
        return int32
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"cannot interpret {value!r} as a tapejit dtype") from None
    return from_numpy(np_dtype)


def numpy_dtype(value):
    """The NumPy dtype for anything as_dtype accepts."""
    return as_dtype(value)._np
