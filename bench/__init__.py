"""Benchmarks, run by `make bench` (python -m bench); never part of the tests."""
