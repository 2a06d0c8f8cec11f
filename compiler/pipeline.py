"""The optimisation pipeline: passes by name, in order.

TAPEJIT_DUMP_IR=1 prints the IR after each pass (to stderr).
"""
import os
import sys

from .ir import verify
from .passes.cse import cse
from .passes.dce import dce
from .passes.fold import fold
from .passes.simplify import simplify

PIPELINE = (("fold", fold), ("simplify", simplify), ("cse", cse), ("dce", dce))


def optimize(program, check=False):
    """Run every pass; with check=True verify the IR after each (the tests do)."""
    dump = os.environ.get("TAPEJIT_DUMP_IR")
    if check:
        verify(program)
    if dump:
        print(f"--- {program.name}: traced\n{program}", file=sys.stderr)
    for name, run in PIPELINE:
        program = run(program)
        if check:
            verify(program)
        if dump:
            print(f"--- {program.name}: after {name}\n{program}", file=sys.stderr)
    return program
