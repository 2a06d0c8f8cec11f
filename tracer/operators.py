"""Python operators, indexing and iteration for Tensor and Variable (one
implementation for both: a Variable operand is read, and tapes are told)."""
from .ops.elementwise import (add, divide, equal, floordiv, floormod, greater, greater_equal, less, less_equal,
                              logical_and, logical_not, logical_or, logical_xor, multiply, negative, not_equal,
                              pow, subtract, abs)
from .ops.index import getitem
from .ops.linalg import matmul
from .tensor import Tensor, Variable


def _swap(op):
    return lambda self, other: op(other, self)


def _equality(op, if_none):
    def method(self, other):
        if other is None:  # `t == None` is a plain False, as in TensorFlow
            return if_none
        return op(self, other)
    return method


def _iterate(self):
    n = len(self)  # a 0-d tensor raises TypeError here, at iter() (as TensorFlow)
    return (self[i] for i in range(n))


METHODS = {
    "__add__": add, "__radd__": _swap(add),
    "__sub__": subtract, "__rsub__": _swap(subtract),
    "__mul__": multiply, "__rmul__": _swap(multiply),
    "__truediv__": divide, "__rtruediv__": _swap(divide),
    "__floordiv__": floordiv, "__rfloordiv__": _swap(floordiv),
    "__mod__": floormod, "__rmod__": _swap(floormod),
    "__pow__": pow, "__rpow__": _swap(pow),
    "__matmul__": matmul, "__rmatmul__": _swap(matmul),
    "__neg__": negative, "__abs__": abs, "__pos__": lambda self: self,
    "__invert__": logical_not,
    "__and__": logical_and, "__rand__": _swap(logical_and),
    "__or__": logical_or, "__ror__": _swap(logical_or),
    "__xor__": logical_xor, "__rxor__": _swap(logical_xor),
    "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
    "__eq__": _equality(equal, False), "__ne__": _equality(not_equal, True),
    "__getitem__": getitem, "__iter__": _iterate,
}

for _cls in (Tensor, Variable):
    for _name, _fn in METHODS.items():
        setattr(_cls, _name, _fn)
