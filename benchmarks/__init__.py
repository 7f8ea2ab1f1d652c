"""Benchmarks (not tests): the engine against the authors' way and against the forward-pass floor.

``python benchmarks/bench_pair.py`` and ``python -m benchmarks.bench_pair`` both work; run as a
file, the script first imports ``_bootstrap`` (:mod:`benchmarks._bootstrap`), which puts the
repository root on ``sys.path``.
"""
