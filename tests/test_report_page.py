"""The report page in a real browser (headless Chromium over the DevTools protocol, tests/cdp.py):
hover values on every plotted point, a configuration's settings and provenance on click, pick-two
comparison with its verdict, the CPU-vs-GPU headline, no external resource; and, served by
``report --serve`` while a real sweep runs, the live progress figure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import yaml

from cdp import Browser, chromium_or_skip
from energybench.report import build_report
from energybench.report.fmt import fmt_ci
from energybench.testing.synthetic_results import generate_results, small_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    b = Browser(chromium_or_skip())
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    """A report (CPU and GPU configurations, synthetic data) written to a file: its summary."""
    tmp = tmp_path_factory.mktemp("page")
    generate_results(tmp / "res", small_spec(threads=(1, 4, 8), n_failed=0), layout="consolidated")
    return build_report([tmp / "res"], tmp / "rep", figures=False, n_boot=500)


def _center(b: Browser, element: str) -> tuple[float, float]:
    """The viewport centre of the element the JavaScript expression ``element`` names, scrolled into view."""
    b.evaluate(f"({element}).scrollIntoView({{block: 'center'}})")
    x, y = b.evaluate(f"(function(){{var r=({element}).getBoundingClientRect();"
                      "return [r.x + r.width / 2, r.y + r.height / 2];})()")
    return x, y


def _point(i: int) -> str:
    """The i-th plotted point of the view."""
    return f"document.querySelectorAll('#eb-view circle.pt')[{i}]"


def _point_of(index: int) -> str:
    """The plotted point of configuration ``index`` (row of the analysis' configuration table)."""
    return f"document.querySelector('#eb-view circle.pt[data-i=\"{index}\"]')"


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def test_hover_click_and_pick_two(browser: Browser, page) -> None:
    a = page.analysis
    browser.goto(page.files["html"].resolve().as_uri())
    browser.wait_for("document.documentElement.getAttribute('data-dashboard') === 'ready'", what="the dashboard")
    main = a.cfg.filter(pl.col("workload") == a.workloads[0])
    assert int(browser.evaluate("document.getElementById('eb-view').getAttribute('data-points')")) == main.height
    rows = a.cfg.to_dicts()
    for i in range(main.height):  # a real mouse over every plotted point: its values in the tooltip
        x, y = _center(browser, _point(i))
        k = int(browser.evaluate(f"{_point(i)}.getAttribute('data-i')"))
        browser.mouse_move(x, y)
        item = f"document.querySelector('#eb-tip:not([hidden]) .tip-item[data-i=\"{k}\"]')"
        tip = browser.wait_for(f"{item} && {item}.textContent", what=f"the tooltip of point {i}")
        r = rows[k]
        assert tip.startswith(f"{r['config_id']} ") and f"n={r['n_reps']}" in tip
        assert _numbers(tip.split("request latency (s):")[1])[0] == pytest.approx(r["e2e_s"], rel=6e-3)
        assert _numbers(tip.split("(J/tok):")[1])[0] == pytest.approx(r["j_per_output_token"], rel=6e-3)
        assert _numbers(tip.split("(J*s):")[1])[0] == pytest.approx(r["edp_js"], rel=6e-3)
    browser.mouse_move(1, 1)
    assert browser.wait_for("document.getElementById('eb-tip').hidden", what="the tooltip to go")
    # click two points: details of the last one clicked, then the comparison of both
    best, worst = main.sort("j_per_output_token").row(0, named=True), main.sort("j_per_output_token").row(-1, named=True)
    for r in (worst, best):
        browser.click(*_center(browser, _point_of(next(k for k, x in enumerate(rows) if x["point_id"] == r["point_id"]))))
    details = browser.evaluate("document.getElementById('eb-details').textContent")
    assert best["point_id"] in details and str(page.out_dir.parent / "res") in details  # settings and provenance
    assert f"n_threads{best['n_threads']}" in details and "config hash" in details
    compare = browser.wait_for("document.getElementById('eb-winner') && document.getElementById('eb-compare').textContent",
                               what="the comparison")
    assert f"A {worst['config_id']}" in compare and f"B {best['config_id']}" in compare
    apart = best["j_per_output_token_hi"] < worst["j_per_output_token_lo"]
    verdict = browser.evaluate("document.getElementById('eb-verdict').textContent")
    assert verdict.startswith(f"Energy: {best['config_id']} lower by")
    assert ("CIs do not overlap" in verdict.split("Latency:")[0]) == apart
    assert browser.evaluate("document.getElementById('eb-winner').textContent").endswith(best["config_id"])
    assert browser.console_errors() == []


def test_pick_two_from_the_lists_and_within_noise(browser: Browser, page) -> None:
    """Any two configurations, chosen from the lists; a configuration against itself-like twin
    (equal CIs) is within the noise and has no winner."""
    a = page.analysis
    browser.goto(page.files["html"].resolve().as_uri())
    browser.wait_for("document.documentElement.getAttribute('data-dashboard') === 'ready'")
    rows = a.cfg.to_dicts()
    # the pair with the most overlapping J/token CIs
    i, j = min(((i, j) for i in range(len(rows)) for j in range(len(rows)) if i < j),
               key=lambda ij: abs(rows[ij[0]]["j_per_output_token"] - rows[ij[1]]["j_per_output_token"]))
    for sel, k in (("eb-pick-a", i), ("eb-pick-b", j)):
        browser.evaluate(f"(function(){{var s=document.getElementById('{sel}');s.value='{k}';"
                         "s.dispatchEvent(new Event('change'));})()")
    verdict = browser.wait_for("document.getElementById('eb-verdict') && document.getElementById('eb-verdict').textContent")
    energy = verdict.split("Latency:")[0]
    lo_hi = sorted([rows[i], rows[j]], key=lambda r: r["j_per_output_token"])
    if lo_hi[0]["j_per_output_token_hi"] >= lo_hi[1]["j_per_output_token_lo"]:
        assert "CIs do not overlap" not in energy
    if "within the noise" in energy:
        assert browser.evaluate("document.getElementById('eb-winner').textContent").endswith("no clear winner")


def test_headline_and_self_contained(browser: Browser, page) -> None:
    a = page.analysis
    browser.goto(page.files["html"].resolve().as_uri())
    browser.wait_for("document.documentElement.getAttribute('data-dashboard') === 'ready'")
    cards = browser.evaluate("document.getElementById('eb-headline').textContent")
    h = a.study.headlines[0]
    assert f"x{fmt_ci(*h.speedup)}" in cards and h.verdicts["speedup"] in cards and h.gpu in cards
    urls = browser.evaluate("performance.getEntriesByType('resource').map(function(e){return e.name})")
    assert all(u.startswith(("file:", "data:")) for u in urls), urls
    html = page.files["html"].read_text()
    assert not re.search(r"""(src|href)=["']https?://""", html)


_FIGURE_GEOMETRY = """(function(){
  return Array.prototype.map.call(document.querySelectorAll('figure>svg'), function(svg){
    var box = svg.getBoundingClientRect(), fig = svg.parentNode.getBoundingClientRect(), vb = svg.viewBox.baseVal;
    var texts = Array.prototype.map.call(svg.querySelectorAll('text'), function(t){
      var r = t.getBoundingClientRect(), k = vb.width / box.width;  // screen -> the figure's own units
      return [t.textContent, t.getComputedTextLength(), (r.left - box.left) * k, (r.right - box.left) * k];});
    return {id: svg.parentNode.id, width: box.width, room: fig.width, vbw: vb.width, texts: texts};});
})()"""


def test_figures_render_in_the_page_with_their_text_inside(browser: Browser, tmp_path: Path) -> None:
    """Every figure's SVG, inlined in the page, is drawn by the browser with real fonts: no text is
    empty or runs off the figure (the layout estimates text widths without a font at hand)."""
    generate_results(tmp_path / "res", small_spec(threads=(1, 4, 8), n_failed=0))
    s = build_report([tmp_path / "res"], tmp_path / "rep", n_boot=300)
    assert len(s.figures) >= 6
    browser.goto(s.files["html"].resolve().as_uri())
    loaded = browser.wait_for("document.documentElement.getAttribute('data-figures-loaded')", what="the figures")
    assert int(loaded) == len(s.figures)
    figs = browser.evaluate(_FIGURE_GEOMETRY)
    assert [f["id"] for f in figs] == [f"fig-{n}" for n in s.figures]
    for f in figs:
        assert 300 < f["width"] <= f["room"] + 0.5, f["id"]  # scaled to the page, never wider than it
        assert f["texts"], f["id"]
        for text, length, left, right in f["texts"]:
            assert length > 0, (f["id"], text)  # a font drew it
            assert left >= -0.5 and right <= f["vbw"] + 0.5, (f["id"], text, left, right, f["vbw"])
    assert browser.console_errors() == []


# ----------------------------------------------------------------------------- live progress


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def test_live_progress_of_a_running_sweep(browser: Browser, tmp_path: Path, tiny_model) -> None:
    """`report --serve` on a real sweep while it runs: the page shows runs done/planned, the
    current point, an ETA and the last power readings, then the finished sweep."""
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "live", "models": ["synthetic:tiny"],
        "grid": {"threads": [1, 2], "batch": 32, "prompt": {"n_prompt": 24}, "n_gen": 8},
        "warmup": 1, "repetitions": {"fixed": 3}, "cooldown": {"fixed_s": 1.0}, "idle_baseline_s": 0.5,
        "min_window_s": 0.3, "sample_period_ms": 20, "cpu_tdp_w": 65}))
    out = tmp_path / "res"
    sweep = subprocess.Popen([sys.executable, "-m", "energybench", "sweep", "--config", str(cfg), "--out", str(out),
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        deadline = time.monotonic() + 120
        while not (out / "metadata.json").exists():
            assert sweep.poll() is None and time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.2)
        server = subprocess.Popen([sys.executable, "-m", "energybench", "report", str(out), "-o", str(tmp_path / "rep"),
                                   "--serve", "--port", "0", "--no-figures", "--bootstrap", "200"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        browser.goto(url)
        text = browser.wait_for("(function(){var t=document.getElementById('eb-prog-text').textContent;"
                                "return / \\/ 8 runs/.test(t) && /running/.test(t) && t;})()", timeout=120,
                                what="progress while running")
        done = int(text.split(" / ")[0])
        assert 0 <= done < 8
        current = browser.wait_for("document.getElementById('eb-prog-current').textContent", what="the current point")
        assert re.search(r"now: cpu-t[12] on synthetic:24", current)
        assert "ETA" in browser.wait_for("document.getElementById('eb-prog-eta').textContent", what="the ETA")
        power = browser.wait_for("document.getElementById('eb-prog-power').textContent", timeout=120,
                                 what="power readings")
        assert re.search(r"cpu-package-0 \d+(\.\d+)? W", power)
        assert sweep.wait(timeout=300) == 0, sweep.stderr.read() if sweep.stderr else ""
        final = browser.wait_for("(function(){var t=document.getElementById('eb-prog-text').textContent;"
                                 "return /finished/.test(t) && t;})()", timeout=60, what="the finished sweep")
        assert final.startswith("8 / 8 runs (100 %")
        state = _get(url + "api/state")["progress"][0]
        assert (state["done"], state["planned"], state["status"]) == (8, 8, "finished")
        assert state["current"] is None and state["eta_s"] is None and state["power_w"]["cpu-package-0"] > 0
    finally:
        for proc in (sweep, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
