"""Optimisation passes: each a pure Program -> Program function."""
