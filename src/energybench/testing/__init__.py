"""Helpers that write synthetic test data, never measurements.

:mod:`.synthetic_results` writes fake but clearly labelled results directories (for the report's
tests, ``benchmarks/bench_report.py`` and trying ``energybench report``). Nothing here measures
anything, and everything it writes says so.
"""
