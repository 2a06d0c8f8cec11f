"""Malformed calls, eagerly and compiled on both backends (SPEC.md "Errors", docs/errors.md).

One table of bad calls: wrong shapes, dtypes and ranks, non-tensor objects,
unhashable (static) arguments, a new pytree structure on a second call, integer
tensors in gradients, watching non-tensors, and failures after a Variable
assignment. Each raises the documented class (tj.ShapeError and tj.DTypeError
refine ValueError and TypeError; builtins where the user's own code fails) with a
message naming the op or parameter, and the shapes and dtypes at fault. Watching
an integer tensor is documented as a warning (as TensorFlow), not an error.

Afterwards a compiled function has cached nothing (f.cache_info() unchanged, and a
good call after the bad one is served by the program cached before it), and every
Variable holds what it held before the bad call.
"""
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import tapejit as tj
from tapejit.tracer.errors import DTypeConversionError

BACKENDS = ("numpy", "numba")
MODES = ("eager",) + BACKENDS

# Module-level, as a model's parameters: compiled functions read them at call time.
W = tj.Variable(np.ones((2, 1), np.float32), name="w")
TABLE = tj.Variable(np.arange(3, dtype=np.float32), name="table")
VARIABLES = (W, TABLE)


def floats(*shape, dtype=np.float32):
    return tj.constant(np.ones(shape, dtype))


def ints(values):
    return tj.constant(np.array(values, np.int32))


# ------------------------------------------------- the functions called badly
def train_step(x, y):
    with tj.GradientTape() as tape:
        loss = tj.reduce_mean(tj.square(tj.matmul(x, W) - y))
    W.assign_sub(0.1 * tape.gradient(loss, W))
    return loss


def assign_then_gather(delta, indices):
    TABLE.assign_add(delta)
    return tj.gather(TABLE, indices)


def scaled(x, scale):
    return x * scale


def product(params):
    return params["x"] * params["b"]


def watch_and_double(x, watched):
    with tj.GradientTape() as tape:
        tape.watch(watched)
        y = x * 2.0
    return y


def gradient_seeded(x, seed):
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
    return tape.gradient(y, x, output_gradients=seed)


def gradient_of_double(x, source):
    with tj.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
    return tape.gradient(y, source)


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class BadCall:
    fn: Callable
    args: tuple
    error: type                # the exception class raised (or the Warning class warned)
    match: str                 # re.search in the message and its notes
    warmup: tuple | None = None  # a good call made first: the bad one is a compiled function's second
    modes: tuple = MODES
    options: dict = field(default_factory=dict)  # tj.compile options


BAD_CALLS = {
    # ------------------------------------------------------------ shapes
    "broadcast": BadCall(tj.add, (floats(2, 3), floats(4)), tj.ShapeError,
                         r"tj\.add: cannot broadcast x of shape \(2, 3\) and dtype float32 and y of shape \(4,\)"),
    "matmul_inner_dimensions": BadCall(tj.matmul, (floats(2, 4), floats(3, 5)), tj.ShapeError,
                                       r"tj\.matmul: argument 1 has shape \(3, 5\) but argument 0 has shape \(2, 4\); "
                                       r"inner dimensions 4 and 3 must match"),
    "reshape_size": BadCall(lambda x: tj.reshape(x, (4,)), (floats(2, 3),), tj.ShapeError,
                            r"tj\.reshape: cannot reshape tensor of shape \(2, 3\) .*to shape \(4,\)"),
    "assign_shape": BadCall(lambda value: W.assign(value), (floats(3),), tj.ShapeError,
                            r"tj\.Variable\.assign: Variable 'w' has shape \(2, 1\) but the new value has "
                            r"shape \(3,\)"),
    # A delta that broadcasts to a bigger shape, and one that does not broadcast at all.
    "assign_sub_broadcast_shape": BadCall(lambda delta: W.assign_sub(delta), (floats(3),), tj.ShapeError,
                                          r"tj\.Variable\.assign_sub: delta has shape \(3,\) and dtype float32 but "
                                          r"Variable 'w' has shape \(2, 1\)"),
    "assign_sub_shape": BadCall(lambda delta: W.assign_sub(delta), (floats(3, 1),), tj.ShapeError,
                                r"tj\.Variable\.assign_sub: delta has shape \(3, 1\) and dtype float32 but "
                                r"Variable 'w' has shape \(2, 1\)"),
    "new_shape_on_second_call": BadCall(train_step, (floats(4, 3), floats(4, 1)), tj.ShapeError,
                                        r"tj\.matmul: argument 1 has shape \(2, 1\) but argument 0 has shape \(4, 3\)",
                                        warmup=(floats(4, 2), floats(4, 1))),
    # ------------------------------------------------------------ dtypes
    "mixed_dtypes": BadCall(tj.add, (floats(2, 3), floats(2, 3, dtype=np.float64)), tj.DTypeError,
                            r"tj\.add: y has shape \(2, 3\) and dtype float64 but x has shape \(2, 3\) and "
                            r"dtype float32"),
    "unsupported_dtype": BadCall(tj.exp, (ints([1, 2]),), tj.DTypeError,
                                 r"tj\.exp: argument 0 has shape \(2,\) and dtype int32, but tj\.exp accepts only "
                                 r"float32, float64"),
    "assign_dtype": BadCall(lambda delta: W.assign_add(delta), (floats(2, 1, dtype=np.float64),), DTypeConversionError,
                            r"tj\.Variable\.assign_add: value has shape \(2, 1\) and dtype float64 but Variable 'w' "
                            r"has shape \(2, 1\) and dtype float32"),
    "new_dtype_on_second_call": BadCall(train_step, (floats(4, 2, dtype=np.float64), floats(4, 1, dtype=np.float64)),
                                        tj.DTypeError, r"tj\.matmul: b has shape \(2, 1\) and dtype float32 but a has "
                                                       r"shape \(4, 2\) and dtype float64",
                                        warmup=(floats(4, 2), floats(4, 1))),
    # ------------------------------------------------------------- ranks
    "axis_out_of_range": BadCall(lambda x: tj.reduce_sum(x, axis=2), (floats(2, 3),), tj.ShapeError,
                                 r"tj\.reduce_sum: axis 2 is out of range for a tensor of rank 2"),
    "matmul_of_a_vector": BadCall(tj.matmul, (floats(3), floats(3, 2)), tj.ShapeError,
                                  r"tj\.matmul: a has shape \(3,\) and dtype float32; matmul needs tensors of "
                                  r"rank >= 2"),
    # ------------------------------------------------- non-tensor objects
    "string_operand": BadCall(tj.exp, ("a",), TypeError, r"tj\.exp: .*str"),
    "object_operand": BadCall(tj.add, (floats(2), object()), TypeError, r"tj\.add: .*object"),
    "none_operand": BadCall(tj.multiply, (floats(2), None), TypeError, r"tj\.multiply: .*None"),
    # ------------------------------------------- compiled-call arguments
    "unhashable_argument": BadCall(scaled, (floats(2), {1.0, 2.0}), TypeError,
                                   r"tj\.compile: scaled: argument 'scale' is an unhashable set",
                                   modes=BACKENDS),  # eagerly a set is just a Python value
    "unhashable_static_argument": BadCall(scaled, (floats(2), [1.0, 2.0]), TypeError,
                                          r"tj\.compile: static argument 'scale' of scaled is an unhashable list",
                                          modes=BACKENDS, options={"static_argnames": ("scale",)}),
    "new_structure_on_second_call": BadCall(product, ({"x": floats(2)},), KeyError, r"'b'",
                                            warmup=({"x": floats(2), "b": floats(2)},)),
    # ------------------------------------------------------------ tapes
    "integer_output_gradients": BadCall(gradient_seeded, (floats(3), ints([1, 2, 3])), TypeError,
                                        r"tj\.GradientTape\.gradient: output_gradients\[0\] has shape \(3,\) and dtype "
                                        r"int32 but target 0 has shape \(3,\) and dtype float32"),
    "watch_an_integer_tensor": BadCall(watch_and_double, (floats(3), ints([1, 2, 3])), UserWarning,
                                       r"tj\.GradientTape\.watch: the watched tensor must be floating .*got tj\.int32"),
    "watch_a_string": BadCall(watch_and_double, (floats(3), "x"), ValueError,
                              r"tj\.GradientTape\.watch: expected a Tensor or Variable, got str"),
    "watch_a_python_float": BadCall(watch_and_double, (floats(3), 1.0), ValueError,
                                    r"tj\.GradientTape\.watch: expected a Tensor or Variable, got float"),
    "gradient_with_respect_to_a_string": BadCall(gradient_of_double, (floats(3), "x"), TypeError,
                                                 r"tj\.GradientTape\.gradient: sources must be Tensors or Variables, "
                                                 r"got str"),
    # ------------------------------- failures after a Variable assignment
    # Compiled calls only: eager Python has already assigned when the gather fails
    # (as TensorFlow's eager mode); a compiled call applies its writes after its program.
    "failure_after_assignment_at_run_time": BadCall(assign_then_gather, (floats(3), ints([0, 7])), IndexError,
                                                    r"tj\.gather: index 7 is out of range for axis 0 of size 3",
                                                    warmup=(floats(3), ints([0, 1])), modes=BACKENDS),
    "failure_after_assignment_while_tracing": BadCall(assign_then_gather, (floats(3), ints([[0, 7]])), IndexError,
                                                      r"tj\.gather: index 7 is out of range for axis 0 of size 3",
                                                      warmup=(floats(3), ints([0, 1])), modes=BACKENDS),
}


def bad_call_params():
    out = []
    for name, bad in BAD_CALLS.items():
        for mode in bad.modes:
            out.append(pytest.param(name, mode, id=f"{name}-{mode}"))
    return out


def message(exc):
    """What a user sees: the message and the notes added on the way out (the traced line)."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])


@pytest.mark.parametrize("name, mode", bad_call_params())
def test_bad_call(name, mode):
    bad = BAD_CALLS[name]
    f = bad.fn if mode == "eager" else tj.compile(bad.fn, backend=mode, **bad.options)
    if bad.warmup is not None:
        f(*bad.warmup)
    cached = None if mode == "eager" else f.cache_info()
    values = [v.numpy().copy() for v in VARIABLES]

    if issubclass(bad.error, Warning):
        with pytest.warns(bad.error, match=bad.match):
            f(*bad.args)
    else:
        with pytest.raises(bad.error) as info:
            f(*bad.args)
        text, pattern = message(info.value), bad.match
        assert re.search(pattern, text), f"{text!r} does not match {pattern!r}"
    for variable, before in zip(VARIABLES, values, strict=True):
        np.testing.assert_array_equal(variable.numpy(), before, err_msg=f"Variable '{variable.name}' changed")

    # A call that only warns succeeds, and is cached like any other.
    if mode != "eager" and not issubclass(bad.error, Warning):
        assert f.cache_info() == cached, "the failed call changed the cache"
        if bad.warmup is not None:  # the program cached before the bad call serves the good one again
            f(*bad.warmup)
            assert f.cache_info()[:3] == (cached.hits + 1, cached.misses, cached.traces)
