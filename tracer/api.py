"""Creating tensors: constant, zeros, ones, fill, range, eye, random."""
import numpy as np

from . import core
from . import dtypes as dt
from .ops.elementwise import PUBLIC


def _public(fn):
    PUBLIC[fn.__name__] = fn
    return fn


def _shape(op, shape):
    if isinstance(shape, (core.Tensor, core.Variable)):
        shape = np.asarray(shape).tolist()
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"tj.{op}: shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"tj.{op}: shape {shape} has a negative dimension")
    return shape


@_public
def constant(value, dtype=None, shape=None, name=None):
    """A tensor holding a copy of `value` (Python floats -> float32, ints -> int32)."""
    if type(value) in core.WEAK_SCALARS:  # a traced Python float: stays traced
        tensor = core.convert(value, dtype)
    elif isinstance(value, (core.Tensor, core.Variable)):
        tensor = core.convert(value)
        if dtype is not None:
            from .ops.elementwise import cast
            tensor = cast(tensor, dtype)
    else:
        tensor = core.wrap(core.to_array(value, None if dtype is None else dt.numpy_dtype(dtype)))
    if shape is not None:
        shape = _shape("constant", shape)
        array = np.asarray(tensor._value)
        if array.size == 1:
            array = np.full(shape, array.reshape(()), array.dtype)
        elif array.size == int(np.prod(shape)):
            array = array.reshape(shape)
        else:
            # TypeError, as TF's "Eager execution of tf.constant with unsupported shape"
            raise TypeError(f"tj.constant: cannot give a value with {array.size} elements the shape {shape}")
        tensor = core.wrap(array)
    return tensor


@_public
def convert_to_tensor(value, dtype=None, dtype_hint=None, name=None):
    if dtype is None and dtype_hint is not None and not isinstance(value, (core.Tensor, core.Variable,
                                                                           np.ndarray, np.generic)):
        try:
            return core.convert(value, dtype_hint)
        except (TypeError, ValueError):
            pass
    return core.convert(value, dtype)


@_public
def zeros(shape, dtype=dt.float32, name=None):
    return core.wrap(np.zeros(_shape("zeros", shape), dt.numpy_dtype(dtype)))


@_public
def ones(shape, dtype=dt.float32, name=None):
    return core.wrap(np.ones(_shape("ones", shape), dt.numpy_dtype(dtype)))


@_public
def fill(dims, value, name=None):
    """A tensor of shape `dims` filled with `value` (a broadcast, so compiled code
    reads a traced value at run time)."""
    from .ops.shape import broadcast_to, reshape
    v = core.convert(value, op="fill")
    if v._value.ndim != 0:
        v = reshape(v, ())
    return broadcast_to(v, _shape("fill", dims)) if _shape("fill", dims) != () else v


@_public
def range(start, limit=None, delta=1, dtype=None, name="range"):
    """tf.range: ints give int32, any float gives float32, unless dtype says otherwise."""
    if limit is None:
        start, limit = 0, start
    values = [np.asarray(v).item() if isinstance(v, (core.Tensor, core.Variable)) else v
              for v in (start, limit, delta)]
    if dtype is None:
        dtype = dt.float32 if any(isinstance(v, float) for v in values) else dt.int32
    return core.wrap(np.arange(*values, dtype=dt.numpy_dtype(dtype)))


@_public
def linspace(start, stop, num, name=None, axis=0):
    return core.wrap(np.linspace(float(start), float(stop), int(num), dtype=np.float32))


@_public
def eye(num_rows, num_columns=None, batch_shape=None, dtype=dt.float32, name=None):
    array = np.eye(num_rows, num_columns, dtype=dt.numpy_dtype(dtype))
    if batch_shape is not None:
        array = np.broadcast_to(array, _shape("eye", batch_shape) + array.shape).copy()
    return core.wrap(array)


@_public
def shape(input, out_type=dt.int32, name=None):
    return core.wrap(np.asarray(core.convert(input, op="shape")._value.shape, dt.numpy_dtype(out_type)))


@_public
def size(input, out_type=dt.int32, name=None):
    return core.wrap(dt.numpy_dtype(out_type).type(core.convert(input, op="size")._value.size))


@_public
def rank(input, name=None):
    return core.wrap(np.int32(core.convert(input, op="rank")._value.ndim))


# ------------------------------------------------------------------ random
class _Random:
    """Global seed plus per-op-seed generators: with a seed, a program gives the
    same sequence every run (as tf.random with set_seed and op seeds)."""

    def __init__(self):
        self.global_seed = None
        self.generators = {}
        self.default = np.random.default_rng()

    def generator(self, seed):
        if seed is None and self.global_seed is None:
            return self.default
        key = (self.global_seed, seed)
        if key not in self.generators:
            self.generators[key] = np.random.default_rng([0 if s is None else int(s) for s in key])
        return self.generators[key]


RANDOM = _Random()


def set_seed(seed):
    RANDOM.global_seed = int(seed)
    RANDOM.generators.clear()


def normal(shape, mean=0.0, stddev=1.0, dtype=dt.float32, seed=None, name=None):
    rng = RANDOM.generator(seed)
    values = rng.standard_normal(_shape("random.normal", shape)) * stddev + mean
    return core.wrap(np.asarray(values, dt.numpy_dtype(dtype)))


def uniform(shape, minval=0, maxval=None, dtype=dt.float32, seed=None, name=None):
    np_dtype = dt.numpy_dtype(dtype)
    rng = RANDOM.generator(seed)
    shape = _shape("random.uniform", shape)
    if np_dtype.kind in "iu":
        if maxval is None:
            raise ValueError("tj.random.uniform: integer dtypes need an explicit maxval")
        return core.wrap(rng.integers(minval, maxval, shape, dtype=np_dtype))
    maxval = 1.0 if maxval is None else maxval
    return core.wrap(np.asarray(rng.uniform(minval, maxval, shape), np_dtype))
