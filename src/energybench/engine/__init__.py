"""The engine: runs a :class:`~energybench.plan.Plan` (one point for ``measure``, a grid for
``sweep``) into a results directory. :func:`run` is its one entry point."""

from energybench.engine.run import RunSummary, run

__all__ = ["RunSummary", "run"]
