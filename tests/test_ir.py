"""The IR: golden text of traced programs and their backward programs (the
grammar of docs/ir.md, frozen), and the verifier on hand-built broken programs."""
import inspect
import pathlib
import re
import textwrap

import numpy as np
import pytest

import tapejit as tj
from tapejit.compiler.ir import Eqn, Guard, Literal, Print, Program, Var, VariableSlot, pretty, verify
from tapejit.tracer.core import REGISTRY, Primitive, ShapedArray

THIS_FILE = pathlib.Path(__file__).name


def line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    hits = [start + k for k, line in enumerate(lines) if text in line]
    assert len(hits) == 1, (text, hits)
    return f"{THIS_FILE}:{hits[0]}"


def golden(text, fn):
    """The expected text: each @snippet@ is the file:line of the line of `fn` holding snippet."""
    return re.sub(r"@([^@]+)@", lambda m: line_of(fn, m.group(1)), textwrap.dedent(text).strip("\n"))


# ---------------------------------------------------------------- golden
def g_reduce(x, y):
    z = x * y + 1.0
    return tj.reduce_sum(z, axis=1, keepdims=True)


def test_golden_elementwise_and_reduction_with_params():
    lo = tj.compile(g_reduce).lower(tj.ones((2, 3)), tj.ones((3,)))
    assert lo.ir == golden("""
        ir g_reduce(a:f32[2,3], b:f32[3]) {
          c:f32[2,3] = mul a b                                 # @z = x * y@
          d:f32[2,3] = add c 1.0                               # @z = x * y@
          e:f32[2,1] = reduce_sum[axes=(1,), keepdims=True] d  # @tj.reduce_sum(z@
          return (e,)
        }
        """, g_reduce)
    assert lo.grad_ir == golden("""
        ir g_reduce_bwd(a:f32[2,1], b:f32[3], c:f32[2,3]) {
          d:f32[2,3] = broadcast_to[shape=(2, 3)] a           # @tj.reduce_sum(z@
          e:f32[2,3] = mul d b                                # @z = x * y@
          f:f32[2,3] = mul d c                                # @z = x * y@
          g:f32[3] = reduce_sum[axes=(0,), keepdims=False] f  # @z = x * y@
          return (e, g)
        }
        """, g_reduce)
    assert lo.guards == []


def g_guard(x):
    s = tj.reduce_max(x)
    if s > 0.0:
        return x / s
    return -x


def test_golden_guard_both_paths():
    f = tj.compile(g_guard)
    lo = f.lower(tj.constant([1.0, 2.0]))
    assert lo.ir == golden("""
        ir g_guard(a:f32[2]) {
          b:f32[] = reduce_max[axes=(0,), keepdims=False] a  # @s = tj.reduce_max(x)@
          c:bool[] = greater b 0.0                           # @if s > 0.0@
          guard[0, bool, expect=True] c                      # @if s > 0.0@
          d:f32[2] = div a b                                 # @return x / s@
          return (d,)
        }
        """, g_guard)
    assert lo.grad_ir == golden("""
        ir g_guard_bwd(a:f32[2], b:f32[], c:f32[2], d:f32[2]) {
          e:f32[2] = div a b                                 # @return x / s@
          f:f32[2] = neg a                                   # @return x / s@
          g:f32[2] = mul f c                                 # @return x / s@
          h:f32[2] = div g b                                 # @return x / s@
          i:f32[] = reduce_sum[axes=(0,), keepdims=False] h  # @return x / s@
          j:f32[1] = reshape[shape=(1,)] b                   # @s = tj.reduce_max(x)@
          k:bool[2] = equal d j                              # @s = tj.reduce_max(x)@
          l:f32[2] = cast[dtype=f32] k                       # @s = tj.reduce_max(x)@
          m:f32[1] = reshape[shape=(1,)] i                   # @s = tj.reduce_max(x)@
          n:f32[2] = mul m l                                 # @s = tj.reduce_max(x)@
          o:f32[1] = reduce_sum[axes=(0,), keepdims=True] l  # @s = tj.reduce_max(x)@
          p:f32[2] = div n o                                 # @s = tj.reduce_max(x)@
          q:f32[2] = add e p                                 # @s = tj.reduce_max(x)@
          return (q,)
        }
        """, g_guard)
    assert lo.guards == [f"guard 0 at {line_of(g_guard, 'if s > 0.0')} (bool(...) == True)"]
    lo = f.lower(tj.constant([-1.0, -2.0]))
    assert lo.ir == golden("""
        ir g_guard(a:f32[2]) {
          b:f32[] = reduce_max[axes=(0,), keepdims=False] a  # @s = tj.reduce_max(x)@
          c:bool[] = greater b 0.0                           # @if s > 0.0@
          guard[0, bool, expect=False] c                     # @if s > 0.0@
          d:f32[2] = neg a                                   # @return -x@
          return (d,)
        }
        """, g_guard)
    assert lo.grad_ir == golden("""
        ir g_guard_bwd(a:f32[2]) {
          b:f32[2] = neg a  # @return -x@
          return (b,)
        }
        """, g_guard)


W_GOLDEN = tj.Variable(np.zeros((3,), np.float32), name="w_golden")


def g_variable(x, lr):
    W_GOLDEN.assign_sub(lr * x)
    return tj.reduce_mean(W_GOLDEN * W_GOLDEN)


def test_golden_variable_read_write_and_python_float():
    lo = tj.compile(g_variable).lower(tj.constant([1.0, 2.0, 3.0]), 0.1)
    # The assignment is a gradient barrier (stop_gradient) and the read after it is
    # the Variable's own: d/dx and d/dlr are zero, d/dw comes through the reread.
    assert lo.ir == golden("""
        ir g_variable(a:f32[3], b:f64[]) {
          c:f32[3] = read_variable 'w_golden'
          d:f32[] = cast[dtype=f32] b                        # @assign_sub@
          e:f32[3] = mul d a                                 # @assign_sub@
          f:f32[3] = sub c e                                 # @assign_sub@
          g:f32[3] = stop_gradient f                         # @assign_sub@
          h:f32[3] = mul g g                                 # @reduce_mean@
          i:f32[] = reduce_sum[axes=(0,), keepdims=False] h  # @reduce_mean@
          j:f32[] = div i 3.0                                # @reduce_mean@
          write_variable 'w_golden' f
          return (j,)
        }
        """, g_variable)
    assert lo.grad_ir == golden("""
        ir g_variable_bwd(a:f32[], b:f32[3]) {
          c:f32[] = div a 3.0                      # @reduce_mean@
          d:f32[1] = reshape[shape=(1,)] c         # @reduce_mean@
          e:f32[3] = broadcast_to[shape=(3,)] d    # @reduce_mean@
          f:f32[3] = mul e b                       # @reduce_mean@
          g:f32[3] = add f f                       # @reduce_mean@
          h:f32[3] = broadcast_to[shape=(3,)] 0.0
          return (h, 0.0, g)
        }
        """, g_variable)
    np.testing.assert_array_equal(W_GOLDEN.numpy(), np.zeros(3))  # lower() assigns nothing


def g_variable_arg(v, x):
    v.assign_add(x)
    return v * 2.0


def test_golden_variable_argument_slot():
    lo = tj.compile(g_variable_arg).lower(tj.Variable([1.0, 2.0]), tj.constant([3.0, 4.0]))
    assert lo.ir == golden("""
        ir g_variable_arg(a:f32[2]) {
          b:f32[2] = read_variable arg0
          c:f32[2] = add b a             # @v.assign_add(x)@
          d:f32[2] = stop_gradient c     # @v.assign_add(x)@
          e:f32[2] = mul d 2.0           # @return v * 2.0@
          write_variable arg0 c
          return (e,)
        }
        """, g_variable_arg)


def g_layer(x, w, b):
    return tj.reduce_sum(tj.tanh(tj.matmul(x, w) + b))


def test_golden_layer_and_its_backward():
    lo = tj.compile(g_layer).lower(tj.ones((4, 3)), tj.ones((3, 2)), tj.zeros((2,)))
    assert lo.ir == golden("""
        ir g_layer(a:f32[4,3], b:f32[3,2], c:f32[2]) {
          d:f32[4,2] = matmul a b                              # @return@
          e:f32[4,2] = add d c                                 # @return@
          f:f32[4,2] = tanh e                                  # @return@
          g:f32[] = reduce_sum[axes=(0, 1), keepdims=False] f  # @return@
          return (g,)
        }
        """, g_layer)
    assert lo.grad_ir == golden("""
        ir g_layer_bwd(a:f32[], b:f32[4,2], c:f32[3,2], d:f32[4,3]) {
          e:f32[1,1] = reshape[shape=(1, 1)] a                # @return@
          f:f32[4,2] = broadcast_to[shape=(4, 2)] e           # @return@
          g:f32[4,2] = tanh_grad b f                          # @return@
          h:f32[2] = reduce_sum[axes=(0,), keepdims=False] g  # @return@
          i:f32[2,3] = transpose[perm=(1, 0)] c               # @return@
          j:f32[4,3] = matmul g i                             # @return@
          k:f32[3,4] = transpose[perm=(1, 0)] d               # @return@
          l:f32[3,2] = matmul k g                             # @return@
          return (j, l, h)
        }
        """, g_layer)


def g_print(x, n):
    for _ in range(n):
        x = tj.transpose(x) * 2.0
    y = tj.reshape(x, (2, 3))
    tj.print("y:", y)
    return tj.cast(y, tj.float64) - 1.0, tj.argmax(y, axis=1)


def test_golden_print_unrolled_loop_no_op_shapes_and_int_output():
    lo = tj.compile(g_print).lower(tj.ones((2, 3)), 2)
    assert lo.ir == golden("""
        ir g_print(a:f32[2,3]) {
          b:f32[3,2] = transpose[perm=(1, 0)] a         # @x = tj.transpose(x) * 2.0@
          c:f32[3,2] = mul b 2.0                        # @x = tj.transpose(x) * 2.0@
          d:f32[2,3] = transpose[perm=(1, 0)] c         # @x = tj.transpose(x) * 2.0@
          e:f32[2,3] = mul d 2.0                        # @x = tj.transpose(x) * 2.0@
          print['y: {}'] e                              # @tj.print@
          f:f64[2,3] = cast[dtype=f64] e                # @return@
          g:f64[2,3] = sub f 1.0                        # @return@
          h:i64[2] = argmax[axis=1, output_type=i64] e  # @return@
          return (g, h)
        }
        """, g_print)


def test_source_comments_each_equation():
    lo = tj.compile(g_guard).lower(tj.constant([1.0, 2.0]))
    body = [line.strip() for line in lo.ir.splitlines()[1:-2]]
    for line in body:
        assert "# " + line in lo.source
    assert "raise GuardFailed" in lo.source


# The grammar of docs/ir.md, one regex per line kind.
_TYPE = r"(f32|f64|i32|i64|bool)\[(\d+(,\d+)*)?\]"
_ATOM = r"([a-z]+\d*|-?[\d.]+(e[-+]?\d+)?|-?inf|nan|True|False|\[[^\] ]*\]|const" + _TYPE + ")"
_SRC = r"(\s+# \S+:\d+)?"
_LINE = {
    "read": rf"[a-z]+\d*:{_TYPE} = read_variable (arg\d+|'[^']+')",
    "equation": rf"[a-z]+\d*:{_TYPE} = [a-z_]+(\[.*\])?( {_ATOM})*{_SRC}",
    "guard": rf"guard\[\d+, (bool|int|float|value), expect=.+\] {_ATOM}{_SRC}",
    "print": rf"print\['.*'\]( {_ATOM})*{_SRC}",
    "write": rf"write_variable (arg\d+|'[^']+') {_ATOM}",
}


@pytest.mark.parametrize("fn, args", [
    (g_reduce, (tj.ones((2, 3)), tj.ones((3,)))), (g_guard, (tj.constant([-1.0, 2.0]),)),
    (g_variable, (tj.ones((3,)), 0.5)), (g_variable_arg, (tj.Variable([1.0, 2.0]), tj.ones((2,)))),
    (g_layer, (tj.ones((4, 3)), tj.ones((3, 2)), tj.zeros((2,)))), (g_print, (tj.ones((2, 3)), 3)),
])
def test_every_line_follows_the_documented_grammar(fn, args):
    lo = tj.compile(fn).lower(*args)
    for text in (lo.ir, lo.grad_ir):
        lines = text.splitlines()
        assert re.fullmatch(rf"ir \w+\(([a-z]+\d*:{_TYPE}(, )?)*\) {{", lines[0]), lines[0]
        assert re.fullmatch(rf"  return \(({_ATOM}(, )?)*,?\)", lines[-2]), lines[-2]
        assert lines[-1] == "}"
        for line in lines[1:-2]:
            assert line.startswith("  ")
            assert any(re.fullmatch(r, line[2:]) for r in _LINE.values()), line


def test_literal_text():
    assert Literal(np.float32(2.0)).text() == "2.0"
    assert Literal(np.float64(-0.0)).text() == "-0.0"
    assert Literal(np.float32(np.nan)).text() == "nan"
    assert Literal(np.array([1, 2, 3], np.int32)).text() == "[1,2,3]"
    assert Literal(np.zeros((8, 8), np.float32)).text() == "const<f32[8,8]>"


# --------------------------------------------------------------- verifier
def sa(shape, dtype="float32"):
    return ShapedArray(shape, dtype)


def test_verify_accepts_a_hand_built_program():
    a, b = Var(sa((3,))), Var(sa((3,)))
    c, d = Var(sa((3,))), Var(sa(()))
    g = Var(sa((), "bool"))
    v = Var(sa((3,)))
    prog = Program("ok", [a, b], [(VariableSlot(name="w"), v)], [
        Eqn(REGISTRY["mul"], [a, v], {}, c),
        Eqn(REGISTRY["reduce_sum"], [c], {"axes": (0,), "keepdims": False}, d),
        Eqn(REGISTRY["greater"], [d, Literal(np.float32(0))], {}, g),
        Guard(0, g, "bool", True),
        Print([d], "{}"),
    ], [(VariableSlot(name="w"), c)], [d, Literal(np.float32(1.0))])
    assert verify(prog) is prog
    assert pretty(prog).splitlines()[0] == "ir ok(a:f32[3], b:f32[3]) {"


def test_verify_rejects_use_before_definition():
    a, b, c = Var(sa((3,))), Var(sa((3,))), Var(sa((3,)))
    prog = Program("bad", [a], [], [
        Eqn(REGISTRY["mul"], [a, b], {}, c),   # b is defined after its use
        Eqn(REGISTRY["neg"], [a], {}, b),
    ], [], [c])
    with pytest.raises(tj.IRError, match="before it is defined"):
        verify(prog)


@pytest.mark.parametrize("where", ["output", "guard", "write", "print"])
def test_verify_rejects_undefined_vars_anywhere(where):
    a, ghost = Var(sa(())), Var(sa(()))
    g = Var(sa((), "bool"))
    body, writes, outputs = [], [], [a]
    if where == "output":
        outputs = [ghost]
    elif where == "guard":
        body = [Guard(0, g, "bool", True)]
    elif where == "write":
        writes = [(VariableSlot(name="w"), ghost)]
    else:
        body = [Print([ghost], "{}")]
    with pytest.raises(tj.IRError, match="before it is defined"):
        verify(Program("bad", [a], [], body, writes, outputs))


def test_verify_rejects_a_variable_defined_twice():
    a, b = Var(sa((3,))), Var(sa((3,)))
    prog = Program("bad", [a], [], [
        Eqn(REGISTRY["neg"], [a], {}, b),
        Eqn(REGISTRY["exp"], [a], {}, b),
    ], [], [b])
    with pytest.raises(tj.IRError, match="defined twice"):
        verify(prog)
    with pytest.raises(tj.IRError, match="defined twice"):
        verify(Program("bad", [a, a], [], [], [], [a]))
    with pytest.raises(tj.IRError, match="defined twice"):
        verify(Program("bad", [a], [], [Eqn(REGISTRY["neg"], [a], {}, a)], [], [a]))


@pytest.mark.parametrize("out", [sa((2, 3)), sa((3,), "float64"), sa(())], ids=["shape", "dtype", "rank"])
def test_verify_rejects_an_out_type_that_disagrees_with_the_shape_rule(out):
    a, b = Var(sa((3,))), Var(sa((3,)))
    prog = Program("bad", [a, b], [], [Eqn(REGISTRY["add"], [a, b], {}, Var(out))], [], [a])
    with pytest.raises(tj.IRError, match=r"add gives f32\[3\] by its shape rule"):
        verify(prog)


def test_verify_rejects_bad_params_through_the_shape_rule():
    a = Var(sa((2, 3)))
    prog = Program("bad", [a], [], [Eqn(REGISTRY["reduce_sum"], [a], {"axes": (0,), "keepdims": True},
                                        Var(sa((3,))))], [], [a])
    with pytest.raises(tj.IRError, match=r"reduce_sum gives f32\[1,3\]"):
        verify(prog)


def test_verify_rejects_unregistered_primitives_and_foreign_operands():
    a, b = Var(sa((3,))), Var(sa((3,)))
    rogue = Primitive("neg", np.negative, lambda x: x)  # same name, not the registry's object
    with pytest.raises(tj.IRError, match="not a registered primitive"):
        verify(Program("bad", [a], [], [Eqn(rogue, [a], {}, b)], [], [b]))
    with pytest.raises(tj.IRError, match="neither a Var nor a Literal"):
        verify(Program("bad", [a], [], [Eqn(REGISTRY["neg"], [np.ones(3)], {}, b)], [], [b]))
    with pytest.raises(tj.IRError, match="non-Var"):
        verify(Program("bad", [a], [], [Eqn(REGISTRY["neg"], [a], {}, Literal(np.ones(3, np.float32)))], [],
                       [a]))


def test_irerror_is_public_a_tapejit_error_and_an_assertion():
    assert issubclass(tj.IRError, tj.TapejitError) and issubclass(tj.IRError, AssertionError)
