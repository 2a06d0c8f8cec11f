"""Rewriting helpers shared by the passes."""
from ..ir import Eqn, Guard, Print, Var


def resolver(mapping):
    """atom -> what it stands for after the replacements in `mapping` (id(Var) -> atom),
    followed transitively. Passes fill `mapping` as they go."""

    def resolve(atom):
        while type(atom) is Var and id(atom) in mapping:
            atom = mapping[id(atom)]
        return atom
    return resolve


def substitute(program, body, mapping):
    """The program with `body` and every use of a Var replaced through `mapping`."""
    if not mapping:
        return program.replace(body=body)
    sub = resolver(mapping)

    new_body = []
    for item in body:
        if type(item) is Eqn:
            item = Eqn(item.prim, [sub(a) for a in item.inputs], item.params, item.out, item.source)
        elif type(item) is Guard:
            item = Guard(item.index, sub(item.input), item.kind, item.expect, item.source)
        else:
            item = Print([sub(a) for a in item.inputs], item.template, item.source)
        new_body.append(item)
    return program.replace(body=new_body, outputs=[sub(a) for a in program.outputs],
                           writes=[(slot, sub(a)) for slot, a in program.writes],
                           rereads=[(sub(value), read) for value, read in program.rereads
                                    if type(sub(value)) is Var])


def uses(item):
    return (item.input,) if type(item) is Guard else item.inputs
