"""``energybench attach``: attach logs of meters that log on their own (PowerLog, nvidia-smi, wall
meters) to a results directory, or ``--check`` logs alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from energybench.cli.app import app, console, print_json, warn
from energybench.errors import UsageError
from energybench.report.fmt import fmt_num


def _logs_table(result: Any) -> Table:
    t = Table(title=f"attached to {result.results_dir}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("log", "format", "date", "from .. to (local time)", "runs", "domains"):
        t.add_column(col, justify="right" if col == "runs" else "left", no_wrap=col != "domains")
    for r in result.logs:
        day = r["first"][:10] + (" *" if r.get("date_source") == "inferred" else "")
        doms = ", ".join(r["domains"]) + (f" +{len(r['nested_domains'])} nested" if r["nested_domains"] else "")
        t.add_row(r["file"], r["format"], day, f"{r['first'][11:23]} .. {r['last'][11:23]}", str(r["runs"]), doms)
    if any(r.get("date_source") == "inferred" for r in result.logs):
        t.caption, t.caption_justify = "* date inferred from the runs (PowerLog writes only the time of day)", "left"
    return t


def _print_attach(result: Any) -> None:
    console.print(_logs_table(result))
    console.print(f"runs re-attributed: {result.runs_updated} of {result.runs_ok}", highlight=False)
    totals = ", ".join(f"{m or 'none'} ({n} runs)" for m, n in result.run_totals.items())
    console.print(f"run totals now from: {totals}", highlight=False, soft_wrap=True)
    nested = {f"{r['meter']}/{d}" for r in result.logs for d in r["nested_domains"]}
    for name, powers in result.idle_power_w.items():
        text = ", ".join(f"{k} {fmt_num(w)} W" for k, w in powers.items() if k not in nested)
        console.print(f"idle power ({name}): {text}", highlight=False, soft_wrap=True)
    for w in result.warnings:
        warn(w)
    console.print(f"next: energybench report {result.results_dir}", highlight=False, soft_wrap=True)


def _print_check(reports: list[dict[str, Any]]) -> None:
    for rep in reports:
        footer = f", footer {fmt_num(rep['footer_s'])} s" if rep["footer_s"] is not None else ""
        t = Table(title=f"{rep['file']} ({rep['format']}, {rep['rows']} rows, starts {rep['start']}{footer})",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("domain", "inside", "n", "span s", "period s", "energy J", "footer J", "diff %"):
            left = col in ("domain", "inside")
            t.add_column(col, justify="left" if left else "right", no_wrap=True)
        for d in rep["domains"]:
            diff = "" if d["diff_pct"] is None else f"{d['diff_pct']:+.3f}"
            t.add_row(d["domain"], d["parent"] or "", str(d["samples"]), fmt_num(d["duration_s"], 4),
                      fmt_num(d["period_s"]), fmt_num(d["energy_j"], 5),
                      fmt_num(d["footer_j"], 5) if d["footer_j"] is not None else "", diff)
        console.print(t)


@app.command("attach")
def attach_cmd(
    paths: list[Path] = typer.Argument(..., metavar="PATH",
                                       help="The results directory, then the logs (with --check: logs only)."),
    fmt: str = typer.Option("auto", "--format", help="Log format: auto, powerlog, nvidia-smi or csv (a wall "
                                                     "meter's time, power CSV)."),
    date: str | None = typer.Option(None, "--date", help="PowerLog only: local date (YYYY-MM-DD) of the log's "
                                                         "first row [default: inferred from the runs]."),
    time_column: str | None = typer.Option(None, "--time-column", help="csv: the time column [default: by name]."),
    power_column: str | None = typer.Option(None, "--power-column",
                                            help="csv: the power column, W or mW by its name [default: by name]."),
    check: bool = typer.Option(False, "--check", help="Read the logs alone: domains, samples, duration, period, "
                                                      "energy, and the log's own totals beside ours."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Attach logs recorded beside a measure or sweep (PowerLog, nvidia-smi, wall meter CSV) and
    re-attribute every run's energy per domain and phase: energybench attach RESULTS_DIR LOG...;
    energybench attach --check LOG... reads logs alone."""
    opts = dict(fmt=fmt, time_column=time_column, power_column=power_column)
    if check:
        from energybench.attach import check_logs

        reports = check_logs(list(paths), **opts)
        print_json(reports) if json_out else _print_check(reports)
        return
    if len(paths) < 2:
        raise UsageError("attach needs a results directory and at least one log",
                         hint="energybench attach RESULTS_DIR LOG... (or --check LOG...)")
    from energybench.attach import attach_logs

    result = attach_logs(paths[0], list(paths[1:]), date=date, **opts)
    print_json(result.to_dict()) if json_out else _print_attach(result)
