"""@tj.compile: the call path, the trace tree of control-flow paths, the caches."""
import collections
import functools
import inspect
import os
import re
import sys
import threading
import time
import warnings

import numpy as np

from tapejit.compiler import executor
from tapejit.compiler.pipeline import optimize
from tapejit.compiler.trace import Trace, WeakFloat, is_user_file
from tapejit.tracer import core, nest
from tapejit.tracer.core import STATE
from tapejit.tracer.errors import CompileError
from tapejit.tracer.tensor import Tensor, Variable

from . import kernel_cache
from .backends import BACKENDS, KernelOptions
from .config import CONFIG
from .dispatch import build_fast_call, is_input_leaf
from .environment import captured_arrays, captured_refs, changed, snapshot
from .executable import Executable
from .signature import describe_part, flat_key, key_parts, signature, unflatten_call

CacheInfo = collections.namedtuple("CacheInfo", "hits misses traces paths compile_seconds")
_NO_PATH = object()  # no compiled path's guards hold


class Path:
    """One control-flow path of one signature: its program, output structure and
    the generated call used when no tape records."""

    __slots__ = ("executable", "out_def", "trace_seconds", "fast_call")

    def __init__(self, executable, out_def, trace_seconds, input_leaves, name):
        self.executable = executable
        self.out_def = out_def
        self.trace_seconds = trace_seconds
        self.fast_call = build_fast_call(executable.program, executable.run, input_leaves, out_def, name)

    @property
    def program(self):
        return self.executable.program


class SignatureEntry:
    """The trace tree of one signature: its paths (the first is tried first), and
    which to try when a path's guard fails."""

    __slots__ = ("paths", "fallback", "after", "runner_up")

    def __init__(self):
        self.paths = []
        self.fallback = False
        self.after = {}          # (failed path, guard index) -> the paths to try next, best bet first
        self.runner_up = None    # (path, hit number) of the last path that ran after the first failed

    def add(self, path):
        self.paths.insert(0, path)
        self.after = {}

    def remove(self, path):
        if path in self.paths:
            self.paths.remove(path)
        self.after = {}


class Lowered:
    """What f.lower(*args) shows: the IR, the backward IR, the generated source, the guards."""

    def __init__(self, ir, grad_ir, source, guards):
        self.ir = ir
        self.grad_ir = grad_ir
        self.source = source
        self.guards = guards

    def __repr__(self):
        return f"Lowered(\n{self.ir}\n)"


class CompiledFunction:
    """A function compiled per input signature and per control-flow path."""

    def __init__(self, fn, static_argnames=(), donate=None, parallel=None, fastmath=False, cache=True,
                 max_paths=8, max_traces=64, backend="numba"):
        if backend not in BACKENDS:
            raise ValueError(f"tj.compile: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        self.backend = backend
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.static_argnames = tuple([static_argnames] if isinstance(static_argnames, str) else static_argnames)
        self.max_paths = max_paths
        self.max_traces = max_traces
        self.kernel_options = KernelOptions(bool(parallel), bool(fastmath), bool(cache))
        if donate is not None:
            warnings.warn(f"tj.compile: {self.__name__}: donate={donate!r} is accepted, but tapejit does not reuse "
                          "donated buffers yet: the donated arguments stay valid and memory use is unchanged",
                          stacklevel=_user_stacklevel())
        self._signature = inspect.signature(fn)
        self._entries = collections.OrderedDict()
        self._lock = threading.RLock()
        self._hits = self._misses = self._traces = 0
        self._compile_seconds = 0.0
        self._retrace_warned = False
        self._fallback_warned = False
        self._last_key = None
        self._environment = []  # snapshot of captured globals and closure cells, taken when tracing

    # ------------------------------------------------------------ calling
    def _bind(self, args, kwargs):
        """(dynamic positional args, dynamic keyword args, static (name, value) pairs).
        A keyword argument the function also takes by position is passed by position,
        so f(x) and f(x=x) share one signature (and one trace)."""
        if not (self.static_argnames or kwargs):
            return args, kwargs, ()
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:  # as calling the function would raise
            raise TypeError(f"{self.__name__}() {exc}") from None
        static = []
        for name in self.static_argnames:
            if name in bound.arguments:
                value = bound.arguments.pop(name)
                try:
                    hash(value)
                except TypeError:
                    raise TypeError(f"tj.compile: static argument '{name}' of {self.__name__} is an unhashable "
                                    f"{type(value).__name__}") from None
                static.append((name, value))
        return tuple(bound.args), dict(bound.kwargs), tuple(static)

    def _call_args(self, args, kwargs, static):
        if not static:
            return args, kwargs
        bound = self._signature.bind_partial(*args, **kwargs)
        bound.arguments.update(static)
        return bound.args, bound.kwargs

    def __call__(self, *args, **kwargs):
        if self._environment and changed(self._environment):
            self._drop_programs()
        # The hot path: flat positional tensors/floats/Variables, no tape, a cached path.
        # (flat_key inlined for the common all-Tensor call.)
        if not (kwargs or STATE.recorders or CONFIG.eager or self.static_argnames):
            if len(args) == 1 and type(args[0]) is Tensor:
                v = args[0]._value
                key = (v.shape, v.dtype)
            else:
                key = []
                for leaf in args:
                    if type(leaf) is not Tensor:
                        key = flat_key(args)
                        break
                    v = leaf._value
                    key.append(v.shape)
                    key.append(v.dtype)
                else:
                    key = tuple(key)
            entries = self._entries
            entry = entries.get(key) if key is not None else None
            if entry is not None and entry.paths:
                try:
                    result = entry.paths[0].fast_call(args)
                except executor.GuardFailed as failure:
                    return self._other_paths(entry, args, failure)
                self._hits += 1
                if len(entries) > 1:
                    entries.move_to_end(key)
                return result
        return self._call(args, kwargs)

    def _other_paths(self, entry, args, failure):
        """The hot path after the first path's guard failed: the others, best bet first."""
        first = entry.paths[0]
        key = (first, failure.guard.index)
        paths = entry.after.get(key)
        if paths is None:
            paths = entry.after[key] = _next_paths(entry.paths, first, failure)
        result = self._first_path(entry, paths, lambda path: path.fast_call(args))
        if result is _NO_PATH:  # a new path: traced, or (past max_paths) run eagerly
            return self.fn(*args) if entry.fallback else self._call(args, {})
        return result

    def _first_path(self, entry, paths, run):
        """run(path) for the first of `paths` whose guards hold, or _NO_PATH. A path
        that runs after the first one failed, twice in a row, is tried first from then
        on: a run of calls down one branch pays one miss, and a branch that alternates
        keeps its order (half its calls hit first time) instead of missing every time."""
        for path in paths:
            try:
                result = run(path)
            except executor.GuardFailed:
                continue
            self._hits += 1
            if path is not entry.paths[0]:
                if entry.runner_up == (path, self._hits - 1):
                    _promote(entry, path, self._lock)
                else:
                    entry.runner_up = (path, self._hits)
            return result
        return _NO_PATH

    def _drop_programs(self):
        """A captured global or closure value was rebound: every program may have
        baked the old one in, so all are traced again."""
        with self._lock:
            self._entries.clear()
            self._environment = []

    def _call(self, args, kwargs):
        recorders = STATE.recorders
        if CONFIG.eager or (recorders and any(r.records_all_ops for r in recorders)):
            # Eager mode, or called while another function is traced: run the
            # Python, so the outer trace sees (inlines) every op.
            return self.fn(*args, **kwargs)
        args, kwargs, static = self._bind(args, kwargs)
        try:
            key, leaves, treedef = signature(args, kwargs, static)
        except TypeError as exc:
            raise TypeError(self._name_leaf(str(exc), args, kwargs)) from None
        entry = self._entries.get(key)
        if entry is None:
            entry = self._new_entry(key)
        else:
            self._entries.move_to_end(key)
        return self._run(entry, key, leaves, treedef, static)

    def _new_entry(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = SignatureEntry()
                self._entries[key] = entry
                while len(self._entries) > self.max_traces:
                    self._entries.popitem(last=False)
        return entry

    def _run(self, entry, key, leaves, treedef, static):
        if STATE.recorders:
            def run(path):
                return self._execute(path, *_gather(leaves, path.program), leaves)
        else:
            def run(path):
                return path.fast_call(leaves)
        result = self._first_path(entry, list(entry.paths), run)
        if result is not _NO_PATH:
            return result
        if entry.fallback:  # past max_paths: the compiled paths still serve the calls they fit
            return self._eager(leaves, treedef, static)
        return self._trace_and_run(entry, key, leaves, treedef, static)

    def _execute(self, path, inputs, reads, leaves):
        program = path.program
        tensors = inputs + reads
        outputs, writes = path.executable(tensors)
        for (slot, _), value in zip(program.writes, writes, strict=True):
            var = leaves[slot.arg] if slot.arg is not None else slot.variable
            var._tensor = core.wrap(np.asarray(value, var._tensor._value.dtype))
        outs = [o if isinstance(o, Tensor) else core.wrap(o) for o in outputs]
        if path.out_def is nest.LEAF:
            return outs[0]
        return nest.unflatten(path.out_def, outs)

    # ------------------------------------------------------------ tracing
    def _trace_and_run(self, entry, key, leaves, treedef, static):
        with self._lock:
            failed = []  # the guard that failed on each path
            for path in entry.paths:  # another thread may have traced this path meanwhile
                try:
                    with executor.quiet():
                        path.executable.run(*[t._value for t in sum(_gather(leaves, path.program), [])])
                except executor.GuardFailed as failure:
                    failed.append(failure.guard.source or "?")
                    continue
                inputs, reads = _gather(leaves, path.program)
                return self._execute(path, inputs, reads, leaves)
            if len(entry.paths) >= self.max_paths:
                entry.fallback = True
                if not self._fallback_warned:
                    self._fallback_warned = True
                    sources = sorted(set(failed), key=_file_and_line)
                    warnings.warn(f"tj.compile: {self.__name__} took more than max_paths={self.max_paths} "
                                  f"control-flow paths for one signature (the guard{'s' if len(sources) > 1 else ''} "
                                  f"at {', '.join(sources)} {'keep' if len(sources) > 1 else 'keeps'} changing); "
                                  "from now on, calls of this signature that no compiled path fits run eagerly",
                                  stacklevel=_user_stacklevel())
                return self._eager(leaves, treedef, static)
            try:
                path = self._trace(key, leaves, treedef, static)
            except BaseException:
                if not entry.paths:  # a failed first trace leaves no cache entry behind
                    self._entries.pop(key, None)
                raise
            entry.add(path)
            self._misses += 1
        inputs, reads = _gather(leaves, path.program)
        compiles = kernel_cache.STATS["kernel_compiles"]
        start = time.perf_counter()
        try:
            result = self._execute(path, inputs, reads, leaves)
        except CompileError:
            # A path whose kernels do not compile must not stay cached (nor an empty entry).
            with self._lock:
                entry.remove(path)
                if not entry.paths:
                    self._entries.pop(key, None)
            raise
        if kernel_cache.STATS["kernel_compiles"] != compiles:  # Numba compiled on this first run
            self._compile_seconds += time.perf_counter() - start
        return result

    def _trace(self, key, leaves, treedef, static):
        start = time.perf_counter()
        self._warn_retrace(key)
        arg_variables = {id(leaf): i for i, leaf in enumerate(leaves) if type(leaf) is Variable}
        refs = captured_refs(self.fn)
        environment = snapshot(refs)
        trace = Trace(self.__name__, arg_variables, captured_arrays(refs))
        traced = [_trace_leaf(trace, leaf) for leaf in leaves]
        args, kwargs = unflatten_call(treedef, traced)
        args, kwargs = self._call_args(args, kwargs, static)
        saved = STATE.recorders
        STATE.recorders = [trace]
        try:
            result = self.fn(*args, **kwargs)
            flat, out_def = nest.flatten(result)
            outs = [_output(o, self.__name__) for o in flat]
            program = trace.program(outs)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"(raised while tj.compile traced {self.__name__}, at "
                             f"{_user_line(exc.__traceback__) or '?'})")
            raise
        finally:
            STATE.recorders = saved
            trace.rollback()
        # A value the function itself changed while tracing (a call counter) is its
        # side effect, run at trace time as in tf.function: checking it would retrace every call.
        self._environment = [entry for entry in environment if not changed([entry])]
        program = optimize(program, CONFIG.check_ir)
        executable = Executable(program, self.backend, self.kernel_options)
        input_leaves = [(i, type(leaf) is float) for i, leaf in enumerate(leaves) if is_input_leaf(leaf)]
        path = Path(executable, out_def, 0.0, input_leaves, self.__name__)
        path.trace_seconds = elapsed = time.perf_counter() - start
        self._traces += 1
        self._compile_seconds += elapsed
        self._last_key = key
        return path

    def _warn_retrace(self, key):
        previous = self._last_key
        if previous is None or self._retrace_warned or self._traces < 5 or previous == key:
            return
        self._retrace_warned = True
        warnings.warn(f"tj.compile: {self.__name__} has been traced {self._traces + 1} times; this time because "
                      f"{self._key_difference(previous, key)}. Pass values that change as tensors or Python "
                      "floats, or name static arguments in static_argnames, to avoid retracing",
                      stacklevel=_user_stacklevel())

    def _eager(self, leaves, treedef, static):
        args, kwargs = unflatten_call(treedef, leaves)
        args, kwargs = self._call_args(args, kwargs, static)
        return self.fn(*args, **kwargs)

    # ------------------------------------------------------- introspection
    def cache_info(self):
        paths = sum(len(e.paths) for e in self._entries.values())
        return CacheInfo(self._hits, self._misses, self._traces, paths, self._compile_seconds)

    def _path_for(self, args, kwargs):
        """The path these arguments take, tracing it (without running) if new."""
        args, kwargs, static = self._bind(args, kwargs)
        key, leaves, treedef = signature(args, kwargs, static)
        entry = self._new_entry(key)
        for path in entry.paths:
            inputs, reads = _gather(leaves, path.program)
            try:
                with executor.quiet():
                    path.executable.run(*[t._value for t in inputs + reads])
                return path, inputs + reads
            except executor.GuardFailed:
                continue
        path = self._trace(key, leaves, treedef, static)
        entry.add(path)
        inputs, reads = _gather(leaves, path.program)
        return path, inputs + reads

    def lower(self, *args, **kwargs):
        """The IR, backward IR, generated source and guards for these arguments."""
        path, tensors = self._path_for(args, kwargs)
        program = path.program
        has_grad = any(v.aval.dtype.kind == "f" for v in list(program.inputs) + [v for _, v in program.reads]) \
            and any(getattr(a, "aval", None) is not None and a.aval.dtype.kind == "f" for a in program.outputs)
        grad_ir = ""
        if has_grad:
            grad_ir = str(path.executable.derivative([t._value for t in tensors]).backward)
        return Lowered(str(program), grad_ir, _sources(path.executable.run),
                       [g.describe() for g in program.guards])

    def explain(self, *args, **kwargs):
        """In words: would this call reuse a compiled path, or retrace, and why."""
        args, kwargs, static = self._bind(args, kwargs)
        key, leaves, treedef = signature(args, kwargs, static)
        entry = self._entries.get(key)
        if entry is None:
            if not self._entries:
                return f"{self.__name__} has not been traced yet: this call would trace it."
            closest = min(self._entries, key=lambda k: _distance(k, key))
            return f"{self.__name__} would retrace: {self._key_difference(closest, key)}."
        failures = []
        for n, path in enumerate(entry.paths):
            inputs, reads = _gather(leaves, path.program)
            try:
                with executor.quiet():
                    path.executable.run(*[t._value for t in inputs + reads])
                return (f"{self.__name__} would reuse compiled path {n} of {len(entry.paths)} for this signature "
                        f"(no retrace).")
            except executor.GuardFailed as failure:
                if failure.value is None:  # a Numba region reports which guard failed, not the value
                    failure = _reference_failure(path.program, inputs + reads) or failure
                failures.append(f"path {n}: {failure.guard.describe()} saw {_scalar_text(failure.value)}")
        if entry.fallback:
            return (f"{self.__name__} would run eagerly: this signature took more than max_paths={self.max_paths} "
                    f"control-flow paths, and no compiled path's guards hold ({'; '.join(failures)}).")
        return (f"{self.__name__} would trace a new control-flow path: no compiled path's guards hold "
                f"({'; '.join(failures)}).")

    def _key_difference(self, old, new):
        old_def, old_parts, old_static = key_parts(old)
        new_def, new_parts, new_static = key_parts(new)
        names = self._leaf_names(new_def)
        if old_def != new_def:
            return f"the arguments' structure changed from {old_def} to {new_def}"
        for name, a, b in zip(names, old_parts, new_parts, strict=True):
            if a != b:
                return f"argument {name} changed from {describe_part(a)} to {describe_part(b)}"
        for (name, a), (_, b) in zip(old_static, new_static, strict=True):
            if a != b:
                return f"static argument '{name}' changed from {a!r} to {b!r}"
        return "nothing in the signature changed"

    def _name_leaf(self, message, args, kwargs):
        """A signature error's 'argument leaf N', named after the function's parameter."""
        match = re.search(r"argument leaf (\d+)", message)
        if match is None:
            return message
        names = self._leaf_names(nest.flatten((args, kwargs))[1])
        i = int(match.group(1))
        return message.replace(match.group(0), f"{self.__name__}: argument {names[i] if i < len(names) else i}")

    def _leaf_names(self, treedef):
        params = list(self._signature.parameters)
        if not isinstance(treedef, nest.TreeDef):  # flat positional call: the key holds the arity
            return [f"'{params[i]}'" if i < len(params) else f"#{i}" for i in range(treedef)]
        (args_def, kwargs_def) = treedef.children
        names = []
        for i, child in enumerate(args_def.children):
            base = params[i] if i < len(params) else f"#{i}"
            names += [f"'{base}'" + ("" if child.kind == "leaf" else f"[{j}]") for j in range(child.num_leaves)]
        for key, child in zip(kwargs_def.meta or (), kwargs_def.children):
            names += [f"'{key}'" + ("" if child.kind == "leaf" else f"[{j}]") for j in range(child.num_leaves)]
        return names

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return functools.partial(self, instance)

    def __repr__(self):
        return f"<tj.compile {self.__name__}>"


def _file_and_line(source):
    """'a.py:12' -> ('a.py', 12), so guards sort in line order."""
    file, _, line = source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (source, 0)


def _user_stacklevel():
    """The warnings.warn stacklevel of the first frame outside tapejit (the user's call),
    counted from the function that calls warn."""
    frame, level = sys._getframe(1), 1
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _user_line(tb):
    """file:line of the user's call into tapejit that raised (the innermost user frame
    that called tapejit), else of the innermost user frame, in a traceback."""
    frames = []
    while tb is not None:
        frames.append((is_user_file(tb.tb_frame.f_code.co_filename), tb))
        tb = tb.tb_next
    inner_first = frames[::-1]
    pick = next((tb for (user, tb), (callee_user, _) in zip(inner_first[1:], inner_first) if user and not callee_user),
                None)
    if pick is None:
        pick = next((tb for user, tb in reversed(frames) if user), None)
    if pick is None:
        return None
    return f"{os.path.basename(pick.tb_frame.f_code.co_filename)}:{pick.tb_lineno}"


def _distance(a, b):
    a, b = key_parts(a), key_parts(b)
    if a[0] != b[0]:
        return 10 ** 6
    return sum(x != y for x, y in zip(a[1], b[1], strict=True))


def _scalar_text(value):
    value = np.asarray(value)
    return repr(value.item()) if value.size == 1 else f"an array of shape {value.shape}"


def _trace_leaf(trace, leaf):
    cls = type(leaf)
    if cls is Tensor or cls is np.ndarray or isinstance(leaf, (np.generic, Tensor)):
        t = core.wrap(np.asarray(leaf._value if isinstance(leaf, Tensor) else leaf))
        trace.input(t)
        return t
    if cls is float:
        t = core.wrap(np.float64(leaf))
        trace.input(t)
        return WeakFloat(t)
    return leaf


def _sources(run):
    """The driver's source, then each Numba kernel module it calls."""
    return "\n\n".join([run.source] + [f"# ---- kernel module {k.name}\n{k.source}" for k, _ in run.kernels])


def _promote(entry, path, lock):
    """Move `path` to the front: it is tried first from now on."""
    if entry.paths[0] is not path:
        with lock:
            if path in entry.paths:
                entry.paths.remove(path)
                entry.paths.insert(0, path)


def _next_paths(paths, failed_path, failure):
    """The paths to try after `failed_path` failed `failure`, best bet first: paths
    traced with the failed bool guard's other outcome (the paths of a signature
    share their program up to their first differing guard)."""
    guard = failure.guard
    rest = [p for p in paths if p is not failed_path]
    if guard.kind != "bool":
        return rest
    outcome = not guard.expect

    def took_other_branch(path):
        guards = path.program.guards
        return not (guard.index < len(guards) and guards[guard.index].kind == "bool"
                    and guards[guard.index].expect == outcome)
    return sorted(rest, key=took_other_branch)


def _reference_failure(program, tensors):
    """The guard failure of the NumPy executor on these inputs (it carries the value)."""
    try:
        with executor.quiet():
            executor.build(program)(*[t._value for t in tensors])
    except executor.GuardFailed as failure:
        return failure
    return None


def _gather(leaves, program):
    """The call's program inputs as Tensors: tensor-like and float leaves in order,
    then the Variables the program reads (read now, so tapes can watch them)."""
    inputs = []
    for leaf in leaves:
        cls = type(leaf)
        if cls is Tensor:
            inputs.append(leaf)
        elif cls is np.ndarray or isinstance(leaf, np.generic):
            inputs.append(core.wrap(np.array(leaf)))  # a copy: results must not alias the caller's array
        elif cls is float:
            inputs.append(core.wrap(np.float64(leaf)))
        elif isinstance(leaf, Tensor):
            inputs.append(leaf)
    reads = []
    if program is not None:
        for slot, _ in program.reads:
            if slot.array is not None:
                reads.append(core.wrap(slot.value(leaves)))
            else:
                var = leaves[slot.arg] if slot.arg is not None else slot.variable
                reads.append(var._read())
    return inputs, reads


def _output(value, name):
    if isinstance(value, (Tensor, Variable)):
        return core.convert(value)
    if value is None:
        raise TypeError(f"tj.compile: {name} returned None inside its result; return tensors, numbers, or "
                        "nested lists/tuples/dicts of them")
    return core.convert(value, op="compile")


def compile(fn=None, **options):
    """Compile `fn` per input signature and per control-flow path.

    >>> import tapejit as tj
    >>> @tj.compile
    ... def f(x):
    ...     return tj.reduce_sum(x * x)
    >>> float(f(tj.constant([1.0, 2.0])))
    5.0
    """
    if fn is None:
        return lambda f: CompiledFunction(f, **options)
    return CompiledFunction(fn, **options)


def tj_print(*inputs, sep=" "):
    """Print at run time inside compiled functions (and immediately in eager code)."""
    recorders = STATE.recorders
    tensors = [core.convert(x) if isinstance(x, (Tensor, Variable, np.ndarray)) else x for x in inputs]
    traces = [r for r in recorders if r.records_all_ops]
    if not traces:
        print(sep.join(str(np.asarray(t._value)) if isinstance(t, Tensor) else str(t) for t in tensors))
        return
    template = sep.join("{}" if isinstance(t, Tensor) else str(t).replace("{", "{{").replace("}", "}}")
                        for t in tensors)
    for trace in traces:
        trace.print([t for t in tensors if isinstance(t, Tensor)], template)


