"""tj.linalg: matrix products under TensorFlow's tf.linalg names."""
from tapejit.tracer.ops.linalg import einsum, matmul, tensordot
from tapejit.tracer.ops.shape import matrix_transpose

__all__ = ["einsum", "matmul", "tensordot", "matrix_transpose"]
