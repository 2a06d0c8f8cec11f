"""The IR: a flat, typed SSA program (a jaxpr-like list of equations).

Grammar of the text form (docs/ir.md):

    ir NAME(a:f32[3,4], b:f32[4]) {
      reads  v0:f32[4] = Variable 'w'                  # Variable reads (program inputs)
      c:f32[3,4] = mul a b                              # train.py:12
      d:f32[]    = reduce_sum[axes=(0, 1), keepdims=False] c   # train.py:13
      guard[0, bool, expect=True] e                     # train.py:14
      write  'w' <- f                                   # Variable writes, committed on success
      return (d,)
    }
"""
import numpy as np

from tapejit.tracer.core import REGISTRY, ShapedArray
from tapejit.tracer.dtypes import _BY_NUMPY
from tapejit.tracer.errors import TapejitError

_SHORT = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}


def type_text(aval):
    return f"{_SHORT.get(aval.dtype.name, aval.dtype.name)}[{','.join(map(str, aval.shape))}]"


class Var:
    """An SSA variable: defined once, by a program input or one equation."""

    __slots__ = ("aval", "name")

    def __init__(self, aval):
        self.aval = aval
        self.name = None  # assigned by the printer

    def __repr__(self):
        return f"Var({type_text(self.aval)})"


class Literal:
    """A constant baked into the program (scalars and small arrays made while tracing)."""

    __slots__ = ("value", "aval")

    def __init__(self, value):
        self.value = value
        self.aval = ShapedArray(np.shape(value), np.asarray(value).dtype)

    def text(self):
        value = np.asarray(self.value)
        if value.ndim == 0:
            return repr(value.item())
        if value.size <= 6:
            return np.array2string(value, separator=",").replace("\n", "")
        return f"const<{type_text(self.aval)}>"

    def key(self):
        value = np.asarray(self.value)
        return (value.dtype.str, value.shape, value.tobytes())


class Eqn:
    """out = prim[params](*inputs); `source` is the user's file:line."""

    __slots__ = ("prim", "inputs", "params", "out", "source")

    def __init__(self, prim, inputs, params, out, source=""):
        self.prim = prim
        self.inputs = tuple(inputs)
        self.params = params
        self.out = out
        self.source = source


class Guard:
    """Python asked for a traced value (bool/int/float): the path is valid only
    while the value equals `expect`. Checked as soon as its input exists."""

    __slots__ = ("index", "input", "kind", "expect", "source")

    def __init__(self, index, input, kind, expect, source=""):
        self.index = index
        self.input = input
        self.kind = kind
        self.expect = expect
        self.source = source

    def holds(self, value):
        if self.kind == "value":  # t.numpy() / np.asarray(t): the whole array, bit for bit
            value = np.asarray(value)
            expect = self.expect
            return value.shape == expect.shape and value.dtype == expect.dtype and \
                value.tobytes() == expect.tobytes()
        value = np.asarray(value).reshape(()).item()
        if self.kind == "bool":
            return bool(value) == self.expect
        if self.kind == "int":
            return int(value) == self.expect
        return value == self.expect or (value != value and self.expect != self.expect)

    def expect_text(self):
        """`expect` on one short line: a value guard's array is summarised."""
        if self.kind != "value":
            return repr(self.expect)
        text = np.array2string(self.expect, separator=", ", threshold=8, edgeitems=2)
        return f"array({' '.join(text.split()).replace('[ ', '[')})"

    def describe(self):
        return f"guard {self.index} at {self.source or '?'} ({self.kind}(...) == {self.expect_text()})"


class Print:
    """tj.print at run time: prints its inputs when the program runs."""

    __slots__ = ("inputs", "template", "source")

    def __init__(self, inputs, template, source=""):
        self.inputs = tuple(inputs)
        self.template = template
        self.source = source


class VariableSlot:
    """Where a program read comes from: the Variable at positional leaf `arg` of
    the call, a Variable captured from a closure or global (held by reference), or
    a captured NumPy array (`array`, its contents read at each call)."""

    __slots__ = ("arg", "variable", "name", "array")

    def __init__(self, arg=None, variable=None, name="", array=None):
        self.arg = arg
        self.variable = variable
        self.name = name
        self.array = array

    def text(self):
        if self.array is not None:
            return f"array '{self.name}'"
        return f"arg{self.arg}" if self.arg is not None else f"'{self.name}'"

    def value(self, leaves):
        """The array this read gives for a call with these leaves."""
        if self.array is not None:
            return np.array(self.array)  # a copy: the program must not alias the caller's array
        var = leaves[self.arg] if self.arg is not None else self.variable
        return var._tensor._value


class Program:
    """inputs: Vars of the tensor-like arguments (flattened); reads: (slot, Var)
    for Variables; body: Eqn, Guard and Print in program order; writes: (slot, Var)
    committed after the body succeeds; outputs: Vars or Literals; rereads: see below."""

    __slots__ = ("name", "inputs", "reads", "body", "writes", "outputs", "rereads")

    def __init__(self, name, inputs, reads, body, writes, outputs, rereads=()):
        self.name = name
        self.inputs = list(inputs)
        self.reads = list(reads)
        self.body = list(body)
        self.writes = list(writes)
        self.outputs = list(outputs)
        # (value, read): `value` is what reading a Variable gives after the program
        # assigned it (a stop_gradient of the assigned value: assignments are not
        # differentiable); its gradient is the Variable's, so it adds to `read`'s.
        self.rereads = list(rereads)

    def replace(self, **changes):
        fields = {k: getattr(self, k) for k in self.__slots__}
        fields.update(changes)
        return Program(**fields)

    @property
    def eqns(self):
        return [e for e in self.body if type(e) is Eqn]

    @property
    def guards(self):
        return [e for e in self.body if type(e) is Guard]

    def __str__(self):
        return pretty(self)


# ------------------------------------------------------------------ printer
def _param_text(value):
    if isinstance(value, np.dtype):
        return _SHORT.get(value.name, value.name)
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def _names():
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        q, r = divmod(n, 26)
        yield letters[r] + (str(q) if q else "")
        n += 1


def pretty(program):
    names = _names()

    def define(var):
        var.name = next(names)
        return f"{var.name}:{type_text(var.aval)}"

    def use(atom):
        return atom.name if type(atom) is Var else atom.text()

    params = ", ".join(define(v) for v in program.inputs)
    lines = [f"ir {program.name}({params}) {{"]
    body = []
    for slot, var in program.reads:
        body.append((f"{define(var)} = {'read_array' if slot.array is not None else 'read_variable'} {slot.text()}", ""))
    for item in program.body:
        kind = type(item)
        if kind is Eqn:
            p = ", ".join(f"{k}={_param_text(v)}" for k, v in item.params.items())
            head = f"{item.prim.name}[{p}]" if p else item.prim.name
            body.append((f"{define(item.out)} = {head} {' '.join(use(a) for a in item.inputs)}", item.source))
        elif kind is Guard:
            body.append((f"guard[{item.index}, {item.kind}, expect={item.expect_text()}] {use(item.input)}",
                         item.source))
        else:
            body.append((f"print[{item.template!r}] {' '.join(use(a) for a in item.inputs)}", item.source))
    for slot, var in program.writes:
        body.append((f"write_variable {slot.text()} {use(var)}", ""))
    width = max((len(text) for text, _ in body), default=0)
    for text, source in body:
        lines.append(f"  {text.ljust(width)}  # {source}" if source else f"  {text}")
    outs = ", ".join(use(v) for v in program.outputs)
    lines.append(f"  return ({outs}{',' if len(program.outputs) == 1 else ''})")
    lines.append("}")
    return "\n".join(lines)


# ----------------------------------------------------------------- verifier
class IRError(TapejitError, AssertionError):
    """The program breaks an IR invariant (a compiler bug, not a user error). An
    AssertionError too: it is an internal consistency check."""


def verify(program):
    """SSA, defined before use, and every equation's type agrees with its shape rule."""
    defined = set()

    def define(var, where):
        if type(var) is not Var:
            raise IRError(f"{where}: defines a non-Var {var!r}")
        if id(var) in defined:
            raise IRError(f"{where}: variable defined twice (SSA)")
        defined.add(id(var))

    def check_use(atom, where):
        if type(atom) is Var and id(atom) not in defined:
            raise IRError(f"{where}: uses a variable before it is defined")
        if type(atom) not in (Var, Literal):
            raise IRError(f"{where}: operand {atom!r} is neither a Var nor a Literal")

    for i, v in enumerate(program.inputs):
        define(v, f"input {i}")
    for i, (slot, v) in enumerate(program.reads):
        define(v, f"read {i}")
    for n, item in enumerate(program.body):
        where = f"{program.name} body[{n}]"
        for a in item.inputs if type(item) is not Guard else (item.input,):
            check_use(a, where)
        if type(item) is Eqn:
            if REGISTRY.get(item.prim.name) is not item.prim:
                raise IRError(f"{where}: {item.prim.name} is not a registered primitive")
            expected = item.prim.shape_rule(*[a.aval for a in item.inputs], **item.params)
            if expected != item.out.aval:
                raise IRError(f"{where}: {item.prim.name} gives {type_text(expected)} by its shape rule "
                              f"but the equation says {type_text(item.out.aval)}")
            define(item.out, where)
    for slot, v in program.writes:
        check_use(v, f"{program.name} write")
    for v in program.outputs:
        check_use(v, f"{program.name} output")
    return program


def dtype_of(atom):
    return _BY_NUMPY[atom.aval.dtype]
