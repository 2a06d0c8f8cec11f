"""Exception classes. Each refines the builtin a caller would catch anyway."""


class TapejitError(Exception):
    """Base class of every error tapejit raises on purpose."""


class ShapeError(TapejitError, ValueError):
    """Shapes that do not fit an op: broadcasting, matmul inner dims, reshape sizes."""


class DTypeError(TapejitError, TypeError):
    """A dtype an op does not accept, or two tensors of different dtypes."""


class CompileError(TapejitError, RuntimeError):
    """The backend could not compile generated code (a tapejit bug or an unsupported
    case): names the IR equations, the user's lines and the generated source; the
    backend's own error is the __cause__."""


class DTypeConversionError(DTypeError, ValueError):
    """A tensor asked to become another dtype without tj.cast (convert_to_tensor,
    Variable.assign). TensorFlow raises ValueError here, so this is both."""


def describe(x):
    """'shape (2, 3) and dtype float32' for a tensor-like value."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    name = getattr(dtype, "name", dtype)
    return f"shape {tuple(shape) if shape is not None else '?'} and dtype {name}"


def type_name(value):
    """The name of value's type as the caller knows it. A stand-in the tracer
    passes for a Python value declares what it stands for (a Python float while
    tracing is a WeakFloat whose `stands_for` is "float")."""
    return getattr(type(value), "stands_for", None) or type(value).__name__
