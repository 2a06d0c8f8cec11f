"""Numba source for a region: one module with one `@numba.njit(cache=True)` entry
function, which runs the region's scalar statements, guards and reshapes, and
the loop nest of each fusion group (contiguous axis innermost). A loop nest is
written into the entry itself: each extra function costs Numba's whole pipeline,
and LLVM would optimise and emit its code twice (once alone, once linked into
the entry). Loop nests that need other flags than the entry's (threads, or no
`reassoc` beside loops that reduce) are inner functions the entry calls. Sizes are never in the code: the runtime passes them in one int64
array, so one module serves every shape with the same ranks, dtypes and
broadcast pattern. Every generated statement is commented with the IR
equation it implements."""
import hashlib
import inspect
import itertools
import re

import numpy as np

from ..ir import Literal, type_text
from . import intrinsics, mathlib
from .fusion import Group, GuardCheck, Scalar, View, is_scalar
from .rules import Ctx, REDUCTIONS, accumulator_dtype, elementwise_rule

# Loops without reductions get no fastmath: each operation rounds as NumPy's does,
# so fused arithmetic equals eager bit for bit (no FMA contraction, no
# reassociation, signed zeros kept). Loops with reductions get `reassoc` so the
# accumulation vectorises (NumPy sums pairwise; the order differs, within rtol;
# float32 totals of whole arrays accumulate in float64, see rules.accumulator_dtype).
REDUCTION_FASTMATH = "{'reassoc'}"
# With parallel=True, loop nests over at least this many elements run on several
# threads (NUMBA_NOTES section 5: break-even ~30-50k elements on 2 cores).
PARALLEL_MIN_ELEMENTS = 65536
PARALLEL_CHUNKS = 64  # a fully reduced loop splits into this many partial totals
SUM_BLOCK = 1024      # float32 whole-array sums: elements per float32 partial total
_CTOR = {"float32": "np.float32", "float64": "np.float64", "int32": "np.int32", "int64": "np.int64",
         "bool": "np.bool_"}
_NAME = "KERNEL"  # stands for the content-hashed name until the source is complete


def _fastmath(reduces, fastmath):
    if fastmath:  # tj.compile(fastmath=True): every LLVM fast-math flag, NaN and infinities assumed away too
        return ", fastmath=True"
    return f", fastmath={REDUCTION_FASTMATH}" if reduces else ""


def _entry_decorator(reduces, fastmath):
    return f"@numba.njit(cache=True, error_model='numpy'{_fastmath(reduces, fastmath)})"


def _group_decorator(reduces, parallel, fastmath):
    threads = ", parallel=True" if parallel else ""
    return (f"@numba.njit(error_model='numpy', no_cpython_wrapper=True, no_cfunc_wrapper=True"
            f"{_fastmath(reduces, fastmath)}{threads})")


class RegionSource:
    """A region's module: `source`, entry `name`, the atoms passed (the region's
    `inputs`, then its `stored` arrays, then `scalar_outputs` as arrays, then the
    sizes and literals), and `equation_at_line`: generated line number -> the IR
    equation it implements."""

    __slots__ = ("source", "name", "region", "scalar_outputs", "dims", "floats", "contiguous", "equation_at_line")

    def __init__(self, source, name, region, scalar_outputs, dims, floats, contiguous, equation_at_line):
        self.source = source
        self.name = name
        self.region = region
        self.scalar_outputs = scalar_outputs
        self.dims = dims                # sizes and integer literals: the entry's int64 array D, in order
        self.floats = floats            # float literals: the entry's float64 array F, in order
        self.contiguous = contiguous    # ids of inputs reshaped in the kernel (passed C-contiguous)
        self.equation_at_line = equation_at_line


def describe(eqn, names):
    """The equation as IR text without types, shape params or literal values: kernels
    are shared by every shape (and every value of the program's literals, such as a
    mean's 1/n), so their source must not mention one. names: id(atom) -> kernel name."""
    def name(a):  # literals are kernel arguments: their values and shapes are not code
        return a.name if type(a) is not Literal else (names[id(a)] if not a.aval.shape else "const")
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
        self.intrinsics = {}

    def intrinsic(self, name):
        self.intrinsics[name] = intrinsics.SOURCE[name]

    def transcendental(self, name, dtype):
        # Vectorisable range reduction + polynomial (mathlib), pasted into the module:
        # the cache key then covers the helper's code too.
        fn = mathlib.helper_name(name, dtype)
        if fn not in self.helpers:
            self.helpers[fn] = f"{mathlib.HELPER_DECORATOR}\n{mathlib.helper_source(name, dtype)}"
        return fn


def region_source(region, parallel=False, fastmath=False):
    """The module source of one region (the program was printed first, so its
    variables have names for the comments). parallel: large loop nests use threads;
    fastmath: every loop gets all of LLVM's fast-math flags."""
    module = _Module()
    entry = _Function(module)
    names = {}
    dims = []
    params = []
    contiguous = set()
    view_sources = {id(u.eqn.inputs[0]) for u in region.units if type(u) is View}

    floats = []

    def size_names(shape):
        start = len(dims)
        dims.extend(shape)
        return [f"d{start + k}" for k in range(len(shape))]

    def program_literal(a):
        """The entry's local for a scalar literal of the program, read from D or F."""
        if id(a) not in names:
            dtype = a.aval.dtype
            value = np.asarray(a.value).reshape(()).item()
            if dtype.kind == "f":
                floats.append(float(value))
                source = f"F[{len(floats) - 1}]"
            else:
                (source,) = size_names([int(value)])
            names[id(a)] = f"s{len(names)}"
            entry.emit(0, f"{names[id(a)]} = {_CTOR[dtype.name]}({source})")
        return names[id(a)]

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
    # The entry reassociates if any loop nest in it reduces; loops that do not reduce
    # then keep strict rounding in inner functions of their own.
    reassoc = any(type(u) is Group and u.reduced for u in region.units)
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
            operands = [program_literal(a) if type(a) is Literal else names[id(a)] for a in eqn.inputs]
            entry.emit(0, f"# {describe(eqn, names)}", eqn)
            if elementwise_rule(eqn) is None:  # a reduction or reshape of one number is that number
                entry.emit(0, f"{name} = {_CTOR[eqn.out.aval.dtype.name]}({operands[0]})", eqn)
            else:
                entry.emit(0, f"{name} = {entry.expression(eqn, operands)}", eqn)
        elif type(unit) is View:
            eqn = unit.eqn
            name = names[id(eqn.out)] = f"w{len(names)}"
            sizes = size_names(eqn.out.aval.shape)
            entry.emit(0, f"# {describe(eqn, names)}", eqn)
            entry.emit(0, f"{name} = {names[id(eqn.inputs[0])]}.reshape(({', '.join(sizes)},))", eqn)
        else:
            group_number += 1
            _group(module, entry, region, unit, group_number, names, stored_ids, size_names, program_literal,
                   parallel, reassoc, fastmath)
    for k, v in enumerate(scalar_outputs):
        params.append(f"o{k}")
        entry.emit(0, f"o{k}{_element(v.aval.shape)} = {names[id(v)]}")
    entry.emit(0, "return 0")
    params += ["D", "F"]

    dim_lines = [(f"    d{k} = D[{k}]", None) for k in range(len(dims))]
    lines = [(line, None) for line in ("import math", "import numba", "import numpy as np")]
    if module.intrinsics:
        lines += [(line, None) for line in intrinsics.IMPORTS.splitlines()]
    lines += [("", None), ("", None)]
    for helper in module.intrinsics.values():
        lines += [(line, None) for line in helper.splitlines()] + [("", None)]
    for helper in module.helpers.values():
        lines += [(line, None) for line in helper.splitlines()] + [("", None)]
    lines += module.functions
    lines.append((_entry_decorator(reassoc, fastmath), None))
    lines.append((f"def {_NAME}({', '.join(params)}):", None))
    lines += dim_lines + entry.body()
    text = "\n".join(line for line, _ in lines) + "\n"
    name = "k_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    source = text.replace(_NAME, name)
    equation_at_line = {n + 1: eqn for n, (_, eqn) in enumerate(lines) if eqn is not None}
    return RegionSource(source, name, region, scalar_outputs, dims, floats, contiguous, equation_at_line)


def _live(group, stored_ids):
    """The group's equations whose results are needed: stored, reduced, or used by such."""
    needed = set()
    live = []
    for eqn in reversed(group.eqns):
        out = id(eqn.out)
        if out in stored_ids or out in group.reduced or out in needed:
            live.append(eqn)
            needed.update(id(a) for a in eqn.inputs)
    return live[::-1]


def _group(module, entry, region, group, number, names, stored_ids, size_names, program_literal, parallel,
           reassoc, fastmath):
    """Emit one group's loop nest: into the entry when it runs with the entry's
    flags, else as an inner function and its call. Each statement sits in the
    outermost loop its operands allow (a row's value is computed once per row,
    not once per element)."""
    eqns = _live(group, stored_ids)
    if not eqns:
        return
    shape = group.shape
    rank = len(shape)
    reductions = [e for e in eqns if id(e.out) in group.reduced]
    axes = group.axes if reductions else ()
    suffix = tuple(axes) == tuple(range(rank - len(axes), rank))
    # Threads split the outermost loop: rows (each writes its own outputs), or chunks
    # of it with one partial total each when the whole iteration space is reduced.
    split = None
    if parallel and suffix:
        split = "chunks" if any(is_scalar(e.out.aval) for e in reductions) else "rows"
    inline = split is None and (fastmath or bool(reductions) or not reassoc)
    fn = entry if inline else _Function(module)
    tag = f"g{number}_" if inline else ""   # an inlined nest's locals must not meet another's
    levels = [[] for _ in range(rank + 1)]  # statements inside the first d loops, before loop d
    after = [[] for _ in range(rank + 1)]   # statements inside the first d loops, after loop d
    local = {}   # id(value) -> (name inside the loop, loop depth it depends on)
    recomputed = region.recomputed
    again = itertools.count()
    arrays, scalars = [], []

    def operand(a):
        """(expression, depth) of an atom inside the loop nest."""
        if type(a) is Literal and is_scalar(a.aval):
            program_literal(a)  # then passed in like any scalar
        if id(a) in local:
            return local[id(a)]
        if id(a) in recomputed:  # computed again here: cheaper than a store and a load
            return define(recomputed[id(a)], f"{tag}r{next(again)}", "  (again)")
        name = names[id(a)]
        if name.startswith("s"):
            if name not in scalars:
                scalars.append(name)
            return name, 0
        if name not in arrays:
            arrays.append(name)
        index = _index(a.aval.shape, shape)
        used = [int(i) for i in re.findall(r"i(\d+)", index)]
        return name + index, (max(used) + 1 if used else 0)

    def define(eqn, t, note=""):
        parts = [operand(a) for a in eqn.inputs]
        depth = max((d for _, d in parts), default=0)
        levels[depth].append((f"# {describe(eqn, names)}{note}", eqn))
        levels[depth].append((f"{t} = {fn.expression(eqn, [text for text, _ in parts])}", eqn))
        local[id(eqn.out)] = (t, depth)
        return t, depth

    def store(v):
        name = names[id(v)]
        if name not in arrays:
            arrays.append(name)
        return name

    for n, eqn in enumerate(eqns):
        if id(eqn.out) in group.reduced:
            continue
        t, _ = define(eqn, f"{tag}t{n}")
        if id(eqn.out) in stored_ids:
            levels[rank].append((f"{store(eqn.out)}{_index(shape, shape)} = {t}", eqn))

    results = []  # the one-number reductions: (value, accumulator, identity, update template)
    blocked = []
    kept = rank - len(axes) if suffix else 0  # where the accumulators start
    for j, red in enumerate(reductions):
        identity, update, calls = REDUCTIONS[red.prim]
        for name in calls:
            module.intrinsic(name)
        dtype = accumulator_dtype(red)
        acc = f"{tag}acc{j}"
        init = fn.literal(identity, dtype)
        value, _ = operand(red.inputs[0])
        if dtype != red.out.aval.dtype:  # a float32 whole-array sum: float32 blocks
            blocked.append((acc, fn.literal(identity, red.out.aval.dtype), red))
            step = _step(update, acc + "_b", value, red.out.aval.dtype, red)
        else:
            step = _step(update, acc, value, dtype, red)
        levels[rank].append((f"# {describe(red, names)}", red))
        if is_scalar(red.out.aval):
            levels[rank].extend(step)
            results.append((red, acc, init, update))
            continue
        keep = red.params["keepdims"]
        out_index = [("0" if keep else None) if i in axes else f"i{i}" for i in range(rank)]
        out = f"{store(red.out)}[{', '.join(p for p in out_index if p is not None)}]"
        if suffix:
            levels[kept].append((f"{acc} = {init}", red))
            levels[rank].extend(step)
            after[kept].append((f"{out} = {acc}", red))
        else:  # reduced axes outside: accumulate in the output itself (contiguous inner loop)
            levels[0].append((f"{store(red.out)}.fill({init})", red))
            levels[rank].extend([(f"{acc} = {out}", red)] + step + [(f"{out} = {acc}", red)])

    sizes = size_names(shape)
    if inline:
        entry.emit(0, f"# loop nest {number}" + (f": shape ({', '.join(sizes)})" if sizes else ""))
        for d, size in enumerate(sizes):
            entry.emit(0, f"n{d} = {size}")
        _emit_nest(entry, 0, rank, levels, after, results, None, blocked)
        for red, acc, _, _ in results:
            names[id(red.out)] = f"s{len(names)}"
            entry.emit(0, f"{names[id(red.out)]} = {_CTOR[red.out.aval.dtype.name]}({acc})", red)
        return

    if split is None:
        _emit_nest(fn, 0, rank, levels, after, results, None, blocked)
    else:
        total = " * ".join(f"n{d}" for d in range(rank))
        fn.emit(0, f"if {total} < {PARALLEL_MIN_ELEMENTS}:")
        _emit_nest(fn, 1, rank, levels, after, results, None, blocked)
        fn.emit(0, "else:")
        _emit_nest(fn, 1, rank, levels, after, results, split, blocked)
    if results:
        totals = "".join(f"{_CTOR[red.out.aval.dtype.name]}({acc}), " for red, acc, _, _ in results)
        fn.emit(0, f"return ({totals})")

    fname = f"{_NAME}_g{number}"
    signature = [f"n{i}" for i in range(rank)] + arrays + scalars
    lines = [("", None), (_group_decorator(bool(reductions), split is not None, fastmath), None),
             (f"def {fname}({', '.join(signature)}):", None)] + fn.body()
    module.functions += lines + [("", None)]
    call = f"{fname}({', '.join(sizes + arrays + scalars)})"
    entry.emit(0, "# one loop nest:")
    for eqn in eqns:
        entry.emit(0, f"#   {describe(eqn, names)}", eqn)
    if results:
        targets = ""
        for red, _, _, _ in results:
            names[id(red.out)] = f"s{len(names)}"
            targets += names[id(red.out)] + ", "
        entry.emit(0, f"{targets}= {call}")
    else:
        entry.emit(0, call)


def _step(update, acc, value, dtype, eqn):
    return [(line, eqn) for line in update.format(acc=acc, v=value, ctor=_CTOR[dtype.name]).split("\n")]


def _emit_nest(fn, base, rank, levels, after, results, split, blocked):
    """The loop nest at indentation `base`: statements of level d before loop d,
    `after[d]` once loop d is done. split: None, "rows" (prange over the outermost
    loop) or "chunks" (prange over chunks of it, partial totals combined after).
    blocked: (accumulator, identity, eqn) of float32 whole-array sums: their innermost
    loop runs in blocks of SUM_BLOCK (a constant trip count, so it vectorises at
    float32 width) with a float32 total per block added to the float64 accumulator."""
    shift = base
    for d in range(rank):
        for text, eqn in levels[d]:
            fn.emit(shift + d, text, eqn)
        start, stop = "0", f"n{d}"
        if d == 0 and split == "chunks":
            fn.emit(base, f"chunks = min(n0, {PARALLEL_CHUNKS})")
            for red, acc, _, _ in results:
                fn.emit(base, f"part_{acc} = np.empty(chunks, {_CTOR[accumulator_dtype(red).name]})", red)
            fn.emit(base, "for chunk in numba.prange(chunks):")
            shift += 1
            for red, acc, init, _ in results:
                fn.emit(shift, f"{acc} = {init}", red)
            start, stop = "chunk * n0 // chunks", "(chunk + 1) * n0 // chunks"
        elif d == 0 and split is None:
            for red, acc, init, _ in results:
                fn.emit(shift, f"{acc} = {init}", red)
        if d == rank - 1 and blocked:
            _emit_blocks(fn, shift + d, d, start, stop, levels[rank], blocked)
            continue
        loop = "numba.prange" if d == 0 and split == "rows" else "range"
        fn.emit(shift + d, f"for i{d} in {loop}({start}, {stop}):")
    if not blocked:
        for text, eqn in levels[rank] or [("pass", None)]:
            fn.emit(shift + rank, text, eqn)
    for d in reversed(range(rank)):
        for text, eqn in after[d]:
            fn.emit(shift + d, text, eqn)
    if split == "chunks":
        for red, acc, _, _ in results:
            fn.emit(shift, f"part_{acc}[chunk] = {acc}", red)
        for red, acc, init, _ in results:
            fn.emit(base, f"{acc} = {init}", red)
        fn.emit(base, "for chunk in range(chunks):")
        for red, acc, _, update in results:
            for text, eqn in _step(update, acc, f"part_{acc}[chunk]", accumulator_dtype(red), red):
                fn.emit(base + 1, text, eqn)


def _emit_blocks(fn, depth, d, start, stop, body, blocked):
    """Loop d from start to stop as full blocks of SUM_BLOCK, then the rest."""
    fn.emit(depth, f"full = {start} + ({stop} - ({start})) // {SUM_BLOCK} * {SUM_BLOCK}")
    fn.emit(depth, f"for block in range({start}, full, {SUM_BLOCK}):")
    for acc, init, eqn in blocked:
        fn.emit(depth + 1, f"{acc}_b = {init}", eqn)
    fn.emit(depth + 1, f"for k in range({SUM_BLOCK}):")
    fn.emit(depth + 2, f"i{d} = block + k")
    for text, eqn in body:
        fn.emit(depth + 2, text, eqn)
    for acc, _, eqn in blocked:
        fn.emit(depth + 1, f"{acc} = {acc} + np.float64({acc}_b)", eqn)
    for acc, init, eqn in blocked:
        fn.emit(depth, f"{acc}_b = {init}", eqn)
    fn.emit(depth, f"for i{d} in range(full, {stop}):")
    for text, eqn in body:
        fn.emit(depth + 1, text, eqn)
    for acc, _, eqn in blocked:
        fn.emit(depth, f"{acc} = {acc} + np.float64({acc}_b)", eqn)


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
    for v in region.stored + kernel.scalar_outputs:
        name = define(v)
        lines.append(f"{name} = empty({v.aval.shape!r}, {constant(v.aval.dtype)})  # {type_text(v.aval)}")
        args.append(name)
    args.append(constant(np.array(kernel.dims, np.int64)))
    args.append(constant(np.array(kernel.floats, np.float64)))
    lines.append("try:")
    lines.append(f"    status = {fn_name}({', '.join(args)})")
    lines.append("except Exception as error:  # kernels raise nothing at run time: this is Numba compiling")
    lines.append(f"    raise compile_error({constant(kernel)}, {fn_name}, {constant(ir_text)}, error) from error")
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def compile_error(kernel, entry, ir_text, error):
    """The CompileError for a region Numba rejected (its message is the __cause__):
    names the IR equation at the generated line Numba complains about, else all of
    the region's, and the module file in the kernel cache. `entry`: the region's
    dispatcher; `ir_text`: id(eqn) -> the equation's IR line, with the user's source line."""
    from tapejit.tracer.errors import CompileError
    message = _ANSI.sub("", str(error))
    module_file = inspect.unwrap(entry).__code__.co_filename  # the Python function Numba compiles
    where = None
    for path, line in re.findall(r'File "([^"]+)", line (\d+)', message):
        if path == module_file:
            where = kernel.equation_at_line.get(int(line))
            break
    equations = [ir_text[id(where)]] if where is not None else list(ir_text.values())
    said = [ln.strip() for ln in message.splitlines() if ln.strip()]
    # Numba's first line says which pipeline step failed, the next says why.
    reason = next((ln for ln in said if not ln.startswith(("Failed in", "During:", "File ", "^"))),
                  said[-1] if said else type(error).__name__)
    return CompileError("tj.compile: Numba could not compile the kernel for\n    "
                        + "\n    ".join(equations)
                        + f"\n(generated source: {module_file}, function {kernel.name}; Numba said: {reason})")
