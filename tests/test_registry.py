"""Meta tests over the primitive registry and the op table (STYLE.md Habits 1 and 10, TESTING.md T4).

They fail when a primitive lacks an impl, a shape rule, a vjp or an explicit
non-differentiable mark; when a primitive or a public op has no OP_DB row;
when a row's declared primitives drift from what the op really applies; and
when a vjp rule calls NumPy instead of tapejit ops.
"""
import ast
import inspect
import pathlib
import sys
import textwrap
import types

import numpy as np
import pytest

import tapejit as tj
from tapejit import tracer
from tapejit.tracer import core
from tapejit.tracer.ops.shape import PerInput

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from opdb import OP_DB, OPS_BY_NAME  # noqa: E402
from opdb.core import F64, XFAIL_KEYS, PrimitiveLog, tape_gradients  # noqa: E402

# Primitives declared without a vjp on purpose. A new primitive without a vjp
# fails test_every_primitive_is_differentiable_or_declared until it is added here.
NON_DIFFERENTIABLE = {
    # piecewise constant: TensorFlow registers no gradient (or None) for these
    "floor", "ceil", "round", "floordiv",
    # comparisons, predicates and logic: bool outputs
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not", "is_nan", "is_inf", "is_finite",
    "reduce_any", "reduce_all",
    # integer outputs
    "argmax", "argmin",
    # the point of the op
    "stop_gradient",
}

# Public functions that create tensors from Python values or read static
# properties: no tensor input to compare against a NumPy function of it.
# Each has direct value tests in tests/test_ops.py (test_creation_*).
CREATION_EXEMPT = {
    "constant", "convert_to_tensor", "zeros", "ones", "fill", "range", "eye", "linspace",
    "shape", "size", "rank", "zeros_like", "ones_like",
}


def test_every_primitive_has_impl_and_shape_rule():
    assert core.REGISTRY, "no primitive registered"
    for name, prim in core.REGISTRY.items():
        assert prim.name == name
        assert callable(prim.impl), f"{name} has no impl"
        assert callable(prim.shape_rule), f"{name} has no shape rule"
        assert isinstance(prim.public_name, str) and prim.public_name, f"{name} has no public name"


def test_every_primitive_is_differentiable_or_declared():
    undeclared = sorted(n for n, p in core.REGISTRY.items() if p.vjp is None and n not in NON_DIFFERENTIABLE)
    assert not undeclared, f"primitives without a vjp and not in NON_DIFFERENTIABLE: {undeclared}"
    stale = sorted(n for n in NON_DIFFERENTIABLE if n not in core.REGISTRY or core.REGISTRY[n].vjp is not None)
    assert not stale, f"NON_DIFFERENTIABLE lists primitives that are gone or now have a vjp: {stale}"
    for name, prim in core.REGISTRY.items():
        if prim.vjp is not None:
            assert isinstance(prim.vjp, (tuple, PerInput)), f"{name}: vjp must be a tuple of rules or PerInput"
            rules = [prim.vjp.rule] if isinstance(prim.vjp, PerInput) else list(prim.vjp)
            assert any(callable(r) for r in rules), f"{name}: vjp has no rule for any input"
            assert all(r is None or callable(r) for r in rules), f"{name}: a vjp entry is neither None nor callable"


def test_every_primitive_has_an_op_db_row():
    declared = {p for op in OP_DB for p in op.primitives}
    unknown = sorted(declared - set(core.REGISTRY))
    assert not unknown, f"OP_DB declares primitives that are not registered: {unknown}"
    missing = sorted(set(core.REGISTRY) - declared)
    assert not missing, f"primitives exercised by no OP_DB row: {missing}"


def _public_functions():
    """Every op a user can reach: tj.<name> for PUBLIC, and tj.math / tj.nn / tj.linalg."""
    out = dict(tracer.PUBLIC)
    for module in (tj.math, tj.nn, tj.linalg):
        for name in module.__all__:
            out.setdefault(name, getattr(module, name))
    return out


def test_every_public_op_has_an_op_db_row():
    rows = {op.name for op in OP_DB}
    public = _public_functions()
    by_identity = {}
    for name, fn in public.items():
        by_identity.setdefault(id(fn), set()).add(name)
    missing = []
    for name, fn in public.items():
        if name in CREATION_EXEMPT:
            continue
        if not (by_identity[id(fn)] & rows):  # an alias (tj.nn.swish is tj.silu) shares its row
            missing.append(name)
    assert not missing, f"public ops without an OP_DB row: {sorted(missing)}"
    stale = sorted(CREATION_EXEMPT - set(public))
    assert not stale, f"CREATION_EXEMPT names functions that are not public: {stale}"


def test_public_namespaces_share_one_implementation():
    for module in (tj.math, tj.nn, tj.linalg):
        for name in module.__all__:
            if name in tracer.PUBLIC:
                assert getattr(module, name) is tracer.PUBLIC[name], f"{module.__name__}.{name} is a second copy"
                assert getattr(tj, name) is tracer.PUBLIC[name], f"tj.{name} is not the public function"


@pytest.mark.parametrize("op", [pytest.param(op, id=op.name) for op in OP_DB])
def test_row_declares_the_primitives_it_applies(op):
    """A row's `primitives` equals what the op applies forward, plus what only its
    gradient applies: no undeclared forward primitive, no stale declaration."""
    assert op.primitives, f"{op.name} declares no primitives"
    with PrimitiveLog(check_rules=False) as forward:
        for dtype in op.dtypes:
            for sample in op.sample_inputs(dtype):
                with np.errstate(all="ignore"):
                    op.op(*sample.args, **sample.kwargs)
    with PrimitiveLog(check_rules=False) as backward:
        if op.supports_grad:
            for sample in op.sample_inputs(F64):
                argnums = op.diff_argnums(sample)
                if argnums:
                    with np.errstate(all="ignore"):
                        tape_gradients(op, sample, argnums)
    undeclared = sorted(forward.seen - set(op.primitives))
    assert not undeclared, f"{op.name} applies primitives it does not declare: {undeclared}"
    stale = sorted(set(op.primitives) - forward.seen - backward.seen)
    assert not stale, f"{op.name} declares primitives it never applies: {stale}"


def test_rows_are_well_formed():
    for op in OP_DB:
        assert op.dtypes, op.name
        assert not (op.supports_gradgrad and not op.supports_grad), op.name
        assert all(isinstance(d, np.dtype) for d in op.dtypes), op.name
        for key, reason in op.xfail.items():
            assert key in XFAIL_KEYS, f"{op.name}: unknown xfail key {key!r}"
            assert reason, f"{op.name}: an xfail needs a reason"
        if op.supports_grad:
            assert any(d.kind == "f" for d in op.dtypes), f"{op.name} supports gradients but lists no float dtype"
    assert OPS_BY_NAME["add"].op is tj.add


# Rows whose op rejects 0-d tensors (as TensorFlow's does): they need no 0-d sample.
NEEDS_RANK = {"argmax", "argmin", "cumsum", "cumprod", "matrix_transpose", "concat", "unstack", "split", "matmul",
              "einsum", "tensordot", "softmax", "log_softmax", "softmax_cross_entropy_with_logits"}


@pytest.mark.parametrize("op", [pytest.param(op, id=op.name) for op in OP_DB])
def test_samples_cover_scalars_views_and_empty_arrays(op):
    """TESTING.md T4: every row samples a 0-d tensor, a non-contiguous NumPy view and a size-0 array."""
    arrays = [a for d in op.dtypes for s in op.sample_inputs(d) for a in (*s.args, *s.kwargs.values())
              if isinstance(a, np.ndarray)]
    assert any(not a.flags.c_contiguous for a in arrays), f"{op.name}: no non-contiguous sample"
    assert any(a.size == 0 for a in arrays), f"{op.name}: no size-0 sample"
    if op.name not in NEEDS_RANK:
        assert any(a.ndim == 0 for a in arrays), f"{op.name}: no 0-d sample"


# ------------------------------------------------------ vjp rules: no NumPy
def _vjp_rules():
    for name, prim in core.REGISTRY.items():
        if prim.vjp is None:
            continue
        rules = [prim.vjp.rule] if isinstance(prim.vjp, PerInput) else list(prim.vjp)
        for i, rule in enumerate(rules):
            if rule is not None:
                yield f"{name}[{i}]", rule


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _numpy_names(fn):
    """Globals of fn (and of nested code) that are NumPy itself."""
    found = set()
    for code in _code_objects(fn.__code__):
        for name in code.co_names:
            if fn.__globals__.get(name) is np:
                found.add(name)
    return found


def _helpers(fn):
    """Private tracer-level functions a rule calls (e.g. _keepdims_ct): they are part of the rule."""
    for code in _code_objects(fn.__code__):
        for name in code.co_names:
            value = fn.__globals__.get(name)
            if (isinstance(value, types.FunctionType) and name.startswith("_")
                    and value.__module__.startswith("tapejit.tracer")):
                yield value


def _rule_sources(fn):
    """The source text of a rule: a def's whole body, or each lambda starting on a lambda's line."""
    source = inspect.getsource(fn)
    if fn.__name__ != "<lambda>":
        return [textwrap.dedent(source)]
    module_source = inspect.getsource(inspect.getmodule(fn))
    tree = ast.parse(module_source)
    line = fn.__code__.co_firstlineno
    lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda) and node.lineno == line]
    assert lambdas, f"no lambda found at line {line} of {fn.__module__}"
    return [ast.get_source_segment(module_source, node) for node in lambdas]


def _uses_numpy_text(source):
    tree = ast.parse(source if not source.startswith("lambda") else f"_ = {source}")
    return sorted({ast.unparse(node) for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                   and node.value.id in ("np", "numpy")})


@pytest.mark.parametrize("label, rule", [pytest.param(label, rule, id=label) for label, rule in _vjp_rules()])
def test_vjp_rules_do_not_call_numpy(label, rule):
    """Vjp rules are written in tapejit ops (STYLE.md principle 1), so one rule serves
    eager tapes, nested tapes and symbolic differentiation at trace time."""
    seen, stack = set(), [rule]
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        assert not _numpy_names(fn), f"vjp rule {label} ({fn.__qualname__}) references NumPy"
        for source in _rule_sources(fn):
            calls = _uses_numpy_text(source)
            assert not calls, f"vjp rule {label} ({fn.__qualname__}) calls NumPy: {calls}\n{source}"
        stack.extend(_helpers(fn))


def test_numpy_lint_catches_numpy_calls():
    """The lint itself: a rule calling NumPy, directly or through a private helper, is caught."""
    def _helper(ct):
        return np.sum(ct)

    def bad_def(ct, x, out):
        return ct * np.cos(x)

    bad_lambda = lambda ct, x, out: np.negative(ct)  # noqa: E731
    assert _numpy_names(bad_def) == {"np"} and _uses_numpy_text(_rule_sources(bad_def)[0]) == ["np.cos"]
    assert _numpy_names(bad_lambda) == {"np"}
    assert _uses_numpy_text(_rule_sources(bad_lambda)[0]) == ["np.negative"]
    good = lambda ct, x, out: _helper(ct)  # noqa: E731
    assert not _numpy_names(good)
    assert _numpy_names(_helper) == {"np"}
