"""Figures are written from the data as SVG (PNG rasterised from it on request), and only when the
data varies their axis."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from energybench.report.build import build_report
from energybench.report.figures import FIGURES
from energybench.testing.synthetic_results import generate_results, small_spec

NS = "{http://www.w3.org/2000/svg}"


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] >= 600 and img.shape[1] >= 1600  # written at 2x the 800-unit-wide layout
    assert img.std() > 10, f"{path.name} looks blank"


def _svg(path: Path) -> ET.Element:
    root = ET.fromstring(path.read_text())
    assert root.tag == f"{NS}svg"
    return root


def test_every_figure_is_written_as_svg_and_png_and_inlined_in_the_page(tmp_path):
    root = tmp_path / "grid"
    generate_results(root, small_spec(threads=(1, 2, 4), n_failed=0))
    out = tmp_path / "report"
    s = build_report([root], out, n_boot=300, figure_formats=("svg", "png"))
    one_machine = [n for n in FIGURES if n != "machines"]  # machines: sets of two machines (test_machines_dimension)
    assert s.figures == one_machine  # every other figure applies to a threads x GPU layers x batch grid
    for name in one_machine:
        _check_png(out / "figures" / f"{name}.png")
        _svg(out / "figures" / f"{name}.svg")
    html = s.files["html"].read_text()
    for name in one_machine:  # the figure's own SVG inside its <figure>
        fig = html.split(f'<figure id="fig-{name}">', 1)[1].split("</figure>", 1)[0]
        assert fig.startswith("<svg") and fig.count("</svg>") == 1
    assert "![Pareto front: latency vs energy](figures/pareto.svg)" in s.files["md"].read_text()


def test_the_pareto_figure_places_every_configuration_by_its_medians(tmp_path):
    root = tmp_path / "grid"
    generate_results(root, small_spec(threads=(1, 2, 4), n_gpu_layers=(0,), n_batch=(64, 512), gpu=False, n_failed=0))
    s = build_report([root], tmp_path / "report", n_boot=300, formats=("json",))
    cfg = s.analysis.cfg.filter(pl.col("e2e_s").is_not_null()).sort("e2e_s")
    svg = _svg(tmp_path / "report" / "figures" / "pareto.svg")
    border = next(r for r in svg.iter(f"{NS}rect") if r.get("stroke") == "#8c8c8c")  # the panel (not the legend)
    right = float(border.get("x")) + float(border.get("width"))
    dots = sorted((float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(f"{NS}circle")
                  if c.get("fill") not in (None, "none") and float(c.get("cx")) < right)
    rings = [c for c in svg.iter(f"{NS}circle") if c.get("fill") == "none"]
    assert len(dots) == cfg.height and len(rings) == cfg["pareto"].sum()
    # dots (sorted left to right) pair with configurations (sorted by latency) only if x follows latency;
    # then the higher the energy per token, the higher on the page
    j = cfg["j_per_output_token"].to_list()
    by_height = sorted(range(len(dots)), key=lambda i: dots[i][1])
    assert by_height == sorted(range(len(j)), key=lambda i: -j[i])


def test_only_varied_axes_get_figures_and_stale_ones_go(tmp_path):
    threads_only = tmp_path / "threads"
    out = tmp_path / "report"
    generate_results(threads_only, small_spec(threads=(1, 2, 4), n_gpu_layers=(0,), n_batch=(512,), gpu=False,
                                              n_failed=0))
    # what an earlier report of a grid over GPU layers left in the same output directory
    (out / "figures").mkdir(parents=True)
    for fmt in ("png", "svg"):
        (out / "figures" / f"offload.{fmt}").write_bytes(b"from an earlier report")
    s = build_report([threads_only], out, n_boot=300)
    assert s.figures == ["pareto", "thread_scaling", "race_to_sleep", "power_timeline"]
    for name in ("offload", "batch", "edp_heatmap"):  # no axis, no (empty) plot, and no stale file
        assert not (out / "figures" / f"{name}.svg").exists() and not (out / "figures" / f"{name}.png").exists()
    for name in s.figures:
        _svg(out / "figures" / f"{name}.svg")


def test_svg_by_default_png_on_request_and_an_unasked_format_goes(tmp_path, cli):
    root, out = tmp_path / "threads", tmp_path / "report"
    generate_results(root, small_spec(threads=(1, 2), n_gpu_layers=(0,), n_batch=(512,), gpu=False, n_failed=0))
    figs = out / "figures"

    def written() -> set[str]:
        return {p.name for p in figs.iterdir()}

    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300", "--format", "json")
    assert r.returncode == 0, r.stderr
    names = json.loads(r.stdout)["figures"]
    assert names and written() == {f"{n}.svg" for n in names}
    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300", "--png")
    assert r.returncode == 0, r.stderr
    assert written() == {f"{n}.{fmt}" for n in names for fmt in ("png", "svg")}
    for n in names:
        _check_png(figs / f"{n}.png")
    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300")  # PNG not asked again: not left stale
    assert r.returncode == 0, r.stderr
    assert written() == {f"{n}.svg" for n in names}


@pytest.mark.parametrize("name", ["pareto", "race_to_sleep", "power_timeline"])
def test_figures_absent_without_their_data(tmp_path, name):
    from energybench.report.analysis import analyze
    from energybench.report.load import load_result_set
    from energybench.results import ResultsStore

    root = tmp_path / "one"
    store = ResultsStore(root)
    store.create({"kind": "measure"})
    store.add_run({"run_id": "r0", "point_id": "p", "status": "ok", "is_warmup": False, "n_threads": 1,
                   "n_gen_tokens": 8, "n_prompt_tokens": 8, "window_s": 0.5, "energy_source": "none"})
    a = analyze([load_result_set(root)], n_boot=300)
    assert FIGURES[name][0](a) is None  # one configuration, no energy, no samples: nothing to draw
