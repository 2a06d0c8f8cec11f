"""The NumPy backend: a program becomes one generated Python function that
calls each primitive's eager kernel in order (backend="numpy", the reference
for differential tests). Its source is readable and registered in linecache,
so tracebacks point at the IR equation that failed."""
import contextlib
import hashlib
import itertools
import linecache
import threading
import weakref

import numpy as np

from .ir import Eqn, Guard, Print, Var, pretty


class GuardFailed(Exception):
    """A guard did not hold: this path does not apply to these inputs."""

    def __init__(self, guard, value):
        super().__init__()
        self.guard = guard
        self.value = value

    def __str__(self):  # formatted only when shown: paths fail often on the hot path
        return self.guard.describe()


_STATE = threading.local()


def _print_values(template, *values):
    if getattr(_STATE, "quiet", False):
        return
    print(template.format(*[np.asarray(v) for v in values]))


def _hold(held, template, *values):
    """A tj.print before a guard: formatted now (its buffers may be reused), shown
    by _show once the path's last guard has held."""
    if not getattr(_STATE, "quiet", False):
        held.append(template.format(*[np.asarray(v) for v in values]))


def _show(held):
    for text in held:
        print(text)
    held.clear()


@contextlib.contextmanager
def quiet():
    """Run programs without their tj.print output (introspection checks guards by running them)."""
    saved = getattr(_STATE, "quiet", False)
    _STATE.quiet = True
    try:
        yield
    finally:
        _STATE.quiet = saved


def generate_source(program, fn_name="run", kernels=None):
    """(source, globals) of a function run(*inputs, *reads) -> (outputs, writes).
    `kernels`: {body index where a region starts: (RegionSource, entry function)};
    the driver calls each region's entry in place of its items."""
    from .lower.codegen import compile_error, driver_call
    kernels = kernels or {}
    names = {}
    globals_ = {"GuardFailed": GuardFailed, "_print_values": _print_values, "_hold": _hold, "_show": _show,
                "empty": np.empty, "asarray": np.asarray, "contiguous": np.ascontiguousarray}
    if kernels:
        globals_["compile_error"] = compile_error
    lines = []

    def var_name(var):
        if id(var) not in names:
            names[id(var)] = f"v{len(names)}"
        return names[id(var)]

    def constant(value):
        name = f"c{len(globals_)}"
        globals_[name] = value
        return name

    def use(atom):
        if type(atom) is Var:
            return names[id(atom)]
        return constant(atom.value)

    args = [var_name(v) for v in program.inputs] + [var_name(v) for _, v in program.reads]
    ir_lines = pretty(program).splitlines()[1:-1]  # the IR text, one line per item, for comments
    offset = len(program.reads)
    # A path that is tried and fails a guard must print nothing: a tj.print before
    # the last guard is held until that guard has held (or something else raises,
    # as eager code would have printed by then).
    last_guard = max((n for n, item in enumerate(program.body) if type(item) is Guard), default=-1)
    holding = any(type(item) is Print and n < last_guard for n, item in enumerate(program.body))
    skip_until = 0
    for n, item in enumerate(program.body):
        if n < skip_until:
            continue
        if n in kernels:
            kernel, fn = kernels[n]
            skip_until = kernel.region.end
            name = f"k{n}"
            globals_[name] = fn
            ir_text = {id(program.body[k]): ir_lines[offset + k].strip() for k in range(n, skip_until)}
            lines += ["    " + line for line in driver_call(kernel, name, use, var_name, constant, ir_text)]
            if holding and n <= last_guard < skip_until:
                lines.append("    _show(held)")
            continue
        comment = ir_lines[offset + n].strip()
        lines.append(f"    # {comment}")
        if type(item) is Eqn:
            fn = f"f{n}"
            globals_[fn] = item.prim.impl
            call = f"{fn}({', '.join(use(a) for a in item.inputs)}"
            if item.params:
                globals_[f"p{n}"] = item.params
                call += f", **p{n}"
            lines.append(f"    {var_name(item.out)} = {call})")
        elif type(item) is Guard:
            g = f"g{n}"
            globals_[g] = item
            value = use(item.input)
            if item.kind in ("bool", "int") or (item.kind == "float" and item.expect == item.expect):
                check = f"{item.kind}({value}) != {g}.expect"
            else:
                check = f"not {g}.holds({value})"
            lines.append(f"    if {check}:")
            lines.append(f"        raise GuardFailed({g}, {value})")
            if holding and n == last_guard:
                lines.append("    _show(held)")
        else:
            t = f"t{n}"
            globals_[t] = item.template
            call = f"_hold(held, {t}, " if n < last_guard else f"_print_values({t}, "
            lines.append(f"    {call}{', '.join(use(a) for a in item.inputs)})")
    outs = ", ".join(use(a) for a in program.outputs)
    writes = ", ".join(use(a) for _, a in program.writes)
    lines.append(f"    return ({outs}{',' if len(program.outputs) == 1 else ''}), "
                 f"({writes}{',' if len(program.writes) == 1 else ''})")
    if holding:
        lines = ["    held = []", "    try:", *["    " + line for line in lines],
                 "    except GuardFailed:", "        raise", "    except BaseException:", "        _show(held)",
                 "        raise"]
    header = f"def {fn_name}({', '.join(args)}):"
    return "\n".join([header, *lines]) + "\n", globals_


def build(program, kernels=None):
    """The program as a Python function; source kept on it as `.source`."""
    source, globals_ = generate_source(program, kernels=kernels)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    fn = define(source, f"<tapejit {program.name} {digest}>", globals_, "run")
    fn.source = source
    return fn


_SOURCES = itertools.count()


def define(source, filename, globals_, name):
    """The function `name` of generated `source`, its source in linecache (for
    tracebacks) for as long as the function lives: evicted programs leave nothing."""
    filename = f"{filename[:-1]} #{next(_SOURCES)}>"  # unique: one entry per function
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), globals_)
    fn = globals_.pop(name)  # not kept in its own globals: no cycle, freed as soon as unused
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    return fn
