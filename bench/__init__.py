"""Benchmarks and soak tests run on demand, outside the test suite."""
