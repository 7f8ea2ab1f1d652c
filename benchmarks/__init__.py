"""Benchmarks (not tests): the engine against the authors' way and against the forward-pass floor."""
