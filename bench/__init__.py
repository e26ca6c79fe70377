"""Severance benchmarks: retrieval quality on LoCoMo (and, later, speed and scale).

Run with ``python -m bench run``; see ``docs/benchmarks.md`` for the figures.
"""
