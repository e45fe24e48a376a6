"""A :class:`~.spec.Figure` laid out and written as SVG text (no plotting library: milliseconds).

Layout: title and subtitle on top, legends on the right, a grid of panels between, each with its
strip (facet label) above it, y tick labels left of the panels that show them and x tick labels
under the lowest panel of each column. Text widths are estimated (0.6 em a character, wide enough
for DejaVu Sans, the font a PNG is rasterised with). The SVG uses no ids, so a page may inline many.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from energybench.report.plot.scales import Axis, Band
from energybench.report.plot.spec import Figure, Key, Line, Mark, Panel, Points, Rect, Segments, Text

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR_EM = 0.6
TITLE, SUB, TICK, AXIS, STRIP, LEGEND = 13.0, 9.5, 8.5, 10.0, 8.5, 8.5
PAD, HGAP, VGAP = 10.0, 10.0, 8.0
GRID, BORDER, STRIP_FILL, STRIP_LINE, INK = "#e6e6e6", "#8c8c8c", "#eef2f7", "#c8d0da", "#4d4d4d"


def text_w(s: str, size: float) -> float:
    return max((len(line) for line in s.split("\n")), default=0) * size * CHAR_EM


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _values(m: Mark, axis: str) -> list[float]:
    if isinstance(m, (Line, Points)):
        return list(m.x if axis == "x" else m.y)
    if isinstance(m, Segments):
        return [*m.x0, *m.x1] if axis == "x" else [*m.y0, *m.y1]
    if isinstance(m, Rect):
        return [v for v in ((m.x0, m.x1) if axis == "x" else (m.y0, m.y1)) if v is not None]
    return [m.x if axis == "x" else m.y]


def _domains(fig: Figure) -> dict[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]]:
    """Each panel's (x domain, y domain), over the panels that share each axis."""
    def group(axis: str, r: int, c: int) -> object:
        """The key of the panels that share this panel's ``axis`` domain."""
        share = fig.share_x if axis == "x" else fig.share_y
        return {"all": 0, "col": c, "row": r}.get(share, (r, c))

    doms: dict[tuple[str, object], tuple[float, float]] = {}
    for axis in ("x", "y"):
        members: dict[object, list[Panel]] = {}
        for r, c, p in fig.panels():
            members.setdefault(group(axis, r, c), []).append(p)
        for key, ps in members.items():
            spec: Axis = getattr(ps[0], axis)
            doms[(axis, key)] = spec.domain(v for p in ps for m in p.marks for v in _values(m, axis))
    return {(r, c): (doms[("x", group("x", r, c))], doms[("y", group("y", r, c))]) for r, c, _ in fig.panels()}


@dataclass
class _Box:
    """A panel's pixel rectangle and its mapping from data to pixels."""

    x0: float
    y0: float
    w: float
    h: float
    xa: Axis
    ya: Axis
    xd: tuple[float, float]
    yd: tuple[float, float]

    def tx(self, t: float) -> float:
        """The pixel of a position on the x axis (a log axis' position is the value's log)."""
        return self.x0 + (t - self.xd[0]) / (self.xd[1] - self.xd[0]) * self.w

    def ty(self, t: float) -> float:
        """As :meth:`tx` for y: up the page, except a band axis (its first level on top)."""
        frac = (t - self.yd[0]) / (self.yd[1] - self.yd[0])
        return self.y0 + (frac if isinstance(self.ya, Band) else 1 - frac) * self.h

    def px(self, v: float) -> float:
        return self.tx(self.xa.fwd(v))

    def py(self, v: float) -> float:
        return self.ty(self.ya.fwd(v))

    def ticks(self, axis: str) -> list[tuple[float, str]]:
        """(pixel, label) of the ticks of ``axis`` inside the panel's domain."""
        spec, dom, to_px = (self.xa, self.xd, self.tx) if axis == "x" else (self.ya, self.yd, self.ty)
        return [(to_px(t), lab) for t, lab in spec.ticks(dom) if dom[0] <= t <= dom[1]]


def _text(x: float, y: float, s: str, size: float, *, anchor: str = "middle", color: str = INK,
          weight: str = "", rotate: bool = False) -> str:
    """``y`` is the baseline of the first line; further lines follow 1.2 em apart."""
    lines = s.split("\n")
    attrs = f'x="{_f(x)}" y="{_f(y)}" font-size="{size:g}" fill="{color}" text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if rotate:
        attrs += f' transform="rotate(-90 {_f(x)} {_f(y)})"'
    if len(lines) == 1:
        return f"<text {attrs}>{escape(s)}</text>"
    spans = "".join(f'<tspan x="{_f(x)}" dy="{0 if i == 0 else 1.2}em">{escape(t)}</tspan>'
                    for i, t in enumerate(lines))
    return f"<text {attrs}>{spans}</text>"


def _shape(x: float, y: float, r: float, shape: str, color: str, opacity: float = 1.0) -> str:
    op = f' fill-opacity="{opacity:g}" stroke-opacity="{opacity:g}"' if opacity < 1 else ""
    if shape == "diamond":
        r *= 1.3
        pts = f"{_f(x)},{_f(y - r)} {_f(x + r)},{_f(y)} {_f(x)},{_f(y + r)} {_f(x - r)},{_f(y)}"
        return f'<polygon points="{pts}" fill="{color}"{op}/>'
    if shape == "ring":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r:g}" fill="none" stroke="{color}" stroke-width="1.4"{op}/>'
    return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r:g}" fill="{color}"{op}/>'


def _each(v: str | Sequence[str], n: int) -> list[str]:
    return [v] * n if isinstance(v, str) else list(v)


def _mark(b: _Box, m: Mark) -> str:
    if isinstance(m, Line):
        pts: list[tuple[float, float]] = []
        for x, y in zip(m.x, m.y, strict=True):
            if m.step and pts:
                pts.append((pts[-1][0], b.py(y)))
            pts.append((b.px(x), b.py(y)))
        d = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
        return (f'<polyline points="{d}" fill="none" stroke="{m.color}" stroke-width="{m.width:g}" '
                'stroke-linejoin="round"/>')
    if isinstance(m, Points):
        n = len(m.x)
        shapes = [m.shape] * n if isinstance(m.shape, str) else list(m.shape)
        return "".join(_shape(b.px(x), b.py(y), m.size, s, c, m.opacity)
                       for x, y, s, c in zip(m.x, m.y, shapes, _each(m.color, n), strict=True))
    if isinstance(m, Segments):
        op = f' stroke-opacity="{m.opacity:g}"' if m.opacity < 1 else ""
        return "".join(f'<line x1="{_f(b.px(x0))}" y1="{_f(b.py(y0))}" x2="{_f(b.px(x1))}" y2="{_f(b.py(y1))}" '
                       f'stroke="{c}" stroke-width="{m.width:g}"{op}/>'
                       for x0, y0, x1, y1, c in zip(m.x0, m.y0, m.x1, m.y1, _each(m.color, len(m.x0)), strict=True)
                       if None not in (x0, y0, x1, y1))
    if isinstance(m, Rect):
        xs = sorted((b.x0 if m.x0 is None else b.px(m.x0), b.x0 + b.w if m.x1 is None else b.px(m.x1)))
        ys = sorted((b.y0 + b.h if m.y0 is None else b.py(m.y0), b.y0 if m.y1 is None else b.py(m.y1)))
        attrs = f'fill="{m.fill}"' + (f' fill-opacity="{m.opacity:g}"' if m.opacity < 1 else "")
        if m.stroke:
            attrs += f' stroke="{m.stroke}" stroke-width="{m.stroke_width:g}"'
        return (f'<rect x="{_f(xs[0])}" y="{_f(ys[0])}" width="{_f(xs[1] - xs[0])}" height="{_f(ys[1] - ys[0])}" '
                f"{attrs}/>")
    assert isinstance(m, Text)
    y = b.py(m.y) + {"bottom": -3.0, "middle": m.size * 0.35, "top": m.size + 2.0}[m.va]
    return _text(b.px(m.x) + m.dx, y, m.text, m.size, anchor=m.anchor, color=m.color)


def _panel(b: _Box, p: Panel, show_x: bool, show_y: bool) -> list[str]:
    out = [f'<rect x="{_f(b.x0)}" y="{_f(b.y0)}" width="{_f(b.w)}" height="{_f(b.h)}" fill="#ffffff"/>']
    xt, yt = b.ticks("x"), b.ticks("y")
    out += [f'<line x1="{_f(x)}" y1="{_f(b.y0)}" x2="{_f(x)}" y2="{_f(b.y0 + b.h)}" stroke="{GRID}"/>' for x, _ in xt]
    out += [f'<line x1="{_f(b.x0)}" y1="{_f(y)}" x2="{_f(b.x0 + b.w)}" y2="{_f(y)}" stroke="{GRID}"/>' for y, _ in yt]
    out += [_mark(b, m) for m in p.marks]
    out.append(f'<rect x="{_f(b.x0)}" y="{_f(b.y0)}" width="{_f(b.w)}" height="{_f(b.h)}" fill="none" '
               f'stroke="{BORDER}"/>')
    if show_x:
        base = b.y0 + b.h
        out += [f'<line x1="{_f(x)}" y1="{_f(base)}" x2="{_f(x)}" y2="{_f(base + 3)}" stroke="{BORDER}"/>'
                + _text(x, base + 4 + TICK, lab, TICK) for x, lab in xt]
    if show_y:
        for y, lab in yt:
            n = lab.count("\n")
            out.append(f'<line x1="{_f(b.x0 - 3)}" y1="{_f(y)}" x2="{_f(b.x0)}" y2="{_f(y)}" stroke="{BORDER}"/>'
                       + _text(b.x0 - 5, y + TICK * 0.35 - n * TICK * 0.6, lab, TICK, anchor="end"))
    if p.strip:
        h = STRIP * 1.9
        out.append(f'<rect x="{_f(b.x0)}" y="{_f(b.y0 - h)}" width="{_f(b.w)}" height="{_f(h)}" fill="{STRIP_FILL}" '
                   f'stroke="{STRIP_LINE}"/>' + _text(b.x0 + b.w / 2, b.y0 - h / 2 + STRIP * 0.35, p.strip, STRIP,
                                                      color="#1a1a1a"))
    return out


def _key(x: float, y: float, k: Key) -> str:
    if k.kind == "fill":
        return f'<rect x="{_f(x)}" y="{_f(y - 5)}" width="14" height="10" fill="{k.color}"/>'
    dot = _shape(x + 7, y, 3.0, k.shape, k.color)
    if k.kind == "point":
        return dot
    line = f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x + 14)}" y2="{_f(y)}" stroke="{k.color}" stroke-width="1.6"/>'
    return line + dot


def _legends(fig: Figure, x: float, y: float) -> list[str]:
    out = []
    for lg in fig.legends:
        if lg.title:
            out.append(_text(x, y + LEGEND, lg.title, LEGEND + 0.5, anchor="start", color="#1a1a1a"))
            y += LEGEND * 1.8
        for k in lg.keys:
            out.append(_key(x, y + 6, k) + _text(x + 20, y + 6 + LEGEND * 0.35, k.label, LEGEND, anchor="start"))
            y += max(16.0, 12.0 * (k.label.count("\n") + 1) + 4)
        y += 10
    return out


def _legend_width(fig: Figure) -> float:
    widths = [text_w(lg.title, LEGEND + 0.5) for lg in fig.legends]
    widths += [20 + text_w(k.label, LEGEND) for lg in fig.legends for k in lg.keys]
    return max(widths, default=0.0) + (12 if widths else 0)


@dataclass
class _Layout:
    left: float
    top: float
    gutters: list[float]
    strips: list[float]
    gaps: list[float]
    pw: float
    ph: float
    width: float
    height: float
    sub_lines: list[str]


def _shows(fig: Figure) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """The panels showing x tick labels (the lowest of each column unless x is free) and y tick labels
    (the first column unless y is free)."""
    cells = [(r, c) for r, c, _ in fig.panels()]
    if fig.share_x == "none":
        xs = set(cells)
    else:
        xs = {max((rc for rc in cells if rc[1] == col), key=lambda rc: rc[0]) for col in {c for _, c in cells}}
    first = {r: min(c for r2, c in cells if r2 == r) for r, _ in cells}
    ys = set(cells) if fig.share_y == "none" else {(r, c) for r, c in cells if c == first[r]}
    return xs, ys


def _layout(fig: Figure, doms: dict, show_x: set, show_y: set) -> _Layout:
    nrow, ncol = len(fig.grid), max(len(r) for r in fig.grid)
    legend_w = _legend_width(fig)
    right = PAD + (legend_w + 8 if legend_w else 0) + (STRIP * 2.2 if fig.row_strips else 0)
    left = PAD + (AXIS * 1.6 if fig.y_title else 0)
    gutters = [0.0] * ncol
    for r, c, p in fig.panels():
        if (r, c) in show_y:
            labels = [lab for _, lab in p.y.ticks(doms[(r, c)][1])]
            gutters[c] = max(gutters[c], max((text_w(s, TICK) for s in labels), default=0) + 8)
    strips = [STRIP * 1.9 if any(p is not None and p.strip for p in row) else 0.0 for row in fig.grid]
    xlab = TICK * 1.6 + 4
    gaps = [VGAP + (xlab if any((r, c) in show_x for c in range(ncol)) else 0) for r in range(nrow - 1)]
    bottom = PAD + xlab + (AXIS * 1.8 if fig.x_title else 0)
    width = fig.width
    pw = (width - left - right - sum(gutters) - HGAP * (ncol - 1)) / ncol
    if pw < 80:  # too narrow for its labels: widen the figure
        width += (80 - pw) * ncol
        pw = 80
    sub_lines = [ln for para in fig.subtitle.split("\n")
                 for ln in textwrap.wrap(para, max(20, int((width - 2 * PAD) / (SUB * CHAR_EM))))]
    top = PAD + TITLE * 1.3 + len(sub_lines) * SUB * 1.35 + 8
    height = fig.height
    ph = (height - top - bottom - sum(strips) - sum(gaps)) / nrow
    if ph < 50:
        height += (50 - ph) * nrow
        ph = 50
    return _Layout(left, top, gutters, strips, gaps, pw, ph, width, height, sub_lines)


def render(fig: Figure) -> str:
    """The figure as a standalone SVG document."""
    doms = _domains(fig)
    show_x, show_y = _shows(fig)
    lay = _layout(fig, doms, show_x, show_y)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(lay.width)}" height="{_f(lay.height)}" '
           f'viewBox="0 0 {_f(lay.width)} {_f(lay.height)}" font-family="{FONT}" role="img" '
           f'aria-label="{escape(fig.title)}">',
           f"<title>{escape(fig.title)}</title>",
           f'<rect width="{_f(lay.width)}" height="{_f(lay.height)}" fill="#ffffff"/>',
           _text(PAD, PAD + TITLE, fig.title, TITLE, anchor="start", color="#1a1a1a", weight="bold")]
    out += [_text(PAD, PAD + TITLE * 1.3 + (i + 1) * SUB * 1.35, ln, SUB, anchor="start", color="#555555")
            for i, ln in enumerate(lay.sub_lines)]
    grid_right = lay.left
    grid_bottom = lay.top
    for r, c, p in fig.panels():
        x0 = lay.left + sum(lay.gutters[:c + 1]) + c * (lay.pw + HGAP)
        y0 = lay.top + sum(lay.strips[:r + 1]) + sum(lay.gaps[:r]) + r * lay.ph
        xd, yd = doms[(r, c)]
        b = _Box(x0, y0, lay.pw, lay.ph, p.x, p.y, xd, yd)
        out += _panel(b, p, (r, c) in show_x, (r, c) in show_y)
        grid_right, grid_bottom = max(grid_right, x0 + lay.pw), max(grid_bottom, y0 + lay.ph)
        if fig.row_strips and c == len(fig.grid[r]) - 1:
            out.append(_row_strip(x0 + lay.pw, y0, lay.ph, fig.row_strips[r]))
    x_mid = (lay.left + sum(lay.gutters[:1]) + grid_right) / 2
    if fig.x_title:
        out.append(_text(x_mid, grid_bottom + TICK * 1.6 + 4 + AXIS * 1.3, fig.x_title, AXIS, color="#1a1a1a"))
    if fig.y_title:
        out.append(_text(PAD + AXIS, (lay.top + grid_bottom) / 2, fig.y_title, AXIS, color="#1a1a1a", rotate=True))
    strip_w = STRIP * 2.2 if fig.row_strips else 0
    out += _legends(fig, grid_right + strip_w + 14, lay.top)
    out.append("</svg>")
    return "\n".join(out)


def _row_strip(x: float, y0: float, h: float, label: str) -> str:
    w = STRIP * 1.9
    return (f'<rect x="{_f(x + 2)}" y="{_f(y0)}" width="{_f(w)}" height="{_f(h)}" fill="{STRIP_FILL}" '
            f'stroke="{STRIP_LINE}"/>' + _text(x + 2 + w / 2 + STRIP * 0.35, y0 + h / 2, label, STRIP,
                                               color="#1a1a1a", rotate=True))
