"""tapejit: TensorFlow 2's eager tensors and GradientTape, with a JIT compiler.

>>> import tapejit as tj
>>> x = tj.ones((2, 2))
>>> with tj.GradientTape() as t:
...     t.watch(x)
...     z = tj.reduce_sum(x) ** 2
>>> t.gradient(z, x).numpy().tolist()
[[8.0, 8.0], [8.0, 8.0]]
"""
from tapejit import tracer as _tracer
from tapejit.tracer.dtypes import DType, as_dtype, bool_ as bool, float32, float64, int32, int64  # noqa: A001
from tapejit.tracer.errors import CompileError, DTypeConversionError, DTypeError, ShapeError, TapejitError
from tapejit.tracer.tape import GradientTape, UnconnectedGradients, custom_gradient
from tapejit.tracer.tensor import Tensor, Variable
from tapejit.runtime.compiled import CompiledFunction, compile, tj_print as print  # noqa: A001
from tapejit.compiler.ir import IRError
from tapejit.runtime.kernel_cache import KernelCacheWarning

from . import config, linalg, math, nn, random, testing  # noqa: F401

__version__ = "0.1.0"

globals().update(_tracer.PUBLIC)

__all__ = sorted(
    ["DType", "as_dtype", "bool", "float32", "float64", "int32", "int64", "CompileError", "DTypeConversionError",
     "DTypeError", "ShapeError", "TapejitError", "GradientTape", "UnconnectedGradients", "custom_gradient", "Tensor", "Variable",
     "linalg", "math", "nn", "random", "testing", "config", "compile", "CompiledFunction", "print",
     "IRError", "KernelCacheWarning"] + list(_tracer.PUBLIC))
