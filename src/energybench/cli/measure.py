"""``energybench measure``: one configuration, or any command (``measure -- CMD ARGS``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from energybench.cli.app import app, console, err_console, print_json, warn
from energybench.errors import UsageError


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        a = abs(v)
        s = f"{v:.3g}" if a < 0.01 else f"{v:.2f}" if a < 100 else f"{v:.1f}" if a < 10000 else f"{v:.0f}"
    else:
        s = str(v)
    return f"{s} {unit}".strip()


def render_summary(result: Any) -> None:
    """Rich tables for a MeasureResult (latency, energy per domain, warnings)."""
    s = result.summary
    title = f"{s.get('model')}  ·  {s.get('backend_mode')}  ·  {s['n_ok']} run(s)"
    if s.get("n_failed"):
        title += f"  ·  [red]{s['n_failed']} failed[/red]"
    t = Table(title=title, title_justify="left", header_style="bold")
    t.add_column("metric")
    t.add_column("median", justify="right")
    t.add_column("min", justify="right")
    t.add_column("max", justify="right")
    t.add_column("CV", justify="right")
    estimate = s.get("energy_source") == "estimate"
    if estimate:
        t.caption = "[yellow]* energy and power are ESTIMATES (no hardware meter): not measurements[/yellow]"
        t.caption_justify = "left"
    elif s.get("meters"):
        t.caption = f"energy measured by: {s['meters']}"
        t.caption_justify = "left"
    for _key, m in s["metrics"].items():
        label = m["label"]
        if m["unit"] in ("J", "J/tok", "W") and estimate:
            label += " [yellow]*[/yellow]"
        cv = f"{m['cv_pct']:.1f}%" if m.get("cv_pct") is not None else "-"
        t.add_row(label, _fmt(m["median"], m["unit"]), _fmt(m["min"], m["unit"]), _fmt(m["max"], m["unit"]), cv)
    console.print(t)
    if s.get("domains"):
        d = Table(title="energy by domain (median over runs)", title_justify="left", header_style="bold")
        for col in ("domain", "meter", "avg power", "idle power", "energy"):
            d.add_column(col, justify="left" if col in ("domain", "meter") else "right")
        for name, info in s["domains"].items():
            meter = info["meter"] + (" [yellow](estimate)[/yellow]" if info.get("estimate") else "")
            if info.get("parent"):
                name += f" (in {info['parent']})"
            d.add_row(name, meter, _fmt(info.get("avg_power_w"), "W"), _fmt(info.get("idle_power_w"), "W"),
                      _fmt(info.get("energy_j"), "J"))
        console.print(d)
    elif s.get("energy_source") == "none":
        console.print("[yellow]no energy measured[/yellow] (no meter available; see `energybench meters`)")
    for w in result.warnings:
        warn(w)
    console.print(f"results: [bold]{result.out_dir}[/bold]")


def _measure_command(argv: list[str], meters: list[str] | None, cpu_tdp_w: float | None, sample_ms: float,
                     idle_s: float, as_json: bool) -> int:
    from energybench.cmdmeasure import measure_command
    from energybench.meters import select_meters

    selection = select_meters(meters, cpu_tdp_w=cpu_tdp_w)
    for w in getattr(selection, "warnings", []):
        warn(w)
    res = measure_command(argv, selection, period_s=sample_ms / 1000.0, idle_s=idle_s)
    data = res.to_dict() if hasattr(res, "to_dict") else dict(res.__dict__)
    if as_json:
        print_json(data)
    else:
        t = Table(title=f"{' '.join(argv)}  (exit {data.get('returncode')})", title_justify="left", header_style="bold")
        for col in ("domain", "meter", "energy", "avg power"):
            t.add_column(col, justify="left" if col in ("domain", "meter") else "right")
        for dom in data.get("domains", []):
            t.add_row(str(dom.get("domain")), str(dom.get("meter")) + (" (estimate)" if dom.get("estimate") else ""),
                      _fmt(dom.get("energy_j"), "J"), _fmt(dom.get("avg_power_w"), "W"))
        console.print(t)
        console.print(f"elapsed {_fmt(data.get('elapsed_s'), 's')}, energy {_fmt(data.get('energy_j'), 'J')}, "
                      f"average power {_fmt(data.get('avg_power_w'), 'W')}")
    rc = data.get("returncode") or 0
    return int(rc) if rc >= 0 else 128 - int(rc)


@app.command(context_settings={"allow_interspersed_args": False})
def measure(
    command: list[str] = typer.Argument(None, help="After `--`: a command to measure instead of llama.cpp.",
                                        show_default=False),
    model: str = typer.Option("synthetic:tiny", "--model", "-m",
                              help="GGUF path, cached name, alias (tinyllama-1.1b-chat:Q4_K_M) or synthetic:SHAPE[:QUANT]."),
    threads: int = typer.Option(None, "--threads", "-t", help="Generation threads [default: physical cores]."),
    threads_batch: int = typer.Option(None, "--threads-batch", "-tb", help="Prompt-processing threads [default: --threads]."),
    n_prompt: int = typer.Option(128, "--n-prompt", "-p", help="Exact prompt length in tokens (synthetic prompt)."),
    n_gen: int = typer.Option(64, "--n-gen", "-n", help="Tokens to generate (exactly; EOS suppressed)."),
    batch: int = typer.Option(512, "--batch", "-b", help="n_batch: logical batch for prompt processing."),
    ubatch: int = typer.Option(512, "--ubatch", "-ub", help="n_ubatch: physical batch."),
    ctx: int = typer.Option(None, "--ctx", "-c", help="n_ctx [default: prompt + generation, rounded up to 256]."),
    n_gpu_layers: int = typer.Option(0, "--n-gpu-layers", "-ngl", help="Layers offloaded to the GPU (-1 = all)."),
    flash_attn: str = typer.Option("auto", "--flash-attn", "-fa", help="auto, on or off."),
    reps: int = typer.Option(5, "--reps", "-r", help="Measured repetitions."),
    warmup: int = typer.Option(1, "--warmup", "-w", help="Warm-up runs (kept, flagged)."),
    prompt: str = typer.Option(None, "--prompt", help="Literal prompt text (instead of a synthetic prompt)."),
    prompt_file: Path = typer.Option(None, "--prompt-file", help="Read the prompt text from a file."),
    seed: int = typer.Option(0, "--seed", help="Seed (recorded; generation is greedy)."),
    idle: float = typer.Option(2.0, "--idle", help="Idle-baseline seconds before measuring (0 = none)."),
    cooldown: float = typer.Option(0.0, "--cooldown", help="Seconds to wait between runs."),
    meter: list[str] = typer.Option(None, "--meter", help="Meter(s) to use (rapl, nvml, powergadget, estimate) [default: auto]."),
    cpu_tdp_w: float = typer.Option(None, "--cpu-tdp-w", help="CPU TDP in W for the estimate meter."),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Never fall back to the estimate meter."),
    sample_ms: float = typer.Option(20.0, "--sample-ms", help="Sampling period of the meters in ms."),
    min_window: float = typer.Option(0.0, "--min-window", help="Repeat decoding until a run lasts this many seconds."),
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
        raise typer.Exit(_measure_command(command, meter or None, cpu_tdp_w, sample_ms, idle, as_json))

    from energybench.plan import PromptSpec, RunPoint
    from energybench.runner import MeasureOptions, validate_measure
    from energybench.runner import measure as run_measure

    if prompt is not None and prompt_file is not None:
        raise UsageError("--prompt and --prompt-file are mutually exclusive", hint="pass one of them")
    if prompt_file is not None:
        try:
            prompt = prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--prompt-file {str(prompt_file)!r}: cannot read it ({exc.strerror})") from exc
    if flash_attn not in ("auto", "on", "off"):
        raise UsageError(f"--flash-attn={flash_attn!r} is invalid", hint="use auto, on or off")
    if threads is None:
        import psutil

        threads = psutil.cpu_count(logical=False) or 1
    spec = PromptSpec(kind="text", n_prompt=None, text=prompt) if prompt is not None else PromptSpec(n_prompt=n_prompt)
    point = RunPoint(model=model, n_gen=n_gen, prompt=spec, n_threads=threads, n_threads_batch=threads_batch,
                     n_gpu_layers=n_gpu_layers, n_batch=batch, n_ubatch=ubatch, n_ctx=ctx, flash_attn=flash_attn,
                     repack=not no_repack, seed=seed, min_window_s=min_window)
    opts = MeasureOptions(warmup=warmup, reps=reps, idle_s=idle, cooldown_s=cooldown, sample_period_s=sample_ms / 1000.0,
                          meters=list(meter) if meter else None, cpu_tdp_w=cpu_tdp_w, allow_estimate=not no_estimate,
                          out_dir=out)
    if no_gpu_protocol:
        opts.gpu_protocol = None
    validate_measure(point, opts)  # before the progress display: a bad value is one clean line
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("preparing", total=warmup + reps)

        def on_event(kind: str, payload: dict[str, Any]) -> None:
            if kind == "idle":
                progress.update(task, description=f"idle baseline ({payload['seconds']:.0f} s)")
            elif kind == "load":
                progress.update(task, description=f"loaded model in {payload['seconds']:.1f} s")
            elif kind == "run_start":
                progress.update(task, description="warm-up" if payload["warmup"] else "measuring")
            elif kind == "progress":
                progress.update(task, completed=payload["done"], total=payload["total"])  # the GPU protocol may add runs
            elif kind == "warning":
                progress.console.print(f"[yellow]warning:[/yellow] {payload['message']}")

        result = run_measure(point, opts, events=on_event)
    if as_json:
        print_json({"out_dir": str(result.out_dir), "warnings": result.warnings, **result.summary})
    else:
        render_summary(result)
    if result.summary["n_failed"]:
        raise typer.Exit(1)
