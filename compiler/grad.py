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
    ct_outputs: indices of the program outputs that take a cotangent."""

    __slots__ = ("joint", "forward", "backward", "wrt", "ct_outputs", "num_residuals")

    def __init__(self, joint, forward, backward, wrt, ct_outputs, num_residuals):
        self.joint = joint
        self.forward = forward
        self.backward = backward
        self.wrt = wrt
        self.ct_outputs = ct_outputs
        self.num_residuals = num_residuals


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
        _replay(program, env)
        boundary = len(trace.body)
        STATE.recorders = [trace]
        targets = [env[id(program.outputs[i])] for i in ct_outputs]
        sources = [arg_tensors[k] for k in wrt]
        grads = tape._backward(targets, cts, sources, UnconnectedGradients.ZERO)
    finally:
        STATE.recorders = saved
    joint = trace.program(grads)
    # F also gives the program's outputs and Variable writes, so it can replace the program.
    replayed = [trace.atom(env[id(a)]) if type(a) is Var else a
                for a in list(program.outputs) + [a for _, a in program.writes]]
    forward, backward, num_residuals = _split(joint, program.name, boundary, len(params), len(cts), replayed)
    return Derivative(optimize(joint, check), optimize(forward, check), optimize(backward, check), wrt,
                      ct_outputs, num_residuals)


def _replay(program, env):
    """Run the program's equations as ops (recorded by the active trace and tape)."""

    def value(atom):
        return env[id(atom)] if type(atom) is Var else core.wrap(atom.value)

    for item in program.body:
        if type(item) is Eqn:
            env[id(item.out)] = core.apply(item.prim, tuple(value(a) for a in item.inputs), item.params)
        elif type(item) is Guard:
            for recorder in STATE.recorders:
                recorder.concretize(value(item.input), item.kind)
    for atom in list(program.outputs) + [a for _, a in program.writes]:
        if type(atom) is Var:
            env.setdefault(id(atom), value(atom))


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
