"""Data-dependent control flow compiled per path: `python examples/control_flow.py`.

`if` and `while` on tensor values do not raise under @tj.compile: the trace
follows the branch the values take and records a guard; each control-flow
path gets its own program, and a call whose guards pick a new path traces it.
"""
import tapejit as tj


@tj.compile
def signed_square(x):
    if tj.reduce_sum(x) > 0:       # a guard: bool(reduce_sum(x) > 0)
        return x * x
    return -(x * x)


@tj.compile
def halve_until_small(x, tol):
    steps = 0
    while tj.reduce_max(tj.abs(x)) > tol:   # one path per trip count
        x = x * 0.5
        steps += 1
    return x, steps


pos = tj.constant([1.0, 2.0, 3.0])
neg = tj.constant([-1.0, -2.0, -3.0])
for x in (pos, neg, pos, neg):
    print("signed_square", x.numpy(), "->", signed_square(x).numpy())
print("cache_info:", signed_square.cache_info())
print("explain(pos):", signed_square.explain(pos))
print("explain(new shape):", signed_square.explain(tj.constant([1.0, 2.0])))
print()
print(signed_square.lower(pos).ir)
print()

for scale in (1.0, 8.0, 1.5, 8.5):
    x = tj.constant([scale, -scale / 2])
    y, steps = halve_until_small(x, 1.0)   # tol is a Python float: dynamic, no retrace
    print(f"halve_until_small({x.numpy()}) -> {y.numpy()} after {int(steps)} halvings")
print("cache_info:", halve_until_small.cache_info())
print("explain:", halve_until_small.explain(tj.constant([100.0, 0.0]), 1.0))
