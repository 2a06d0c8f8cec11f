"""The optimisation passes, each a pure Program -> Program function, on hand-made
and traced programs; IEEE semantics kept bit for bit; TAPEJIT_DUMP_IR."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapejit as tj
from tapejit.compiler import executor
from tapejit.compiler.ir import Eqn, Guard, Literal, Print, Program, Var, VariableSlot, pretty, verify
from tapejit.compiler.passes.cse import cse
from tapejit.compiler.passes.dce import dce
from tapejit.compiler.passes.fold import fold
from tapejit.compiler.passes.simplify import simplify
from tapejit.compiler.pipeline import PIPELINE, optimize
from tapejit.runtime.config import CONFIG
from tapejit.tracer.core import REGISTRY, ShapedArray

ROOT = pathlib.Path(__file__).resolve().parents[1]
P = REGISTRY


def var(shape=(3,), dtype="float32"):
    return Var(ShapedArray(shape, dtype))


def lit(value, dtype="float32"):
    return Literal(np.asarray(value, dtype))


def eqn(name, inputs, out, **params):
    return Eqn(P[name], inputs, params, out)


def prims(program):
    return [e.prim.name for e in program.eqns]


def run(program, *arrays):
    return executor.build(program)(*arrays)


def checked(pass_fn, program):
    """Run a pass; the input must be left as it was (passes are pure); both verify."""
    before = pretty(program)
    verify(program)
    out = pass_fn(program)
    assert pretty(program) == before
    verify(out)
    return out


def test_the_session_verifies_ir_after_every_pass():
    assert CONFIG.check_ir is True
    assert [name for name, _ in PIPELINE] == ["fold", "simplify", "cse", "dce"]


# --------------------------------------------------------------------- DCE
def test_dce_removes_unused_equations():
    a = var()
    b, c, d, e = var(), var(), var(), var(())
    prog = Program("p", [a], [], [
        eqn("exp", [a], b),                  # used
        eqn("sin", [a], c),                  # dead
        eqn("mul", [c, c], d),               # dead, and keeps c alive only through itself
        eqn("reduce_sum", [b], e, axes=(0,), keepdims=False),
    ], [], [e])
    out = checked(dce, prog)
    assert prims(out) == ["exp", "reduce_sum"]
    np.testing.assert_array_equal(run(out, np.ones(3, np.float32))[0][0], np.sum(np.exp(np.ones(3, np.float32))))


def test_dce_keeps_guards_prints_and_writes_and_what_they_use():
    a = var()
    s, g, p, w, unused = var(()), var((), "bool"), var(()), var(), var()
    read = var()
    unused_read = var()
    prog = Program("p", [a], [(VariableSlot(name="w"), read), (VariableSlot(name="u"), unused_read)], [
        eqn("reduce_sum", [a], s, axes=(0,), keepdims=False),
        eqn("greater", [s, lit(0.0)], g),
        Guard(0, g, "bool", True),
        eqn("exp", [s], p),
        Print([p], "p={}"),
        eqn("add", [read, a], w),
        eqn("neg", [a], unused),
    ], [(VariableSlot(name="w"), w)], [a])
    out = checked(dce, prog)
    assert prims(out) == ["reduce_sum", "greater", "exp", "add"]
    assert len(out.guards) == 1 and sum(type(i) is Print for i in out.body) == 1
    assert [slot.name for slot, _ in out.writes] == ["w"]
    assert [slot.name for slot, _ in out.reads] == ["w"]   # the unused read is dropped


def test_dce_on_a_traced_program_keeps_effects():
    v = tj.Variable([0.0, 0.0], name="dce_v")

    @tj.compile
    def f(x):
        unused = tj.exp(x) * 3.0  # noqa: F841 (dead)
        if tj.reduce_sum(x) > 0:
            tj.print("positive", x)
        v.assign(x * 2.0)
        return x + 1.0

    ir = f.lower(tj.constant([1.0, 2.0])).ir
    assert " exp " not in ir and "guard[0" in ir and "print[" in ir and "write_variable 'dce_v'" in ir


# --------------------------------------------------------------------- CSE
def test_cse_merges_duplicates_and_their_dependents():
    a, b = var(), var()
    c1, c2, d1, d2, e = var(), var(), var(), var(), var()
    prog = Program("p", [a, b], [], [
        eqn("mul", [a, b], c1),
        eqn("mul", [a, b], c2),               # duplicate of c1
        eqn("exp", [c1], d1),
        eqn("exp", [c2], d2),                 # duplicate once c2 is c1
        eqn("add", [d1, d2], e),
    ], [], [e])
    out = checked(cse, prog)
    assert prims(out) == ["mul", "exp", "add"]
    add = out.eqns[-1]
    assert add.inputs[0] is add.inputs[1]
    x, y = np.array([1.0, 2.0, 3.0], np.float32), np.array([0.5, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(run(out, x, y)[0][0], 2 * np.exp(x * y))


def test_cse_distinguishes_params_literals_and_signed_zero():
    a = var((2, 3))
    outs = [var((3,)), var((2,)), var((2, 3)), var((2, 3)), var((2, 3)), var((2, 3))]
    prog = Program("p", [a], [], [
        eqn("reduce_sum", [a], outs[0], axes=(0,), keepdims=False),
        eqn("reduce_sum", [a], outs[1], axes=(1,), keepdims=False),   # other params
        eqn("mul", [a, lit(0.0)], outs[2]),
        eqn("mul", [a, lit(-0.0)], outs[3]),                           # -0.0 is not 0.0
        eqn("mul", [a, lit(2.0)], outs[4]),
        eqn("mul", [a, lit(2.0)], outs[5]),                            # the same literal: merged
    ], [], outs)
    out = checked(cse, prog)
    assert len(out.eqns) == 5
    assert out.outputs[4] is out.outputs[5]
    x = np.array([[-1.0, np.inf, 0.0], [2.0, -0.0, np.nan]], np.float32)
    with np.errstate(invalid="ignore"):
        r = run(out, x)[0]
        np.testing.assert_array_equal(np.signbit(r[2]), np.signbit(x * np.float32(0.0)))
        np.testing.assert_array_equal(np.signbit(r[3]), np.signbit(x * np.float32(-0.0)))


def test_cse_on_a_traced_program():
    f = tj.compile(lambda x: tj.sin(x) * 2.0 + tj.sin(x) * 2.0)
    assert f.lower(tj.constant([1.0])).ir.count("sin") == 1
    assert f.lower(tj.constant([1.0])).ir.count("mul") == 1


# -------------------------------------------------------------------- fold
def test_fold_turns_literal_only_equations_into_literals():
    a = var()
    b, c, d = var(()), var(()), var()
    g = var((), "bool")
    prog = Program("p", [a], [], [
        eqn("add", [lit(1.0), lit(2.0)], b),
        eqn("mul", [b, lit(4.0)], c),             # literal once b is folded
        eqn("greater", [c, lit(0.0)], g),
        Guard(0, g, "bool", True),                # holds on a literal: dropped
        eqn("mul", [a, c], d),                    # has a Var input: stays
    ], [], [d, c])
    out = checked(fold, prog)
    assert prims(out) == ["mul"]
    assert out.guards == []
    assert type(out.eqns[0].inputs[1]) is Literal and out.eqns[0].inputs[1].value == 12.0
    assert type(out.outputs[1]) is Literal and out.outputs[1].value == 12.0
    assert out.outputs[1].aval == ShapedArray((), "float32")
    np.testing.assert_array_equal(run(out, np.ones(3, np.float32))[0][0], np.full(3, 12.0, np.float32))


def test_fold_keeps_a_literal_guard_that_fails():
    a, g = var(()), var((), "bool")
    prog = Program("p", [a], [], [eqn("greater", [lit(-1.0), lit(0.0)], g), Guard(0, g, "bool", True)], [], [a])
    out = checked(fold, prog)
    assert len(out.guards) == 1
    with pytest.raises(executor.GuardFailed):
        run(out, np.float32(1.0))


def test_fold_keeps_ieee_results():
    a = var(())
    outs = [var(()) for _ in range(3)]
    prog = Program("p", [a], [], [
        eqn("div", [lit(0.0), lit(0.0)], outs[0]),
        eqn("add", [lit(-0.0), lit(0.0)], outs[1]),
        eqn("log", [lit(0.0)], outs[2]),
    ], [], outs)
    with np.errstate(all="ignore"):
        out = checked(fold, prog)
    values = [o.value for o in out.outputs]
    assert np.isnan(values[0]) and values[1] == 0.0 and not np.signbit(values[1]) and values[2] == -np.inf


# ---------------------------------------------------------------- simplify
@pytest.mark.parametrize("name, make", [
    ("x*1", lambda x, o: eqn("mul", [x, lit(1.0)], o)),
    ("1*x", lambda x, o: eqn("mul", [lit(1.0), x], o)),
    ("x/1", lambda x, o: eqn("div", [x, lit(1.0)], o)),
    ("x-0", lambda x, o: eqn("sub", [x, lit(0.0)], o)),
    ("x**1", lambda x, o: eqn("pow", [x, lit(1.0)], o)),
    ("reshape", lambda x, o: eqn("reshape", [x], o, shape=(2, 3))),
    ("broadcast_to", lambda x, o: eqn("broadcast_to", [x], o, shape=(2, 3))),
    ("transpose", lambda x, o: eqn("transpose", [x], o, perm=(0, 1))),
    ("cast", lambda x, o: eqn("cast", [x], o, dtype=np.dtype("float32"))),
    ("identity", lambda x, o: eqn("identity", [x], o)),
])
def test_simplify_removes_exact_identities(name, make):
    x, o, y = var((2, 3)), var((2, 3)), var((2, 3))
    prog = Program("p", [x], [], [make(x, o), eqn("exp", [o], y)], [], [y, o])
    out = checked(simplify, prog)
    assert prims(out) == ["exp"], name
    assert out.eqns[0].inputs[0] is x and out.outputs[1] is x


def test_simplify_double_negation():
    x, a, b, c = var(), var(), var(), var()
    prog = Program("p", [x], [], [eqn("neg", [x], a), eqn("neg", [a], b), eqn("exp", [b], c)], [], [c])
    out = dce(checked(simplify, prog))
    assert prims(out) == ["exp"] and out.eqns[0].inputs[0] is x


@pytest.mark.parametrize("name, make", [
    ("x+0", lambda x, o: eqn("add", [x, lit(0.0)], o)),
    ("0+x", lambda x, o: eqn("add", [lit(0.0), x], o)),
    ("x*0", lambda x, o: eqn("mul", [x, lit(0.0)], o)),
    ("x-(-0)", lambda x, o: eqn("sub", [x, lit(-0.0)], o)),
    ("x*-1", lambda x, o: eqn("mul", [x, lit(-1.0)], o)),
    ("x/-1", lambda x, o: eqn("div", [x, lit(-1.0)], o)),
    ("x**2", lambda x, o: eqn("pow", [x, lit(2.0)], o)),
    ("transpose", lambda x, o: eqn("transpose", [x], o, perm=(1, 0))),
    ("stop_gradient", lambda x, o: eqn("stop_gradient", [x], o)),
])
def test_simplify_leaves_inexact_or_meaningful_equations(name, make):
    x = var((3, 3))
    o = var((3, 3))
    prog = Program("p", [x], [], [make(x, o)], [], [o])
    out = checked(simplify, prog)
    assert len(out.eqns) == 1, name


def test_simplify_keeps_an_identity_that_would_change_the_type():
    x = var((3,))
    o1, o2 = var((2, 3)), var((3,), "float64")
    prog = Program("p", [x], [], [
        eqn("mul", [x, Literal(np.ones((2, 3), np.float32))], o1),  # broadcasts: not x
        eqn("cast", [x], o2, dtype=np.dtype("float64")),
    ], [], [o1, o2])
    assert len(checked(simplify, prog).eqns) == 2


SPECIALS = np.array([-0.0, 0.0, np.nan, np.inf, -np.inf, 1.0, -2.5, 1e-45], np.float32)


@pytest.mark.parametrize("expr", [
    "x + 0.0", "0.0 + x", "x * 0.0", "x * 1.0", "x / 1.0", "x - 0.0", "x ** 1.0", "-(-x)",
    "x * 0.0 + x", "tj.reshape(x, (8,))", "tj.cast(x, tj.float32)", "tj.identity(x) - 0.0",
])
def test_compiled_equals_eager_bit_for_bit_on_special_values(expr):
    fn = eval(f"lambda x: {expr}", {"tj": tj})
    f = tj.compile(fn)
    x = tj.constant(SPECIALS)
    with np.errstate(all="ignore"):
        got, want = f(x).numpy(), fn(x).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_x_plus_zero_is_not_simplified_in_a_traced_program():
    f = tj.compile(lambda x: x + 0.0)
    assert " add " in f.lower(tj.constant([1.0])).ir
    assert not np.signbit(f(tj.constant([-0.0])).numpy()[0])
    g = tj.compile(lambda x: x * 0.0)
    assert " mul " in g.lower(tj.constant([1.0])).ir
    with np.errstate(invalid="ignore"):
        assert np.isnan(g(tj.constant([np.inf, np.nan])).numpy()).all()


# -------------------------------------------------------------- pipeline
def test_optimize_verifies_before_and_after_each_pass():
    a, b = var(), var()
    broken = Program("broken", [a], [], [eqn("neg", [b], b)], [], [b])
    with pytest.raises(tj.IRError):
        optimize(broken, check=True)


def test_optimize_runs_every_pass_on_a_traced_program():
    def fn(x):
        y = tj.reshape(x, (2,)) * 1.0       # simplify
        z = tj.exp(y) + tj.exp(y)           # cse
        dead = tj.sin(x)                    # noqa: F841 (dce)
        return z - 0.0                      # simplify
    ir = tj.compile(fn).lower(tj.constant([1.0, 2.0])).ir
    assert ir.count("exp") == 1 and "reshape" not in ir and "sin" not in ir and " sub " not in ir


def test_dump_ir_prints_the_program_after_each_pass():
    script = textwrap.dedent("""
        import tapejit as tj
        @tj.compile
        def f(x):
            return tj.exp(x) * 1.0 + tj.exp(x)
        f(tj.constant([1.0, 2.0]))
    """)
    env = {**os.environ, "TAPEJIT_DUMP_IR": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    headers = [line for line in out.stderr.splitlines() if line.startswith("--- ")]
    assert headers == ["--- f: traced", "--- f: after fold", "--- f: after simplify", "--- f: after cse",
                       "--- f: after dce"]
    traced, final = out.stderr.split("--- f: after fold")[0], out.stderr.split("--- f: after dce")[1]
    assert traced.count("exp") == 2 and " mul " in traced
    assert final.count("exp") == 1 and " mul " not in final
    assert out.stdout == ""
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "TAPEJIT_DUMP_IR"})
    assert quiet.returncode == 0 and quiet.stderr == ""


# -------------------------------------------------------------- executor
def test_executor_runs_a_hand_made_program_with_effects(capsys):
    a, r = var(), var()
    b, g, w = var(()), var((), "bool"), var()
    prog = Program("p", [a], [(VariableSlot(name="w"), r)], [
        eqn("reduce_sum", [a], b, axes=(0,), keepdims=False),
        eqn("greater", [b, lit(0.0)], g),
        Guard(0, g, "bool", True, "here.py:1"),
        Print([b], "sum={}"),
        eqn("add", [r, a], w),
    ], [(VariableSlot(name="w"), w)], [b])
    fn = executor.build(verify(prog))
    outs, writes = fn(np.ones(3, np.float32), np.full(3, 2.0, np.float32))
    assert outs[0] == 3.0
    np.testing.assert_array_equal(writes[0], np.full(3, 3.0))
    assert capsys.readouterr().out == "sum=3.0\n"
    with pytest.raises(executor.GuardFailed, match="guard 0 at here.py:1") as err:
        fn(-np.ones(3, np.float32), np.zeros(3, np.float32))
    assert not err.value.value  # the value the guard saw
    assert capsys.readouterr().out == ""  # the guard stopped the program before the print


def test_multiplying_by_a_broadcast_one_is_dropped():
    def fn(x):
        with tj.GradientTape() as tape:
            tape.watch(x)
            y = tj.reduce_sum(tj.tanh(x))
        return tape.gradient(y, x)  # the backward pass starts from broadcast_to(1.0)

    f = tj.compile(fn)
    x = tj.constant(np.linspace(-1.0, 1.0, 5, dtype=np.float32))
    np.testing.assert_allclose(f(x).numpy(), 1 - np.tanh(x.numpy()) ** 2, rtol=1e-6)
    assert "mul" not in f.lower(x).ir
