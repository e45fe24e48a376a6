"""``energybench measure``: one configuration (a one-point plan through the engine every sweep uses),
or any command (``measure -- CMD ARGS``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from energybench import defaults
from energybench.cli.app import app, console, err_console, print_json, warn
from energybench.cli.live import LiveView
from energybench.cli.options import Field, given_flags, off_when_set, read_text
from energybench.errors import UsageError

#: option -> the config field it sets (the one resolver turns them into a config)
FIELDS: dict[str, Field] = {
    "model": Field("models"),
    "threads": Field("grid.threads"),
    "threads_batch": Field("grid.threads_batch"),
    "n_prompt": Field("grid.prompt.n_prompt", "grid.prompt"),
    "prompt": Field("grid.prompt.text", "grid.prompt"),
    "prompt_file": Field("grid.prompt.text", "grid.prompt", read_text),
    "n_gen": Field("grid.n_gen"),
    "batch": Field("grid.batch"),
    "ubatch": Field("grid.ubatch"),
    "ctx": Field("grid.n_ctx"),
    "n_gpu_layers": Field("grid.n_gpu_layers"),
    "flash_attn": Field("grid.flash_attn"),
    "seed": Field("grid.seed"),
    "no_repack": Field("grid.repack", convert=off_when_set),
    "reps": Field("repetitions.fixed", "repetitions"),
    "warmup": Field("warmup"),
    "idle": Field("idle_baseline_s"),
    "cooldown": Field("cooldown.fixed_s", "cooldown"),
    "meter": Field("meters"),
    "cpu_tdp_w": Field("cpu_tdp_w"),
    "no_estimate": Field("allow_estimate", convert=off_when_set),
    "sample_ms": Field("sample_period_ms"),
    "min_window": Field("min_window_s"),
    "no_gpu_protocol": Field("gpu_protocol.enabled", convert=off_when_set),
}


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        a = abs(v)
        s = f"{v:.3g}" if a < 0.01 else f"{v:.2f}" if a < 100 else f"{v:.1f}" if a < 10000 else f"{v:.0f}"
    else:
        s = str(v)
    return f"{s} {unit}".strip()


def render_summary(s: dict[str, Any], out_dir: Path, shown: list[str]) -> None:
    """Rich tables for a point summary (metrics, energy per domain, warnings not ``shown`` yet)."""
    title = f"{s.get('model')}  ·  {s.get('backend_mode')}  ·  {s['n_ok']} run(s)"
    if s.get("n_failed"):
        title += f"  ·  [red]{s['n_failed']} failed[/red]"
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("metric", "median", "min", "max", "CV"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    estimate = s.get("energy_source") == "estimate"
    if estimate:
        t.caption = "[yellow]* energy and power are ESTIMATES (no hardware meter): not measurements[/yellow]"
    elif s.get("meters"):
        t.caption = f"energy measured by: {s['meters']}"
    t.caption_justify = "left"
    for m in s["metrics"].values():
        label = m["label"] + (" [yellow]*[/yellow]" if estimate and m["unit"] in ("J", "J/tok", "W") else "")
        cv = f"{m['cv_pct']:.1f}%" if m.get("cv_pct") is not None else "-"
        t.add_row(label, _fmt(m["median"], m["unit"]), _fmt(m["min"], m["unit"]), _fmt(m["max"], m["unit"]), cv)
    console.print(t)
    if s.get("domains"):
        d = Table(title="energy by domain (median over runs)", title_justify="left", header_style="bold")
        for col in ("domain", "meter", "avg power", "idle power", "window energy"):
            d.add_column(col, justify="left" if col in ("domain", "meter") else "right")
        for name, info in s["domains"].items():
            meter = info["meter"] + (" [yellow](estimate)[/yellow]" if info.get("estimate") else "")
            name += f" (in {info['parent']})" if info.get("parent") else ""
            d.add_row(name, meter, _fmt(info.get("avg_power_w"), "W"), _fmt(info.get("idle_power_w"), "W"),
                      _fmt(info.get("energy_j"), "J"))
        console.print(d)
    elif s.get("energy_source") == "none":
        console.print("[yellow]no energy measured[/yellow] (no meter available; see `energybench meters`)")
    for w in s["warnings"]:
        if w not in shown:
            warn(w)
    console.print(f"results: [bold]{out_dir}[/bold]")


def _measure_command(argv: list[str], meters: list[str] | None, cpu_tdp_w: float | None, sample_ms: float,
                     idle_s: float, as_json: bool) -> int:
    from energybench.cmdmeasure import measure_command
    from energybench.config import FieldProblem, parse_meters
    from energybench.meters import select_meters

    try:
        names = parse_meters(meters)
    except FieldProblem as exc:
        raise UsageError(f"--meter {' '.join(meters or [])!r}: {exc.message}") from None
    with select_meters(None if names == "auto" else names, cpu_tdp_w=cpu_tdp_w) as selection:
        for w in selection.warnings:
            warn(w)
        data = measure_command(argv, selection, period_s=sample_ms / 1000.0, idle_s=idle_s).to_dict()
    if as_json:
        print_json(data)
    else:
        t = Table(title=f"{' '.join(argv)}  (exit {data['returncode']})", title_justify="left", header_style="bold")
        for col in ("domain", "meter", "energy", "avg power"):
            t.add_column(col, justify="left" if col in ("domain", "meter") else "right")
        for dom in data["domains"]:
            t.add_row(str(dom.get("domain")), str(dom.get("meter")) + (" (estimate)" if dom.get("estimate") else ""),
                      _fmt(dom.get("energy_j"), "J"), _fmt(dom.get("avg_power_w"), "W"))
        console.print(t)
        console.print(f"elapsed {_fmt(data['elapsed_s'], 's')}, energy {_fmt(data['energy_j'], 'J')}, "
                      f"average power {_fmt(data['avg_power_w'], 'W')}")
    rc = data["returncode"] or 0
    return int(rc) if rc >= 0 else 128 - int(rc)


@app.command(context_settings={"allow_interspersed_args": False})
def measure(
    context: typer.Context,
    command: list[str] = typer.Argument(None, help="After `--`: a command to measure instead of llama.cpp.",
                                        show_default=False),
    model: str = typer.Option(defaults.MODEL, "--model", "-m",
                              help="GGUF path, cached name, alias (tinyllama-1.1b-chat:Q4_K_M) or synthetic:SHAPE[:QUANT]."),
    threads: int = typer.Option(None, "--threads", "-t", help="Generation threads [default: physical cores]."),
    threads_batch: int = typer.Option(None, "--threads-batch", "-tb", help="Prompt-processing threads [default: --threads]."),
    n_prompt: int = typer.Option(None, "--n-prompt", "-p",
                                 help=f"Exact prompt length in tokens (synthetic prompt) [default: {defaults.N_PROMPT}]."),
    n_gen: int = typer.Option(None, "--n-gen", "-n", help=f"Tokens to generate, exactly [default: {defaults.N_GEN}]."),
    batch: int = typer.Option(None, "--batch", "-b", help=f"n_batch: logical batch [default: {defaults.BATCH}]."),
    ubatch: int = typer.Option(None, "--ubatch", "-ub", help="n_ubatch: physical batch [default: min(batch, "
                                                             f"{defaults.LLAMA_DEFAULT_UBATCH})]."),
    ctx: int = typer.Option(None, "--ctx", "-c", help="n_ctx [default: prompt + generation, rounded up to 256]."),
    n_gpu_layers: int = typer.Option(None, "--n-gpu-layers", "-ngl",
                                     help=f"Layers offloaded to the GPU, -1 = all [default: {defaults.N_GPU_LAYERS}]."),
    flash_attn: str = typer.Option(None, "--flash-attn", "-fa", help=f"auto, on or off [default: {defaults.FLASH_ATTN_MODE}]."),
    reps: int = typer.Option(None, "--reps", "-r", help=f"Measured repetitions [default: {defaults.REPETITIONS}]."),
    warmup: int = typer.Option(None, "--warmup", "-w", help=f"Warm-up runs, kept and flagged [default: {defaults.WARMUP}]."),
    prompt: str = typer.Option(None, "--prompt", help="Literal prompt text (instead of a synthetic prompt)."),
    prompt_file: Path = typer.Option(None, "--prompt-file", help="Read the prompt text from a file."),
    seed: int = typer.Option(None, "--seed", help=f"Seed (recorded; generation is greedy) [default: {defaults.SEED}]."),
    idle: float = typer.Option(None, "--idle", help="Idle-baseline seconds before measuring, 0 = none "
                                                    f"[default: {defaults.IDLE_BASELINE_S:g}]."),
    cooldown: float = typer.Option(None, "--cooldown", help="Fixed seconds between runs [default: until power is "
                                                            f"within {defaults.UNTIL_IDLE_WITHIN_PCT:g}% of idle]."),
    meter: list[str] = typer.Option(None, "--meter", help="Meter(s) to use (`energybench meters` lists them), or none for time only [default: auto]."),
    cpu_tdp_w: float = typer.Option(None, "--cpu-tdp-w", help="CPU TDP in W for the estimate meter."),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Never fall back to the estimate meter."),
    sample_ms: float = typer.Option(None, "--sample-ms",
                                    help=f"Sampling period of the meters in ms [default: {defaults.SAMPLE_PERIOD_MS:g}]."),
    min_window: float = typer.Option(None, "--min-window", help="Repeat decoding until a run lasts this many seconds."),
    no_repack: bool = typer.Option(False, "--no-repack",
                                   help="Disable llama.cpp weight repacking/AMX (workaround for builds that crash)."),
    no_gpu_protocol: bool = typer.Option(False, "--no-gpu-protocol",
                                         help="With --n-gpu-layers != 0: skip the GPU measurement protocol (Yang et al. "
                                              "SC'24: runs >= 5 s, >= 4 repetitions, random gaps, rise time discarded)."),
    out: Path = typer.Option(None, "--out", "-o", help="Results directory [default: results/measure-<time>]."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary on stdout."),
) -> None:
    """Measure one configuration: latency, throughput and energy, over repetitions."""
    if command:
        raise typer.Exit(_measure_command(command, meter or None, cpu_tdp_w,
                                          sample_ms or defaults.SAMPLE_PERIOD_MS,
                                          defaults.IDLE_BASELINE_S if idle is None else idle, as_json))
    if prompt is not None and prompt_file is not None:
        raise UsageError("--prompt and --prompt-file are mutually exclusive", hint="pass one of them")
    from energybench.config import resolve_config
    from energybench.engine import run
    from energybench.engine.results_dir import choose_out_dir
    from energybench.plan import plan_from_config
    from energybench.summary import point_summary

    config = resolve_config(None, given_flags(context, FIELDS))
    plan = plan_from_config(config, kind="measure")
    out_dir = choose_out_dir(config, out=out, prefix="measure")
    view = LiveView(plan.runs_total(), quiet=as_json, transient=True)
    with view.live:
        run(plan, out_dir, events=view)
    summary = point_summary(out_dir)
    if as_json:
        print_json({"out_dir": str(out_dir), **summary})
    else:
        render_summary(summary, out_dir, view.notes)
    if summary["n_failed"]:
        raise typer.Exit(1)
