"""The figure writer (report.plot): ticks a reader can trust, marks where their data puts them,
facets that share or free their axes as asked, and a PNG that is the SVG rasterised."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from energybench.report.plot import Band, Continuous, Figure, Key, Legend, Line, Panel, Points, Rect, render
from energybench.report.plot.png import ZOOM, to_png
from energybench.report.plot.scales import log_ticks, nice_ticks, tick_labels

NS = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (3.2, 97.0, [20.0, 40.0, 60.0, 80.0]),
    (0.398, 0.476, [0.4, 0.42, 0.44, 0.46]),
    (-7.0, 7.0, [-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0]),
    (5.0, 5.0, [5.0]),
])
def test_nice_ticks_are_round_numbers_inside_the_range(lo, hi, ticks):
    assert nice_ticks(lo, hi) == pytest.approx(ticks)


def test_log_ticks_are_powers_or_their_1_2_5_multiples():
    assert log_ticks(1, 1000) == [1, 10, 100, 1000]
    assert log_ticks(0.3, 6) == pytest.approx([0.5, 1, 2, 5])
    assert log_ticks(16, 512, base=2) == [16, 32, 64, 128, 256, 512]


def test_tick_labels_show_every_tick_exactly_and_no_more():
    assert tick_labels([0.4, 0.45, 0.5]) == ["0.40", "0.45", "0.50"]  # 0.45 is not printed as 0.4 or 0.5
    assert tick_labels([4.001, 4.002]) == ["4.001", "4.002"]
    assert tick_labels([100.0, 200.0]) == ["100", "200"]
    assert tick_labels([2e6, 4e6]) == ["2.00e+06", "4.00e+06"]


def _circles(svg: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    return [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{NS}circle") if c.get("fill") == "#123456"]


def _panel_rect(svg: str) -> tuple[float, float, float, float]:
    root = ET.fromstring(svg)
    r = next(r for r in root.iter(f"{NS}rect") if r.get("stroke") == "#8c8c8c")  # the panel's border
    return float(r.get("x")), float(r.get("y")), float(r.get("width")), float(r.get("height"))


def test_points_land_where_their_values_put_them():
    xs, ys = [1.0, 2.0, 4.0], [10.0, 30.0, 20.0]
    svg = render(Figure("t", [[Panel().add(Points(xs, ys, "#123456"))]]))
    (px0, py0, w, h), pts = _panel_rect(svg), _circles(svg)
    # linear: equal data steps are equal pixel steps; larger y is higher on the page; 5 % padding each side
    assert pts[1][0] - pts[0][0] == pytest.approx((pts[2][0] - pts[1][0]) / 2, abs=0.15)
    assert pts[0][1] > pts[2][1] > pts[1][1]
    assert pts[0][0] - px0 == pytest.approx(w * 0.05 / 1.1, abs=0.15)
    assert py0 + h - pts[0][1] == pytest.approx(h * 0.05 / 1.1, abs=0.15)


def test_a_log_axis_spaces_each_doubling_equally():
    svg = render(Figure("t", [[Panel(x=Continuous(log=2)).add(Points([16, 32, 64, 512], [1, 1, 1, 1], "#123456"))]]))
    xs = [x for x, _ in _circles(svg)]
    step = xs[1] - xs[0]
    assert xs[2] - xs[1] == pytest.approx(step, abs=0.15) and xs[3] - xs[2] == pytest.approx(3 * step, abs=0.3)


def test_a_vertical_band_axis_lists_its_first_level_on_top():
    band = Band(["first", "second", "third"])
    svg = render(Figure("t", [[Panel(y=band).add(Points([1, 1, 1], [0, 1, 2], "#123456"))]]))
    ys = [y for _, y in _circles(svg)]
    assert ys[0] < ys[1] < ys[2]
    labels = [t.text for t in ET.fromstring(svg).iter(f"{NS}text") if t.text in band.levels]
    assert labels == ["first", "second", "third"]


def _y_labels(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text for t in root.iter(f"{NS}text") if t.get("text-anchor") == "end"]


@pytest.mark.parametrize(("share", "same"), [("all", True), ("none", False)])
def test_facets_share_or_free_their_y_axis(share, same):
    small = Panel(strip="a").add(Line([0, 1], [0, 1], "#123456"))
    large = Panel(strip="b").add(Line([0, 1], [0, 1000], "#123456"))
    svg = render(Figure("t", [[small, large]], share_y=share))
    labels = _y_labels(svg)
    if same:  # one scale, labelled once (left column), reaching 1000
        assert "1000" in labels and "0.2" not in labels
    else:  # each panel labelled on its own scale
        assert "1000" in labels and "0.2" in labels


def test_a_rect_without_bounds_spans_the_panel_and_text_is_escaped():
    fig = Figure("<b> & co", [[Panel().add(Rect(1.0, 2.0, None, None, "#abcdef"),
                                              Points([0, 3], [5, 6], "#123456"))]],
                 legends=[Legend("phase", [Key("a<b", "#abcdef", kind="fill")])])
    svg = render(fig)
    root = ET.fromstring(svg)  # well-formed despite the markup in the title and the legend
    assert root.find(f"{NS}title").text == "<b> & co"
    shade = next(r for r in root.iter(f"{NS}rect") if r.get("fill") == "#abcdef" and r.get("height") != "10")
    px0, py0, w, h = _panel_rect(svg)
    assert float(shade.get("y")) == pytest.approx(py0, abs=0.1)
    assert float(shade.get("height")) == pytest.approx(h, abs=0.1)
    assert not re.search(r"id=", svg)  # inlined many times in one page: no ids to collide


def test_png_is_the_svg_rasterised_with_its_text():
    panel = Panel().add(Line([0, 1, 2], [3, 1, 2], "#d62728"), Points([0, 1, 2], [3, 1, 2], "#d62728"))
    fig = Figure("A title", [[panel]], x_title="time (s)", y_title="power (W)")
    png = to_png(render(fig))
    img = Image.open(io.BytesIO(png))
    assert img.size == (int(fig.width * ZOOM), int(fig.height * ZOOM))
    px = np.asarray(img.convert("RGB"), dtype=int)
    red = (px[..., 0] > 180) & (px[..., 1] < 90) & (px[..., 2] < 90)
    dark = px.sum(axis=2) < 200  # near-black: the title and the axis titles (the data is red, the frame grey)
    assert red.sum() > 500 and dark.sum() > 600
    assert dark[: int(40 * ZOOM)].sum() > 300  # the title band has text: fonts were found
