"""Common-subexpression elimination: one equation per (primitive, inputs, params)."""
from ..ir import Eqn, Var
from .util import resolver, substitute


def _atom_key(atom):
    return ("v", id(atom)) if type(atom) is Var else ("c",) + atom.key()


def _params_key(params):
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return repr(sorted(params.items()))


def cse(program):
    seen = {}
    mapping = {}
    body = []
    resolve = resolver(mapping)

    for item in program.body:
        if type(item) is Eqn:
            key = (item.prim.name, tuple(_atom_key(resolve(a)) for a in item.inputs), _params_key(item.params))
            previous = seen.get(key)
            if previous is not None:
                mapping[id(item.out)] = previous
                continue
            seen[key] = item.out
        body.append(item)
    return substitute(program, body, mapping)
