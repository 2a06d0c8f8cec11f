"""Lowering IR programs to Numba source."""
