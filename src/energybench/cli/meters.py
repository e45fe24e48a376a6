"""``energybench meters``: which power meters work here, why not, and what ``measure`` will use."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from energybench.cli.app import app, console, err_console, print_json, warn
from energybench.meters.registry import meters_report


def _period(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"


def _table(report: dict[str, Any]) -> Table:
    t = Table(title="Power meters", caption="update period: nominal / measured here")
    t.add_column("meter", style="bold", no_wrap=True)
    t.add_column("available", no_wrap=True)
    t.add_column("domain", overflow="fold")
    t.add_column("kind", no_wrap=True)
    t.add_column("inside", overflow="fold")
    t.add_column("nominal", justify="right", no_wrap=True)
    t.add_column("measured", justify="right", no_wrap=True)
    for m in report["meters"]:
        ok = "[green]yes[/green]" if m["available"] else "[red]no[/red]"
        if m["available"] and m["estimate"]:
            ok = "[yellow]estimate[/yellow]"
        if not m["domains"]:
            t.add_row(m["name"], ok, "-", "", "", "", "")
        for i, d in enumerate(m["domains"]):
            t.add_row(m["name"] if i == 0 else "", ok if i == 0 else "", d["name"], d["kind"], d.get("parent") or "",
                      _period(d["update_period_s"]),
                      "n/a" if d.get("estimate") else _period(d.get("measured_update_period_s")))
    return t


@app.command("meters")
def meters_command(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    cpu_tdp_w: float | None = typer.Option(None, "--cpu-tdp-w",
                                           help="CPU TDP in W for the estimate meter (when no meter measures the CPU)."),
    measure: bool = typer.Option(True, "--measure/--no-measure",
                                 help="Measure each counter's update period (up to 0.5 s per domain)."),
) -> None:
    """List every power meter: available or not and why (with the fix), domains, update periods."""
    report = meters_report(cpu_tdp_w=cpu_tdp_w, measure_periods=measure)
    if json_out:
        print_json(report)
        return
    console.print(_table(report))
    for m in report["meters"]:
        style = "green" if m["available"] else "red"
        console.print(f"[bold {style}]{m['name']}[/bold {style}]: {escape(m['reason'])}", highlight=False, soft_wrap=True)
        if m.get("fix"):
            console.print(f"    [cyan]fix:[/cyan] {escape(m['fix'])}", highlight=False, soft_wrap=True)
    uses = report["measure_uses"]
    if uses["meters"]:
        label = " (CPU energy is an ESTIMATE)" if uses["estimate"] else ""
        console.print(f"[bold]measure will use:[/bold] {', '.join(uses['meters'])}{label}", highlight=False)
    else:
        err_console.print("[bold red]measure will record no energy here[/bold red] (time only)", highlight=False)
    for w in uses["warnings"]:
        warn(w)
