"""Train an MLP on scikit-learn's digits with a compiled training step.

Run it with `python examples/train_mlp.py [--epochs N] [--out loss.png]`
(needs scikit-learn; tqdm and matplotlib are optional).

It shows the usual TensorFlow 2 training loop with `tj` for `tf`: tj.Variable
parameters, a GradientTape inside a `@tj.compile` step, and the parameter
updates (SGD with momentum, `assign` / `assign_sub`) inside that same step, so
forward pass, backward pass and updates run as one compiled program. It times
one epoch of the same step function run eagerly against compiled epochs,
prints the test accuracy (asserted to be at least 95%) and saves the loss curve.
"""
import argparse
import itertools
import pathlib
import statistics
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tapejit as tj

try:
    from tqdm import tqdm
except ImportError:  # no progress bar then
    tqdm = None

DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "train_mlp_loss.png"


def load_data(seed):
    """Digits as float32 rows scaled to [0, 1], int32 labels, a stratified 75/25 split."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    labels = digits.target.astype(np.int32)
    return train_test_split(images, labels, test_size=0.25, random_state=seed, stratify=labels)


class MLP:
    """Dense layers with relu between them; the last layer returns logits."""

    def __init__(self, layer_sizes, seed):
        self.weights, self.biases = [], []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(layer_sizes)):
            he_stddev = np.sqrt(2.0 / n_in)  # keeps relu activations at a steady scale
            self.weights.append(tj.Variable(tj.random.normal((n_in, n_out), stddev=he_stddev, seed=seed + i),
                                            name=f"w{i}"))
            self.biases.append(tj.Variable(tj.zeros((n_out,)), name=f"b{i}"))

    @property
    def parameters(self):
        return self.weights + self.biases

    def __call__(self, images):
        hidden = images
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            hidden = tj.nn.relu(hidden @ w + b)
        return hidden @ self.weights[-1] + self.biases[-1]


def make_train_step(model, momentum):
    """One SGD-with-momentum step on a minibatch; returns the mean loss before the update."""
    velocities = [tj.Variable(tj.zeros_like(p), trainable=False) for p in model.parameters]

    def train_step(images, labels, learning_rate):
        with tj.GradientTape() as tape:  # trainable Variables are watched automatically
            logits = model(images)
            loss = tj.reduce_mean(tj.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        grads = tape.gradient(loss, model.parameters)
        for param, velocity, grad in zip(model.parameters, velocities, grads):
            velocity.assign(momentum * velocity + grad)  # momentum, a closure constant, is baked in
            param.assign_sub(learning_rate * velocity)
        return loss

    return train_step


def run_epoch(step, x_train, y_train, batch_size, learning_rate, rng, progress):
    """One pass over a fresh shuffle of the training set; returns each batch's loss.

    The remainder that does not fill a batch is dropped: every batch has the
    same shape, so the compiled step is traced once (a new shape would trace again).
    """
    order = rng.permutation(len(x_train))
    losses = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = order[start:start + batch_size]
        loss = step(tj.constant(x_train[batch]), tj.constant(y_train[batch]), learning_rate)
        losses.append(float(loss))
        if progress is not None:
            progress.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            progress.update()
    return losses


def accuracy(model, images, labels):
    predictions = tj.argmax(model(tj.constant(images)), axis=1).numpy()
    return float(np.mean(predictions == labels))


def save_loss_curve(batch_losses, batches_per_epoch, out):
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("loss curve: skipped (matplotlib is not installed)")
        return
    steps = np.arange(1, len(batch_losses) + 1)
    epoch_means = np.mean(np.reshape(batch_losses, (-1, batches_per_epoch)), axis=1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, batch_losses, lw=0.8, alpha=0.5, label="minibatch")
    ax.plot(steps[batches_per_epoch - 1::batches_per_epoch], epoch_means, "o-", label="epoch mean")
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="MLP on digits (tapejit)")
    ax.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"loss curve: saved to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="where to save the loss curve (PNG)")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error("--epochs must be at least 3 (one eager epoch, then the compiled ones are timed)")

    x_train, x_test, y_train, y_test = load_data(args.seed)
    model = MLP([64, 64, 10], seed=args.seed)
    train_step = make_train_step(model, args.momentum)
    compiled_train_step = tj.compile(train_step)  # the same Python function, traced and compiled
    batches_per_epoch = len(x_train) // args.batch_size
    rng = np.random.default_rng(args.seed)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images, "
          f"{batches_per_epoch} batches of {args.batch_size} per epoch")

    progress = tqdm(total=args.epochs * batches_per_epoch, unit="batch") if tqdm else None
    batch_losses, epoch_seconds = [], []
    for epoch in range(args.epochs):
        # The first epoch runs the step as plain Python, for comparison (as calling compiled_train_step
        # under tj.config.run_functions_eagerly(True) would); the rest run it compiled. The first
        # compiled epoch also pays for tracing and compiling (or loading cached kernels).
        step = train_step if epoch == 0 else compiled_train_step
        if progress is not None:
            progress.set_description(f"epoch {epoch + 1}/{args.epochs} ({'eager' if epoch == 0 else 'compiled'})")
        # A Python float learning rate is a dynamic input: decaying it does not retrace.
        learning_rate = args.learning_rate * (1.0 - 0.5 * epoch / args.epochs)
        start = time.perf_counter()
        batch_losses += run_epoch(step, x_train, y_train, args.batch_size, learning_rate, rng, progress)
        epoch_seconds.append(time.perf_counter() - start)
    if progress is not None:
        progress.close()

    eager_seconds = epoch_seconds[0]
    compiled_seconds = statistics.median(epoch_seconds[2:])
    print(f"time per epoch: eager {eager_seconds * 1e3:.1f} ms, compiled {compiled_seconds * 1e3:.1f} ms "
          f"({eager_seconds / compiled_seconds:.1f}x faster); first compiled epoch "
          f"{epoch_seconds[1] * 1e3:.1f} ms (includes tracing, and compiling or loading cached kernels)")
    print(f"compiled step: {compiled_train_step.cache_info()}")

    test_accuracy = accuracy(model, x_test, y_test)
    print(f"final training loss (last epoch mean): {np.mean(batch_losses[-batches_per_epoch:]):.4f}")
    print(f"test accuracy: {test_accuracy:.4f}")
    save_loss_curve(batch_losses, batches_per_epoch, args.out)
    assert test_accuracy >= 0.95, f"test accuracy {test_accuracy:.4f} is below 0.95"


if __name__ == "__main__":
    main()
