"""Tensors and Variables: dtype inference, no promotion, operators, indexing,
repr, conversions, immutability, creation functions (TensorFlow 2 semantics)."""
import operator

import numpy as np
import pytest

import tapejit as tj


def values(t):
    return np.asarray(t.numpy())


def check(t, expected, dtype):
    """t is a tj.Tensor of `dtype` whose values equal `expected`."""
    assert type(t) is tj.Tensor
    assert t.dtype == dtype, (t.dtype, dtype)
    expected = np.asarray(expected)
    assert t.shape == expected.shape
    np.testing.assert_array_equal(values(t), expected)


# ------------------------------------------------------------ dtype inference
@pytest.mark.parametrize("value, dtype, shape", [
    (1.5, tj.float32, ()),
    (3, tj.int32, ()),
    (True, tj.bool, ()),
    (2**40, tj.int64, ()),
    (-2**31, tj.int32, ()),
    (2**31, tj.int64, ()),
    ([1.0, 2.0], tj.float32, (2,)),
    ([[1, 2], [3, 4]], tj.int32, (2, 2)),
    ([[1.0, 2], [3, 4]], tj.float32, (2, 2)),   # ints and floats mixed: float32
    ([True, False], tj.bool, (2,)),
    ([1, 2**40], tj.int64, (2,)),
    ([], tj.float32, (0,)),
    ([[[1.0]]], tj.float32, (1, 1, 1)),
])
def test_python_value_dtype_inference(value, dtype, shape):
    t = tj.constant(value)
    assert t.dtype == dtype
    assert t.dtype is dtype
    assert t.shape == shape
    assert t.ndim == len(shape)
    np.testing.assert_array_equal(values(t), np.array(value, dtype=dtype.as_numpy_dtype))
    c = tj.convert_to_tensor(value)
    assert c.dtype is dtype and c.shape == shape


def test_big_int_keeps_exact_value():
    assert tj.constant(2**40).numpy() == 2**40
    assert int(tj.constant(2**40)) == 2**40


@pytest.mark.parametrize("array, dtype", [
    (np.array([1.0, 2.0]), tj.float64),
    (np.array([1.0, 2.0], np.float32), tj.float32),
    (np.arange(3, dtype=np.int64), tj.int64),
    (np.arange(3, dtype=np.int32), tj.int32),
    (np.array([True, False]), tj.bool),
    (np.float64(1.5), tj.float64),
    (np.float32(1.5), tj.float32),
    (np.int64(7), tj.int64),
    (np.zeros((2, 0, 3)), tj.float64),
])
def test_numpy_values_keep_their_dtype(array, dtype):
    t = tj.constant(array)
    assert t.dtype is dtype
    assert t.shape == np.shape(array)
    np.testing.assert_array_equal(values(t), array)
    assert tj.convert_to_tensor(array).dtype is dtype


def test_nested_list_of_tensors_and_numpy_floats():
    t = tj.convert_to_tensor([tj.constant(1.0), tj.constant(2.0)])
    check(t, [1.0, 2.0], tj.float32)
    t = tj.constant([np.float64(1.0), np.float64(2.0)])
    assert t.dtype is tj.float64


@pytest.mark.parametrize("np_dtype", [np.float16, np.uint8, np.int8, np.int16, np.uint32,
                                      np.complex64, np.complex128])
def test_unsupported_numpy_dtype_raises_naming_it(np_dtype):
    name = np.dtype(np_dtype).name
    with pytest.raises(TypeError, match=name):
        tj.constant(np.ones(3, np_dtype))
    with pytest.raises(TypeError, match=name):
        tj.convert_to_tensor(np.ones(3, np_dtype))


def test_unconvertible_python_value_raises():
    with pytest.raises(TypeError):
        tj.constant("a string")
    with pytest.raises(TypeError):
        tj.constant(object())


# ---------------------------------------------------------------- dtype names
def test_dtype_objects():
    assert tj.float32.name == "float32"
    assert tj.float64.name == "float64"
    assert tj.int32.name == "int32"
    assert tj.int64.name == "int64"
    assert tj.bool.name == "bool"
    assert tj.float32 == np.float32 and tj.float32 != tj.float64
    assert tj.float32.is_floating and not tj.int32.is_floating
    assert tj.int64.is_integer and tj.bool.is_bool
    assert tj.float32.as_numpy_dtype is np.float32
    assert tj.as_dtype("float64") is tj.float64
    assert tj.as_dtype(np.int64) is tj.int64


# -------------------------------------------------------------- no promotion
@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.pow, tj.maximum, tj.add, tj.multiply])
def test_float32_float64_mix_raises_naming_both(op):
    a = tj.constant([1.0, 2.0])
    b = tj.constant([1.0, 2.0], tj.float64)
    with pytest.raises(TypeError) as info:
        op(a, b)
    assert "float32" in str(info.value) and "float64" in str(info.value)
    with pytest.raises(TypeError) as info:
        op(b, a)
    assert "float32" in str(info.value) and "float64" in str(info.value)


def test_int32_int64_and_int_float_mixes_raise():
    with pytest.raises(TypeError, match="int64"):
        tj.constant([1, 2]) + tj.constant(np.array([1, 2], np.int64))
    with pytest.raises(TypeError, match="int32"):
        tj.constant([1, 2]) * tj.constant([1.0, 2.0])
    with pytest.raises(TypeError):
        tj.matmul(tj.ones((2, 2)), tj.ones((2, 2), tj.float64))


def test_python_scalars_adopt_tensor_dtype():
    check(tj.constant([1.0, 2.0]) * 2, [2.0, 4.0], tj.float32)
    check(2 * tj.constant([1.0, 2.0]), [2.0, 4.0], tj.float32)
    check(tj.constant([1.0, 2.0], tj.float64) * 2.5, [2.5, 5.0], tj.float64)
    check(tj.constant([1, 2]) + 1, [2, 3], tj.int32)
    check(tj.constant(np.array([1, 2], np.int64)) + 1, [2, 3], tj.int64)
    check(1.5 - tj.constant([1.0], tj.float64), [0.5], tj.float64)
    check(tj.constant([1.0, 2.0]) ** 2, [1.0, 4.0], tj.float32)
    check(tj.add(tj.constant([1.0]), 1), [2.0], tj.float32)
    check(tj.maximum(0, tj.constant([-1.0, 1.0], tj.float64)), [0.0, 1.0], tj.float64)


def test_python_float_into_int_tensor_raises():
    t = tj.constant([1, 2])
    with pytest.raises(TypeError):
        t + 1.5
    with pytest.raises(TypeError):
        1.5 * t
    with pytest.raises(TypeError):
        tj.multiply(t, 0.5)


def test_numpy_float64_array_with_float32_tensor_raises():
    t = tj.constant([1.0, 2.0, 3.0])
    with pytest.raises(TypeError) as info:
        np.ones(3) + t
    assert "float64" in str(info.value) and "float32" in str(info.value)
    with pytest.raises(TypeError):
        t + np.ones(3)
    with pytest.raises(TypeError):
        tj.multiply(t, np.arange(3))   # int64 array


# ---------------------------------------------------------------- operators
def test_reflected_operators_with_numpy_on_the_left_return_tensors():
    t = tj.constant([1.0, 2.0, 3.0])
    a = np.full(3, 2.0, np.float32)
    for result, expected in [(a * t, [2.0, 4.0, 6.0]), (a + t, [3.0, 4.0, 5.0]), (a - t, [1.0, 0.0, -1.0]),
                             (a / t, [2.0, 1.0, 2 / 3]), (a ** t, [2.0, 4.0, 8.0]),
                             (a // t, [2.0, 1.0, 0.0]), (a % t, [0.0, 0.0, 2.0])]:
        assert type(result) is tj.Tensor
        assert result.dtype is tj.float32
        np.testing.assert_allclose(values(result), np.asarray(expected, np.float32), rtol=1e-6)
    m = np.eye(3, dtype=np.float32) * 2
    r = m @ tj.reshape(t, (3, 1))
    assert type(r) is tj.Tensor
    check(r, [[2.0], [4.0], [6.0]], tj.float32)
    cmp = a > t
    assert type(cmp) is tj.Tensor
    check(cmp, [True, False, False], tj.bool)


def test_arithmetic_operators():
    x = tj.constant([7.0, -7.0, 2.5])
    y = tj.constant([2.0, 2.0, -0.5])
    check(x + y, [9.0, -5.0, 2.0], tj.float32)
    check(x - y, [5.0, -9.0, 3.0], tj.float32)
    check(x * y, [14.0, -14.0, -1.25], tj.float32)
    check(x / y, [3.5, -3.5, -5.0], tj.float32)
    check(-x, [-7.0, 7.0, -2.5], tj.float32)
    check(+x, [7.0, -7.0, 2.5], tj.float32)
    check(abs(x), [7.0, 7.0, 2.5], tj.float32)
    check(x ** 2, [49.0, 49.0, 6.25], tj.float32)
    check(2.0 ** tj.constant([1.0, 3.0]), [2.0, 8.0], tj.float32)
    check(1 - x, [-6.0, 8.0, -1.5], tj.float32)
    check(1 / tj.constant([4.0]), [0.25], tj.float32)


def test_floordiv_and_mod_follow_python_sign_rules():
    # floor division rounds toward -inf and the remainder has the divisor's sign (tf.math.floormod)
    x = tj.constant([7.0, -7.0, 7.0, -7.0])
    y = tj.constant([2.0, 2.0, -2.0, -2.0])
    check(x // y, [3.0, -4.0, -4.0, 3.0], tj.float32)
    check(tj.constant([7.0, -7.0]) % 3.0, [1.0, 2.0], tj.float32)
    xi = tj.constant([7, -7, 7, -7])
    yi = tj.constant([2, 2, -2, -2])
    check(xi // yi, [3, -4, -4, 3], tj.int32)
    check(xi % 3, [1, 2, 1, 2], tj.int32)
    check(tj.constant([7, -7]) % tj.constant([-3, -3]), [-2, -1], tj.int32)
    check(17 // tj.constant([5]), [3], tj.int32)
    check(17 % tj.constant([5]), [2], tj.int32)


def test_integer_operators_keep_integer_dtypes():
    a = tj.constant([1, 2, 3])
    check(a * a, [1, 4, 9], tj.int32)
    check(a ** 2, [1, 4, 9], tj.int32)
    check(-a, [-1, -2, -3], tj.int32)
    check(abs(tj.constant([-1, 2])), [1, 2], tj.int32)
    # true division of int32 tensors gives float64, as TensorFlow
    check(tj.constant([1, 2]) / tj.constant([2, 4]), [0.5, 0.5], tj.float64)


def test_matmul_operator():
    a = tj.constant([[1.0, 2.0], [3.0, 4.0]])
    b = tj.constant([[5.0], [6.0]])
    check(a @ b, [[17.0], [39.0]], tj.float32)
    check(tj.matmul(a, b), [[17.0], [39.0]], tj.float32)
    batched = tj.ones((3, 2, 4)) @ tj.ones((3, 4, 5))
    check(batched, np.full((3, 2, 5), 4.0), tj.float32)
    with pytest.raises(ValueError):
        a @ tj.ones((3, 1))


def test_comparison_operators_are_elementwise():
    x = tj.constant([1.0, 2.0, 3.0])
    y = tj.constant([3.0, 2.0, 1.0])
    check(x < y, [True, False, False], tj.bool)
    check(x <= y, [True, True, False], tj.bool)
    check(x > y, [False, False, True], tj.bool)
    check(x >= y, [False, True, True], tj.bool)
    check(x == y, [False, True, False], tj.bool)
    check(x != y, [True, False, True], tj.bool)
    check(x > 1.5, [False, True, True], tj.bool)
    check(2 < x, [False, False, True], tj.bool)
    # comparing with None is plain Python (as TensorFlow 2)
    assert (x == None) is False  # noqa: E711
    assert (x != None) is True  # noqa: E711


def test_tensors_are_unhashable_like_tf2():
    with pytest.raises(TypeError):
        hash(tj.constant(1.0))


def test_logical_operators():
    a = tj.constant([True, True, False, False])
    b = tj.constant([True, False, True, False])
    check(a & b, [True, False, False, False], tj.bool)
    check(a | b, [True, True, True, False], tj.bool)
    check(a ^ b, [False, True, True, False], tj.bool)
    check(~a, [False, False, True, True], tj.bool)


def test_broadcasting_operators():
    check(tj.ones((2, 1)) + tj.constant([1.0, 2.0, 3.0]), [[2.0, 3.0, 4.0]] * 2, tj.float32)
    with pytest.raises(ValueError) as info:
        tj.ones((2, 3)) + tj.ones((4,))
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)


# ------------------------------------------------------------------ indexing
def test_getitem_basics():
    t = tj.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    check(t[0], a[0], tj.float32)
    check(t[-1], a[-1], tj.float32)
    check(t[1:3], a[1:3], tj.float32)
    check(t[::2], a[::2], tj.float32)
    check(t[::-1], a[::-1], tj.float32)
    check(t[:, 1], a[:, 1], tj.float32)
    check(t[..., 0], a[..., 0], tj.float32)
    check(t[0, ...], a[0, ...], tj.float32)
    check(t[...], a[...], tj.float32)
    check(t[None, ..., 1:], a[None, ..., 1:], tj.float32)
    b = np.arange(24.0).reshape(2, 3, 4)
    check(tj.constant(b)[1, ..., 2], b[1, ..., 2], tj.float64)
    check(t[None], a[None], tj.float32)
    check(t[:, None, 2:], a[:, None, 2:], tj.float32)
    check(t[1, 2], a[1, 2], tj.float32)
    assert t[1, 2].shape == ()
    check(t[tj.constant([2, 0])], a[[2, 0]], tj.float32)
    check(t[:, np.array([3, 3, 0])], a[:, [3, 3, 0]], tj.float32)
    check(t[tj.constant(1)], a[1], tj.float32)
    # the SEED's chained indexing
    assert t[2][3].numpy() == 11.0


def test_getitem_errors():
    t = tj.constant([1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        t[3]
    with pytest.raises(IndexError):
        t[-4]
    with pytest.raises(IndexError):
        t[0, 0]
    with pytest.raises(TypeError):
        t["a"]


# ------------------------------------------------------------ repr and str
def test_repr_like_tensorflow():
    assert repr(tj.constant([1.0, 2.0])) == \
        "<tj.Tensor: shape=(2,), dtype=float32, numpy=array([1., 2.], dtype=float32)>"
    assert repr(tj.constant(1.0)) == "<tj.Tensor: shape=(), dtype=float32, numpy=1.0>"
    assert repr(tj.constant(3)) == "<tj.Tensor: shape=(), dtype=int32, numpy=3>"
    assert repr(tj.constant(True)) == "<tj.Tensor: shape=(), dtype=bool, numpy=True>"
    r = repr(tj.constant([[1.0, 2.0], [3.0, 4.0]], tj.float64))
    assert r.startswith("<tj.Tensor: shape=(2, 2), dtype=float64, numpy=\narray([[1., 2.],")
    assert r.endswith(">")
    assert "dtype=int64" in repr(tj.constant(np.arange(2)))


def test_str_like_tensorflow():
    assert str(tj.constant([1.0, 2.0])) == "tj.Tensor([1. 2.], shape=(2,), dtype=float32)"
    assert str(tj.constant(1.0)) == "tj.Tensor(1.0, shape=(), dtype=float32)"
    assert str(tj.constant([1, 2])) == "tj.Tensor([1 2], shape=(2,), dtype=int32)"


# -------------------------------------------------------- numpy interop
def test_numpy_and_array_protocol():
    t = tj.constant([1.0, 2.0])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [1.0, 2.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t).dtype == np.float32
    assert isinstance(t.numpy(), np.ndarray)
    s = tj.constant(2.5).numpy()
    assert isinstance(s, np.float32) and s == 2.5
    assert isinstance(tj.constant(3).numpy(), np.int32)
    assert np.sum(t) == 3.0


def test_numpy_result_is_read_only():
    t = tj.constant([1.0, 2.0])
    a = t.numpy()
    with pytest.raises(ValueError):
        a[0] = 5.0
    b = np.asarray(t)
    with pytest.raises(ValueError):
        b[0] = 5.0
    np.testing.assert_array_equal(values(t), [1.0, 2.0])
    # an explicit copy is writable and independent
    c = np.array(t, copy=True)
    c[0] = 5.0
    np.testing.assert_array_equal(values(t), [1.0, 2.0])


def test_tensors_do_not_alias_the_numpy_array_they_came_from():
    source = np.array([1.0, 2.0, 3.0])
    t = tj.constant(source)
    c = tj.convert_to_tensor(source)
    source[0] = 100.0
    assert t.numpy()[0] == 1.0
    assert c.numpy()[0] == 1.0
    lst = [1.0, 2.0]
    t2 = tj.constant(lst)
    lst[0] = 9.0
    assert t2.numpy()[0] == 1.0


def test_results_do_not_alias_inputs():
    x = tj.constant([1.0, 2.0])
    y = tj.identity(x)
    z = x + 0
    assert y is not x and z is not x
    np.testing.assert_array_equal(values(y), [1.0, 2.0])


# ------------------------------------------------- Python scalar conversions
def test_one_element_conversions():
    assert float(tj.constant(2.5)) == 2.5
    assert float(tj.constant([2.5])) == 2.5
    assert int(tj.constant(7)) == 7
    assert int(tj.constant(7.9)) == 7
    assert bool(tj.constant(True)) is True
    assert bool(tj.constant(0.0)) is False
    assert bool(tj.constant([[1]])) is True
    assert [10, 20, 30][tj.constant(2)] == 30
    assert range(10)[tj.constant(np.int64(3))] == 3
    assert isinstance(float(tj.constant(1.0)), float)
    assert isinstance(int(tj.constant(1)), int)
    if tj.constant(1.0) > 0:
        pass
    else:
        pytest.fail("a one-element comparison must be usable in an if")


def test_multi_element_conversions_raise_like_tensorflow():
    t = tj.constant([1.0, 2.0])
    # bool(): ValueError ("truth value ... ambiguous"); float()/int()/index: TypeError (as NumPy/TF)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        bool(t)
    with pytest.raises(TypeError, match=r"\(2,\)"):
        float(t)
    with pytest.raises(TypeError, match=r"\(2,\)"):
        int(t)
    with pytest.raises(TypeError):
        [1, 2, 3][tj.constant([1, 2])]
    with pytest.raises(TypeError):
        [1, 2, 3][tj.constant(1.0)]  # float tensors are not indices
    with pytest.raises(ValueError):
        if tj.constant([1.0, 2.0]) > 0:
            pass


def test_len_and_iteration():
    t = tj.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3
    for row, expected in zip(rows, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]):
        check(row, expected, tj.float32)
    a, b = tj.constant([1, 2])
    check(a, 1, tj.int32)
    check(b, 2, tj.int32)
    assert len(tj.zeros((0, 3))) == 0 and list(tj.zeros((0, 3))) == []


def test_len_and_iteration_of_scalar_raise():
    s = tj.constant(1.0)
    with pytest.raises(TypeError):
        len(s)
    with pytest.raises(TypeError):
        iter(s)
    with pytest.raises(TypeError):
        for _ in s:
            pass


def test_shape_dtype_ndim_attributes():
    t = tj.zeros((2, 3, 4), tj.float64)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.dtype == tj.float64
    assert t.ndim == 3


# ------------------------------------------------------------------ Variable
def test_variable_basics():
    v = tj.Variable([1.0, 2.0], name="w")
    assert v.shape == (2,)
    assert v.dtype is tj.float32
    assert v.ndim == 1
    assert v.trainable is True
    assert v.name.split(":")[0] == "w"
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
    assert not tj.Variable(1.0, trainable=False).trainable
    assert tj.Variable(1, dtype=tj.float32).dtype is tj.float32
    assert tj.Variable(np.arange(3)).dtype is tj.int64
    assert tj.Variable(lambda: tj.ones((2,))).shape == (2,)


def test_variable_assign_family():
    v = tj.Variable([1.0, 2.0])
    assert v.assign([3.0, 4.0]) is not None
    np.testing.assert_array_equal(v.numpy(), [3.0, 4.0])
    v.assign_add([1.0, 1.0])
    np.testing.assert_array_equal(v.numpy(), [4.0, 5.0])
    v.assign_sub(tj.constant([0.5, 0.5]))
    np.testing.assert_array_equal(v.numpy(), [3.5, 4.5])
    v.assign(np.array([0.0, 1.0], np.float32))
    np.testing.assert_array_equal(v.numpy(), [0.0, 1.0])
    assert v.dtype is tj.float32 and v.shape == (2,)
    i = tj.Variable(5)
    i.assign_add(2)
    assert int(i) == 7 and i.dtype is tj.int32


def test_read_value_is_a_snapshot():
    v = tj.Variable([1.0, 2.0])
    before = v.read_value()
    assert type(before) is tj.Tensor
    view = v.numpy()
    v.assign([5.0, 6.0])
    np.testing.assert_array_equal(values(before), [1.0, 2.0])
    np.testing.assert_array_equal(view, [1.0, 2.0])
    np.testing.assert_array_equal(values(v.read_value()), [5.0, 6.0])


def test_variable_assign_shape_mismatch():
    v = tj.Variable([1.0, 2.0], name="w")
    with pytest.raises(ValueError) as info:
        v.assign([1.0, 2.0, 3.0])
    assert "(2,)" in str(info.value) and "(3,)" in str(info.value)
    with pytest.raises(ValueError):
        v.assign_add(tj.ones((2, 2)))
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])  # untouched


def test_variable_assign_dtype_mismatch():
    v = tj.Variable([1.0, 2.0])
    # TF: convert_to_tensor(value, dtype=v.dtype) raises ValueError for a tensor
    # of another dtype; tapejit's error is also a TypeError (a dtype mismatch).
    for bad in (tj.constant([1.0, 2.0], tj.float64), tj.constant([1, 2])):
        with pytest.raises(TypeError) as info:
            v.assign(bad)
        assert isinstance(info.value, ValueError)
        assert "float32" in str(info.value) and bad.dtype.name in str(info.value)
        with pytest.raises(TypeError):
            v.assign_add(bad)
        with pytest.raises(TypeError):
            v.assign_sub(bad)
    with pytest.raises(TypeError):
        tj.Variable([1, 2]).assign([1.5, 2.5])
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_variable_repr():
    v = tj.Variable([1.0, 2.0], name="w")
    r = repr(v)
    assert r.startswith("<tj.Variable 'w")
    assert "shape=(2,)" in r and "dtype=float32" in r
    assert r.endswith("numpy=array([1., 2.], dtype=float32)>")


def test_variable_usable_as_tensor_everywhere():
    v = tj.Variable([[1.0, 2.0], [3.0, 4.0]])
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    m = tj.constant([[1.0], [1.0]])
    cases = [
        (v + 1, a + 1), (1 + v, 1 + a), (v - 1, a - 1), (1 - v, 1 - a), (v * v, a * a),
        (v / 2, a / 2), (2 / v, 2 / a), (v // 2, a // 2), (v % 2, a % 2), (v ** 2, a ** 2),
        (-v, -a), (abs(v), abs(a)), (v @ m, a @ np.ones((2, 1), np.float32)),
        (a @ v, a @ a), (np.float32(2) * v, 2 * a),
        (tj.exp(v), np.exp(a)), (tj.reduce_sum(v), a.sum()), (tj.matmul(v, m), a @ np.ones((2, 1))),
        (tj.reshape(v, (4,)), a.reshape(4)), (v[0], a[0]), (v[:, 1], a[:, 1]),
        (tj.maximum(v, 2.0), np.maximum(a, 2)), (tj.where(v > 2, v, 0.0), np.where(a > 2, a, 0)),
        (tj.concat([v, v], 0), np.concatenate([a, a])), (tj.stack([v, v]), np.stack([a, a])),
        (tj.transpose(v), a.T), (tj.identity(v), a), (tj.convert_to_tensor(v), a), (tj.constant(v), a),
    ]
    for result, expected in cases:
        assert type(result) is tj.Tensor
        np.testing.assert_allclose(values(result), expected, rtol=1e-6)
    check(v > 2, a > 2, tj.bool)
    check(v == v, np.ones((2, 2), bool), tj.bool)
    assert len(v) == 2
    rows = list(v)
    check(rows[1], [3.0, 4.0], tj.float32)
    np.testing.assert_array_equal(np.asarray(v), a)
    assert float(tj.Variable(2.5)) == 2.5
    assert int(tj.Variable(3)) == 3
    assert [0, 1, 2, 3][tj.Variable(3)] == 3
    assert bool(tj.Variable(True))


def test_variable_float64_and_no_promotion():
    v = tj.Variable([1.0, 2.0], dtype=tj.float64)
    assert v.dtype is tj.float64
    check(v * 2, [2.0, 4.0], tj.float64)
    with pytest.raises(TypeError):
        v + tj.constant([1.0, 2.0])


# ------------------------------------------------------------------ creation
def test_constant_with_dtype_and_shape():
    check(tj.constant(1, dtype=tj.float32), 1.0, tj.float32)
    check(tj.constant([1, 2], dtype=tj.float64), [1.0, 2.0], tj.float64)
    check(tj.constant(1.0, shape=(2, 3)), np.ones((2, 3)), tj.float32)
    check(tj.constant([1, 2, 3, 4], shape=(2, 2)), [[1, 2], [3, 4]], tj.int32)
    check(tj.constant(0, dtype=tj.int64, shape=[3]), [0, 0, 0], tj.int64)
    check(tj.constant(np.array([1.0, 2.0]), dtype=tj.float32), [1.0, 2.0], tj.float32)
    with pytest.raises(TypeError, match=r"\(2, 2\)"):   # TypeError, as TF
        tj.constant([1, 2, 3], shape=(2, 2))
    with pytest.raises(TypeError):
        tj.constant(1.5, dtype=tj.int32)


def test_zeros_ones_fill():
    check(tj.zeros((2, 3)), np.zeros((2, 3)), tj.float32)
    check(tj.ones((2,)), np.ones(2), tj.float32)
    check(tj.ones(3, tj.int32), [1, 1, 1], tj.int32)
    check(tj.zeros((2, 2), dtype=tj.float64), np.zeros((2, 2)), tj.float64)
    check(tj.zeros(()), 0.0, tj.float32)
    check(tj.fill((2, 2), 3), [[3, 3], [3, 3]], tj.int32)
    check(tj.fill([3], 1.5), [1.5, 1.5, 1.5], tj.float32)
    t = tj.constant([[1, 2]], tj.int64)
    check(tj.zeros_like(t), [[0, 0]], tj.int64)
    check(tj.ones_like(tj.constant([1.0, 2.0], tj.float64)), [1.0, 1.0], tj.float64)


def test_range():
    check(tj.range(5), [0, 1, 2, 3, 4], tj.int32)
    check(tj.range(1, 10, 3), [1, 4, 7], tj.int32)
    check(tj.range(5, 0, -2), [5, 3, 1], tj.int32)
    check(tj.range(0.0, 1.0, 0.25), [0.0, 0.25, 0.5, 0.75], tj.float32)
    check(tj.range(3, dtype=tj.float64), [0.0, 1.0, 2.0], tj.float64)
    check(tj.range(0, 2, 0.5), [0.0, 0.5, 1.0, 1.5], tj.float32)


def test_eye():
    check(tj.eye(3), np.eye(3), tj.float32)
    check(tj.eye(2, 3), np.eye(2, 3), tj.float32)
    check(tj.eye(2, dtype=tj.float64), np.eye(2), tj.float64)
    check(tj.eye(2, batch_shape=[4]), np.broadcast_to(np.eye(2), (4, 2, 2)), tj.float32)


def test_random_normal_and_uniform():
    n = tj.random.normal((20000,), seed=1)
    assert n.dtype is tj.float32 and n.shape == (20000,)
    assert abs(float(tj.reduce_mean(n))) < 0.05
    assert abs(np.std(values(n)) - 1.0) < 0.05
    n2 = tj.random.normal((2, 3), mean=10.0, stddev=0.1, dtype=tj.float64)
    assert n2.dtype is tj.float64 and n2.shape == (2, 3)
    assert np.all(np.abs(values(n2) - 10.0) < 1.0)
    u = tj.random.uniform((10000,))
    assert u.dtype is tj.float32
    assert values(u).min() >= 0.0 and values(u).max() < 1.0
    u2 = tj.random.uniform((1000,), minval=2.0, maxval=3.0, dtype=tj.float64)
    assert u2.dtype is tj.float64
    assert values(u2).min() >= 2.0 and values(u2).max() < 3.0
    ui = tj.random.uniform((1000,), minval=0, maxval=5, dtype=tj.int32)
    assert ui.dtype is tj.int32 and set(values(ui).tolist()) <= {0, 1, 2, 3, 4}


def test_random_seed_reproducibility():
    tj.random.set_seed(1234)
    a1 = tj.random.normal((5,))
    a2 = tj.random.normal((5,))
    b1 = tj.random.uniform((5,), seed=7)
    tj.random.set_seed(1234)
    c1 = tj.random.normal((5,))
    c2 = tj.random.normal((5,))
    d1 = tj.random.uniform((5,), seed=7)
    # same global seed: the same sequence; successive calls differ
    np.testing.assert_array_equal(values(a1), values(c1))
    np.testing.assert_array_equal(values(a2), values(c2))
    np.testing.assert_array_equal(values(b1), values(d1))
    assert not np.array_equal(values(a1), values(a2))
    tj.random.set_seed(99)
    e1 = tj.random.normal((5,))
    assert not np.array_equal(values(a1), values(e1))


# ------------------------------------------------------------- conversion
def test_convert_to_tensor():
    t = tj.constant([1.0, 2.0])
    assert tj.convert_to_tensor(t) is t
    assert tj.convert_to_tensor(t, dtype=tj.float32) is t
    check(tj.convert_to_tensor([1, 2], dtype=tj.float64), [1.0, 2.0], tj.float64)
    check(tj.convert_to_tensor(3, dtype=tj.int64), 3, tj.int64)
    check(tj.convert_to_tensor(1, dtype_hint=tj.float32), 1.0, tj.float32)


def test_convert_to_tensor_dtype_mismatch():
    # TensorFlow: "Tensor conversion requested dtype float64 for Tensor with dtype float32" (ValueError)
    t = tj.constant([1.0, 2.0])
    with pytest.raises(ValueError) as info:
        tj.convert_to_tensor(t, dtype=tj.float64)
    assert "float64" in str(info.value) and "float32" in str(info.value)
    with pytest.raises(ValueError):
        tj.convert_to_tensor(tj.Variable(1.0), dtype=tj.int32)
    # a Python float with a fraction cannot become an int tensor (TypeError, as TF)
    with pytest.raises(TypeError):
        tj.convert_to_tensor(1.5, dtype=tj.int32)
