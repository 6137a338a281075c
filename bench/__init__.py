"""Benchmarks: each module here has `main(argv)` that runs and prints its figures."""
