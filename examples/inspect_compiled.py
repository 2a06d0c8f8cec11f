"""What @tj.compile makes of a function: `python examples/inspect_compiled.py`.

`f.lower(*args)` traces f for these arguments (or reuses the program already
traced for them) and returns
  .ir       the program: one IR equation per op, with the source line it came from;
  .grad_ir  the backward program derived from .ir by symbolic differentiation:
            what a call under an eager GradientTape runs for its gradient;
  .source   the Python driver (NumPy calls such as matmul, and the calls of the
            fused kernels) followed by the source of each Numba kernel module;
  .guards   the control-flow guards of the path (none here; see control_flow.py).

This example lowers two small functions of a linear least-squares model:
  1. `squared_error(x, y, w)`, no tape inside: .ir is the forward pass, .grad_ir
     the backward pass an outer tape runs (checked against 2/n X^T (X w - y));
  2. `sgd_step(x, y, learning_rate)`, with a GradientTape inside: the tape is
     differentiated at trace time, so .ir already holds the forward pass, the
     gradient and the Variable updates, and .source shows them fused into a few
     Numba loop nests around two BLAS matmuls.
Set TAPEJIT_DUMP_IR=1 to also see the IR after each compiler pass.
"""
import numpy as np

import tapejit as tj


def heading(title):
    print(f"\n==== {title} " + "=" * max(0, 72 - len(title)))


@tj.compile
def squared_error(x, y, w):
    return tj.reduce_mean(tj.square(x @ w - y))


weights = tj.Variable(tj.zeros((3, 1)), name="weights")
bias = tj.Variable(tj.zeros((1,)), name="bias")


@tj.compile
def sgd_step(x, y, learning_rate):
    with tj.GradientTape() as tape:
        loss = tj.reduce_mean(tj.square(x @ weights + bias - y))
    d_weights, d_bias = tape.gradient(loss, [weights, bias])
    weights.assign_sub(learning_rate * d_weights)  # Variables are read and written when the program runs
    bias.assign_sub(learning_rate * d_bias)
    return loss


def main():
    x = tj.random.normal((8, 3), seed=0)
    y = tj.random.normal((8, 1), seed=1)
    w = tj.random.normal((3, 1), seed=2)

    lowered = squared_error.lower(x, y, w)
    heading("1. squared_error.lower(x, y, w).ir")
    print(lowered.ir)
    heading("1. squared_error.lower(x, y, w).grad_ir")
    print(lowered.grad_ir)

    # The backward program at work: an eager tape around a compiled call.
    with tj.GradientTape() as tape:
        tape.watch(w)
        loss = squared_error(x, y, w)
    dw = tape.gradient(loss, w).numpy()
    x_np, y_np, w_np = x.numpy(), y.numpy(), w.numpy()
    dw_closed_form = 2 / len(x_np) * x_np.T @ (x_np @ w_np - y_np)
    np.testing.assert_allclose(dw, dw_closed_form, rtol=1e-5, atol=1e-6)
    print("gradient through the backward program matches 2/n X^T (X w - y):", dw.ravel())

    lowered = sgd_step.lower(x, y, 0.1)
    heading("2. sgd_step.lower(x, y, 0.1).ir")
    print(lowered.ir)
    heading("2. sgd_step.lower(x, y, 0.1).source")
    print(lowered.source)

    heading("2. running sgd_step")
    # lower() traced the program already, so no call below traces; a new learning
    # rate is a dynamic input (a Python float), not a retrace either.
    for learning_rate in (0.1, 0.1, 0.05):
        print(f"loss {float(sgd_step(x, y, learning_rate)):.4f}")
    print(sgd_step.cache_info())


if __name__ == "__main__":
    main()
