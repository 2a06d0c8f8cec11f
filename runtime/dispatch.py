"""The hot path of a compiled call with no tape recording: one generated
function per path that takes the call's leaves, reads Variables, runs the
program, commits Variable writes and wraps the results, with no loops or
lookups that could be done once at trace time."""
import numpy as np

from tapejit.compiler import executor
from tapejit.tracer import core, nest
from tapejit.tracer.tensor import Tensor


def is_input_leaf(leaf):
    """Leaves that become program inputs (tensor-likes and dynamic floats), in call order."""
    cls = type(leaf)
    return cls is Tensor or cls is float or cls is np.ndarray or isinstance(leaf, (np.generic, Tensor))


def build_fast_call(program, run, input_leaves, out_def, name):
    """call(leaves) -> the function's result, for one path."""
    globals_ = {"run": run, "Tensor": Tensor, "new": object.__new__, "asarray": np.asarray, "copy": np.array, "f64": np.float64,
                "wrap": core.wrap, "unflatten": nest.unflatten, "out_def": out_def}
    lines = ["def call(leaves):"]
    args = []
    for n, (index, is_float) in enumerate(input_leaves):
        lines.append(f"    l{n} = leaves[{index}]")
        if is_float:
            args.append(f"f64(l{n})")
        else:
            # A caller's NumPy array is copied (as eager conversion does): results must not alias it.
            args.append(f"(l{n}._value if type(l{n}) is Tensor else copy(l{n}))")
    for n, (slot, _) in enumerate(program.reads):
        if slot.array is not None:  # a captured array: its contents now, copied
            globals_[f"A{n}"] = slot.array
            args.append(f"copy(A{n})")
        elif slot.arg is not None:
            args.append(f"leaves[{slot.arg}]._tensor._value")
        else:
            globals_[f"V{n}"] = slot.variable
            args.append(f"V{n}._tensor._value")
    lines.append(f"    outs, writes = run({', '.join(args)})")
    for n, (slot, _) in enumerate(program.writes):
        target = f"leaves[{slot.arg}]" if slot.arg is not None else f"W{n}"
        if slot.arg is None:
            globals_[f"W{n}"] = slot.variable
        lines.append(f"    var = {target}")
        lines.append(f"    var._tensor = wrap(asarray(writes[{n}], var._tensor._value.dtype))")
    result = _literal(out_def, iter(range(len(program.outputs))))
    if result is None:
        lines.append("    return unflatten(out_def, [wrap(o) for o in outs])")
    else:
        for n in range(len(program.outputs)):  # core.wrap, inlined
            lines.append(f"    o{n} = new(Tensor)")
            lines.append(f"    o{n}._value = outs[{n}]")
        lines.append(f"    return {result}")
    source = "\n".join(lines) + "\n"
    return executor.define(source, f"<tapejit call {name}>", globals_, "call")


def _literal(treedef, numbers):
    """Python source building the output structure from o0, o1, ... when it is made of
    tuples, lists and leaves (else None: unflatten builds it)."""
    if treedef.kind == "leaf":
        return f"o{next(numbers)}"
    if treedef.kind not in ("tuple", "list"):
        return None
    parts = [_literal(c, numbers) for c in treedef.children]
    if any(p is None for p in parts):
        return None
    inside = "".join(p + ", " for p in parts)
    return f"({inside})" if treedef.kind == "tuple" else f"[{inside}]"
