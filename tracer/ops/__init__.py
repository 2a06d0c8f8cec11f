"""The op registry, one module per family; importing this package registers every primitive."""
from . import elementwise, reduce, shape, index, linalg  # noqa: F401
