"""Exception classes. Each refines the builtin a caller would catch anyway."""


class TapejitError(Exception):
    """Base class of every error tapejit raises on purpose."""


class ShapeError(TapejitError, ValueError):
    """Shapes that do not fit an op: broadcasting, matmul inner dims, reshape sizes."""


class DTypeError(TapejitError, TypeError):
    """A dtype an op does not accept, or two tensors of different dtypes."""


class DTypeConversionError(DTypeError, ValueError):
    """A tensor asked to become another dtype without tj.cast (convert_to_tensor,
    Variable.assign). TensorFlow raises ValueError here, so this is both."""


def describe(x):
    """'shape (2, 3) and dtype float32' for a tensor-like value."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    name = getattr(dtype, "name", dtype)
    return f"shape {tuple(shape) if shape is not None else '?'} and dtype {name}"
