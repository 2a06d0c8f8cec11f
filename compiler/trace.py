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

from .ir import Eqn, Guard, Literal, Print, Program, Var, VariableSlot

_COMPILER_DIR = os.path.dirname(os.path.abspath(__file__))
# tracer/, compiler/, runtime/ and the facade: frames there are tapejit's, not the user's.
_PACKAGE_DIRS = tuple(
    d + os.sep for d in (os.path.dirname(os.path.abspath(sys.modules["tapejit.tracer"].__file__)),
                         _COMPILER_DIR, os.path.join(os.path.dirname(_COMPILER_DIR), "runtime"),
                         os.path.dirname(os.path.abspath(sys.modules["tapejit"].__file__))))


def is_user_file(filename):
    """Whether code in `filename` is the user's: not tapejit's, nor its generated code, nor frozen."""
    return not filename.startswith(_PACKAGE_DIRS) and not filename.startswith(("<frozen", "<tapejit"))


def user_source():
    """file:line of the innermost frame outside tapejit."""
    frame = sys._getframe(2)
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


class Trace(Recorder):
    """Records one run of a function as a Program.

    env maps id(tensor) -> Var for every tensor derived from the program's
    inputs; the trace holds those tensors so ids stay unique while it runs.
    Any other tensor an op meets is a constant and becomes a Literal.
    """

    records_all_ops = True

    def __init__(self, name, arg_variables=None, captured_arrays=None):
        self.name = name
        # When set (by grad.derive), the file:line recorded instead of the caller's: the
        # forward equation being replayed or differentiated.
        self.source = None
        self.env = {}
        self.keep = []
        self.inputs = []
        self.body = []
        self.reads = []
        self.slots = {}              # id(Variable) -> VariableSlot
        self.writes = {}             # id(Variable) -> (slot, atom), in first-write order
        self.originals = {}          # id(Variable) -> (Variable, Tensor before the trace)
        self.arg_variables = arg_variables or {}   # id(Variable) -> leaf index in the call
        self.captured_arrays = captured_arrays or {}  # id(array) -> (array, name): read per call
        self.array_tensors = {}                      # id(array) -> its input tensor
        self.candidates = {}         # id(tensor) -> Var that becomes an input only if used
        self.rereads = []            # (Var after an assignment, the Variable's read Var)

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
        value = np.asarray(tensor._value)
        if value.size > 1 and bool((value == value.reshape(-1)[0]).all()):
            # A uniform constant (ones_like seeds, scalars broadcast while tracing) stays a
            # broadcast of one number: no array of the traced shape baked into the program.
            var = Var(aval(tensor))
            scalar = Literal(np.array(value.reshape(-1)[0], value.dtype))
            source = self.source if self.source is not None else user_source()
            self.body.append(Eqn(core.REGISTRY["broadcast_to"], [scalar], {"shape": value.shape}, var, source))
            self.env[id(tensor)] = var
            self.keep.append(tensor)
            return var
        return Literal(np.array(value))

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
        self.body.append(Eqn(prim, [self.atom(x) for x in inputs], params, var, self.source or user_source()))
        env[id(out)] = var
        self.keep.append(out)

    def record_custom(self, rule, inputs, outs):
        """The body of a custom_gradient was traced op by op (traces record every op)."""

    def concretize(self, tensor, kind):
        var = self.env.get(id(tensor))
        if var is None:
            return
        value = np.asarray(tensor._value)
        if kind in ("array", "value"):  # "value": a guard replayed by grad.derive
            expect = value.copy()
            kind = "value"
        else:
            expect = {"bool": bool, "int": int, "float": float}[kind](value.reshape(()).item())
        index = sum(1 for item in self.body if type(item) is Guard)
        self.body.append(Guard(index, var, kind, expect, self.source or user_source()))

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

    def capture_array(self, array):
        tensor = self.array_tensors.get(id(array))
        if tensor is None and id(array) in self.captured_arrays:
            _, name = self.captured_arrays[id(array)]
            tensor = core.wrap(np.array(array))
            v = Var(aval(tensor))
            self.env[id(tensor)] = v
            self.keep.append(tensor)
            self.reads.append((VariableSlot(array=array, name=name), v))
            self.array_tensors[id(array)] = tensor
        return tensor

    def write_variable(self, var, value, stored):
        self.originals.setdefault(id(var), (var, var._tensor))
        slot = self.slot(var)
        read = next((v for s, v in self.reads if s is slot), None)
        if read is None:  # the Variable's gradient needs a read to attribute to
            self.read_variable(var, var._tensor)
            read = next((v for s, v in self.reads if s is slot), None)
        atom = self.atom(value)
        if type(atom) is Var:
            # Later reads see the assigned value, but as TensorFlow's fresh reads:
            # no gradient flows back through the assignment (stop_gradient), and
            # their gradient is the Variable's (a reread of `read`).
            barrier = Var(atom.aval)
            self.body.append(Eqn(core.REGISTRY["stop_gradient"], [atom], {}, barrier,
                                 self.source or user_source()))
            self.env[id(stored)] = barrier
            self.keep.append(stored)
            if read is not None:
                self.rereads.append((barrier, read))
        self.writes[id(var)] = (slot, atom)

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
        return Program(self.name, inputs, self.reads, self.body, list(self.writes.values()), outs,
                       self.rereads)


def _used_vars(body, outputs, writes):
    used = {id(a) for a in outputs if type(a) is Var}
    used.update(id(a) for _, a in writes if type(a) is Var)
    for item in body:
        for a in (item.inputs if type(item) is not Guard else (item.input,)):
            if type(a) is Var:
                used.add(id(a))
    return used


class WeakFloat:
    """A Python float argument while tracing: a dynamic float64 scalar input that
    takes the dtype of the tensors it meets. Arithmetic on it stays traced, and any
    use as a plain Python number (float(), math.exp, bool, hash, comparisons)
    records a guard, so no value is baked in silently. Not a float subclass: C
    code reads a float subclass's value directly, without asking it."""

    __slots__ = ("tensor",)
    stands_for = "float"  # in error messages (tracer.errors.type_name)

    def __init__(self, tensor):
        self.tensor = tensor

    @staticmethod
    def _operand(other):
        if type(other) is WeakFloat:
            return other.tensor
        if type(other) in (float, int, bool) or isinstance(other, (np.floating, np.integer)):
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

    def __hash__(self):
        return hash(float(self))

    def __round__(self, ndigits=None):
        return round(float(self), ndigits)

    def __format__(self, spec):
        return format(float(self.tensor._value), spec)  # printing happens at trace time only

    def __repr__(self):
        return repr(float(self.tensor._value))


def _weak_to_tensor(value, np_dtype):
    t = value.tensor
    if t._value.dtype == np_dtype:
        return t
    return core.apply(core.REGISTRY["cast"], (t,), {"dtype": np.dtype(np_dtype)})


core.WEAK_SCALARS[WeakFloat] = _weak_to_tensor
