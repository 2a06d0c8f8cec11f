"""tj.random: normal and uniform tensors, seeded like tf.random."""
from tapejit.tracer.api import normal, set_seed, uniform

__all__ = ["normal", "uniform", "set_seed"]
