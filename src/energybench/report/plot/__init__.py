"""Figures without a plotting library: a figure is a small description (:mod:`.spec`, :mod:`.scales`)
that :mod:`.svg` writes as SVG in milliseconds and :mod:`.png` rasterises on request."""

from energybench.report.plot.scales import Band, Continuous
from energybench.report.plot.spec import Figure, Key, Legend, Line, Panel, Points, Rect, Segments, Text
from energybench.report.plot.svg import render

__all__ = ["Band", "Continuous", "Figure", "Key", "Legend", "Line", "Panel", "Points", "Rect", "Segments", "Text",
           "render"]
