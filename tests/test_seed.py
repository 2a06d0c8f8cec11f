"""SEED.md: every example of TensorFlow's autodiff tutorial, verbatim with tj for tf."""
import pathlib
import subprocess
import sys

import numpy as np

import tapejit as tj

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_gradient_wrt_input():
    x = tj.ones((2, 2))

    with tj.GradientTape() as t:
        t.watch(x)
        y = tj.reduce_sum(x)
        z = tj.multiply(y, y)

    # Derivative of z with respect to the original input tensor x
    dz_dx = t.gradient(z, x)
    for i in [0, 1]:
        for j in [0, 1]:
            assert dz_dx[i][j].numpy() == 8.0
    assert dz_dx.shape == (2, 2)
    assert dz_dx.dtype == tj.float32
    np.testing.assert_array_equal(dz_dx.numpy(), np.full((2, 2), 8.0, np.float32))


def test_gradient_wrt_intermediate():
    x = tj.ones((2, 2))

    with tj.GradientTape() as t:
        t.watch(x)
        y = tj.reduce_sum(x)
        z = tj.multiply(y, y)

    # Use the tape to compute the derivative of z with respect to the
    # intermediate value y.
    dz_dy = t.gradient(z, y)
    assert dz_dy.numpy() == 8.0
    assert dz_dy.shape == ()


def test_persistent_tape():
    x = tj.constant(3.0)
    with tj.GradientTape(persistent=True) as t:
        t.watch(x)
        y = x * x
        z = y * y
    dz_dx = t.gradient(z, x)  # 108.0 (4*x^3 at x = 3)
    dy_dx = t.gradient(y, x)  # 6.0
    del t  # Drop the reference to the tape
    assert dz_dx.numpy() == 108.0
    assert dy_dx.numpy() == 6.0


def f(x, y):
    output = 1.0
    for i in range(y):
        if i > 1 and i < 5:
            output = tj.multiply(output, x)
    return output


def grad(x, y):
    with tj.GradientTape() as t:
        t.watch(x)
        out = f(x, y)
    return t.gradient(out, x)


def test_control_flow():
    x = tj.convert_to_tensor(2.0)

    assert grad(x, 6).numpy() == 12.0
    assert grad(x, 5).numpy() == 12.0
    assert grad(x, 4).numpy() == 4.0


def test_control_flow_no_op_recorded_gives_none():
    # For y <= 2 the loop never multiplies: out is the Python float 1.0, a
    # constant with nothing on the tape connecting it to x.
    x = tj.convert_to_tensor(2.0)
    with tj.GradientTape() as t:
        t.watch(x)
        out = tj.constant(f(x, 2))
    assert t.gradient(out, x) is None


def test_higher_order():
    x = tj.Variable(1.0)  # Create a Tensorflow variable initialized to 1.0

    with tj.GradientTape() as t:
        with tj.GradientTape() as t2:
            y = x * x * x
        # Compute the gradient inside the 't' context manager
        # which means the gradient computation is differentiable as well.
        dy_dx = t2.gradient(y, x)
    d2y_dx2 = t.gradient(dy_dx, x)

    assert dy_dx.numpy() == 3.0
    assert d2y_dx2.numpy() == 6.0


def test_example_script_runs():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "gradient_tape.py")],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dz/dx = [[8.0, 8.0], [8.0, 8.0]]" in out
    assert "dz/dy = 8.0" in out
    assert "108.0" in out and "6.0" in out
    assert "12.0 12.0 4.0" in out
    assert "dy/dx = 3.0" in out and "d2y/dx2 = 6.0" in out
