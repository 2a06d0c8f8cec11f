"""Fusion: which equations of a program run together in one Numba loop nest.

A group is a run of two or more consecutive equations with one iteration shape:
elementwise equations producing that shape (their operands broadcast into it by
index substitution), optionally ended by one reduction over it. Values used only
inside a group never reach memory; the group's outputs are the values used
after it. Everything else (matmul, gathers, reshapes, guards) stays in the
driver, between groups.
"""
from ..ir import Eqn, Guard, Literal, Var
from ..passes.util import uses
from .rules import elementwise_rule, reduction_rule


class Group:
    __slots__ = ("start", "end", "eqns", "shape", "reduction", "inputs", "outputs")

    def __init__(self, start, shape):
        self.start = start
        self.end = start
        self.eqns = []
        self.shape = shape
        self.reduction = None
        self.inputs = []
        self.outputs = []


def _closes(group):
    return group is not None and group.reduction is None


def plan(program):
    """The fusion groups of a program, in body order."""
    groups = []
    current = None
    for n, item in enumerate(program.body):
        if type(item) is Eqn and elementwise_rule(item) is not None:
            shape = item.out.aval.shape
            if not (_closes(current) and current.shape == shape and current.end == n):
                current = Group(n, shape)
                groups.append(current)
            current.eqns.append(item)
            current.end = n + 1
        elif type(item) is Eqn and reduction_rule(item) is not None:
            shape = item.inputs[0].aval.shape
            if not (_closes(current) and current.shape == shape and current.end == n):
                current = Group(n, shape)
                groups.append(current)
            current.eqns.append(item)
            current.reduction = item
            current.end = n + 1
        else:
            current = None
    # A lone operation gains nothing from a kernel (NumPy's own loop is as good, and
    # SIMD for transcendentals) but would cost a Numba compile: it stays in NumPy.
    # Scalars likewise: NumPy's scalar arithmetic costs less than a kernel call.
    groups = [g for g in groups if len(g.eqns) > 1 and g.shape != ()]
    _connect(program, groups)
    return groups


def _connect(program, groups):
    """Each group's inputs (defined before it) and outputs (used after it)."""
    used_after = {}
    body = program.body
    for n, item in enumerate(body):
        for a in uses(item) if type(item) is not Guard else (item.input,):
            if type(a) is Var:
                used_after[id(a)] = n
    final = len(body)
    for a in list(program.outputs) + [a for _, a in program.writes]:
        if type(a) is Var:
            used_after[id(a)] = final
    for group in groups:
        defined = {id(e.out) for e in group.eqns}
        seen = set()
        for e in group.eqns:
            for a in e.inputs:
                if type(a) is Var and id(a) not in defined and id(a) not in seen:
                    seen.add(id(a))
                    group.inputs.append(a)
                elif type(a) is Literal and a.aval.shape and id(a) not in seen:
                    seen.add(id(a))
                    group.inputs.append(a)
        group.outputs = [e.out for e in group.eqns if used_after.get(id(e.out), -1) >= group.end]
