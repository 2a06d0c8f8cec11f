"""T6: random-program differential testing (TESTING.md section 3).

Random DAGs of OP_DB ops (tests/fuzz_programs.py) return their outputs and
gradients through a GradientTape (second-order ones through nested tapes) and
run four ways, which must agree:

* the NumPy float64 reference (each row's `ref`): values;
* eagerly: values, and gradients against central differences of the reference
  (second order: of the eager gradients) along a random direction;
* tj.compile(backend="numpy") and tj.compile with Numba (serial, or with
  parallel=True as drawn), with the tape inside
  the compiled function or around it, the program maybe a compiled function
  itself (inlined): values and gradients equal eager ones on
  each call: new values and Python float parameters reuse the cached program,
  new shapes of the same ranks trace once more. Some inputs reach the compiled
  function as tj.Variables it captures, assigned before each call, as a
  training step's weights do.

Agreement is float64 rtol 1e-9, with an absolute floor of 1e-9 times the largest
magnitude the program computes with (compiled reductions sum in another order;
a sum that cancels keeps the rounding of its terms), and NaN in the same places.
Inputs that make anything non-finite are rejected with `assume`, as NNSmith does.

More random programs: float32 ones of exactly rounded ops (compiled values bit
for bit), float32 ones of any ops (every result and gradient float32, values
close), float64 ones on NaN, infinities and signed zeros (values), integer
ones (values exactly, wrapping on overflow), training steps (a compiled step
writes every Variable it reads, minus its gradient; losses and Variables equal
eager steps' after each step), and control flow: an `if` on a
tensor picks between two random programs and a `while` on a tensor repeats a
random step a data-dependent number of times; one compiled function is called
with input sets taking different paths, in a random order, and every call must
equal eager; each path traces once, up to max_paths.

Budget: derandomised and small by default (CI). TAPEJIT_FUZZ_EXAMPLES=N runs
about N programs in all (shared out as in SHARES), TAPEJIT_FUZZ_RANDOM=1 draws
new ones each run. Count what ran with --hypothesis-show-statistics:

    TAPEJIT_FUZZ_EXAMPLES=2000 TAPEJIT_FUZZ_RANDOM=1 pytest -n 0 tests/test_fuzz.py --hypothesis-show-statistics
"""
import os
import pathlib
import sys
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tapejit as tj

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fuzz_programs import DRAWN_ROWS, cases, control_flow_cases, programs  # noqa: E402
from tapejit.tracer import core  # noqa: E402

BACKENDS = ("numpy", "numba")


def compile_options(backend, parallel):
    """tj.compile options; `parallel` (drawn per program) applies to Numba, whose
    parallel=True kernels are generated differently (prange loops in functions of their own)."""
    return {"backend": backend, "parallel": parallel and backend == "numba"}


def describe(options):
    return options["backend"] + (", parallel" if options["parallel"] else "")
RTOL = 1e-9
# float32 gradients of exactly rounded programs: broadcasting sums them in another order.
FLOAT32_RTOL = 1e-5
# float32 programs of any ops: last-bit differences (libm vs tapejit's mathlib, sum
# orders) grow along a chain of up to 10 ops.
FLOAT32_LOOSE_RTOL = 1e-3
# Central differences (TESTING.md section 1): float64, step 1e-6; rounding the
# terms of the function adds up to FD_ROUNDING / EPS of their summed size.
EPS, FD_ATOL, FD_RTOL, FD_ROUNDING = 1e-6, 1e-5, 1e-3, 1e-9

# Programs per test by default (about 85 s of CPU for this file on a 2-core
# machine with an empty kernel cache, mostly Numba compiling), and each test's
# share of TAPEJIT_FUZZ_EXAMPLES.
DEFAULT_EXAMPLES = {"straight_line": 6, "second_order": 3, "control_flow": 2, "float32": 2, "float32_any_op": 2,
                    "special_values": 3, "integers": 3, "training_steps": 2}
SHARES = {"straight_line": 0.37, "second_order": 0.18, "control_flow": 0.14, "float32": 0.06, "float32_any_op": 0.08,
          "special_values": 0.06, "integers": 0.06, "training_steps": 0.05}
# Training steps: how many, and their learning rates (Python floats: one trace for all).
LEARNING_RATES = (0.05, 0.02, 0.1)


def fuzz_settings(test):
    budget = os.environ.get("TAPEJIT_FUZZ_EXAMPLES")
    random = os.environ.get("TAPEJIT_FUZZ_RANDOM") == "1"
    examples = max(1, round(int(budget) * SHARES[test])) if budget else DEFAULT_EXAMPLES[test]
    # Numba compiles make examples slow; programs are large draws by design. Random
    # runs keep failures in Hypothesis's example database (.hypothesis/), so an
    # interrupted run replays them.
    return settings(max_examples=examples, deadline=None, derandomize=not random,
                    database=settings.default.database if random else None, print_blob=random,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ================================================================= running
def differentiate(forward, xs, cotangents=None, directions=None):
    """[*outputs, *gradients] of forward(*xs): the gradients of the outputs weighted
    by `cotangents` (plain sums without). Given `directions`, also the gradients
    of those gradients weighted by `directions` (Hessian-vector products), by a
    tape around the first."""
    if directions is None:
        with tj.GradientTape() as tape:
            tape.watch(xs)
            outs = forward(*xs)
        return [*outs, *tape.gradient(outs, xs, output_gradients=cotangents, unconnected_gradients="zero")]
    with tj.GradientTape() as outer:
        outer.watch(xs)
        first = differentiate(forward, xs, cotangents)
    grads = first[len(first) - len(xs):]
    return [*first, *outer.gradient(grads, xs, output_gradients=directions, unconnected_gradients="zero")]


def tensors(arrays):
    return None if arrays is None else [tj.constant(a) for a in arrays]


def arrays(results):
    return [np.asarray(r) for r in results]


def eager(program, xs, params=(), cotangents=None, directions=None):
    """differentiate() of the program on eager tensors, as arrays."""
    with np.errstate(all="ignore"):
        return arrays(differentiate(lambda *s: program.run(s, params), tensors(xs), cotangents, directions))


class Compiled:
    """One tj.compile'd program; calling it gives what eager() gives. The tape is
    inside the compiled function or around it; inputs listed in `captured` reach
    it as tj.Variables it closes over (assigned before each call), the others as
    tensor arguments; params as Python floats. `nested`: the program is itself a
    compiled function, called (and so inlined) by the compiled one."""

    def __init__(self, program, backend, tape_inside, captured=(), max_paths=8, parallel=False, nested=False):
        self.program, self.tape_inside, self.captured = program, tape_inside, captured
        self.variables = {}
        options = compile_options(backend, parallel)
        run = tj.compile(program.run, **options) if nested else program.run
        if tape_inside:
            self.fn = tj.compile(lambda args, params, cot, dirs: differentiate(
                lambda *xs: run(xs, params), self._with_variables(args), cot, dirs), max_paths=max_paths, **options)
        else:
            self.fn = tj.compile(lambda args, params: run(self._with_variables(args), params),
                                 max_paths=max_paths, **options)
        self.where = (f"{describe(options)}, tape {'inside' if tape_inside else 'around'} the compiled function"
                      + (", the program compiled inside it" if nested else ""))

    def _with_variables(self, args):
        """The program's inputs: the captured Variables in their places among the tensor arguments."""
        args = iter(args)
        return [self.variables[i] if i in self.captured else next(args) for i in range(len(self.program.input_shapes))]

    def _sources(self, xs):
        for i in self.captured:
            if i in self.variables:
                self.variables[i].assign(xs[i])
            else:
                self.variables[i] = tj.Variable(xs[i])
        return [self.variables[i] if i in self.captured else tj.constant(x) for i, x in enumerate(xs)]

    def _arguments(self, sources):
        return [s for i, s in enumerate(sources) if i not in self.captured]

    def __call__(self, xs, params=(), cotangents=None, directions=None):
        sources = self._sources(xs)
        with np.errstate(all="ignore"):
            if self.tape_inside:
                return arrays(self.fn(self._arguments(sources), list(params), cotangents, directions))
            forward = lambda *s: self.fn(self._arguments(s), list(params))  # noqa: E731
            return arrays(differentiate(forward, sources, cotangents, directions))


def all_finite(results):
    return all(np.all(np.isfinite(r)) for r in results)


def labels(n_outputs, n_inputs, order):
    names = [f"output {k}" for k in range(n_outputs)] + [f"gradient in x{i}" for i in range(n_inputs)]
    return names + [f"second-order gradient in x{i}" for i in range(n_inputs)] * (order == 2)


def largest_finite(array):
    return float(np.max(np.abs(array), initial=0.0, where=np.isfinite(array)))


def magnitude(program, xs, params):
    """The largest finite magnitude among the inputs and the values the NumPy reference computes."""
    with np.errstate(all="ignore"):
        values = [np.asarray(v) for v in program.values(xs, params, reference=True)]
    return max((largest_finite(v) for v in values if v.dtype.kind == "f"), default=0.0)


def assert_same_types(got, want, names, what):
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for g, w, name in zip(got, want, names):
        assert (g.dtype, g.shape) == (w.dtype, w.shape), (
            f"{what}, {name}: {g.dtype}{g.shape}, expected {w.dtype}{w.shape}")


def assert_agree(got, want, scale, names, what, rtol=RTOL):
    """Same dtypes and shapes, NaN in the same places, values within rtol (relative
    to each value, with rtol * max(scale, the largest wanted magnitude) as a floor)."""
    assert_same_types(got, want, names, what)
    for g, w, name in zip(got, want, names):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{what}, {name}: NaN positions")
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(scale, largest_finite(w)), equal_nan=True,
                                   err_msg=f"{what}, {name}")


def assert_identical(got, want, names, what):
    """Same dtypes, shapes and values (NaN equal to NaN)."""
    assert_same_types(got, want, names, what)
    for g, w, name in zip(got, want, names):
        np.testing.assert_array_equal(g, w, err_msg=f"{what}, {name}")


def compile_forward(program, backend, parallel=False):
    """The program's outputs, without a tape, through tj.compile."""
    return tj.compile(lambda xs, params: program.run(xs, params), **compile_options(backend, parallel))


def products(arrays_a, arrays_b):
    return [a * b for a, b in zip(arrays_a, arrays_b)]


def total(terms):
    return sum(float(np.sum(t)) for t in terms)


def size(terms):
    return sum(float(np.sum(np.abs(t))) for t in terms)


def assert_directional_derivative(terms_at, xs, direction, analytic_terms, what):
    """JAX-style check of the derivative along `direction` at xs of a function
    summing the arrays terms_at(xs): the central difference against the sum of
    analytic_terms (the tape's gradient times the direction), within FD_ATOL +
    FD_RTOL * the analytic terms' summed size + the step's rounding of the terms."""
    with np.errstate(all="ignore"):
        ahead = terms_at([x + EPS * d for x, d in zip(xs, direction)])
        behind = terms_at([x - EPS * d for x, d in zip(xs, direction)])
    numeric = (total(ahead) - total(behind)) / (2 * EPS)
    analytic = total(analytic_terms)
    bound = FD_ATOL + FD_RTOL * size(analytic_terms) + FD_ROUNDING * max(size(ahead), size(behind)) / EPS
    assert abs(numeric - analytic) <= bound, (
        f"{what}: central difference {numeric!r}, tape {analytic!r} (bound {bound:.3g})")


# =================================================================== tests
def check_case(case, tape_inside, order, parallel, nested):
    program, first = case.program, case.calls[0]
    n_in, n_out = len(first.inputs), len(program.outputs)
    names = labels(n_out, n_in, order)

    def gradient_args(call):
        return tensors(call.cotangents), tensors(call.directions) if order == 2 else None

    with np.errstate(all="ignore"):
        reference = arrays(program.run(first.inputs, first.params, reference=True))
    assume(all_finite(reference))
    wanted = [eager(program, call.inputs, call.params, *gradient_args(call)) for call in case.calls]
    assume(all(all_finite(w) for w in wanted))
    scales = [magnitude(program, call.inputs, call.params) for call in case.calls]
    assert_agree(wanted[0][:n_out], reference, scales[0], names, "eager vs NumPy reference")

    # Away from the half-integer grid no kink or tie is within the step.
    if program.has_true_derivative and not case.on_grid:
        grads = wanted[0][n_out:n_out + n_in]
        assert_directional_derivative(
            lambda xs: products(program.run(xs, first.params, reference=True), first.cotangents), first.inputs,
            first.directions, products(grads, first.directions), "eager gradient")
        if order == 2:
            second = wanted[0][n_out + n_in:]
            assert_directional_derivative(
                lambda xs: products(eager(program, xs, first.params, tensors(first.cotangents))[n_out:],
                                    first.directions),
                first.inputs, first.directions, products(second, first.directions), "eager second-order gradient")

    signatures = {tuple(np.shape(x) for x in call.inputs) for call in case.calls}
    for backend in BACKENDS:
        compiled = Compiled(program, backend, tape_inside, case.captured, parallel=parallel, nested=nested)
        for k, (call, want, scale) in enumerate(zip(case.calls, wanted, scales)):
            assert_agree(compiled(call.inputs, call.params, *gradient_args(call)), want, scale, names,
                         f"compiled ({compiled.where}) vs eager, calls[{k}]")
        # One trace per input shape: new values and parameters reuse the program.
        assert compiled.fn.cache_info().traces == len(signatures), f"{compiled.where}: {compiled.fn.cache_info()}"


def test_random_programs_draw_every_primitive():
    """A new primitive reaches the random programs through an OP_DB row they draw
    (or this test names it)."""
    drawn = {primitive for row in DRAWN_ROWS for primitive in row.primitives}
    assert sorted(set(core.REGISTRY) - drawn) == []


@fuzz_settings("straight_line")
@given(case=cases(programs()), tape_inside=st.booleans(), parallel=st.booleans(), nested=st.booleans())
def test_random_programs(case, tape_inside, parallel, nested):
    """Values and gradients: NumPy reference, central differences, eager and compiled agree."""
    check_case(case, tape_inside, order=1, parallel=parallel, nested=nested)


@fuzz_settings("second_order")
@given(case=cases(programs(max_ops=12, second_order=True)), tape_inside=st.booleans(), parallel=st.booleans(),
       nested=st.booleans())
def test_random_programs_second_order(case, tape_inside, parallel, nested):
    """As test_random_programs, with Hessian-vector products through nested tapes."""
    check_case(case, tape_inside, order=2, parallel=parallel, nested=nested)


@fuzz_settings("float32")
@given(case=cases(programs(exact=True), dtype=np.float32), tape_inside=st.booleans(), parallel=st.booleans())
def test_random_float32_programs_round_as_numpy(case, tape_inside, parallel):
    """Float32 programs of exactly rounded ops and data movement: compiled values
    equal eager ones bit for bit (a float64 literal or intermediate would round
    twice: TESTING.md T23), gradients are float32 and close."""
    program, n_out = case.program, len(case.program.outputs)
    wanted = [eager(program, call.inputs, call.params, tensors(call.cotangents)) for call in case.calls]
    assume(all(all_finite(w) for w in wanted))
    for backend in BACKENDS:
        compiled = Compiled(program, backend, tape_inside, case.captured, parallel=parallel)
        for k, (call, want) in enumerate(zip(case.calls, wanted)):
            got = compiled(call.inputs, call.params, tensors(call.cotangents))
            what = f"compiled ({compiled.where}) vs eager, calls[{k}]"
            names = labels(n_out, len(call.inputs), 1)
            assert_identical(got[:n_out], want[:n_out], names, what)
            assert_agree(got[n_out:], want[n_out:], magnitude(program, call.inputs, call.params), names[n_out:],
                         what, rtol=FLOAT32_RTOL)


@fuzz_settings("float32_any_op")
@given(case=cases(programs(max_ops=10, dtype=np.float32), dtype=np.float32), tape_inside=st.booleans(),
       parallel=st.booleans())
def test_random_float32_programs_stay_float32(case, tape_inside, parallel):
    """Float32 programs of any rows, transcendentals, reductions and matmuls
    included: every output and gradient is float32, eager and compiled (T23: no
    float64 literal, parameter or intermediate widens a result), and compiled
    values are close to eager ones (float32 rounding, summed in other orders,
    grows along a chain: a loose tolerance)."""
    program, n_out = case.program, len(case.program.outputs)
    wanted = [eager(program, call.inputs, call.params, tensors(call.cotangents)) for call in case.calls]
    assume(all(all_finite(w) for w in wanted))
    for k, (call, want) in enumerate(zip(case.calls, wanted)):
        names = labels(n_out, len(call.inputs), 1)
        assert_same_types(want, [np.zeros(np.shape(w), np.float32) for w in want], names, f"eager, calls[{k}]")
    for backend in BACKENDS:
        compiled = Compiled(program, backend, tape_inside, case.captured, parallel=parallel)
        for k, (call, want) in enumerate(zip(case.calls, wanted)):
            got = compiled(call.inputs, call.params, tensors(call.cotangents))
            assert_agree(got, want, magnitude(program, call.inputs, call.params), labels(n_out, len(call.inputs), 1),
                         f"compiled ({compiled.where}) vs eager, calls[{k}]", rtol=FLOAT32_LOOSE_RTOL)


@fuzz_settings("special_values")
@given(case=cases(programs(), special=True), parallel=st.booleans())
def test_random_programs_on_special_values(case, parallel):
    """IEEE semantics under fusion (TESTING.md T21): with NaN, infinities and
    signed zeros among the inputs, compiled values equal eager ones, NaN in the
    same places. Values only: gradients there are NaN-laden by nature."""
    program = case.program
    for backend in BACKENDS:
        compiled = compile_forward(program, backend, parallel)
        for k, call in enumerate(case.calls):
            with np.errstate(all="ignore"):
                want = arrays(program.run(tensors(call.inputs), call.params))
                got = arrays(compiled(tensors(call.inputs), call.params))
            assert_agree(got, want, magnitude(program, call.inputs, call.params), labels(len(want), 0, 1),
                         f"compiled ({describe(compile_options(backend, parallel))}) vs eager, calls[{k}]")


@fuzz_settings("integers")
@given(case=st.sampled_from([np.int32, np.int64]).flatmap(
    lambda dtype: cases(programs(dtype=dtype, parameters=False), dtype=dtype)), parallel=st.booleans())
def test_random_integer_programs(case, parallel):
    """Integer programs (wrapping around on overflow; Python int parameters would
    retrace, so there are none): eager equals the NumPy reference and compiled
    equals eager, exactly. Values only: integers have no gradients."""
    program, names = case.program, labels(len(case.program.outputs), 0, 1)
    with np.errstate(all="ignore"):
        wanted = [arrays(program.run(tensors(call.inputs))) for call in case.calls]
        # Some references divide through float64 (reduce_mean), exact for small integers only.
        if not case.on_grid:
            reference = arrays(program.run(case.calls[0].inputs, reference=True))
            assert_identical(wanted[0], reference, names, "eager vs NumPy reference")
    signatures = {tuple(np.shape(x) for x in call.inputs) for call in case.calls}
    for backend in BACKENDS:
        compiled = compile_forward(program, backend, parallel)
        where = describe(compile_options(backend, parallel))
        for k, (call, want) in enumerate(zip(case.calls, wanted)):
            with np.errstate(all="ignore"):
                got = arrays(compiled(tensors(call.inputs), []))
            assert_identical(got, want, names, f"compiled ({where}) vs eager, calls[{k}]")
        assert compiled.cache_info().traces == len(signatures), f"{where}: {compiled.cache_info()}"


def training_step(program, variables, params, cotangents, learning_rate):
    """loss = sum(outputs * cotangents); each Variable -= learning_rate * its gradient."""
    with tj.GradientTape() as tape:
        outs = program.run(variables, params)
        loss = sum(tj.reduce_sum(o * tj.constant(c)) for o, c in zip(outs, cotangents))
    for v, g in zip(variables, tape.gradient(loss, variables, unconnected_gradients="zero")):
        v.assign_sub(learning_rate * g)
    return loss


@fuzz_settings("training_steps")
@given(case=cases(programs(max_ops=12)), backend=st.sampled_from(BACKENDS), parallel=st.booleans())
def test_random_training_steps(case, backend, parallel):
    """A compiled training step (tape inside, every input a Variable it reads and
    then writes) run a few times with different learning rates: its losses and
    Variables equal eager steps' after every step, with one trace."""
    program, call = case.program, case.calls[0]
    eager_variables = [tj.Variable(x) for x in call.inputs]
    compiled_variables = [tj.Variable(x) for x in call.inputs]
    options = compile_options(backend, parallel)
    step = tj.compile(lambda lr: training_step(program, compiled_variables, call.params, call.cotangents, lr),
                      **options)
    names = ["loss"] + [f"x{i} after the step" for i in range(len(call.inputs))]
    for k, lr in enumerate(LEARNING_RATES):
        with np.errstate(all="ignore"):
            want = arrays([training_step(program, eager_variables, call.params, call.cotangents, lr),
                           *eager_variables])
            assume(all_finite(want))
            got = arrays([step(lr), *compiled_variables])
        scale = max(magnitude(program, [np.asarray(v) for v in eager_variables], call.params), *map(largest_finite, want))
        assert_agree(got, want, scale, names, f"compiled ({describe(options)}) vs eager, step {k}")
    assert step.cache_info().traces == 1, step.cache_info()


@fuzz_settings("control_flow")
@given(case=control_flow_cases(), tape_inside=st.booleans(), parallel=st.booleans(), nested=st.booleans())
def test_random_control_flow(case, tape_inside, parallel, nested):
    """One compiled function, input sets taking different paths in a random order:
    every call equals eager (values and gradients), each path traces once."""
    program = case.program
    wanted = [eager(program, xs) for xs in case.input_sets]
    assume(all(all_finite(w) for w in wanted))
    # The largest result of a call sets the floor of its tolerance (a gradient that cancels to 0 keeps rounding).
    scales = [max(map(largest_finite, w)) for w in wanted]
    for xs, want, scale in zip(case.input_sets, wanted, scales):
        with np.errstate(all="ignore"):
            reference = arrays(program.run(xs, reference=True))
        assert_agree(want[:len(reference)], reference, scale, labels(len(reference), len(xs), 1),
                     "eager vs NumPy reference")
    paths = {program.path(xs) for xs in case.input_sets}
    for backend in BACKENDS:
        compiled = Compiled(program, backend, tape_inside, case.captured, case.max_paths, parallel, nested)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k in case.call_order:
                n_in = len(case.input_sets[k])
                assert_agree(compiled(case.input_sets[k]), wanted[k], scales[k], labels(len(wanted[k]) - n_in, n_in, 1),
                             f"compiled ({compiled.where}) vs eager, inputs[{k}]")
        # Each path traces once, up to max_paths; beyond, the function runs eagerly and says so once.
        info = compiled.fn.cache_info()
        assert info.paths == min(len(paths), case.max_paths), f"{compiled.where}: paths {sorted(paths)}, {info}"
        fallback_warnings = [w for w in caught if "max_paths" in str(w.message)]
        assert len(fallback_warnings) == (len(paths) > case.max_paths), f"{compiled.where}: {fallback_warnings}"
