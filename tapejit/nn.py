"""tj.nn: activations and losses under TensorFlow's tf.nn names."""
from tapejit.tracer import PUBLIC as _ops

_NAMES = """relu relu6 elu selu gelu silu leaky_relu softplus sigmoid tanh softmax log_softmax
sigmoid_cross_entropy_with_logits softmax_cross_entropy_with_logits sparse_softmax_cross_entropy_with_logits
l2_loss""".split()

globals().update({name: _ops[name] for name in _NAMES})
swish = _ops["silu"]
__all__ = _NAMES + ["swish"]
