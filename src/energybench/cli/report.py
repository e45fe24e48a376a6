"""``energybench report``: analyse result directories, write report.md/report.html, serve it live."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from energybench.cli.app import app, console, err_console, print_json, warn

if TYPE_CHECKING:
    from energybench.report.build import ReportSummary


@app.command("report")
def report_cmd(
    dirs: list[str] = typer.Argument(..., help="Results directories written by measure/sweep, s3:// URLs, or globs "
                                               "of either (several: side by side; the shards of one sweep: merged)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Output directory (default: DIR/report)."),
    compare: list[str] = typer.Option([], "--compare", help="Another results directory to put side by side "
                                                           "(repeat for more)."),
    fmt: str = typer.Option("text", "--format", help="What to print: text (a summary) or json (the summary as "
                                                     "JSON, for CI). report.md/report.html are written either way."),
    export: list[str] = typer.Option([], "--export", help="Also export: csv, into OUT/tables: the original "
                                                          "study's latency_results.csv, power_logs.csv and "
                                                          "raw_cpu|gpu_power_<stamp>.csv (its scripts read them), and "
                                                          "our tables (runs.csv, power_samples.csv, ...)."),
    window: float | None = typer.Option(None, "--window", help="Race-to-sleep window T in seconds "
                                                               "(default: the slowest configuration's time)."),
    measure_bandwidth: bool = typer.Option(False, "--measure-bandwidth", help="Measure this machine's memory "
                                           "bandwidth now when metadata.json lacks it (decode roofline)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures (faster)."),
    png: bool = typer.Option(False, "--png", help="Also write each figure as PNG (rasterised from its SVG, "
                                                   "for slides and chat); SVG is always written."),
    label: list[str] = typer.Option([], "--label", help="Name of each result set, in order (default: dir names)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples per CI."),
    serve: bool = typer.Option(False, "--serve", help="Serve the report on http://127.0.0.1:PORT/ and refresh it "
                                                      "as runs arrive (Ctrl-C stops)."),
    port: int = typer.Option(8765, "--port", help="Port for --serve (0: any free port)."),
) -> None:
    """Analyse results: metrics, CIs, best configurations, figures; report.md and report.html."""
    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"--format {fmt!r}: use text or json", param_hint="--format")
    all_dirs = [*dirs, *compare]
    kwargs = dict(window_s=window, figures=not no_figures, figure_formats=("svg", "png") if png else ("svg",),
                  export=tuple(export), measure_bandwidth=measure_bandwidth, n_boot=bootstrap, seed=seed,
                  labels=label or None)
    if serve:
        _serve(all_dirs, out, port, kwargs)
        return
    from energybench.report.build import build_report

    summary = build_report(all_dirs, out, **kwargs)
    if fmt == "json":
        print_json(summary.to_dict())
        return
    for w in summary.warnings:
        warn(w)
    _print_recommendations(summary)
    _print_files(summary)


def _serve(dirs: list[str], out: Path | None, port: int, kwargs: dict[str, Any]) -> None:
    """``--serve``: build, serve on 127.0.0.1 and refresh until Ctrl-C."""
    from energybench.report.serve import serve_report
    from energybench.storage import expand, is_url

    all_dirs = expand(dirs)
    if any(is_url(d) for d in all_dirs):
        raise typer.BadParameter("--serve watches local directories; report an s3:// URL without --serve",
                                 param_hint="--serve")
    srv = serve_report(all_dirs, out, port=port, **kwargs)
    err_console.print(f"serving the report of {', '.join(map(str, all_dirs))} (Ctrl-C stops)", highlight=False)
    console.print(srv.url, highlight=False, soft_wrap=True)
    try:
        srv.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    err_console.print("stopped", highlight=False)


def _print_recommendations(summary: ReportSummary) -> None:
    """The best configuration per objective, a table per workload (six at most)."""
    from energybench.report.fmt import fmt_ci

    groups: dict[tuple[str, str], list] = {}
    for r in summary.recommendations:
        groups.setdefault((r.set, r.workload), []).append(r)
    for (set_name, wl), recs in list(groups.items())[:6]:
        t = Table(title=f"{wl}" + (f" [{set_name}]" if len(summary.summary["sets"]) > 1 else ""), title_justify="left",
                  show_lines=False)
        t.add_column("objective")
        t.add_column("best configuration")
        t.add_column("median [95% CI]", justify="right")
        t.add_column("vs runner-up")
        for r in recs:
            t.add_row(r.label, _cfg(r.best.config), f"{fmt_ci(r.best.value, r.best.ci_lo, r.best.ci_hi)} {r.unit}",
                      r.short_verdict)
        console.print(t)
    if len(groups) > 6:
        console.print(f"... and {len(groups) - 6} more workloads in the report", highlight=False)


def _print_files(summary: ReportSummary) -> None:
    """Where the report and the exports went (the power traces as one pattern)."""
    console.print(f"report: {summary.files.get('html') or summary.files.get('md')}", highlight=False, soft_wrap=True)
    traces = [p for p in summary.exports if p.name.startswith(("raw_cpu_power_", "raw_gpu_power_"))]
    for p in summary.exports:
        if p not in traces:
            console.print(f"export: {p}", highlight=False, soft_wrap=True)
    if traces:
        console.print(f"export: {len(traces)} power traces {traces[0].parent}/raw_{{cpu,gpu}}_power_<stamp>.csv",
                      highlight=False, soft_wrap=True)


def _cfg(config: dict) -> str:
    from energybench.report.best import describe_config

    return describe_config(config)
