"""A program ready to run on tensors, and differentiable: under an eager tape
a call is one tape entry whose gradient runs the program's derived backward
program (and, when an outer tape records that, the joint program, itself an
Executable, so derivatives of any order work)."""
import numpy as np

from tapejit.compiler.grad import derive
from tapejit.tracer import core
from tapejit.tracer.core import STATE

from .backends import KernelOptions, build_runner
from .config import CONFIG


class Executable:
    """program(inputs..., reads...) -> (outputs, writes), run by a backend (runtime/backends.py)."""

    __slots__ = ("program", "backend", "options", "run", "n_params", "_derivative", "_forward", "_backward", "_joint",
                 "__weakref__")

    def __init__(self, program, backend="numpy", options=KernelOptions()):
        self.program = program
        self.backend = backend
        self.options = options
        self.run = build_runner(program, backend, options)
        self.n_params = len(program.inputs) + len(program.reads)
        self._derivative = None

    def derivative(self, arrays):
        """Derived once, at the first differentiable call's values (after its guards held)."""
        if self._derivative is None:
            d = derive(self.program, arrays, CONFIG.check_ir)
            self._forward = build_runner(d.forward, self.backend, self.options)
            self._backward = build_runner(d.backward, self.backend, self.options)
            self._joint = None
            self._derivative = d
        return self._derivative

    def joint(self):
        if self._joint is None:
            self._joint = Executable(self._derivative.joint, self.backend, self.options)
        return self._joint

    def __call__(self, tensors):
        """Run on Tensors (inputs then Variable reads): (output arrays, write arrays).
        Records one entry on each active tape that watches an input."""
        arrays = [t._value for t in tensors]
        recorders = STATE.recorders
        if recorders and any(r.watches(t) for r in recorders for t in tensors):
            return self._differentiable_call(tensors, arrays, recorders)
        return self.run(*arrays)

    def _differentiable_call(self, tensors, arrays, recorders):
        if self._derivative is None:
            self.run(*arrays)  # raises GuardFailed before deriving if this path does not apply
        d = self.derivative(arrays)
        results, _ = self._forward(*arrays)
        n_out = len(self.program.outputs)
        n_writes = len(self.program.writes)
        outputs = results[:n_out]
        writes = results[n_out:n_out + n_writes]
        residuals = results[n_out + n_writes:]
        out_tensors = [core.wrap(o) for o in outputs]
        connected = tuple(out_tensors[i] for i in d.ct_outputs)
        rule = ProgramVJP(self, residuals)
        for recorder in recorders:
            recorder.record_custom(rule, tuple(tensors), connected)
        return out_tensors, writes


class ProgramVJP:
    """The tape entry of one compiled call: cotangents in, input gradients out."""

    __slots__ = ("executable", "residuals")

    def __init__(self, executable, residuals):
        self.executable = executable
        self.residuals = residuals

    def backward(self, cts, inputs, outs):
        ex = self.executable
        d = ex._derivative
        dys_given = dys = [cts.get(id(o)) for o in outs]
        if all(dy is None for dy in dys):
            return [None] * len(inputs)
        dys = [core.wrap(np.zeros(o._value.shape, o._value.dtype)) if dy is None else dy
               for dy, o in zip(dys, outs, strict=True)]
        recorders = STATE.recorders
        if recorders and any(r.watches(t) for r in recorders for t in list(inputs) + dys):
            # An outer tape records this gradient: run the joint program, a
            # function of the inputs themselves, so the outer tape sees them.
            grads, _ = ex.joint()(list(inputs) + dys)
        else:
            grads, _ = ex._backward(*[dy._value for dy in dys], *self.residuals)
        connected = set()
        for dy, reach in zip(dys_given, d.connections, strict=True):
            if dy is not None:
                connected |= reach
        result = [None] * len(inputs)
        for k, g in zip(d.wrt, grads, strict=True):
            if k in connected:  # unconnected inputs get None, as on the eager tape
                result[k] = g if isinstance(g, core.Tensor) else core.wrap(g)
        return result
