"""Regions and fusion groups: which equations of a program run inside one Numba
entry function, and which of those share one loop nest.

A region is a run of consecutive body items that all lower to Numba:
elementwise equations, reductions, reshapes that only add or drop size-1 axes,
and guards on scalars. Anything else (matmul through BLAS, gathers, transposes,
tj.print) runs in the driver between regions.

Inside a region, each equation joins a group: one loop nest over an iteration
shape. An equation may join any earlier group with its iteration shape whose
results it does not need (a reduction's total is known only after its loop), so
fusion follows the data flow, not the text order: a forward pass and its
gradient, written far apart, become one loop. Values of size 1 live in local
variables; values used only inside their group never reach memory; all others
are arrays the runtime allocates.
"""
from tapejit.tracer.ops import shape as S

from ..ir import Eqn, Guard, Literal, Var
from ..passes.util import uses
from .rules import EXPENSIVE, RECOMPUTE_LIMIT, elementwise_rule, reduction_rule

GUARD_KINDS = ("bool", "int", "float")


def is_scalar(aval):
    """Size-1 values are one number: kept in a local variable, never in an array."""
    return all(d == 1 for d in aval.shape)


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


def is_view(eqn):
    """A reshape that only adds or drops size-1 axes: a view of a contiguous array."""
    return eqn.prim is S.reshape_p and _squeezed(eqn.inputs[0].aval.shape) == _squeezed(eqn.out.aval.shape)


def lowers(item):
    if type(item) is Guard:
        return item.kind in GUARD_KINDS and type(item.input) is Var and is_scalar(item.input.aval)
    if type(item) is not Eqn:
        return False
    return elementwise_rule(item) is not None or reduction_rule(item) is not None or is_view(item)


class Group:
    """One loop nest over `shape`: elementwise equations producing that shape and
    reductions over it (all over the same axes)."""

    __slots__ = ("shape", "eqns", "axes", "defined", "reduced")

    def __init__(self, shape):
        self.shape = shape
        self.eqns = []
        self.axes = None      # the reductions' axes (every axis when their result is one number)
        self.defined = set()  # ids of the elementwise results computed in the loop
        self.reduced = set()  # ids of the reductions' results: complete only after the loop


class Scalar:
    """An equation on size-1 values: one statement, no loop."""

    __slots__ = ("eqn",)

    def __init__(self, eqn):
        self.eqn = eqn


class View:
    """A reshape adding or dropping size-1 axes of an array."""

    __slots__ = ("eqn",)

    def __init__(self, eqn):
        self.eqn = eqn


class GuardCheck:
    __slots__ = ("guard", "number")

    def __init__(self, guard, number):
        self.guard = guard
        self.number = number  # the entry function returns it when the guard fails


class Region:
    """Body items [start, end) as one entry function. `units` run in order;
    `inputs` come from before the region (array literals included), `outputs` are
    used after it; `stored` are the non-scalar values written to arrays;
    `recomputed` the values other loops compute again instead of reading."""

    __slots__ = ("start", "end", "units", "inputs", "outputs", "stored", "recomputed", "guards", "eqns")

    def __init__(self, start, end):
        self.start = start
        self.end = end
        self.units = []
        self.inputs = []
        self.outputs = []
        self.stored = []
        self.recomputed = {}  # id(value) -> its equation, for values other loops compute again
        self.guards = []
        self.eqns = 0


def _reduction_axes(eqn):
    """The axes a reduction's loop nest treats as reduced."""
    if is_scalar(eqn.out.aval):
        return tuple(range(len(eqn.inputs[0].aval.shape)))
    return tuple(eqn.params["axes"])


def plan(program):
    """The regions of a program worth compiling, in body order."""
    regions = []
    body = program.body
    n = 0
    while n < len(body):
        if not lowers(body[n]):
            n += 1
            continue
        start = n
        while n < len(body) and lowers(body[n]):
            n += 1
        region = _schedule(body, start, n)
        if _worth_compiling(region):
            regions.append(region)
    _connect(program, regions)
    return regions


def _worth_compiling(region):
    """A compile costs 0.1-1 s. Without a loop nest, NumPy's scalar arithmetic is cheap
    enough; a lone equation or two unfused ones gain little over NumPy's own loops."""
    groups = [u for u in region.units if type(u) is Group]
    return bool(groups) and (region.eqns >= 3 or any(len(g.eqns) >= 2 for g in groups))


def _schedule(body, start, end):
    region = Region(start, end)
    unit_of = {}     # id(value) -> index of the unit that defines it
    first_open = 0   # groups before a guard are closed: what follows must not run before it
    # Views come first: a reshaped array is ready when its source is (arrays are the
    # entry's parameters), so a loop may read it wherever its source may be read.
    views = []
    for item in body[start:end]:
        if type(item) is Guard:
            region.units.append(GuardCheck(item, len(region.guards) + 1))
            region.guards.append(item)
            first_open = len(region.units)
            continue
        region.eqns += 1
        out = item.out
        if is_scalar(out.aval) and all(is_scalar(a.aval) for a in item.inputs):
            unit = Scalar(item)
        elif is_view(item):
            views.append(View(item))
            unit_of[id(out)] = unit_of.get(id(item.inputs[0]), -1)
            continue
        else:
            unit = _join(region, item, unit_of, first_open)
            if unit is not None:
                unit_of[id(out)] = unit
                continue
            unit = Group(_iteration_shape(item))
            _add(unit, item)
        unit_of[id(out)] = len(region.units)
        region.units.append(unit)
    region.units = views + region.units
    return region


def _iteration_shape(eqn):
    return eqn.inputs[0].aval.shape if reduction_rule(eqn) is not None else eqn.out.aval.shape


def _add(group, eqn):
    group.eqns.append(eqn)
    if reduction_rule(eqn) is not None:
        group.axes = _reduction_axes(eqn)
        group.reduced.add(id(eqn.out))
    else:
        group.defined.add(id(eqn.out))


def _join(region, eqn, unit_of, first_open):
    """Add `eqn` to an open group it can share a loop with; its unit index, or None."""
    shape = _iteration_shape(eqn)
    reduction = reduction_rule(eqn) is not None
    axes = _reduction_axes(eqn) if reduction else None
    best = None
    for index in range(len(region.units) - 1, first_open - 1, -1):
        group = region.units[index]
        if type(group) is not Group or group.shape != shape:
            continue
        if reduction and group.axes is not None and group.axes != axes:
            continue
        feeds = False
        ok = True
        for a in eqn.inputs:
            if type(a) is not Var:
                continue
            if id(a) in group.defined:
                feeds = True
            elif id(a) in group.reduced or unit_of.get(id(a), -1) >= index:
                ok = False  # needs a total of this loop, or a value computed after it
                break
        if not ok:
            continue
        if feeds:  # in the loop that computes its operands: they need not reach memory
            best = index
            break
        if best is None:
            best = index
    if best is None:
        return None
    _add(region.units[best], eqn)
    return best


def _connect(program, regions):
    """Each region's inputs, outputs and stored values."""
    last_use = {}
    body = program.body
    for n, item in enumerate(body):
        for a in uses(item):
            if type(a) is Var:
                last_use[id(a)] = n
    final = len(body)
    for a in list(program.outputs) + [a for _, a in program.writes]:
        if type(a) is Var:
            last_use[id(a)] = final
    for region in regions:
        defined = set()
        seen = set()
        home = {}  # id(value) -> its group, for values computed in a loop
        for unit in region.units:
            for eqn in _eqns(unit):
                defined.add(id(eqn.out))
                if type(unit) is Group:
                    home[id(eqn.out)] = unit
        for unit in region.units:
            for eqn in _eqns(unit):
                for a in eqn.inputs:
                    if id(a) in defined or id(a) in seen:
                        continue
                    if type(a) is Var or (type(a) is Literal and not is_scalar(a.aval)):
                        seen.add(id(a))
                        region.inputs.append(a)
            if type(unit) is GuardCheck and id(unit.guard.input) not in defined \
                    and id(unit.guard.input) not in seen:
                seen.add(id(unit.guard.input))
                region.inputs.append(unit.guard.input)
        loop_uses, other_uses = set(), set()  # values read by another group / by a statement, view or guard
        for unit in region.units:
            reads = [unit.guard.input] if type(unit) is GuardCheck else \
                [a for eqn in _eqns(unit) for a in eqn.inputs]
            for a in reads:
                if id(a) in home and home[id(a)] is not unit:
                    (loop_uses if type(unit) is Group else other_uses).add(id(a))
        cheap = _recomputable(region, home, last_use)
        for unit in region.units:
            for eqn in _eqns(unit):
                out = eqn.out
                after = last_use.get(id(out), -1) >= region.end
                if after:
                    region.outputs.append(out)
                if type(unit) is Group and not is_scalar(out.aval) and \
                        (after or id(out) in unit.reduced or id(out) in other_uses
                         or (id(out) in loop_uses and id(out) not in cheap)):
                    region.stored.append(out)
                elif id(out) in cheap:
                    region.recomputed[id(out)] = eqn


def _recomputable(region, home, last_use):
    """Values another loop can compute again from what it reads anyway, rather than
    read from memory: cheap elementwise expressions (no transcendental, at most
    RECOMPUTE_LIMIT operations) over the region's inputs, reduction totals and views."""
    defining = {id(e.out): e for g in region.units if type(g) is Group for e in g.eqns}
    cost = {}

    def of(eqn):
        key = id(eqn.out)
        if key in cost:
            return cost[key]
        cost[key] = None
        if key in home[key].reduced or last_use.get(key, -1) >= region.end or eqn.prim in EXPENSIVE:
            return None
        total = 1
        for a in eqn.inputs:
            if id(a) in defining and id(a) not in home[id(a)].reduced:
                c = of(defining[id(a)])
                if c is None:
                    return None
                total += c
        if total <= RECOMPUTE_LIMIT:
            cost[key] = total
        return cost[key]

    for eqn in defining.values():
        of(eqn)
    return {k for k, c in cost.items() if c is not None}


def _eqns(unit):
    if type(unit) is Group:
        return unit.eqns
    if type(unit) is GuardCheck:
        return ()
    return (unit.eqn,)
