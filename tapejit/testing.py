"""tj.testing: gradient checking and ulp error measurement for users' own functions and ops."""
from tapejit.tracer.testing import check_grads, ulp_error

__all__ = ["check_grads", "ulp_error"]
