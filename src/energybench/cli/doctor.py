"""``energybench doctor``: what this machine and this build can measure and run."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from energybench.cli.app import app, console, print_json, warn


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.1f} GiB"


def _yes_no(v: Any) -> str:
    return "-" if v is None else ("[green]yes[/green]" if v else "[yellow]no[/yellow]")


def render_report(r: dict[str, Any]) -> None:
    """Rich tables for a :func:`energybench.gpu.doctor_report` dict."""
    ll = r["llama_cpp"]
    t = Table(title="energybench doctor", title_justify="left", header_style="bold", show_header=False)
    t.add_column("item", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("energybench", r["energybench"]["version"])
    t.add_row("python", f"{r['python']['version']}  ({r['python']['executable']})")
    t.add_row("platform", r["python"]["platform"])
    t.add_row("llama-cpp-python", str(ll.get("package_version") or ll.get("version") or "-"))
    if ll.get("ok"):
        t.add_row("llama.cpp system info", ll.get("system_info") or "-")
        t.add_row("GPU offload", _yes_no(ll.get("supports_gpu_offload")))
    else:
        t.add_row("llama.cpp", f"[red]not loadable[/red]: {ll.get('error')}")
    cpu = r["cpu"]
    t.add_row("CPU", f"{cpu['model']}  ({cpu['logical_cpus']} logical CPUs)")
    t.add_row("CPU AMX", ", ".join(cpu["amx_flags"]) or "none")
    t.add_row("build has AMX", _yes_no(cpu["build_has_amx"]))
    nv = r["nvml"]
    t.add_row("NVML", ("[green]available[/green]: " if nv["available"] else "[yellow]unavailable[/yellow]: ")
              + (nv["reason"] or "") + (f"  [dim]fix: {nv['fix']}[/dim]" if nv.get("fix") else ""))
    console.print(t)

    if ll.get("ok"):
        d = Table(title="ggml devices", title_justify="left", header_style="bold")
        for col in ("name", "description", "type", "memory total", "memory free"):
            d.add_column(col)
        for dev in ll.get("devices") or []:
            d.add_row(dev["name"], dev["description"], dev["type"], _gib(dev.get("memory_total_bytes")),
                      _gib(dev.get("memory_free_bytes")))
        console.print(d)
        if ll.get("devices_note"):
            console.print(f"[dim]{ll['devices_note']}[/dim]")

    if r["gpus"]:
        g = Table(title="NVIDIA GPUs (NVML)", title_justify="left", header_style="bold")
        for col in ("index", "name", "memory", "power limit", "compute cap.", "power reading", "driver"):
            g.add_column(col)
        for gpu in r["gpus"]:
            g.add_row(str(gpu["index"]), gpu["name"] or "-", _gib(gpu["memory_total_bytes"]),
                      "-" if gpu["power_limit_w"] is None else f"{gpu['power_limit_w']:.0f} W",
                      gpu["compute_capability"] or "-", gpu["power_method"] or "none",
                      f"{gpu['driver_version']} (CUDA {gpu['cuda_driver_version']})")
        console.print(g)

    m = Table(title="meters", title_justify="left", header_style="bold")
    for col in ("meter", "available", "why / fix"):
        m.add_column(col, overflow="fold")
    for meter in r["meters"]:
        name = meter["name"] + (" [yellow](estimate)[/yellow]" if meter["estimate"] else "")
        why = escape(meter["reason"] or "")
        if meter.get("fix") and not meter["available"]:
            why += f"  [dim]fix: {escape(meter['fix'])}[/dim]"
        m.add_row(name, _yes_no(meter["available"]), why)
    console.print(m)
    if r.get("meters_note"):
        console.print(f"[dim]{r['meters_note']}[/dim]")
    for w in r["warnings"]:
        warn(w)


@app.command("doctor")
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Check this machine: Python, llama.cpp build (GPU offload, devices, AMX), NVIDIA GPUs, meters."""
    from energybench.gpu import doctor_report

    report = doctor_report()
    if as_json:
        print_json(report)
    else:
        render_report(report)
