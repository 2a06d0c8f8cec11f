"""The compiler: IR, tracing a Python call into IR, symbolic differentiation,
optimisation passes and executors. Imports tracer, never runtime."""
