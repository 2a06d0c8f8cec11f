"""Numba source for a region: one module with one `@numba.njit(cache=True)` entry
function, which runs the region's scalar statements, guards and reshapes, and
calls one inner function per fusion group (a loop nest, contiguous axis
innermost). Sizes are never in the code: the runtime passes them in one int64
array, so one module serves every shape with the same ranks, dtypes and
broadcast pattern. Every generated statement is commented with the IR
equation it implements."""
import hashlib
import re

import numpy as np

from ..ir import Literal, type_text
from . import mathlib
from .fusion import Group, GuardCheck, Scalar, View, is_scalar
from .rules import Ctx, REDUCTIONS, elementwise_rule

# Loops without reductions get no fastmath: each operation rounds as NumPy's does,
# so fused arithmetic equals eager bit for bit (no FMA contraction, no
# reassociation, signed zeros kept). Loops with reductions get `reassoc` so the
# accumulation vectorises (NumPy sums pairwise; the order differs, within rtol).
REDUCTION_FASTMATH = "{'reassoc'}"
ENTRY_DECORATOR = "@numba.njit(cache=True, error_model='numpy')"
_CTOR = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32", "int64": "np.int64",
         "bool": "np.bool_"}
_NAME = "KERNEL"  # stands for the content-hashed name until the source is complete


def _group_decorator(reduces):
    fastmath = f", fastmath={REDUCTION_FASTMATH}" if reduces else ""
    return f"@numba.njit(error_model='numpy', no_cpython_wrapper=True, no_cfunc_wrapper=True{fastmath})"


class RegionSource:
    """A region's module: `source`, entry `name`, the atoms passed (`inputs`, then
    `stored` arrays, then `scalar_outputs` as 0-d arrays, then the sizes), and
    `equation_at_line`: generated line number -> the IR equation it implements."""

    __slots__ = ("source", "name", "region", "stored", "scalar_outputs", "dims", "contiguous",
                 "equation_at_line")

    def __init__(self, source, name, region, stored, scalar_outputs, dims, contiguous, equation_at_line):
        self.source = source
        self.name = name
        self.region = region
        self.stored = stored
        self.scalar_outputs = scalar_outputs
        self.dims = dims                # the sizes the entry reads from its int64 array, in order
        self.contiguous = contiguous    # ids of inputs reshaped in the kernel (passed C-contiguous)
        self.equation_at_line = equation_at_line


def describe(eqn):
    """The equation as IR text without types or shape params: kernels are shared
    by every shape, so their source must not mention one."""
    def name(a):  # array constants are kernel arguments: their values and shapes are not code
        return a.name if type(a) is not Literal else (a.text() if not a.aval.shape else "const")
    params = ", ".join(f"{k}={v!r}" for k, v in eqn.params.items() if k != "shape")
    head = f"{eqn.prim.name}[{params}]" if params else eqn.prim.name
    return f"{name(eqn.out)} = {head} {' '.join(name(a) for a in eqn.inputs)}"


def _index(atom_shape, shape):
    """Index expression of an operand broadcast into the iteration shape."""
    r, k = len(shape), len(atom_shape)
    if k == 0:
        return "[()]"
    parts = ["0" if d == 1 and shape[r - k + j] != 1 else f"i{r - k + j}" for j, d in enumerate(atom_shape)]
    return "[" + ", ".join(parts) + "]"


def _element(shape):
    """Index of the one element of a size-1 array."""
    return "[()]" if not shape else "[" + ", ".join("0" for _ in shape) + "]"


def _number_text(text):
    """Python source for a number's repr (inf and nan are not names in kernels)."""
    return {"inf": "np.inf", "-inf": "-np.inf", "nan": "np.nan"}.get(text, text)


class _Function:
    """Lines of one generated function, its hoisted typed constants, and the
    equation each line implements."""

    def __init__(self, module):
        self.module = module
        self.constants = {}
        self.lines = []       # (text, eqn or None)

    def literal(self, value, dtype):
        key = (np.dtype(dtype).name, repr(np.asarray(value).reshape(()).item()))
        if key not in self.constants:
            self.constants[key] = f"c{len(self.constants)}"
        return self.constants[key]

    def emit(self, depth, text, eqn=None):
        self.lines.append(("    " * depth + text, eqn))

    def expression(self, eqn, operands):
        dtype = eqn.out.aval.dtype
        ctx = Ctx(dtype, [a.aval.dtype for a in eqn.inputs], lambda v: self.literal(v, dtype),
                  lambda name: self.module.transcendental(name, dtype))
        return f"{_CTOR[dtype.name]}({elementwise_rule(eqn)(operands, ctx)})"

    def body(self):
        consts = [(f"    {c} = {_CTOR[d]}({_number_text(v)})", None) for (d, v), c in self.constants.items()]
        return consts + [("    " + text, eqn) for text, eqn in self.lines]


class _Module:
    def __init__(self):
        self.helpers = {}
        self.functions = []   # (text, eqn) of the groups' inner functions

    def transcendental(self, name, dtype):
        # Vectorisable range reduction + polynomial (mathlib), pasted into the module:
        # the cache key then covers the helper's code too.
        fn = mathlib.helper_name(name, dtype)
        if fn not in self.helpers:
            self.helpers[fn] = f"{mathlib.HELPER_DECORATOR}\n{mathlib.helper_source(name, dtype)}"
        return fn


def region_source(region):
    """The module source of one region (the program was printed first, so its
    variables have names for the comments)."""
    module = _Module()
    entry = _Function(module)
    names = {}
    dims = []
    params = []
    contiguous = set()
    view_sources = {id(u.eqn.inputs[0]) for u in region.units if type(u) is View}

    def size_names(shape):
        start = len(dims)
        dims.extend(shape)
        return [f"d{start + k}" for k in range(len(shape))]

    for k, a in enumerate(region.inputs):
        name = f"a{k}"
        params.append(name)
        if is_scalar(a.aval):
            names[id(a)] = f"s{len(names)}"
            entry.emit(0, f"{names[id(a)]} = {name}{_element(a.aval.shape)}")
        else:
            names[id(a)] = name
            if id(a) in view_sources:
                contiguous.add(id(a))
    stored_ids = {id(v) for v in region.stored}
    for k, v in enumerate(region.stored):
        names[id(v)] = f"b{k}"
        params.append(f"b{k}")
    scalar_outputs = [v for v in region.outputs if is_scalar(v.aval)]
    group_number = 0
    for unit in region.units:
        if type(unit) is GuardCheck:
            g = unit.guard
            value = names[id(g.input)]
            if g.kind == "bool":
                cond = f"bool({value}) == {bool(g.expect)}"
            elif g.kind == "int":
                cond = f"int({value}) == {int(g.expect)}"
            elif g.expect != g.expect:
                cond = f"{value} != {value}"
            else:
                cond = f"np.float64({value}) == {_number_text(repr(float(g.expect)))}"
            entry.emit(0, f"# guard[{g.index}, {g.kind}, expect={g.expect!r}] {g.input.name}")
            entry.emit(0, f"if not ({cond}):")
            entry.emit(1, f"return {unit.number}")
        elif type(unit) is Scalar:
            eqn = unit.eqn
            name = names[id(eqn.out)] = f"s{len(names)}"
            operands = [entry.literal(a.value, a.aval.dtype) if type(a) is Literal else names[id(a)]
                        for a in eqn.inputs]
            entry.emit(0, f"# {describe(eqn)}", eqn)
            if elementwise_rule(eqn) is None:  # a reduction or reshape of one number is that number
                entry.emit(0, f"{name} = {_CTOR[eqn.out.aval.dtype.name]}({operands[0]})", eqn)
            else:
                entry.emit(0, f"{name} = {entry.expression(eqn, operands)}", eqn)
        elif type(unit) is View:
            eqn = unit.eqn
            name = names[id(eqn.out)] = f"w{len(names)}"
            sizes = size_names(eqn.out.aval.shape)
            entry.emit(0, f"# {describe(eqn)}", eqn)
            entry.emit(0, f"{name} = {names[id(eqn.inputs[0])]}.reshape(({', '.join(sizes)},))", eqn)
        else:
            group_number += 1
            _group(module, entry, unit, f"{_NAME}_g{group_number}", names, stored_ids, size_names)
    for k, v in enumerate(scalar_outputs):
        params.append(f"o{k}")
        entry.emit(0, f"o{k}{_element(v.aval.shape)} = {names[id(v)]}")
    entry.emit(0, "return 0")
    params.append("D")

    dim_lines = [(f"    d{k} = D[{k}]", None) for k in range(len(dims))]
    lines = [(line, None) for line in ("import math", "import numba", "import numpy as np", "", "")]
    for helper in module.helpers.values():
        lines += [(line, None) for line in helper.splitlines()] + [("", None)]
    lines += module.functions
    lines.append((ENTRY_DECORATOR, None))
    lines.append((f"def {_NAME}({', '.join(params)}):", None))
    lines += dim_lines + entry.body()
    text = "\n".join(line for line, _ in lines) + "\n"
    name = "k_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    source = text.replace(_NAME, name)
    equation_at_line = {n + 1: eqn for n, (_, eqn) in enumerate(lines) if eqn is not None}
    return RegionSource(source, name, region, list(region.stored), scalar_outputs, dims, contiguous,
                        equation_at_line)


def _group(module, entry, group, fname, names, stored_ids, size_names):
    """Emit one group's loop nest as an inner function, and its call in the entry."""
    fn = _Function(module)
    shape = group.shape
    rank = len(shape)
    loop_vars = [f"i{i}" for i in range(rank)]
    reductions = [e for e in group.eqns if id(e.out) in group.reduced]
    local = {}   # id(value) -> name inside the loop
    arrays, scalars = [], []

    def operand(a):
        if type(a) is Literal and is_scalar(a.aval):
            return fn.literal(a.value, a.aval.dtype)
        if id(a) in local:
            return local[id(a)]
        name = names[id(a)]
        if name.startswith("s"):
            if name not in scalars:
                scalars.append(name)
            return name
        if name not in arrays:
            arrays.append(name)
        return name + _index(a.aval.shape, shape)

    def store(v):
        name = names[id(v)]
        if name not in arrays:
            arrays.append(name)
        return name

    inner = []   # (text, eqn) of the innermost loop body
    for n, eqn in enumerate(group.eqns):
        if id(eqn.out) in group.reduced:
            continue
        t = local[id(eqn.out)] = f"t{n}"
        inner.append((f"# {describe(eqn)}", eqn))
        inner.append((f"{t} = {fn.expression(eqn, [operand(a) for a in eqn.inputs])}", eqn))
        if id(eqn.out) in stored_ids:
            inner.append((f"{store(eqn.out)}{_index(shape, shape)} = {t}", eqn))

    results = []
    if not reductions:
        _nest(fn, loop_vars, inner)
    else:
        axes = group.axes
        suffix = tuple(axes) == tuple(range(rank - len(axes), rank))
        inits, updates, finals = [], [], []
        for j, red in enumerate(reductions):
            identity, update = REDUCTIONS[red.prim]
            dtype = red.out.aval.dtype
            acc = f"acc{j}"
            init = fn.literal(identity, dtype)
            step = [(line, red) for line in
                    update.format(acc=acc, v=operand(red.inputs[0]), ctor=_CTOR[dtype.name]).split("\n")]
            updates.append((f"# {describe(red)}", red))
            if is_scalar(red.out.aval):
                inits.append((f"{acc} = {init}", red))
                results.append((red.out, acc))
                updates += step
                continue
            keep = red.params["keepdims"]
            out_index = [("0" if keep else None) if i in axes else f"i{i}" for i in range(rank)]
            out = f"{store(red.out)}[{', '.join(p for p in out_index if p is not None)}]"
            if suffix:
                inits.append((f"{acc} = {init}", red))
                updates += step
                finals.append((f"{out} = {acc}", red))
            else:  # reduced axes outside: accumulate in the output itself (contiguous inner loop)
                inits.append((f"{store(red.out)}.fill({init})", red))
                updates += [(f"{acc} = {out}", red)] + step + [(f"{out} = {acc}", red)]
        if suffix:
            outer, inner_vars = loop_vars[:rank - len(axes)], loop_vars[rank - len(axes):]
            depth = _nest(fn, outer, [])
            for text, eqn in inits:
                fn.emit(depth, text, eqn)
            _nest(fn, inner_vars, inner + updates, depth)
            for text, eqn in finals:
                fn.emit(depth, text, eqn)
        else:
            for text, eqn in inits:
                fn.emit(0, text, eqn)
            _nest(fn, loop_vars, inner + updates)
    if results:
        fn.emit(0, f"return ({''.join(acc + ', ' for _, acc in results)})")

    sizes = size_names(shape)
    signature = [f"n{i}" for i in range(rank)] + arrays + scalars
    lines = [("", None), (_group_decorator(bool(reductions)), None),
             (f"def {fname}({', '.join(signature)}):", None)] + fn.body()
    module.functions += lines + [("", None)]
    call = f"{fname}({', '.join(sizes + arrays + scalars)})"
    entry.emit(0, "# one loop nest:")
    for eqn in group.eqns:
        entry.emit(0, f"#   {describe(eqn)}", eqn)
    if results:
        targets = ""
        for v, _ in results:
            names[id(v)] = f"s{len(names)}"
            targets += names[id(v)] + ", "
        entry.emit(0, f"{targets}= {call}")
    else:
        entry.emit(0, call)


def _nest(fn, loop_vars, body, depth=0):
    """Loops over `loop_vars` (bounds n<axis>) around `body`; the depth inside them."""
    for var in loop_vars:
        fn.emit(depth, f"for {var} in range(n{var[1:]}):")
        depth += 1
    for text, eqn in body:
        fn.emit(depth, text, eqn)
    return depth


def driver_call(kernel, fn_name, use, define, constant, ir_text):
    """Driver lines that allocate a region's arrays, call its entry function and
    check its guards. use(atom) -> driver expression; define(var) -> driver name;
    constant(value) -> global name; ir_text: id(eqn) -> its IR line."""
    region = kernel.region
    lines = [f"# region {kernel.name}:"] + [f"# {text}" for text in ir_text.values()]
    args = []
    for a in region.inputs:
        if is_scalar(a.aval):
            args.append(f"asarray({use(a)})")
        elif id(a) in kernel.contiguous:
            args.append(f"contiguous({use(a)})")
        else:
            args.append(use(a))
    for v in kernel.stored + kernel.scalar_outputs:
        name = define(v)
        lines.append(f"{name} = empty({v.aval.shape!r}, {constant(v.aval.dtype)})  # {type_text(v.aval)}")
        args.append(name)
    args.append(constant(np.array(kernel.dims, np.int64)))
    lines.append("try:")
    lines.append(f"    status = {fn_name}({', '.join(args)})")
    lines.append("except Exception as error:  # kernels raise nothing at run time: this is Numba compiling")
    lines.append(f"    raise compile_error({constant(kernel)}, {constant(ir_text)}, error) from error")
    if region.guards:
        lines.append("if status:")
        lines.append(f"    raise GuardFailed({constant(tuple(region.guards))}[status - 1], None)")
    # Reshaped arrays the driver needs are reshaped again here (views: no copy).
    needed = {id(v) for v in region.outputs}
    views = [u.eqn for u in region.units if type(u) is View]
    for eqn in reversed(views):
        if id(eqn.out) in needed:
            needed.add(id(eqn.inputs[0]))
    for eqn in views:
        if id(eqn.out) in needed:
            lines.append(f"{define(eqn.out)} = {use(eqn.inputs[0])}.reshape({eqn.out.aval.shape!r})")
    return lines


def compile_error(kernel, ir_text, error):
    """The CompileError for a region Numba rejected (its message is the __cause__):
    names the IR equation at the generated line Numba complains about, else all of
    the region's. `ir_text`: id(eqn) -> the equation's IR line, with the user's source line."""
    from tapejit.tracer.errors import CompileError
    message = str(error)
    where = None
    for path, line in re.findall(r'File "([^"]+)", line (\d+)', message):
        if path.endswith(kernel.name + ".py") or kernel.name in path:
            where = kernel.equation_at_line.get(int(line))
    if where is not None:
        equations = [ir_text[id(where)]]
    else:
        equations = [text for text in ir_text.values()]
    first = message.strip().splitlines()[-1] if message.strip() else type(error).__name__
    return CompileError("tj.compile: Numba could not compile the kernel for\n    "
                        + "\n    ".join(equations)
                        + f"\n(generated source: {kernel.name}.py in the kernel cache; Numba said: {first})")
