"""tj.math: the elementwise, reduction and scan ops under TensorFlow's tf.math names."""
from tapejit.tracer import PUBLIC as _ops

_NAMES = """add subtract multiply divide negative pow square sqrt rsqrt reciprocal exp log log1p expm1 sin cos
tan tanh sigmoid softplus erf abs sign maximum minimum floor ceil round floordiv floormod equal not_equal less
less_equal greater greater_equal logical_and logical_or logical_xor logical_not is_nan is_inf is_finite
reduce_sum reduce_mean reduce_max reduce_min reduce_prod reduce_logsumexp reduce_variance reduce_std
reduce_any reduce_all argmax argmin cumsum cumprod squared_difference log_softmax""".split()

globals().update({name: _ops[name] for name in _NAMES})
truediv = _ops["divide"]
floor_div = _ops["floordiv"]
mod = _ops["floormod"]
__all__ = _NAMES + ["truediv", "floor_div", "mod"]
