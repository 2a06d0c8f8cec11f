"""Dead-code elimination: drop equations whose results nothing uses.
Guards and prints are effects and always stay."""
from ..ir import Eqn, Var
from .util import uses


def dce(program):
    live = {id(a) for a in program.outputs if type(a) is Var}
    live.update(id(a) for _, a in program.writes if type(a) is Var)
    kept = []
    for item in reversed(program.body):
        if type(item) is Eqn and id(item.out) not in live:
            continue
        kept.append(item)
        live.update(id(a) for a in uses(item) if type(a) is Var)
    kept.reverse()
    rereads = [(value, read) for value, read in program.rereads if id(value) in live]
    live.update(id(read) for _, read in rereads)
    reads = [(slot, v) for slot, v in program.reads if id(v) in live]
    return program.replace(body=kept, reads=reads, rereads=rereads)
