"""matmul (batched, broadcasting), einsum, tensordot."""
import numpy as np

import tapejit as tj

from .core import FORWARD, LARGE, NUMERIC, ErrorInput, OpInfo, Sample, make, transposed

MATMUL = [((2, 3), (3, 4), {}), ((1, 3), (3, 1), {}), ((2, 2, 3), (2, 3, 2), {}),
          ((2, 1, 2, 3), (3, 3, 2), {}),                     # batch dims broadcast: (2, 1) with (3,)
          ((3, 2), (3, 4), {"transpose_a": True}), ((2, 3), (4, 3), {"transpose_b": True}),
          ((2, 3, 2), (2, 4, 3), {"transpose_a": True, "transpose_b": True}),
          (transposed(3, 2), (2, 2), {}),
          ((0, 3), (3, 2), {}, FORWARD), ((2, 0), (0, 3), {}, FORWARD), ((2, 1, 3, 4), (5, 4, 2), {}, FORWARD),
          ((6, 8), (8, 7), {}, LARGE)]


def matmul_samples(dtype, rng):
    out = []
    for spec in MATMUL:
        a, b, kw = spec[:3]
        use = spec[3] if len(spec) > 3 else "all"
        use = use if dtype.kind == "f" else FORWARD
        out.append(Sample((make(a, dtype, rng), make(b, dtype, rng)), dict(kw), use))
    return out


def matmul_ref(a, b, transpose_a=False, transpose_b=False):
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def matmul_errors():
    return [
        ErrorInput((np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)), {}, ValueError,
                   r"^tj\.matmul: argument 1 has shape \(4, 5\) but argument 0 has shape \(2, 3\); "
                   r"inner dimensions 3 and 4 must match$"),
        ErrorInput((np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)), {}, TypeError,
                   r"tj\.matmul: b has shape \(3, 2\) and dtype float64 but a has shape \(2, 3\) and dtype float32"),
        ErrorInput((np.ones((3,), np.float32), np.ones((3, 2), np.float32)), {}, ValueError,
                   r"tj\.matmul: a has shape \(3,\) and dtype float32; matmul needs tensors of rank >= 2"),
        ErrorInput((np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32)), {}, ValueError,
                   r"tj\.matmul: cannot broadcast a's batch dimensions of shape \(2,\)"
                   r".*b's batch dimensions of shape \(3,\)"),
        ErrorInput((np.ones((2, 3), bool), np.ones((3, 2), bool)), {}, TypeError,
                   r"tj\.matmul: a has shape \(2, 3\) and dtype bool"),
    ]


EINSUM = [("ij,jk->ik", (2, 3), (3, 2)), ("bij,bjk->bik", (2, 2, 3), (2, 3, 2)), ("i,i->", (5,), (5,)),
          ("...ij,...jk->...ik", (2, 2, 3), (3, 2)), ("ij->ji", (2, 3)), ("ij->", (2, 3)), ("ij->j", (3, 4)),
          ("ij,kj", (2, 3), (4, 3)), ("i,j->ij", (3,), (4,)), ("ab,ab->ab", (1, 3), (2, 3)),
          ("ij,jk,kl->il", (2, 3), (3, 2), (2, 2)), ("ii", None), ("ij,jk->ik", transposed(3, 2), (2, 2))]


def einsum_samples(dtype, rng):
    out = []
    for eq, *shapes in EINSUM:
        if shapes == [None]:
            continue
        out.append(Sample(tuple(make(s, dtype, rng) for s in shapes), {"equation": eq}))
    out.append(Sample((make((0, 3), dtype, rng), make((3, 2), dtype, rng)), {"equation": "ij,jk->ik"}, FORWARD))
    out.append(Sample((make((3, 0), dtype, rng), make((0, 2), dtype, rng)), {"equation": "ij,jk->ik"}, FORWARD))
    out.append(Sample((make((6, 8), dtype, rng), make((8, 7), dtype, rng)), {"equation": "ij,jk->ik"}, LARGE))
    if dtype.kind != "f":
        out = [Sample(s.args, s.kwargs, FORWARD) for s in out]
    return out


def einsum_op(*xs, equation):
    return tj.einsum(equation, *xs)


def einsum_ref(*xs, equation):
    return np.einsum(equation, *xs)


def einsum_errors():
    f32 = np.ones((2, 3), np.float32)
    return [
        ErrorInput((f32, np.ones((4, 2), np.float32)), {"equation": "ij,jk->ik"}, ValueError,
                   r"tj\.einsum: subscript 'j' has size 3 in one operand and 4 in argument 1 of shape \(4, 2\)"),
        ErrorInput((f32,), {"equation": "ijk->i"}, ValueError,
                   r"tj\.einsum: subscripts 'ijk' do not match an operand of rank 2"),
        ErrorInput((f32, f32), {"equation": "ij->i"}, ValueError,
                   r"tj\.einsum: equation 'ij->i' names 1 operands but 2"),
        ErrorInput((np.ones((3, 3), np.float32),), {"equation": "ii->i"}, ValueError,
                   r"tj\.einsum: repeated subscripts within one operand"),
        ErrorInput((f32, np.ones((3, 2), np.float64)), {"equation": "ij,jk->ik"}, TypeError,
                   r"tj\.einsum: .*shape \(3, 2\) and dtype float64 but .*shape \(2, 3\) and dtype float32"),
        ErrorInput((np.ones((2, 3), bool), np.ones((3, 2), bool)), {"equation": "ij,jk->ik"}, TypeError,
                   r"tj\.einsum: .*shape \(2, 3\) and dtype bool.* accepts only"),
    ]


TENSORDOT = [((2, 3), (3, 2), {"axes": 1}), ((2, 3, 2), (3, 2, 2), {"axes": 2}), ((3,), (4,), {"axes": 0}),
             ((2, 3), (2, 4), {"axes": [[0], [0]]}), ((2, 3, 2), (2, 3), {"axes": ([0, 1], [0, 1])}),
             ((3, 2), (2, 3), {"axes": (1, 0)}), ((3, 2), (3, 2), {"axes": [[-1, 0], [1, 0]]}),
             (transposed(3, 2), (2,), {"axes": 1}),
             ((0, 3), (3, 2), {"axes": 1}, FORWARD), ((6, 8), (8, 7), {"axes": 1}, LARGE)]


def tensordot_samples(dtype, rng):
    out = []
    for spec in TENSORDOT:
        a, b, kw = spec[:3]
        use = spec[3] if len(spec) > 3 else "all"
        use = use if dtype.kind == "f" else FORWARD
        out.append(Sample((make(a, dtype, rng), make(b, dtype, rng)), dict(kw), use))
    return out


def tensordot_ref(a, b, axes):
    return np.tensordot(a, b, axes)


def tensordot_errors():
    return [ErrorInput((np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)), {"axes": 1}, ValueError,
                       r"tj\.tensordot: axis 1 of a \(shape \(2, 3\)\) has size 3 "
                       r"but axis 0 of b \(shape \(4, 2\)\) has size 4"),
            ErrorInput((np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)), {"axes": [[1], [0, 1]]},
                       ValueError,
                       r"tj\.tensordot: axes \[1\] and \[0, 1\] must have equal length")]


OPS = [
    OpInfo(name="matmul", op=tj.matmul, ref=matmul_ref, samples=matmul_samples, dtypes=NUMERIC,
           primitives=("matmul", "transpose"), error_inputs=matmul_errors),
    OpInfo(name="einsum", op=einsum_op, ref=einsum_ref, samples=einsum_samples, dtypes=NUMERIC,
           primitives=("einsum",), error_inputs=einsum_errors),
    OpInfo(name="tensordot", op=tj.tensordot, ref=tensordot_ref, samples=tensordot_samples, dtypes=NUMERIC,
           primitives=("transpose", "reshape", "matmul"), error_inputs=tensordot_errors),
]
