"""tj.testing: gradient checking for users' own functions and ops."""
from tapejit.tracer.testing import check_grads

__all__ = ["check_grads"]
