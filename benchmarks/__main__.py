"""`python -m benchmarks`: the benchmark suite (benchmarks/suite.py)."""
from benchmarks.suite import main

main()
