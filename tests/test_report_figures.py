"""Figures render to real PNG/SVG files, and only when the data varies their axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from energybench.report.build import build_report
from energybench.report.figures import FIGURES
from energybench.testing.synthetic_results import generate_results, small_spec


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, f"{path.name} is suspiciously small"
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert img.std() > 10, f"{path.name} looks blank"


def test_all_figures_render_in_worker_processes(tmp_path):
    root = tmp_path / "grid"
    generate_results(root, small_spec(threads=(1, 2, 4), n_failed=0))
    out = tmp_path / "report"
    s = build_report([root], out, figure_jobs=2, n_boot=300, figure_formats=("png", "svg"))
    one_machine = [n for n in FIGURES if n != "machines"]  # machines: sets of two machines (test_machines_dimension)
    assert s.figures == one_machine  # every other figure applies to a threads x GPU layers x batch grid
    for name in one_machine:
        _check_png(out / "figures" / f"{name}.png")
        svg = (out / "figures" / f"{name}.svg").read_text()
        assert "<svg" in svg and len(svg) > 5_000
    html = s.files["html"].read_text()
    assert html.count("data:image/png;base64,") == len(one_machine)
    assert "![Pareto front: latency vs energy](figures/pareto.png)" in s.files["md"].read_text()


def test_only_varied_axes_get_figures_and_stale_ones_go(tmp_path):
    threads_only = tmp_path / "threads"
    out = tmp_path / "report"
    generate_results(threads_only, small_spec(threads=(1, 2, 4), n_gpu_layers=(0,), n_batch=(512,), gpu=False,
                                              n_failed=0))
    # what an earlier report of a grid over GPU layers left in the same output directory
    (out / "figures").mkdir(parents=True)
    for fmt in ("png", "svg"):
        (out / "figures" / f"offload.{fmt}").write_bytes(b"from an earlier report")
    s = build_report([threads_only], out, figure_jobs=0, n_boot=300)
    assert s.figures == ["pareto", "thread_scaling", "race_to_sleep", "power_timeline"]
    for name in ("offload", "batch", "edp_heatmap"):  # no axis, no (empty) plot, and no stale file
        assert not (out / "figures" / f"{name}.png").exists()
    for name in s.figures:
        _check_png(out / "figures" / f"{name}.png")


def test_figures_are_reused_until_their_inputs_change(tmp_path):
    import os

    root, out = tmp_path / "threads", tmp_path / "report"
    generate_results(root, small_spec(threads=(1, 2), n_gpu_layers=(0,), n_batch=(512,), gpu=False, n_failed=0))
    first = build_report([root], out, figure_jobs=0, n_boot=300)
    drawn = {f: (out / "figures" / f"{f}.png").stat().st_mtime_ns for f in first.figures}
    again = build_report([root], out, figure_jobs=0, n_boot=300)  # nothing changed: nothing drawn
    assert again.figures == first.figures
    assert {f: (out / "figures" / f"{f}.png").stat().st_mtime_ns for f in again.figures} == drawn
    assert "data:image/png;base64," in again.files["html"].read_text()  # still embedded
    other = build_report([root], out, figure_jobs=0, n_boot=300, window_s=50.0)  # another option: redrawn
    assert (out / "figures" / "race_to_sleep.png").stat().st_mtime_ns != drawn["race_to_sleep"]
    meta = root / "metadata.json"
    os.utime(meta, ns=(meta.stat().st_atime_ns, meta.stat().st_mtime_ns + 1))  # the results changed
    build_report([root], out, figure_jobs=0, n_boot=300, window_s=50.0)
    assert (out / "figures" / "pareto.png").stat().st_mtime_ns != drawn["pareto"]
    assert other.figures == first.figures


def test_png_by_default_svg_on_request_and_an_unasked_format_goes(tmp_path, cli):
    root, out = tmp_path / "threads", tmp_path / "report"
    generate_results(root, small_spec(threads=(1, 2), n_gpu_layers=(0,), n_batch=(512,), gpu=False, n_failed=0))
    figs = out / "figures"

    def written() -> set[str]:
        return {p.name for p in figs.iterdir() if not p.name.startswith(".")}

    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300", "--format", "json")
    assert r.returncode == 0, r.stderr
    names = json.loads(r.stdout)["figures"]
    assert names and written() == {f"{n}.png" for n in names}
    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300", "--svg")
    assert r.returncode == 0, r.stderr
    assert written() == {f"{n}.{fmt}" for n in names for fmt in ("png", "svg")}
    assert all("<svg" in (figs / f"{n}.svg").read_text() for n in names)
    r = cli("report", str(root), "-o", str(out), "--bootstrap", "300")  # SVG not asked again: not left stale
    assert r.returncode == 0, r.stderr
    assert written() == {f"{n}.png" for n in names}


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
