"""tj.config: process-wide switches."""
from tapejit.runtime.config import functions_run_eagerly, run_functions_eagerly

__all__ = ["run_functions_eagerly", "functions_run_eagerly"]
