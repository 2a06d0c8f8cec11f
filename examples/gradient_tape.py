"""TensorFlow's autodiff tutorial ("Automatic differentiation and gradient tape"),
verbatim with `tj` for `tf`: run it with `python examples/gradient_tape.py`."""
import tapejit as tj

# Gradient tapes
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
print("dz/dx =", dz_dx.numpy().tolist())

# The derivative with respect to an intermediate value
x = tj.ones((2, 2))

with tj.GradientTape() as t:
    t.watch(x)
    y = tj.reduce_sum(x)
    z = tj.multiply(y, y)

# Use the tape to compute the derivative of z with respect to the
# intermediate value y.
dz_dy = t.gradient(z, y)
assert dz_dy.numpy() == 8.0
print("dz/dy =", dz_dy.numpy())

# A persistent tape can compute several gradients of the same computation
x = tj.constant(3.0)
with tj.GradientTape(persistent=True) as t:
    t.watch(x)
    y = x * x
    z = y * y
dz_dx = t.gradient(z, x)  # 108.0 (4*x^3 at x = 3)
dy_dx = t.gradient(y, x)  # 6.0
del t  # Drop the reference to the tape
assert dz_dx.numpy() == 108.0 and dy_dx.numpy() == 6.0
print("persistent tape: dz/dx =", dz_dx.numpy(), " dy/dx =", dy_dx.numpy())


# Recording control flow: Python's if and for are handled naturally
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


x = tj.convert_to_tensor(2.0)

assert grad(x, 6).numpy() == 12.0
assert grad(x, 5).numpy() == 12.0
assert grad(x, 4).numpy() == 4.0
print("control flow: grad(x, 6), grad(x, 5), grad(x, 4) =",
      grad(x, 6).numpy(), grad(x, 5).numpy(), grad(x, 4).numpy())

# Higher-order gradients
x = tj.Variable(1.0)  # Create a tapejit Variable initialized to 1.0

with tj.GradientTape() as t:
    with tj.GradientTape() as t2:
        y = x * x * x
    # Compute the gradient inside the 't' context manager
    # which means the gradient computation is differentiable as well.
    dy_dx = t2.gradient(y, x)
d2y_dx2 = t.gradient(dy_dx, x)

assert dy_dx.numpy() == 3.0
assert d2y_dx2.numpy() == 6.0
print("higher order: dy/dx =", dy_dx.numpy(), " d2y/dx2 =", d2y_dx2.numpy())
