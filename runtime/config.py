"""Process-wide switches (tj.config)."""
import os


class _Config:
    def __init__(self):
        # TAPEJIT_DISABLE_JIT=1 runs compiled functions as plain Python.
        self.eager = os.environ.get("TAPEJIT_DISABLE_JIT", "") not in ("", "0")
        # Tests set this: verify the IR after every pass.
        self.check_ir = os.environ.get("TAPEJIT_CHECK_IR", "") not in ("", "0")


CONFIG = _Config()


def run_functions_eagerly(run_eagerly):
    """Run every @tj.compile function as plain Python (breakpoints and prints work)."""
    CONFIG.eager = bool(run_eagerly)


def functions_run_eagerly():
    return CONFIG.eager
