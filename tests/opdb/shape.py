"""Shape ops (reshape, transpose, expand_dims, squeeze, broadcast_to, concat,
stack, unstack, split, tile, pad) and index ops (slice, gather, __getitem__, one_hot)."""
import numpy as np

import tapejit as tj

from .core import (BOOL, F32, FORWARD, I32, I64, INTS, LARGE, NUMERIC, ErrorInput, OpInfo, Sample, make, strided,
                   transposed)

ANY = NUMERIC + (BOOL,)


def _forward_for_non_floats(out, dtype):
    return out if dtype.kind == "f" else [Sample(s.args, s.kwargs, FORWARD) for s in out]


def cases(specs):
    """Samples from (shapes, kwargs[, use]) triples: one array argument per shape."""
    def samples(dtype, rng):
        out = []
        for spec in specs:
            shapes, kwargs = spec[0], spec[1]
            use = spec[2] if len(spec) > 2 else "all"
            out.append(Sample(tuple(make(s, dtype, rng) for s in shapes), dict(kwargs), use))
        return _forward_for_non_floats(out, dtype)
    return samples


# ------------------------------------------------------------------ reshape
def reshape_ref(x, shape):
    return np.reshape(x, shape)


RESHAPE = [(((2, 3),), {"shape": (3, 2)}), (((6,),), {"shape": [2, -1]}), (((),), {"shape": (1, 1)}),
           (((1, 4),), {"shape": (4,)}), (((2, 3, 2),), {"shape": (-1,)}), ((transposed(3, 2),), {"shape": (6,)}),
           (((0, 3),), {"shape": (3, 0)}, FORWARD), (((0, 3),), {"shape": (-1, 3)}, FORWARD),
           (((7, 9),), {"shape": (9, 7)}, LARGE)]


def reshape_errors():
    x = np.ones((2, 3), np.float32)
    return [ErrorInput((x, (4, 2)), {}, ValueError,
                       r"tj\.reshape: cannot reshape tensor of shape \(2, 3\).*to shape \(4, 2\)"),
            ErrorInput((x, (-1, 4)), {}, ValueError,
                       r"tj\.reshape: cannot reshape tensor of shape \(2, 3\).*\(-1, 4\)"),
            ErrorInput((x, (-1, -1)), {}, ValueError, r"tj\.reshape: shape \(-1, -1\) has more than one -1")]


# ---------------------------------------------------------------- transpose
TRANSPOSE = [(((2, 3),), {}), (((2, 3, 4),), {"perm": (2, 0, 1)}), (((2, 3, 2),), {"perm": [1, 0, 2]}),
             (((),), {}), (((5,),), {}), ((transposed(3, 2),), {"perm": (1, 0)}),
             (((2, 3, 2),), {"perm": (-1, 0, 1)}),
             (((0, 3),), {}, FORWARD), (((7, 9),), {}, LARGE)]


def transpose_ref(x, perm=None):
    return np.transpose(x, perm)


def transpose_errors():
    x = np.ones((2, 3), np.float32)
    return [ErrorInput((x,), {"perm": (0, 0)}, ValueError,
                       r"tj\.transpose: perm \(0, 0\) is not a permutation .*\(2, 3\)"),
            ErrorInput((x,), {"perm": (0, 1, 2)}, ValueError,
                       r"tj\.transpose: perm .* is not a permutation .*\(2, 3\)")]


MATRIX_TRANSPOSE = [(((2, 3),), {}), (((2, 3, 2),), {}), ((transposed(3, 2),), {}), (((1, 2, 1),), {}),
                    (((0, 3),), {}, FORWARD), (((2, 7, 9),), {}, LARGE)]


def matrix_transpose_errors():
    return [ErrorInput((np.ones((3,), np.float32),), {}, ValueError, r"tj\.matrix_transpose: .*shape \(3,\)")]


# --------------------------------------------------------- expand/squeeze
EXPAND = [(((),), {"axis": 0}), (((5,),), {"axis": 1}), ((transposed(3, 2),), {"axis": 1}),
          (((2, 3),), {"axis": -1}), (((2, 3),), {"axis": 1}),
          (((2, 3),), {"axis": -3}), (((0, 2),), {"axis": 0}, FORWARD), (((7, 9),), {"axis": 1}, LARGE)]


def expand_errors():
    return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 3}, ValueError,
                       r"tj\.expand_dims: axis 3 is out of range for a tensor of rank 2")]


SQUEEZE = [(((1, 3, 1),), {}), (((1, 3, 1),), {"axis": 0}), (((),), {}), ((strided(1, 3),), {}),
           (((1, 3, 1),), {"axis": [-1]}),
           (((2, 1),), {"axis": -1}), (((1,),), {}), (((1, 1),), {"axis": (0, 1)}),
           (((0, 1),), {"axis": 1}, FORWARD), (((7, 1, 9),), {}, LARGE)]


def squeeze_ref(x, axis=None):
    return np.squeeze(x, tuple(axis) if isinstance(axis, list) else axis)


def squeeze_errors():
    return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 1}, ValueError,
                       r"tj\.squeeze: cannot squeeze axis 1 of size 3 \(tensor of shape \(2, 3\)\)")]


BROADCAST_TO = [(((),), {"shape": (2, 3)}), (((3,),), {"shape": (2, 3)}), (((3, 1),), {"shape": (2, 3, 4)}),
                (((1, 1),), {"shape": (1, 2)}), (((2, 3),), {"shape": (2, 3)}),
                ((strided(3,),), {"shape": (2, 1, 3)}),
                (((1,),), {"shape": (0,)}, FORWARD), (((0,),), {"shape": (2, 0)}, FORWARD),
                (((9,),), {"shape": (7, 9)}, LARGE)]


def broadcast_to_errors():
    return [ErrorInput((np.ones((2, 3), np.float32),), {"shape": (4, 3)}, ValueError,
                       r"tj\.broadcast_to: .*shape \(2, 3\).*\(4, 3\)"),
            ErrorInput((np.ones((2, 3), np.float32),), {"shape": (3,)}, ValueError,
                       r"tj\.broadcast_to: .*shape \(2, 3\).*\(3,\)")]


# ---------------------------------------------------- concat/stack/unstack/split
def concat_op(*xs, axis):
    return tj.concat(list(xs), axis)


def concat_ref(*xs, axis):
    return np.concatenate(xs, axis)


CONCAT = [(((2,), (3,)), {"axis": 0}), (((2, 3), (2, 1), (2, 2)), {"axis": 1}), (((2, 3), (1, 3)), {"axis": -2}),
          ((transposed(3, 2), (1, 2)), {"axis": 0}), (((2, 2, 2), (2, 1, 2)), {"axis": 1}),
          (((1, 2),), {"axis": 0}),
          (((0, 3), (2, 3)), {"axis": 0}, FORWARD), (((2, 0), (2, 0)), {"axis": 1}, FORWARD),
          (((7, 4), (7, 5)), {"axis": 1}, LARGE)]


def concat_errors():
    f32 = np.ones((2, 3), np.float32)
    return [ErrorInput((f32, np.ones((3, 3), np.float32)), {"axis": 1}, ValueError,
                       r"tj\.concat: values\[1\] has shape \(3, 3\) but values\[0\] has shape \(2, 3\); "
                       r"all dimensions except axis 1 must match"),
            ErrorInput((f32, np.ones((2, 3), np.float64)), {"axis": 0}, TypeError,
                       r"tj\.concat: values\[1\] has shape \(2, 3\) and dtype float64 but values\[0\] .*float32"),
            ErrorInput((f32, np.ones((2,), np.float32)), {"axis": 0}, ValueError,
                       r"tj\.concat: values\[1\] has shape \(2,\)"),
            ErrorInput((f32,), {"axis": 2}, ValueError,
                       r"tj\.concat: axis 2 is out of range for a tensor of rank 2"),
            ErrorInput((np.float32(1.0), np.float32(2.0)), {"axis": 0}, ValueError,
                       r"tj\.concat: cannot concatenate 0-d"),
            ErrorInput((), {"axis": 0}, ValueError, r"tj\.concat: values is empty")]


def stack_op(*xs, axis=0):
    return tj.stack(list(xs), axis)


def stack_ref(*xs, axis=0):
    return np.stack(xs, axis)


STACK = [(((), ()), {}), (((2,), (2,), (2,)), {"axis": 1}), (((2, 3), (2, 3)), {"axis": -1}),
         ((transposed(3, 2), (3, 2)), {"axis": 1}), (((2, 2),), {}),
         (((0, 3), (0, 3)), {"axis": 1}, FORWARD), (((7, 9), (7, 9)), {}, LARGE)]


def stack_errors():
    return [ErrorInput((np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)), {}, ValueError,
                       r"tj\.stack: values\[1\] has shape \(3, 2\) but values\[0\] has shape \(2, 3\)"),
            ErrorInput((np.ones((2, 3), np.float32), np.ones((2, 3), np.float64)), {}, TypeError,
                       r"tj\.stack: .*float64.*float32"),
            ErrorInput((np.ones((2, 3), np.float32),), {"axis": 3}, ValueError,
                       r"tj\.stack: axis 3 is out of range"),
            ErrorInput((), {}, ValueError, r"tj\.stack: values is empty")]


UNSTACK = [(((2, 3),), {}), (((2, 3),), {"axis": 1}), (((3, 1, 2),), {"axis": -1}), (((1,),), {}),
           ((transposed(3, 2),), {"axis": 0}), (((0, 2),), {"axis": 1}, FORWARD), (((7, 9),), {}, LARGE)]


def unstack_ref(x, axis=0):
    return [np.take(x, i, axis=axis) for i in range(x.shape[axis])]


def unstack_errors():
    return [ErrorInput((np.ones((2, 3), np.float32),), {"axis": 2}, ValueError,
                       r"tj\.unstack: axis 2 is out of range for a tensor of rank 2")]


SPLIT = [(((6,),), {"num_or_size_splits": 3}), (((2, 6),), {"num_or_size_splits": [1, 2, 3], "axis": 1}),
         (((4, 3),), {"num_or_size_splits": [1, -1], "axis": 0}), (((2, 4),), {"num_or_size_splits": 2, "axis": -1}),
         (((3, 2),), {"num_or_size_splits": [0, 3]}), ((transposed(4, 2),), {"num_or_size_splits": 2}),
         (((0, 4),), {"num_or_size_splits": 2, "axis": 1}, FORWARD),
         (((7, 9),), {"num_or_size_splits": 3, "axis": 1}, LARGE)]


def split_ref(x, num_or_size_splits, axis=0):
    if isinstance(num_or_size_splits, int):
        return np.split(x, num_or_size_splits, axis)
    sizes = list(num_or_size_splits)
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return np.split(x, np.cumsum(sizes)[:-1], axis)


def split_errors():
    x = np.ones((2, 5), np.float32)
    return [ErrorInput((x, 2), {"axis": 1}, ValueError,
                       r"tj\.split: axis 1 of size 5 \(tensor of shape \(2, 5\)\) "
                       r"cannot be split into 2 equal parts"),
            ErrorInput((x, [1, 2]), {"axis": 1}, ValueError,
                       r"tj\.split: sizes \[1, 2\] do not add up to axis 1 of size 5")]


# ---------------------------------------------------------------- tile/pad
TILE = [(((2, 3),), {"multiples": (2, 1)}), (((3,),), {"multiples": [3]}), (((2, 1, 2),), {"multiples": (1, 3, 2)}),
        (((),), {"multiples": ()}), ((transposed(3, 2),), {"multiples": (1, 2)}),
        (((0, 2),), {"multiples": (2, 2)}, FORWARD), (((2, 3),), {"multiples": (0, 1)}, FORWARD),
        (((7, 9),), {"multiples": (2, 1)}, LARGE)]


def tile_ref(x, multiples):
    return np.tile(x, multiples)


def tile_errors():
    return [ErrorInput((np.ones((2, 3), np.float32), (2,)), {}, ValueError,
                       r"tj\.tile: multiples \(2,\) must have one entry per axis of the input of shape \(2, 3\)")]


PAD = [(((2, 3),), {"paddings": [[1, 0], [2, 1]]}), (((3,),), {"paddings": [[0, 2]], "constant_values": 1.5}),
       (((2, 1, 2),), {"paddings": ((0, 0), (1, 1), (0, 1))}), (((),), {"paddings": np.zeros((0, 2), np.int32)}),
       ((transposed(3, 2),), {"paddings": [[1, 1], [0, 0]]}),
       (((0, 2),), {"paddings": [[1, 1], [0, 0]]}, FORWARD), (((7, 9),), {"paddings": [[1, 2], [3, 0]]}, LARGE)]


def pad_samples(dtype, rng):
    out = cases(PAD)(dtype, rng)
    if dtype.kind != "f":  # a constant of the tensor's kind
        c = True if dtype.kind == "b" else 2
        out = [Sample(s.args, {**s.kwargs, "constant_values": c} if "constant_values" in s.kwargs else s.kwargs,
                      s.use) for s in out]
    return out


def pad_ref(x, paddings, constant_values=0):
    if np.ndim(x) == 0:
        return np.array(x)
    return np.pad(x, np.asarray(paddings, np.int64).reshape(-1, 2), constant_values=constant_values)


def pad_errors():
    x = np.ones((2, 3), np.float32)
    return [ErrorInput((x, [[1, 1]]), {}, ValueError,
                       r"tj\.pad: paddings must have shape \(2, 2\) for a tensor of shape \(2, 3\)"),
            ErrorInput((x, [[1, 1], [-1, 0]]), {}, ValueError, r"tj\.pad: paddings .* non-negative .*\(2, 3\)"),
            ErrorInput((x, [[1, 1], [0, 0]]), {"mode": "REFLECT"}, ValueError,
                       r"tj\.pad: mode 'REFLECT' is not supported"),
            ErrorInput((np.ones((2, 3), np.int32), [[1, 1], [0, 0]]), {"constant_values": 0.5}, TypeError,
                       r"tj\.pad: cannot convert Python float 0\.5 to a tensor of dtype int32")]


# ------------------------------------------------------------------- slice
SLICE = [(((4,),), {"begin": [1], "size": [2]}), (((3, 4),), {"begin": (1, 0), "size": (2, -1)}),
         (((2, 3, 2),), {"begin": [0, 1, 1], "size": [-1, 2, 1]}), (((),), {"begin": [], "size": []}),
         ((transposed(3, 4),), {"begin": [1, 1], "size": [2, 2]}),
         (((3, 4),), {"begin": [1, 2], "size": [0, 2]}, FORWARD),
         (((0, 3),), {"begin": [0, 1], "size": [0, 2]}, FORWARD),
         (((7, 9),), {"begin": [1, 2], "size": [5, -1]}, LARGE)]


def slice_ref(x, begin, size):
    index = tuple(slice(b, None if n == -1 else b + n) for b, n in zip(begin, size))
    return np.array(x[index])


def slice_errors():
    x = np.ones((3, 4), np.float32)
    return [ErrorInput((x, [1], [2]), {}, ValueError,
                       r"tj\.slice: begin \(1,\) and size \(2,\) need one entry per axis .*\(3, 4\)"),
            ErrorInput((x, [2, 0], [2, 1]), {}, ValueError,
                       r"tj\.slice: axis 0: begin 2 and size 2 do not fit size 3")]


# ------------------------------------------------------------------ gather
def gather_samples(dtype, rng):
    def idx(values, index_dtype=I32):
        return np.asarray(values, index_dtype)
    out = [Sample((make((5,), dtype, rng), idx([4, 0, 2]))),
           Sample((make((4, 3), dtype, rng), idx([1, 1, 3, 1], I64))),  # repeats: the gradient scatter-adds
           Sample((make((2, 4), dtype, rng), idx([[0, 3], [-1, 1]])), {"axis": 1}),  # 2-d indices, negative index
           Sample((make((2, 3, 2), dtype, rng), idx(2)), {"axis": -2}),  # 0-d index drops the axis
           Sample((make((3, 2), dtype, rng).T, idx([2, 0, 2])), {"axis": 1}),
           Sample((make((3,), dtype, rng), idx(np.zeros(0, np.int32))), {}, FORWARD),
           Sample((make((0, 3), dtype, rng), idx([1, 0])), {"axis": 1}, FORWARD),
           Sample((make((7, 9), dtype, rng), idx([[8, 0, 3], [3, 3, 1]])), {"axis": 1}, LARGE)]
    return _forward_for_non_floats(out, dtype)


def gather_ref(params, indices, axis=None):
    return np.take(params, indices, axis=0 if axis is None else axis)


def gather_errors():
    x = np.ones((3, 4), np.float32)
    return [ErrorInput((x, np.array([0, 3], np.int32)), {}, IndexError,
                       r"tj\.gather: index 3 is out of range for axis 0 of size 3"),
            ErrorInput((x, np.array([0, -5], np.int32)), {"axis": 1}, IndexError,
                       r"tj\.gather: index -5 is out of range for axis 1 of size 4"),
            ErrorInput((x, np.array([0.0, 1.0], np.float32)), {}, TypeError,
                       r"tj\.gather: indices have shape \(2,\) and dtype float32; they must be int32 or int64"),
            ErrorInput((x, np.array([0], np.int32)), {"axis": 2}, ValueError, r"tj\.gather: axis 2 is out of range")]


# --------------------------------------------------------------- getitem
def getitem_op(x, *, key):
    return x[key] if isinstance(x, tj.Tensor) else tj.constant(x)[key]


def getitem_ref(x, *, key):
    return np.array(x[key])


def getitem_samples(dtype, rng):
    keys2 = [1, -1, (0, 2), slice(None), slice(1, None), (slice(None), slice(None, None, 2)),
             slice(None, None, -1), (slice(None), slice(None, None, -2)), (slice(2, 0, -1), -1),
             (None, 1), (Ellipsis, 1), (1, Ellipsis), (slice(None), None, slice(None, 2)), Ellipsis,
             np.array([2, 0, 0]), (slice(None), np.array([[3, 0], [1, 1]])), (slice(1, None), np.array([-1, 0]))]
    out = [Sample((make((3, 4), dtype, rng),), {"key": k}) for k in keys2]
    out += [Sample((make((2, 3, 2), dtype, rng),), {"key": (Ellipsis, slice(None, None, -1), 0)}),
            Sample((make((2, 3, 2), dtype, rng),), {"key": (1, None, Ellipsis, None)}),
            Sample((make((5,), dtype, rng),), {"key": slice(-2, None)}),
            Sample((make((5,), dtype, rng),), {"key": slice(10, -10, -2)}),
            Sample((make((5,), dtype, rng),), {"key": tj.constant(3)}),
            Sample((make((5,), dtype, rng),), {"key": tj.constant([1, 1, 4])}),
            Sample((make((), dtype, rng),), {"key": ()}),
            Sample((make((), dtype, rng),), {"key": None}),
            Sample((make(transposed(4, 3), dtype, rng),), {"key": (slice(None, None, -1), 1)}),
            Sample((make((5,), dtype, rng),), {"key": slice(3, 1)}, FORWARD),
            Sample((make((0, 3), dtype, rng),), {"key": (slice(None), 1)}, FORWARD),
            Sample((make((7, 9), dtype, rng),), {"key": (slice(None, None, 2), slice(8, 0, -3))}, LARGE)]
    return _forward_for_non_floats(out, dtype)


def getitem_errors():
    x = np.ones((3, 4), np.float32)
    return [ErrorInput((x,), {"key": 3}, IndexError,
                       r"tj\.__getitem__: index 3 is out of range for axis 0 of size 3 "
                       r"\(tensor of shape \(3, 4\)\)"),
            ErrorInput((x,), {"key": (0, 1, 2)}, IndexError,
                       r"tj\.__getitem__: too many indices \(3\) for a tensor of shape \(3, 4\)"),
            ErrorInput((x,), {"key": (Ellipsis, Ellipsis)}, IndexError,
                       r"tj\.__getitem__: an index can only have a single ellipsis"),
            ErrorInput((x,), {"key": (np.array([0]), np.array([1]))}, TypeError,
                       r"tj\.__getitem__: only one integer tensor"),
            ErrorInput((x,), {"key": "a"}, TypeError, r"tj\.__getitem__: unsupported index 'a' of type str"),
            ErrorInput((x,), {"key": np.array([True, False, True])}, TypeError,
                       r"tj\.__getitem__: boolean mask indexing is not supported")]


# ----------------------------------------------------------------- one_hot
def one_hot_samples(dtype, rng):
    return [Sample((np.array([0, 2, 1, 2], dtype), 3), {}, FORWARD),
            Sample((np.array([[0, 1], [3, -1]], dtype), 4), {"on_value": 5.0, "off_value": -1.0}, FORWARD),
            Sample((np.array(1, dtype), 3), {"dtype": tj.float64}, FORWARD),
            Sample((np.array([[0, 1, 2]], dtype), 3), {"axis": 0, "dtype": tj.int32}, FORWARD),
            Sample((np.array([2, 0], dtype), 3), {"axis": 0}, FORWARD),
            Sample((np.array([[0, 1, 2], [2, 2, 0]], dtype).T, 3), {}, FORWARD),
            Sample((np.zeros((0,), dtype), 2), {}, FORWARD)]


def one_hot_ref(indices, depth, on_value=None, off_value=None, axis=-1, dtype=None):
    target = np.dtype(F32 if dtype is None else getattr(dtype, "_np", dtype))
    hot = np.asarray(indices)[..., None] == np.arange(depth)
    out = np.where(hot, 1 if on_value is None else on_value, 0 if off_value is None else off_value).astype(target)
    return np.moveaxis(out, -1, axis)


# ------------------------------------------------------------------ table
def entry(name, op, ref, specs_or_samples, primitives, errors=None, dtypes=ANY, **kw):
    samples = cases(specs_or_samples) if isinstance(specs_or_samples, list) else specs_or_samples
    return OpInfo(name=name, op=op, ref=ref, samples=samples, dtypes=dtypes, primitives=primitives,
                  error_inputs=errors, **kw)


OPS = [
    entry("reshape", tj.reshape, reshape_ref, RESHAPE, ("reshape",), reshape_errors),
    entry("transpose", tj.transpose, transpose_ref, TRANSPOSE, ("transpose",), transpose_errors),
    entry("matrix_transpose", tj.linalg.matrix_transpose, lambda x: np.swapaxes(x, -1, -2), MATRIX_TRANSPOSE,
          ("transpose",), matrix_transpose_errors),
    entry("expand_dims", tj.expand_dims, np.expand_dims, EXPAND, ("reshape",), expand_errors),
    entry("squeeze", tj.squeeze, squeeze_ref, SQUEEZE, ("reshape",), squeeze_errors),
    entry("broadcast_to", tj.broadcast_to, np.broadcast_to, BROADCAST_TO, ("broadcast_to",), broadcast_to_errors),
    entry("concat", concat_op, concat_ref, CONCAT, ("concat",), concat_errors, error_name="tj.concat"),
    entry("stack", stack_op, stack_ref, STACK, ("reshape", "concat"), stack_errors),
    entry("unstack", tj.unstack, unstack_ref, UNSTACK, ("strided_slice", "reshape", "slice_grad"), unstack_errors),
    entry("split", tj.split, split_ref, SPLIT, ("strided_slice", "slice_grad"), split_errors),
    entry("tile", tj.tile, tile_ref, TILE, ("tile", "reshape", "reduce_sum"), tile_errors),
    entry("pad", tj.pad, pad_ref, pad_samples, ("pad", "strided_slice"), pad_errors),
    entry("slice", tj.slice, slice_ref, SLICE, ("strided_slice", "slice_grad"), slice_errors),
    entry("gather", tj.gather, gather_ref, gather_samples, ("gather", "scatter_add"), gather_errors),
    entry("getitem", getitem_op, getitem_ref, getitem_samples, ("strided_slice", "reshape", "gather", "slice_grad",
                                                                 "scatter_add"),
          getitem_errors, error_name="tj.__getitem__"),
    entry("one_hot", tj.one_hot, one_hot_ref, one_hot_samples, ("equal", "reshape", "cast", "select", "transpose"),
          dtypes=INTS, supports_grad=False, supports_gradgrad=False),
]

