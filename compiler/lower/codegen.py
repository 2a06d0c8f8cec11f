"""Numba source for fusion groups: one loop nest per group, contiguous axis
innermost, symbolic sizes (the loop bounds are arguments), so one kernel serves
every shape with the same rank, dtypes and broadcast pattern. Every generated
statement is commented with the IR equation it implements."""
import hashlib

import numpy as np

from ..ir import Literal, type_text
from . import mathlib
from .rules import Ctx, REDUCTIONS, elementwise_rule

# Elementwise kernels get no fastmath: each operation rounds as NumPy's does, so
# fused arithmetic equals eager bit for bit (no FMA contraction, no reassociation,
# signed zeros kept). Kernels that end in a reduction get `reassoc` so the
# accumulation vectorises (NumPy sums pairwise; the order differs, within rtol).
REDUCTION_FASTMATH = "{'reassoc'}"


def _decorator(reduction):
    fastmath = f", fastmath={REDUCTION_FASTMATH}" if reduction else ""
    return f"@numba.njit(cache=True, error_model='numpy'{fastmath})"
_CTOR = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32", "int64": "np.int64",
         "bool": "np.bool_"}


class KernelSource:
    """A group's kernel: `source` (a whole module), `name`, and the driver's call plan."""

    __slots__ = ("source", "name", "group", "params")

    def __init__(self, source, name, group, params):
        self.source = source
        self.name = name
        self.group = group
        self.params = params  # the atoms passed, in order, after the loop bounds


def _index(atom_shape, shape):
    """Index expression of an operand broadcast into the iteration shape."""
    r, k = len(shape), len(atom_shape)
    if k == 0:
        return "[()]"
    parts = ["0" if d == 1 and shape[r - k + j] != 1 else f"i{r - k + j}" for j, d in enumerate(atom_shape)]
    return "[" + ", ".join(parts) + "]"


def describe(eqn):
    """The equation as IR text without types or shape params: kernels are shared
    by every shape, so their source must not mention one."""
    def name(a):  # array constants are kernel arguments: their values and shapes are not code
        return a.name if type(a) is not Literal else (a.text() if not a.aval.shape else "const")
    params = ", ".join(f"{k}={v!r}" for k, v in eqn.params.items() if k != "shape")
    head = f"{eqn.prim.name}[{params}]" if params else eqn.prim.name
    return f"{name(eqn.out)} = {head} {' '.join(name(a) for a in eqn.inputs)}"


def kernel_source(group):
    """The module source of one group's kernel (the program was printed first, so
    its variables have names for the comments)."""
    shape = group.shape
    rank = len(shape)
    hoisted, helpers = {}, {}
    names = {}
    params = []

    def literal(value, dtype):
        key = (np.dtype(dtype).name, repr(np.asarray(value).item()))
        if key not in hoisted:
            hoisted[key] = f"c{len(hoisted)}"
        return hoisted[key]

    def transcendental(name, dtype):
        # Vectorisable range reduction + polynomial (mathlib), pasted into the kernel
        # file: the kernel's cache key then covers the helper's code too.
        fn = mathlib.helper_name(name, dtype)
        if fn not in helpers:
            helpers[fn] = f"{mathlib.HELPER_DECORATOR}\n{mathlib.helper_source(name, dtype)}"
        return fn

    for a in group.inputs:
        names[id(a)] = f"in{len(params)}"
        params.append(a)
    outputs = {id(v): f"out{k}" for k, v in enumerate(group.outputs)}

    def operand(a):
        if type(a) is Literal and not a.aval.shape:
            return literal(a.value, a.aval.dtype)
        name = names[id(a)]
        if id(a) in temps:
            return name
        return name + _index(a.aval.shape, shape)

    temps = set()
    body = []
    for n, eqn in enumerate(group.eqns):
        if eqn is group.reduction:
            break
        dtype = eqn.out.aval.dtype
        ctx = Ctx(dtype, [a.aval.dtype for a in eqn.inputs],
                  lambda v, d=dtype: literal(v, d), lambda fname, d=dtype: transcendental(fname, d))
        expr = elementwise_rule(eqn)([operand(a) for a in eqn.inputs], ctx)
        t = f"t{n}"
        body.append(f"# {describe(eqn)}")
        body.append(f"{t} = {_CTOR[dtype.name]}({expr})")
        names[id(eqn.out)] = t
        temps.add(id(eqn.out))
        if id(eqn.out) in outputs:
            body.append(f"{outputs[id(eqn.out)]}{_index(shape, shape)} = {t}")

    out_params = [outputs[id(v)] for v in group.outputs]
    signature = [f"n{i}" for i in range(rank)] + [names[id(a)] for a in params] + out_params
    kernel_lines = []
    loop_vars = [f"i{i}" for i in range(rank)]
    red = group.reduction
    if red is None:
        kernel_lines += _nest(loop_vars, body)
    else:
        identity, update = REDUCTIONS[red.prim]
        dtype = red.out.aval.dtype
        init = literal(identity, dtype)
        value = operand(red.inputs[0])
        axes = red.params["axes"]
        keep = red.params["keepdims"]
        out = outputs[id(red.out)]
        out_index = [("0" if keep else None) if i in axes else f"i{i}" for i in range(rank)]
        out_index = "[" + ", ".join(p for p in out_index if p is not None) + "]" if red.out.aval.shape else "[()]"
        stmt = update.format(acc="acc", v="v")
        reduced_suffix = tuple(range(rank - len(axes), rank)) == tuple(axes)
        if reduced_suffix:
            # Reduced axes innermost: a scalar accumulator per output element.
            outer, inner = loop_vars[:rank - len(axes)], loop_vars[rank - len(axes):]
            inner_body = body + [f"# {describe(red)}", f"v = {value}", *stmt.split("\n")]
            kernel_lines += _nest(outer, [f"acc = {init}"] + _nest(inner, inner_body) + [f"{out}{out_index} = acc"])
        else:
            # Reduced axes outside: accumulate in the output itself (contiguous inner loop).
            inner_body = body + [f"# {describe(red)}", f"v = {value}", f"acc = {out}{out_index}",
                                 *stmt.split("\n"), f"{out}{out_index} = acc"]
            kernel_lines += [f"{out}.fill({init})"] + _nest(loop_vars, inner_body)

    digest = hashlib.sha256("\n".join(signature + kernel_lines + sorted(helpers)).encode()).hexdigest()[:16]
    name = f"k_{digest}"
    consts = [f"    {c} = {_CTOR[d]}({_number_text(v)})" for (d, v), c in hoisted.items()]
    source = ["import math", "import numba", "import numpy as np", "", ""]
    for helper in helpers.values():
        source.append(helper)
        source.append("")
    source.append(_decorator(red is not None))
    source.append(f"def {name}({', '.join(signature)}):")
    source += consts
    source += ["    " + line for line in kernel_lines] or ["    pass"]
    return KernelSource("\n".join(source) + "\n", name, group, params)


def _number_text(text):
    """Python source for a number's repr (inf and nan are not names in kernels)."""
    return {"inf": "np.inf", "-inf": "-np.inf", "nan": "np.nan"}.get(text, text)


def _nest(loop_vars, body):
    lines = []
    for depth, var in enumerate(loop_vars):
        lines.append("    " * depth + f"for {var} in range(n{var[1:]}):")
    indent = "    " * len(loop_vars)
    return lines + [indent + line for line in body]


def driver_call(kernel, fn_name, use, define, constant, comments):
    """Driver lines that allocate a group's outputs and call its kernel.
    use(atom) -> driver expression; define(var) -> driver name; constant(value) -> global name;
    comments: the IR text of the group's equations."""
    group = kernel.group
    lines = [f"# fused into {kernel.name}:"] + [f"# {c}" for c in comments]
    args = [str(d) for d in group.shape]
    for a in kernel.params:
        args.append(f"asarray({use(a)})" if not a.aval.shape else use(a))
    for v in group.outputs:
        name = define(v)
        dtype = constant(v.aval.dtype)
        lines.append(f"{name} = empty({v.aval.shape!r}, {dtype})  # {type_text(v.aval)}")
        args.append(name)
    lines.append("try:")
    lines.append(f"    {fn_name}({', '.join(args)})")
    lines.append("except Exception as error:  # kernels raise nothing at run time: this is Numba compiling")
    lines.append(f"    raise compile_error({fn_name}, {constant(comments)}, error) from error")
    return lines


def compile_error(kernel, equations, error):
    """The CompileError for a kernel Numba rejected (its message is the __cause__)."""
    from tapejit.tracer.errors import CompileError
    py_func = getattr(kernel, "py_func", kernel)
    where = getattr(py_func, "__code__", None) and py_func.__code__.co_filename
    first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return CompileError("tj.compile: Numba could not compile the fused kernel for\n    "
                        + "\n    ".join(equations)
                        + f"\n(generated source: {where}; Numba said: {first})")


