"""Flatten and rebuild nested lists, tuples, namedtuples and dicts (tf.nest's order:
dict entries by sorted key)."""


class TreeDef:
    """The structure of a nested value with its leaves removed; hashable."""

    __slots__ = ("kind", "meta", "children", "_hash")

    def __init__(self, kind, meta, children):
        self.kind = kind          # "leaf", "list", "tuple", "namedtuple", "dict"
        self.meta = meta          # namedtuple class or dict keys
        self.children = children  # tuple of TreeDef
        self._hash = hash((kind, meta, children))

    def __eq__(self, other):
        return isinstance(other, TreeDef) and self._hash == other._hash and (
            self.kind, self.meta, self.children) == (other.kind, other.meta, other.children)

    def __hash__(self):
        return self._hash

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        inner = ", ".join(map(repr, self.children))
        if self.kind == "list":
            return f"[{inner}]"
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children)) + "}"
        if self.kind == "namedtuple":
            return f"{self.meta.__name__}({inner})"
        return f"({inner}{',' if len(self.children) == 1 else ''})"


LEAF = TreeDef("leaf", None, ())


def flatten(value, leaves=None):
    """(list of leaves, TreeDef)."""
    out = [] if leaves is None else leaves
    return out, _flatten(value, out)


def _flatten(value, out):
    cls = type(value)
    if cls is list:
        return TreeDef("list", None, tuple(_flatten(v, out) for v in value))
    if cls is tuple:
        return TreeDef("tuple", None, tuple(_flatten(v, out) for v in value))
    if cls is dict:
        keys = tuple(sorted(value, key=_sort_key))
        return TreeDef("dict", keys, tuple(_flatten(value[k], out) for k in keys))
    if isinstance(value, tuple) and hasattr(cls, "_fields"):
        return TreeDef("namedtuple", cls, tuple(_flatten(v, out) for v in value))
    out.append(value)
    return LEAF


def _sort_key(key):
    return (type(key).__name__, key) if not isinstance(key, str) else ("", key)


def unflatten(treedef, leaves):
    iterator = iter(leaves)
    result = _build(treedef, iterator)
    return result


def _build(treedef, it):
    kind = treedef.kind
    if kind == "leaf":
        return next(it)
    children = [_build(c, it) for c in treedef.children]
    if kind == "list":
        return children
    if kind == "tuple":
        return tuple(children)
    if kind == "namedtuple":
        return treedef.meta(*children)
    return dict(zip(treedef.meta, children, strict=True))
