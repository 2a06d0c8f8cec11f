"""GradientTape with TensorFlow 2 semantics, stop_gradient, custom_gradient.

The tape is a flat list of entries in execution order, so walking it backwards
is a reverse topological order: the backward pass is a loop, never a
recursion, whatever the depth. Vjp rules are tapejit ops, so a gradient
computed while an outer tape records is itself recorded (any order).
"""
import contextlib
import enum
import functools
import inspect
import warnings

import numpy as np

from . import core, nest
from .core import STATE, Primitive, ShapedArray, register
from .errors import ShapeError, describe, type_name
from .ops.elementwise import PUBLIC
from .ops.reduce import reduce_sum
from .ops.shape import broadcast_to, reshape, stack
from .tensor import Tensor, Variable


class UnconnectedGradients(enum.Enum):
    NONE = "none"
    ZERO = "zero"


class Recorder:
    """What the op path tells every active recorder. Tapes act on ops and
    Variable reads; the compiler's trace also acts on concretisation and writes."""

    # Compiler traces record every op, even where tapes are paused (the body of
    # a custom_gradient, the arithmetic of Variable.assign_add).
    records_all_ops = False

    def record(self, prim, inputs, params, out):
        raise NotImplementedError

    def record_custom(self, rule, inputs, outs):
        raise NotImplementedError

    def read_variable(self, var, tensor):
        """A Variable was read into `tensor`."""

    def write_variable(self, var, value, stored):
        """A Variable was assigned `value` (it now holds `stored`, a fresh tensor of the
        same value); tapes do not differentiate assignments."""

    def concretize(self, tensor, kind):
        """Python asked for a tensor's value (bool/float/int); tapes need not know."""

    def watches(self, tensor):
        """Whether an op on `tensor` would be recorded here."""
        return False

    def capture_array(self, array):
        """A tensor standing for a NumPy array the traced function captured, or None."""
        return None


class GradientTape(Recorder):
    """Records operations for automatic differentiation (tf.GradientTape).

    >>> import tapejit as tj
    >>> x = tj.constant(3.0)
    >>> with tj.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = x * x
    >>> float(tape.gradient(y, x))
    6.0
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self._persistent = persistent
        self._watch_accessed_variables = watch_accessed_variables
        self._reset_state()

    def _reset_state(self):
        self._entries = []
        # id -> tensor for every tensor watched or produced by a recorded op.
        # Holding the tensors keeps their ids unique for the tape's lifetime.
        self._on_tape = {}
        self._roots = set()   # ids of watched tensors and watched Variable reads
        self._variables = {}  # id(var) -> var, in the order first watched
        self._reads = {}      # id(var) -> value tensors read from it while watched
        self._consumed = False

    # ------------------------------------------------------------ context
    def __enter__(self):
        STATE.recorders.append(self)
        return self

    def __exit__(self, *exc):
        recorders = STATE.recorders
        if self in recorders:
            recorders.remove(self)
        return False

    @contextlib.contextmanager
    def stop_recording(self):
        """Ops inside this block are not recorded on this tape."""
        recorders = STATE.recorders
        if self not in recorders:
            raise ValueError("tj.GradientTape.stop_recording: the tape is not recording "
                             "(use it inside the tape's `with` block)")
        position = recorders.index(self)
        recorders.remove(self)
        try:
            yield
        finally:
            recorders.insert(min(position, len(recorders)), self)

    def reset(self):
        """Forget everything recorded and watched, as if the tape were new."""
        self._reset_state()

    # -------------------------------------------------------------- watch
    def watch(self, tensor):
        """Ensure `tensor` (a Tensor, Variable, or nested structure of them) is traced."""
        leaves, _ = nest.flatten(tensor)
        for t in leaves:
            if type(t) is Variable:
                self._watch_variable(t, t._tensor)
            elif isinstance(t, Tensor):
                if t._value.dtype.kind != "f":
                    warnings.warn(f"tj.GradientTape.watch: the watched tensor must be floating "
                                  f"(tj.float32 or tj.float64), got tj.{t.dtype.name}; its gradient "
                                  "will be None", stacklevel=2)
                    continue
                self._on_tape[id(t)] = t
                self._roots.add(id(t))
            else:
                raise ValueError(f"tj.GradientTape.watch: expected a Tensor or Variable, got "
                                 f"{type_name(t)}; convert it with tj.constant first")

    def _watch_variable(self, var, tensor):
        if tensor._value.dtype.kind != "f":
            warnings.warn(f"tj.GradientTape.watch: Variable '{var.name}' has dtype {var.dtype.name}; "
                          "only floating Variables have gradients", stacklevel=3)
            return
        self._variables.setdefault(id(var), var)
        reads = self._reads.setdefault(id(var), [])
        if id(tensor) not in self._on_tape:
            self._on_tape[id(tensor)] = tensor
            self._roots.add(id(tensor))
            reads.append(tensor)

    def watched_variables(self):
        """The watched Variables in order of construction (as TensorFlow)."""
        return tuple(sorted(self._variables.values(), key=lambda var: var._uid))

    # --------------------------------------------------------- recording
    def record(self, prim, inputs, params, out):
        on_tape = self._on_tape
        for x in inputs:
            if id(x) in on_tape:
                break
        else:
            return
        if prim.vjp is None or out._value.dtype.kind != "f":
            return  # no gradient flows through this op, so nothing after it connects
        self._entries.append((prim, inputs, params, out))
        on_tape[id(out)] = out

    def record_custom(self, rule, inputs, outs):
        on_tape = self._on_tape
        if not any(id(x) in on_tape for x in inputs):
            return
        self._entries.append((rule, inputs, None, outs))
        for o in outs:
            if o._value.dtype.kind == "f":
                on_tape[id(o)] = o

    def read_variable(self, var, tensor):
        # Non-float Variables are skipped silently: only an explicit watch() warns (as TF).
        if self._watch_accessed_variables and var.trainable and tensor._value.dtype.kind == "f":
            self._watch_variable(var, tensor)

    def watches(self, tensor):
        return id(tensor) in self._on_tape

    # ---------------------------------------------------------- gradients
    def gradient(self, target, sources, output_gradients=None,
                 unconnected_gradients=UnconnectedGradients.NONE):
        """d(sum of targets)/d(sources), with sources' nested structure.

        Non-scalar targets are summed (each weighted by `output_gradients` when given).
        """
        self._check_usable("gradient")
        unconnected = UnconnectedGradients(unconnected_gradients)
        flat_targets, target_def = nest.flatten(target)
        flat_sources, source_def = nest.flatten(sources)
        if output_gradients is None:
            flat_seeds = [None] * len(flat_targets)
        else:
            flat_seeds, seed_def = nest.flatten(output_gradients)
            if len(flat_seeds) != len(flat_targets):
                raise ValueError(f"tj.GradientTape.gradient: output_gradients has {len(flat_seeds)} entries "
                                 f"but target has {len(flat_targets)}")
        with self._paused():
            grads = self._backward(flat_targets, flat_seeds, flat_sources, unconnected)
        if not self._persistent:
            self._release()
        return nest.unflatten(source_def, grads)

    def jacobian(self, target, sources, unconnected_gradients=UnconnectedGradients.NONE,
                 parallel_iterations=None, experimental_use_pfor=True):
        """Full Jacobian: result[i] has shape target.shape + source_i.shape."""
        self._check_usable("jacobian")
        unconnected = UnconnectedGradients(unconnected_gradients)
        target = _as_target(target)
        flat_sources, source_def = nest.flatten(sources)
        n = target._value.size
        with self._paused():
            rows = [self._backward([target], [_one_hot(target, i)], flat_sources, UnconnectedGradients.NONE)
                    for i in range(n)]
            result = [_stack_rows([row[k] for row in rows], target.shape, s, unconnected)
                      for k, s in enumerate(flat_sources)]
        if not self._persistent:
            self._release()
        return nest.unflatten(source_def, result)

    def batch_jacobian(self, target, source, unconnected_gradients=UnconnectedGradients.NONE,
                       parallel_iterations=None, experimental_use_pfor=True):
        """Per-example Jacobian: result[b] = d target[b] / d source[b] (no cross-batch terms)."""
        self._check_usable("batch_jacobian")
        unconnected = UnconnectedGradients(unconnected_gradients)
        target = _as_target(target)
        tshape = target._value.shape
        sshape = tuple(source.shape)
        if not tshape or not sshape or tshape[0] != sshape[0]:
            raise ShapeError(f"tj.GradientTape.batch_jacobian: target has {describe(target)} and source has "
                             f"{describe(source)}; both need the same first (batch) dimension")
        batch, inner = tshape[0], int(np.prod(tshape[1:]))
        with self._paused():
            columns = []
            for j in range(inner):
                seed = np.zeros((batch, inner), target._value.dtype)
                seed[:, j] = 1
                (g,) = self._backward([target], [core.wrap(seed.reshape(tshape))], [source],
                                      UnconnectedGradients.NONE)
                columns.append(g)
            if all(g is None for g in columns):
                result = None if unconnected is UnconnectedGradients.NONE else core.wrap(
                    np.zeros(tshape + sshape[1:], target._value.dtype))
            else:
                zero = core.wrap(np.zeros(sshape, target._value.dtype))
                stacked = stack([zero if g is None else g for g in columns], axis=1)
                result = reshape(stacked, tshape + sshape[1:])
        if not self._persistent:
            self._release()
        return result

    # ----------------------------------------------------------- internals
    def _check_usable(self, what):
        if self._consumed:
            raise RuntimeError(f"tj.GradientTape.{what}: a non-persistent GradientTape can only be used to "
                               "compute one set of gradients (or jacobians); use "
                               "GradientTape(persistent=True) to call it more than once")

    @contextlib.contextmanager
    def _paused(self):
        """A non-persistent tape does not record its own backward pass; outer tapes
        do. A persistent tape inside its context records it too (as TensorFlow),
        so it can differentiate its own gradients."""
        recorders = STATE.recorders
        position = recorders.index(self) if self in recorders and not self._persistent else -1
        if position >= 0:
            recorders.remove(self)
        try:
            yield
        finally:
            if position >= 0:
                recorders.insert(min(position, len(recorders)), self)

    def _release(self):
        self._entries = []
        self._on_tape = {}
        self._reads = {}
        self._consumed = True

    def _source_ids(self, source):
        if type(source) is Variable:
            return [id(t) for t in self._reads.get(id(source), ())]
        if isinstance(source, Tensor):
            # Only watched tensors and recorded outputs have gradients: an unwatched
            # input of a recorded op gets None (as TensorFlow's tape).
            return [id(source)] if id(source) in self._on_tape else []
        raise TypeError(f"tj.GradientTape.gradient: sources must be Tensors or Variables, got "
                        f"{type_name(source)}")

    def _backward(self, targets, seeds, sources, unconnected):
        source_ids = [self._source_ids(s) for s in sources]
        wanted = {i for ids in source_ids for i in ids}
        if self._roots <= wanted:
            # Every root is a source, so every entry is reachable (an op is recorded
            # only when an input is on the tape): no sweep needed (the common case).
            live = self._on_tape
            relevant = self._entries
        else:
            live, relevant = _sweep(self._entries, wanted)

        cts = {}
        for k, (t, seed) in enumerate(zip(targets, seeds, strict=True)):
            t = _as_target(t)
            if id(t) not in live:
                continue
            ct = _seed(t, seed, k)
            prev = cts.get(id(t))
            cts[id(t)] = ct if prev is None else prev + ct

        cts_get = cts.get
        for prim, inputs, params, out in reversed(relevant):
            if params is None:  # a custom_gradient entry: one call gives every input's gradient
                input_cts = prim.backward(cts, inputs, out)
                for x, g in zip(inputs, input_cts, strict=True):
                    if g is not None and id(x) in live:
                        _accumulate(cts, x, g)
                continue
            key = id(out)
            ct = cts_get(key)
            if ct is None:
                continue
            if key not in wanted:
                del cts[key]  # frees each cotangent as soon as it is used
            for rule, x in zip(prim.vjp, inputs):  # one rule per input (PerInput: any number)
                if rule is None:
                    continue
                key = id(x)
                if key not in live:
                    continue
                g = rule(ct, *inputs, out, **params) if params else rule(ct, *inputs, out)
                if g is None:
                    continue
                shape = x._value.shape
                if g._value.shape != shape:
                    g = unbroadcast(g, shape)
                prev = cts_get(key)
                cts[key] = g if prev is None else prev + g

        grads = []
        for source, ids in zip(sources, source_ids, strict=True):
            parts = [cts[i] for i in ids if i in cts]
            if parts:
                g = parts[0]
                for p in parts[1:]:
                    g = g + p
            elif unconnected is UnconnectedGradients.ZERO:
                g = core.wrap(np.zeros(source.shape, source.dtype._np))
            else:
                g = None
            grads.append(g)
        return grads


def _sweep(entries, wanted):
    """(ids reachable from `wanted`, the entries on those paths), in tape order."""
    live = set(wanted)
    relevant = []
    for entry in entries:
        for x in entry[1]:
            if id(x) in live:
                relevant.append(entry)
                outs = entry[3]
                if entry[2] is None:
                    live.update(id(o) for o in outs)
                else:
                    live.add(id(outs))
                break
    return live, relevant


def _accumulate(cts, x, g):
    shape = x._value.shape
    if g._value.shape != shape:
        g = unbroadcast(g, shape)
    prev = cts.get(id(x))
    cts[id(x)] = g if prev is None else prev + g


def _as_target(t):
    if type(t) is Variable:
        return t._tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"tj.GradientTape: targets must be Tensors, got {type_name(t)}")
    return t


def _seed(target, seed, k):
    if seed is None:
        return core.wrap(np.ones(target._value.shape, target._value.dtype))
    seed = core.convert_like(seed, target._value.dtype, "GradientTape.gradient")
    if seed._value.shape != target._value.shape:
        raise ShapeError(f"tj.GradientTape.gradient: output_gradients[{k}] has {describe(seed)} but target "
                         f"{k} has {describe(target)}; they must have the same shape (tapejit does not "
                         "broadcast output_gradients, unlike TensorFlow)")
    if seed._value.dtype != target._value.dtype:
        raise TypeError(f"tj.GradientTape.gradient: output_gradients[{k}] has {describe(seed)} but target "
                        f"{k} has {describe(target)}")
    return seed


def _one_hot(target, i):
    seed = np.zeros(target._value.size, target._value.dtype)
    seed[i] = 1
    return core.wrap(seed.reshape(target._value.shape))


def _stack_rows(rows, target_shape, source, unconnected):
    source_shape = tuple(source.shape)
    dtype = source.dtype._np
    if all(r is None for r in rows):
        if unconnected is UnconnectedGradients.NONE:
            return None
        return core.wrap(np.zeros(tuple(target_shape) + source_shape, dtype))
    zero = core.wrap(np.zeros(source_shape, dtype))
    return reshape(stack([zero if r is None else r for r in rows]), tuple(target_shape) + source_shape)


def unbroadcast(g, shape):
    """Sum a cotangent down to an input's shape: the one place broadcasting is undone."""
    gshape = g._value.shape
    lead = len(gshape) - len(shape)
    # A size-1 input axis broadcast to size 0 is summed below (to zeros), not broadcast.
    if lead < 0 or any(d > gd != 0 for d, gd in zip(shape, gshape[lead:])):
        return broadcast_to(g, shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1)
    if axes:
        g = reduce_sum(g, axes)
    return reshape(g, shape)


# ------------------------------------------------- stop_gradient, identity
stop_gradient_p = register(Primitive("stop_gradient", lambda x: x, lambda x: ShapedArray(x.shape, x.dtype)))
identity_p = register(Primitive("identity", lambda x: x, lambda x: ShapedArray(x.shape, x.dtype),
                                (lambda ct, x, out: ct,)))


def stop_gradient(input, name=None):
    """The same values, with no gradient flowing back through them."""
    return core.apply(stop_gradient_p, (core.convert(input, op="stop_gradient"),))


def identity(input, name=None):
    """A new tensor with the same values (a distinct tape node)."""
    return core.apply(identity_p, (core.convert(input, op="identity"),))


PUBLIC["stop_gradient"] = stop_gradient
PUBLIC["identity"] = identity


# ---------------------------------------------------------- custom_gradient
class _VariableReads(Recorder):
    """Collects the Variables read while a custom_gradient function runs."""

    def __init__(self):
        self.reads = {}

    def record(self, prim, inputs, params, out):
        """Only reads matter here; the tapes record the body's ops themselves."""

    def record_custom(self, rule, inputs, outs):
        """Only reads matter here."""

    def read_variable(self, var, tensor):
        self.reads.setdefault(id(var), (var, tensor))


class CustomGradientRule:
    """The tape entry of one custom_gradient call: grad_fn gives every input's gradient at once."""

    __slots__ = ("grad_fn", "num_args", "variables", "name")

    def __init__(self, grad_fn, num_args, variables, name):
        self.grad_fn = grad_fn
        self.num_args = num_args
        self.variables = variables
        self.name = name

    def backward(self, cts, inputs, outs):
        if not any(id(o) in cts for o in outs):
            return [None] * len(inputs)
        # Outputs with no cotangent get zeros (as TF); `is None`, since a tensor's truth is elementwise.
        dys = [ct if (ct := cts.get(id(o))) is not None else core.wrap(np.zeros(o._value.shape, o._value.dtype))
               for o in outs]
        if self.variables:
            input_grads, variable_grads = self.grad_fn(*dys, variables=list(self.variables))
        else:
            input_grads, variable_grads = self.grad_fn(*dys), []
        input_grads = list(input_grads) if isinstance(input_grads, (list, tuple)) else [input_grads]
        if len(input_grads) != self.num_args:
            raise ValueError(f"tj.custom_gradient: the gradient function of {self.name} returned "
                             f"{len(input_grads)} gradients for {self.num_args} inputs")
        grads = input_grads + list(variable_grads)
        return [None if g is None else core.convert(g) for g in grads]


def custom_gradient(f=None):
    """Decorator: f(*x) returns (y, grad_fn); grad_fn(*dy) returns the gradients of x
    (and, when f reads Variables, grad_fn(*dy, variables=...) returns (dx, dvars))."""
    if f is None:
        return custom_gradient

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        inputs = tuple(core.convert(a, op="custom_gradient") for a in args)
        collector = _VariableReads()
        saved = STATE.recorders
        # Tapes record the body's ops (as TF's eager custom_gradient): the outputs'
        # gradient comes from grad_fn alone, but intermediates the body made and
        # grad_fn uses stay differentiable for higher orders.
        STATE.recorders = saved + [collector]
        try:
            result, grad_fn = f(*inputs, **kwargs)
            flat, treedef = nest.flatten(result)
            STATE.recorders = [r for r in saved if r.records_all_ops]
            # Fresh output tensors (tape identity must not alias an input returned
            # as-is), made by an op that compiler traces see.
            outs = tuple(core.apply(identity_p, (core.convert(o),)) for o in flat)
        finally:
            STATE.recorders = saved
        reads = list(collector.reads.values())
        params = inspect.signature(grad_fn).parameters
        if reads and "variables" not in params and not any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            raise TypeError(f"tj.custom_gradient: {f.__name__} reads Variables, so its gradient function "
                            "must accept a `variables` keyword argument")
        variables = [var for var, _ in reads]
        for var, tensor in reads:  # tapes watch Variables read inside the body
            for recorder in STATE.recorders:
                recorder.read_variable(var, tensor)
        rule = CustomGradientRule(grad_fn, len(inputs), variables, f.__name__)
        all_inputs = inputs + tuple(tensor for _, tensor in reads)
        for recorder in STATE.recorders:
            recorder.record_custom(rule, all_inputs, outs)
        return nest.unflatten(treedef, outs)

    return wrapper
