"""Tracing by concrete execution: the user's function runs once on real values
while a Trace recorder turns every op into an IR equation, every Python
question about a traced value (bool/int/float/numpy) into a guard, and every
Variable read or write into a program effect."""
import os
import sys

import numpy as np

from tapejit.tracer import core
from tapejit.tracer.core import aval
from tapejit.tracer.tape import Recorder
from tapejit.tracer.tensor import Tensor

from .ir import Eqn, Guard, Literal, Print, Program, Var, VariableSlot

_COMPILER_DIR = os.path.dirname(os.path.abspath(__file__))
# tracer/, compiler/, runtime/ and the facade: frames there are tapejit's, not the user's.
_PACKAGE_DIRS = tuple(
    d + os.sep for d in (os.path.dirname(os.path.abspath(sys.modules["tapejit.tracer"].__file__)),
                         _COMPILER_DIR, os.path.join(os.path.dirname(_COMPILER_DIR), "runtime"),
                         os.path.dirname(os.path.abspath(sys.modules["tapejit"].__file__))))


def user_source():
    """file:line of the innermost frame outside tapejit."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIRS) and not filename.startswith(("<frozen", "<tapejit")):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class Trace(Recorder):
    """Records one run of a function as a Program.

    env maps id(tensor) -> Var for every tensor derived from the program's
    inputs; the trace holds those tensors so ids stay unique while it runs.
    Any other tensor an op meets is a constant and becomes a Literal.
    """

    records_all_ops = True

    def __init__(self, name, arg_variables=None, variable_values=None):
        self.name = name
        self.env = {}
        self.keep = []
        self.inputs = []
        self.body = []
        self.reads = []
        self.slots = {}              # id(Variable) -> VariableSlot
        self.writes = {}             # id(Variable) -> (slot, atom), in first-write order
        self.originals = {}          # id(Variable) -> (Variable, Tensor before the trace)
        self.arg_variables = arg_variables or {}   # id(Variable) -> leaf index in the call
        self.variable_values = variable_values    # id(Variable) -> Tensor to read (replays)
        self.candidates = {}         # id(tensor) -> Var that becomes an input only if used

    # ---------------------------------------------------------- atoms
    def input(self, tensor):
        var = Var(aval(tensor))
        self.env[id(tensor)] = var
        self.keep.append(tensor)
        self.inputs.append(var)
        return var

    def candidate(self, tensor):
        """A tensor from outside (a residual): an input if the trace uses it."""
        var = Var(aval(tensor))
        self.env[id(tensor)] = var
        self.keep.append(tensor)
        self.candidates[id(var)] = var
        return var

    def atom(self, tensor):
        var = self.env.get(id(tensor))
        if var is not None:
            return var
        return Literal(np.array(tensor._value))

    def traced(self, tensor):
        return id(tensor) in self.env

    # ------------------------------------------------------ recording
    def record(self, prim, inputs, params, out):
        env = self.env
        for x in inputs:
            if id(x) in env:
                break
        else:
            return  # every input is a constant: the result is one too
        var = Var(aval(out))
        self.body.append(Eqn(prim, [self.atom(x) for x in inputs], params, var, user_source()))
        env[id(out)] = var
        self.keep.append(out)

    def record_custom(self, rule, inputs, outs):
        """The body of a custom_gradient was traced op by op (traces record every op)."""

    def concretize(self, tensor, kind):
        var = self.env.get(id(tensor))
        if var is None:
            return
        value = np.asarray(tensor._value)
        if kind == "array":
            expect = value.copy()
            kind = "value"
        else:
            expect = {"bool": bool, "int": int, "float": float}[kind](value.reshape(()).item())
        index = sum(1 for item in self.body if type(item) is Guard)
        self.body.append(Guard(index, var, kind, expect, user_source()))

    def print(self, tensors, template):
        self.body.append(Print([self.atom(t) for t in tensors], template, user_source()))

    # ------------------------------------------------------ Variables
    def slot(self, var):
        slot = self.slots.get(id(var))
        if slot is None:
            arg = self.arg_variables.get(id(var))
            slot = VariableSlot(arg=arg, variable=None if arg is not None else var, name=var.name)
            self.slots[id(var)] = slot
        return slot

    def read_variable(self, var, tensor):
        if id(tensor) in self.env:
            return
        self.originals.setdefault(id(var), (var, var._tensor))
        v = Var(aval(tensor))
        self.env[id(tensor)] = v
        self.keep.append(tensor)
        self.reads.append((self.slot(var), v))

    def write_variable(self, var, value, stored):
        self.originals.setdefault(id(var), (var, var._tensor))
        atom = self.atom(value)
        if type(atom) is Var:
            self.env[id(stored)] = atom
            self.keep.append(stored)
        self.writes[id(var)] = (self.slot(var), atom)

    def rollback(self):
        """Undo every Variable assignment made while tracing."""
        for var, tensor in self.originals.values():
            var._tensor = tensor

    # --------------------------------------------------------- result
    def program(self, outputs):
        outs = [self.atom(core.convert(o)) for o in outputs]
        inputs = list(self.inputs)
        if self.candidates:
            used = _used_vars(self.body, outs, list(self.writes.values()))
            inputs += [v for k, v in self.candidates.items() if k in used]
        return Program(self.name, inputs, self.reads, self.body, list(self.writes.values()), outs)


def _used_vars(body, outputs, writes):
    used = {id(a) for a in outputs if type(a) is Var}
    used.update(id(a) for _, a in writes if type(a) is Var)
    for item in body:
        for a in (item.inputs if type(item) is not Guard else (item.input,)):
            if type(a) is Var:
                used.add(id(a))
    return used


class WeakFloat(float):
    """A Python float argument while tracing: a dynamic float64 scalar input that
    takes the dtype of the tensors it meets. Arithmetic on it stays traced and
    any use as a plain Python number records a guard, so no value is baked in."""

    __slots__ = ("tensor",)

    def __new__(cls, tensor):
        self = super().__new__(cls, float(tensor._value))
        self.tensor = tensor
        return self

    def _operand(self, other):
        if isinstance(other, WeakFloat):
            return other.tensor
        if type(other) in (float, int, bool):
            return core.wrap(np.float64(other))
        return None

    def _arith(name, swap=False):
        def method(self, other):
            rhs = self._operand(other)
            if rhs is None:
                return NotImplemented
            prim = core.REGISTRY[name]
            a, b = (rhs, self.tensor) if swap else (self.tensor, rhs)
            return WeakFloat(core.apply(prim, (a, b)))
        return method

    __add__, __radd__ = _arith("add"), _arith("add", True)
    __sub__, __rsub__ = _arith("sub"), _arith("sub", True)
    __mul__, __rmul__ = _arith("mul"), _arith("mul", True)
    __truediv__, __rtruediv__ = _arith("div"), _arith("div", True)
    __pow__, __rpow__ = _arith("pow"), _arith("pow", True)

    def _compare(name):
        def method(self, other):
            rhs = self._operand(other)
            if rhs is None:
                return NotImplemented
            return bool(core.apply(core.REGISTRY[name], (self.tensor, rhs)))
        return method

    __lt__, __le__ = _compare("less"), _compare("less_equal")
    __gt__, __ge__ = _compare("greater"), _compare("greater_equal")
    __eq__, __ne__ = _compare("equal"), _compare("not_equal")
    __hash__ = float.__hash__
    del _arith, _compare

    def __neg__(self):
        return WeakFloat(core.apply(core.REGISTRY["neg"], (self.tensor,)))

    def __pos__(self):
        return self

    def __abs__(self):
        return WeakFloat(core.apply(core.REGISTRY["abs"], (self.tensor,)))

    def __float__(self):
        return float(self.tensor)

    def __bool__(self):
        return bool(self.tensor)

    def __int__(self):
        return int(self.tensor)

    def __round__(self, ndigits=None):
        return round(float(self), ndigits)

    def __repr__(self):
        return repr(float(self.tensor._value))


def _weak_to_tensor(value, np_dtype):
    t = value.tensor
    if t._value.dtype == np_dtype:
        return t
    return core.apply(core.REGISTRY["cast"], (t,), {"dtype": np.dtype(np_dtype)})


core.WEAK_SCALARS[WeakFloat] = _weak_to_tensor
