"""OP_DB: the op table, one module per family (the PyTorch OpInfo idea).

Every generic test in tests/test_ops.py parametrises over OP_DB; the meta
tests in tests/test_registry.py fail when a primitive or a public op has no row.
"""
from . import elementwise, linalg, nn, reduce, shape
from .core import ALL, FORWARD, LARGE, ErrorInput, OpInfo, Sample

OP_DB = [*elementwise.OPS, *reduce.OPS, *shape.OPS, *linalg.OPS, *nn.OPS]

_names = [op.name for op in OP_DB]
assert len(_names) == len(set(_names)), sorted(n for n in _names if _names.count(n) > 1)
OPS_BY_NAME = {op.name: op for op in OP_DB}

__all__ = ["OP_DB", "OPS_BY_NAME", "op_params", "OpInfo", "Sample", "ErrorInput", "ALL", "FORWARD", "LARGE"]


def op_params(modes, applies, xfail_key):
    """pytest params (op, mode) for each op that `applies` and each mode, a strict
    xfail where the op's row declares one under `xfail_key`."""
    import pytest
    out = []
    for op in OP_DB:
        if not applies(op):
            continue
        marks = [pytest.mark.xfail(reason=op.xfail[xfail_key], strict=True)] if xfail_key in op.xfail else []
        out += [pytest.param(op, mode, marks=marks, id=f"{op.name}-{mode}") for mode in modes]
    return out
