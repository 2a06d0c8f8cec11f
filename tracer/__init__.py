"""Eager tensors, the op registry and the gradient tape.

Importing this package registers every primitive. Nothing here imports the
compiler: dependencies point runtime -> compiler -> tracer.
"""
from . import core, dtypes, errors, nest  # noqa: F401
from . import tensor  # noqa: F401  (sets core.Tensor and core.Variable)
from . import ops  # noqa: F401
from . import tape, composites, api, operators  # noqa: F401
from .ops.elementwise import PUBLIC  # noqa: F401
