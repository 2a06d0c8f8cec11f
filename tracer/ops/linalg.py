"""Linear algebra: batched matmul and einsum primitives; tensordot on top."""
import string

import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, register
from ..errors import ShapeError
from .elementwise import PUBLIC
from .rules import NUMERIC, broadcast_shapes, check_dtypes
from .shape import PerInput, broadcast_to, matrix_transpose, reshape, transpose


# ------------------------------------------------------------------- matmul
def _matmul_rule(a, b):
    dtype = check_dtypes("matmul", (a, b), NUMERIC, ("a", "b"))
    for name, x in (("a", a), ("b", b)):
        if len(x.shape) < 2:
            raise ShapeError(f"tj.matmul: {name} has shape {x.shape} and dtype {x.dtype.name}; "
                             "matmul needs tensors of rank >= 2 (use tj.tensordot or reshape vectors)")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"tj.matmul: argument 1 has shape {b.shape} but argument 0 has shape {a.shape}; "
                         f"inner dimensions {a.shape[-1]} and {b.shape[-2]} must match")
    batch = broadcast_shapes("matmul", (ShapedArray(a.shape[:-2], dtype), ShapedArray(b.shape[:-2], dtype)),
                             ("a's batch dimensions", "b's batch dimensions"))
    return ShapedArray(batch + (a.shape[-2], b.shape[-1]), dtype)


matmul_p = register(Primitive(
    "matmul", np.matmul, _matmul_rule,
    (lambda ct, a, b, out: matmul(ct, b, transpose_b=True),
     lambda ct, a, b, out: matmul(a, ct, transpose_a=True))))


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False, name=None):
    """Batched matrix product with broadcasting batch dimensions (tf.linalg.matmul)."""
    a, b = core.convert_group((a, b), "matmul")
    if transpose_a or adjoint_a:
        a = matrix_transpose(a) if a._value.ndim >= 2 else a
    if transpose_b or adjoint_b:
        b = matrix_transpose(b) if b._value.ndim >= 2 else b
    if a._value.ndim < 2 or b._value.ndim < 2 or a._value.dtype not in NUMERIC:
        _matmul_rule(core.aval(a), core.aval(b))  # np.matmul takes vectors and bools; TF does not
    return core.apply(matmul_p, (a, b))


PUBLIC["matmul"] = matmul


# ------------------------------------------------------------------- einsum
def _parse_einsum(equation, ranks):
    """Explicit form 'ab,bc->ac' with ellipses expanded into fresh letters."""
    equation = equation.replace(" ", "")
    if "->" in equation:
        lhs, rhs = equation.split("->")
    else:
        lhs = equation
        letters = lhs.replace(",", "").replace(".", "")
        rhs = ("..." if "..." in lhs else "") + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"tj.einsum: equation {equation!r} names {len(terms)} operands but {len(ranks)} were given")
    free = [c for c in string.ascii_letters if c not in equation]
    ell_rank = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    ell = "".join(free[:ell_rank])
    out_terms = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            n = r - len(t.replace("...", ""))
            t = t.replace("...", ell[ell_rank - n:])
        if len(t) != r:
            raise ShapeError(f"tj.einsum: subscripts {t!r} do not match an operand of rank {r}")
        if len(set(t)) != len(t):
            raise ValueError(f"tj.einsum: repeated subscripts within one operand ({t!r}, a trace or diagonal) "
                             "are not supported")
        out_terms.append(t)
    rhs = rhs.replace("...", ell)
    return ",".join(out_terms) + "->" + rhs


def _einsum_rule(*xs, equation):
    dtype = check_dtypes("einsum", xs, NUMERIC)
    lhs, rhs = equation.split("->")
    sizes = {}
    for i, (term, x) in enumerate(zip(lhs.split(","), xs)):
        for c, d in zip(term, x.shape):
            if sizes.get(c, d) != d and d != 1 and sizes[c] != 1:
                raise ShapeError(f"tj.einsum: subscript {c!r} has size {sizes[c]} in one operand and {d} in "
                                 f"argument {i} of shape {x.shape} ({equation!r})")
            sizes[c] = max(sizes.get(c, d), d)
    return ShapedArray(tuple(sizes[c] for c in rhs), dtype)


def _einsum_vjp(index, ct, *args, equation):
    xs = args[:-1]
    lhs, rhs = equation.split("->")
    terms = lhs.split(",")
    target = terms[index]
    others = [t for i, t in enumerate(terms) if i != index]
    available = set(rhs).union(*others) if others else set(rhs)
    reachable = "".join(c for c in target if c in available)
    spec = ",".join([rhs] + others) + "->" + reachable
    g = einsum(spec, ct, *[x for i, x in enumerate(xs) if i != index])
    if reachable != target:  # letters summed only within this operand: broadcast back
        shape = xs[index].shape
        g = reshape(g, tuple(d if c in available else 1 for c, d in zip(target, shape)))
        g = broadcast_to(g, shape)
    return g


def _einsum_impl(*xs, equation):
    return np.einsum(equation, *xs, optimize=len(xs) > 2)


einsum_p = register(Primitive("einsum", _einsum_impl, _einsum_rule, PerInput(_einsum_vjp)))


def einsum(equation, *inputs, name=None):
    """tf.einsum for any number of operands (no repeated subscripts within one operand)."""
    xs = core.convert_group(list(inputs), "einsum")
    spec = _parse_einsum(equation, [x._value.ndim for x in xs])
    if xs and xs[0]._value.dtype not in NUMERIC:
        _einsum_rule(*[core.aval(x) for x in xs], equation=spec)
    return core.apply(einsum_p, tuple(xs), {"equation": spec})


PUBLIC["einsum"] = einsum


# ---------------------------------------------------------------- tensordot
def tensordot(a, b, axes, name=None):
    """tf.tensordot, written as an einsum."""
    a, b = core.convert_group((a, b), "tensordot")
    na, nb = a._value.ndim, b._value.ndim
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        axes_a, axes_b = axes
        axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
        axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
    if len(axes_a) != len(axes_b):
        raise ShapeError(f"tj.tensordot: axes {axes_a} and {axes_b} must have equal length")
    axes_a = [x % na for x in axes_a]
    axes_b = [x % nb for x in axes_b]
    for i, j in zip(axes_a, axes_b):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tj.tensordot: axis {i} of a (shape {a.shape}) has size {a.shape[i]} but axis {j} "
                             f"of b (shape {b.shape}) has size {b.shape[j]}")
    # As TensorFlow: move the contracted axes together, reshape to matrices, one BLAS matmul.
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [j for j in range(nb) if j not in axes_b]
    size = int(np.prod([a.shape[i] for i in axes_a]))
    rows = tuple(a.shape[i] for i in free_a)
    cols = tuple(b.shape[j] for j in free_b)
    a2 = reshape(transpose(a, tuple(free_a + axes_a)), (int(np.prod(rows)), size))
    b2 = reshape(transpose(b, tuple(axes_b + free_b)), (size, int(np.prod(cols))))
    out_shape = rows + cols
    return reshape(matmul(a2, b2), out_shape)


PUBLIC["tensordot"] = tensordot
