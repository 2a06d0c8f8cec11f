"""Symbolic differentiation of a program.

The joint program J(inputs, reads, cts) replays the forward equations and then
the backward ones, emitted by running the registry's vjp rules (the same rules
the eager tape uses) on concrete values under a Trace. Splitting J at the
boundary gives the forward variant F (outputs + residuals: exactly the
forward values the backward equations use) and the backward B(cts, residuals).
J itself is an ordinary program, so it can be differentiated again.
"""
import numpy as np

from tapejit.tracer import core
from tapejit.tracer.core import STATE
from tapejit.tracer.tape import GradientTape, UnconnectedGradients

from .ir import Eqn, Guard, Program, Var
from .passes.util import uses
from .pipeline import optimize
from .trace import Trace


class Derivative:
    """joint: J(inputs..., reads..., cts...) -> grads of the differentiable inputs and reads.
    forward: F(inputs..., reads...) -> outputs..., writes..., residuals...; backward: B(cts..., residuals...).
    wrt: indices (into inputs + reads) that have gradients, in J's output order.
    ct_outputs: indices of the program outputs that take a cotangent.
    connections: per ct_output, the wrt indices it depends on through differentiable
    equations (elsewhere the gradient is None, as the eager tape gives)."""

    __slots__ = ("joint", "forward", "backward", "wrt", "ct_outputs", "num_residuals", "connections")

    def __init__(self, joint, forward, backward, wrt, ct_outputs, num_residuals, connections=None):
        self.joint = joint
        self.forward = forward
        self.backward = backward
        self.wrt = wrt
        self.ct_outputs = ct_outputs
        self.num_residuals = num_residuals
        self.connections = connections


def _is_float(atom):
    return atom.aval.dtype.kind == "f"


def derive(program, values, check=False):
    """Differentiate `program` at the concrete `values` (its inputs then reads)."""
    params = list(program.inputs) + [v for _, v in program.reads]
    ct_outputs = [i for i, a in enumerate(program.outputs) if type(a) is Var and _is_float(a)]
    trace = Trace(f"{program.name}_vjp")
    tape = GradientTape()
    env = {}
    arg_tensors = []
    for var, value in zip(params, values, strict=True):
        t = core.wrap(value)
        trace.input(t)
        arg_tensors.append(t)
        env[id(var)] = t
    cts = []
    for i in ct_outputs:
        aval = program.outputs[i].aval
        t = core.wrap(np.ones(aval.shape, aval.dtype))
        trace.input(t)
        cts.append(t)
    wrt = [k for k, var in enumerate(params) if _is_float(var)]
    saved = STATE.recorders
    try:
        STATE.recorders = [trace, tape]
        tape.watch([arg_tensors[k] for k in wrt])
        rereads = _reread_params(program, params, wrt)
        _replay(program, env, trace, watch={id(value): tape for value, _ in rereads})
        # F also gives the program's outputs and Variable writes, so it can replace the
        # program. Taken before the boundary: an output the replay left untraced (a
        # constant) becomes an equation of F here.
        replayed = [trace.atom(env[id(a)]) if type(a) is Var else a
                    for a in list(program.outputs) + [a for _, a in program.writes]]
        boundary = len(trace.body)
        STATE.recorders = [trace]
        _attribute_rules(tape, trace, env, program)
        targets = [env[id(program.outputs[i])] for i in ct_outputs]
        sources = [arg_tensors[k] for k in wrt] + [env[id(value)] for value, _ in rereads]
        grads = tape._backward(targets, cts, sources, UnconnectedGradients.ZERO)
        grads, reread_grads = grads[:len(wrt)], grads[len(wrt):]
        for (_, k), g in zip(rereads, reread_grads, strict=True):
            position = wrt.index(k)
            # A read after an assignment is the Variable's too. (No `0 + g` when the
            # first read had no gradient: -0.0 must stay -0.0.)
            grads[position] = grads[position] + g if trace.traced(grads[position]) else g
    finally:
        STATE.recorders = saved
        trace.source = None
    trace.source = ""  # constants the differentiation itself makes (zero gradients) have no user line
    joint = trace.program(grads)
    forward, backward, num_residuals = _split(joint, program.name, boundary, len(params), len(cts), replayed)
    return Derivative(optimize(joint, check), optimize(forward, check), optimize(backward, check), wrt,
                      ct_outputs, num_residuals, _connections(program, params, wrt, ct_outputs, rereads))


def _reread_params(program, params, wrt):
    """[(value Var, index of its Variable's read among params)] for differentiable rereads."""
    index = {id(v): k for k, v in enumerate(params)}
    return [(value, index[id(read)]) for value, read in program.rereads
            if id(read) in index and index[id(read)] in wrt]


def _connections(program, params, wrt, ct_outputs, rereads):
    """Which differentiable params each ct output depends on, following only the
    equations an eager tape would record (a vjp rule for that operand, float result)."""
    reach = {id(params[k]): frozenset((k,)) for k in wrt}
    reach.update((id(value), frozenset((k,))) for value, k in rereads)
    for item in program.body:
        if type(item) is not Eqn or item.prim.vjp is None or not _is_float(item.out):
            continue
        deps = frozenset()
        rules = item.prim.vjp  # indexed per operand, as the tape does (variadic rules too)
        for i, a in enumerate(item.inputs):
            if type(a) is Var and id(a) in reach and rules[i] is not None:
                deps |= reach[id(a)]
        if deps:
            reach[id(item.out)] = deps
    return [reach.get(id(program.outputs[i]), frozenset()) for i in ct_outputs]


def _replay(program, env, trace=None, watch=None):
    """Run the program's equations as ops (recorded by the active trace and tape),
    each recorded with its own equation's file:line. `watch`: id(Var) -> tape that
    must watch that equation's result (a gradient source in the middle)."""

    def value(atom):
        return env[id(atom)] if type(atom) is Var else core.wrap(atom.value)

    for item in program.body:
        if trace is not None:
            trace.source = item.source or None
        if type(item) is Eqn:
            env[id(item.out)] = core.apply(item.prim, tuple(value(a) for a in item.inputs), item.params)
            if watch and id(item.out) in watch:
                watch[id(item.out)].watch(env[id(item.out)])
        elif type(item) is Guard:
            for recorder in STATE.recorders:
                recorder.concretize(value(item.input), item.kind)
    for atom in list(program.outputs) + [a for _, a in program.writes]:
        if type(atom) is Var:
            env.setdefault(id(atom), value(atom))


class _SourcedRules:
    """A tape entry's vjp rules that first point the trace at the forward equation's
    file:line, so the backward equations (and the unbroadcasting and accumulation the
    tape does right after each rule) carry the line of the op they differentiate."""

    __slots__ = ("rules", "trace", "source")

    def __init__(self, rules, trace, source):
        self.rules = rules
        self.trace = trace
        self.source = source

    def __getitem__(self, index):
        rule = self.rules[index]
        if rule is None:
            return None
        trace, source = self.trace, self.source

        def sourced(*args, **params):
            trace.source = source
            return rule(*args, **params)
        return sourced


class _SourcedPrim:
    __slots__ = ("vjp", "name")

    def __init__(self, prim, trace, source):
        self.vjp = _SourcedRules(prim.vjp, trace, source)
        self.name = prim.name


def _attribute_rules(tape, trace, env, program):
    sources = {id(env[id(item.out)]): item.source for item in program.body
               if type(item) is Eqn and id(item.out) in env and item.source}
    tape._entries = [(_SourcedPrim(prim, trace, sources[id(out)]), inputs, params, out)
                     if params is not None and id(out) in sources else (prim, inputs, params, out)
                     for prim, inputs, params, out in tape._entries]


def _split(joint, name, boundary, num_params, num_cts, replayed):
    """F = the joint trace's forward part with residual outputs; B = its backward part.
    Split before optimising, so the boundary is exact."""
    forward_body = joint.body[:boundary]
    backward_body = joint.body[boundary:]
    forward_vars = {id(v) for v in joint.inputs[:num_params]}
    forward_vars.update(id(e.out) for e in forward_body if type(e) is Eqn)
    residuals, seen = [], set()
    for atoms in [uses(item) for item in backward_body] + [joint.outputs]:
        for a in atoms:
            if type(a) is Var and id(a) in forward_vars and id(a) not in seen:
                seen.add(id(a))
                residuals.append(a)
    forward = Program(f"{name}_fwd", joint.inputs[:num_params], [], forward_body, [], replayed + residuals)
    backward = Program(f"{name}_bwd", joint.inputs[num_params:num_params + num_cts] + residuals, [],
                       backward_body, [], joint.outputs)
    return forward, backward, len(residuals)
