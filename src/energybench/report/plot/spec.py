"""What a figure is made of: panels on a grid, each with two axes and its marks, and legends.

A figure is data, not drawing: :mod:`.svg` lays it out and writes it. Positions are in data units
(on a :class:`~.scales.Band` axis: the category's index, plus an offset to dodge); ``None`` for a
rectangle's bound means the panel's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from energybench.report.plot.scales import Axis, Continuous

Shape = Literal["circle", "diamond", "ring"]


@dataclass(frozen=True)
class Line:
    """A polyline; ``step``: vertical first, then horizontal, between consecutive points."""

    x: Sequence[float]
    y: Sequence[float]
    color: str
    width: float = 1.6
    step: bool = False


@dataclass(frozen=True)
class Points:
    x: Sequence[float]
    y: Sequence[float]
    color: str | Sequence[str]
    shape: Shape | Sequence[Shape] = "circle"
    size: float = 3.2  # radius, px
    opacity: float = 1.0


@dataclass(frozen=True)
class Segments:
    """Straight segments (error bars): from (x0, y0) to (x1, y1) each."""

    x0: Sequence[float]
    y0: Sequence[float]
    x1: Sequence[float]
    y1: Sequence[float]
    color: str | Sequence[str]
    width: float = 1.2
    opacity: float = 1.0


@dataclass(frozen=True)
class Rect:
    x0: float | None
    x1: float | None
    y0: float | None
    y1: float | None
    fill: str
    opacity: float = 1.0
    stroke: str | None = None
    stroke_width: float = 1.0


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: float = 9.0
    color: str = "#333333"
    anchor: Literal["start", "middle", "end"] = "middle"
    va: Literal["bottom", "middle", "top"] = "middle"
    dx: float = 0.0  # px


Mark = Line | Points | Segments | Rect | Text


@dataclass
class Panel:
    x: Axis = field(default_factory=Continuous)
    y: Axis = field(default_factory=Continuous)
    marks: list[Mark] = field(default_factory=list)
    strip: str | None = None  # the facet's label, above the panel

    def add(self, *marks: Mark) -> Panel:
        self.marks.extend(marks)
        return self


@dataclass(frozen=True)
class Key:
    """One legend entry: how it is drawn (a line with a point, a filled square, a grey shape)."""

    label: str
    color: str
    kind: Literal["line", "point", "fill"] = "line"
    shape: Shape = "circle"


@dataclass(frozen=True)
class Legend:
    title: str
    keys: Sequence[Key]


@dataclass
class Figure:
    """``grid``: rows of panels (None: an empty cell). ``share_x``/``share_y``: which panels use one
    domain for that axis: all of them, those of a column (x) or row (y), or each its own."""

    title: str
    grid: list[list[Panel | None]]
    subtitle: str = ""
    x_title: str = ""
    y_title: str = ""
    legends: list[Legend] = field(default_factory=list)
    row_strips: Sequence[str] | None = None  # labels right of each row (a grid's second facet)
    share_x: Literal["all", "col", "none"] = "all"
    share_y: Literal["all", "row", "none"] = "all"
    width: float = 800.0
    height: float = 460.0

    def panels(self) -> list[tuple[int, int, Panel]]:
        return [(r, c, p) for r, row in enumerate(self.grid) for c, p in enumerate(row) if p is not None]
