"""``energybench sweep``: run a grid of configurations (config file and/or llama-bench-style flags)."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from energybench.cli.app import app, console, err_console, print_json, warn
from energybench.errors import UsageError

EXIT_PARTIAL = 3


def _point_label(p: Any) -> str:
    parts = [p.model, f"t={p.n_threads}"]
    if p.n_gpu_layers:
        parts.append(f"ngl={p.n_gpu_layers}")
    parts += [f"b={p.n_batch}", f"ub={p.n_ubatch}", p.prompt.label(), f"n={p.n_gen}"]
    if p.flash_attn != "auto":
        parts.append(f"fa={p.flash_attn}")
    return " ".join(parts)


class LiveView:
    """The terminal view of a running sweep, fed by the engine's events."""

    def __init__(self, total_runs: int, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("runs"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=err_console)
        self.task = self.progress.add_task("sweep", total=total_runs)
        self.status = "starting"
        self.point = ""
        self.last = ""
        self.power = ""
        self.failures = 0
        self.sampler = None
        self.live = (contextlib.nullcontext() if quiet else
                     Live(console=err_console, refresh_per_second=4, transient=False, get_renderable=self._render))

    def _render(self) -> Group:
        lines = [self.progress, Text(f"  {self.status}", style="cyan")]
        if self.point:
            lines.append(Text(f"  point: {self.point}"))
        if self.sampler is not None:
            try:
                pw = self.sampler.latest_power_w()
                if pw:
                    self.power = "  ".join(f"{k} {v:.1f} W" for k, v in pw.items())
            except Exception:  # noqa: BLE001 - the view must never break the sweep
                pass
        if self.power:
            lines.append(Text(f"  power: {self.power}", style="magenta"))
        if self.last:
            lines.append(Text(f"  last:  {self.last}", style="green"))
        if self.failures:
            lines.append(Text(f"  failed runs: {self.failures}", style="red"))
        return Group(*lines)

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "start":
            self.sampler = payload.get("sampler")
            done = payload.get("already_done", 0)
            if done:
                self.progress.update(self.task, completed=done)
            self.status = f"{payload['points']} points, {payload['runs']} runs -> {payload['out_dir']}"
        elif kind == "resolve":
            self.status = f"preparing model {payload['model']}"
        elif kind == "idle":
            self.status = f"idle baseline ({payload['seconds']:.0f} s): keep the machine quiet"
        elif kind == "load":
            self.status = f"loaded {payload['model']} in {payload['seconds']:.1f} s"
        elif kind == "point":
            self.point = f"#{payload['index'] + 1} {_point_label(payload['point'])}"
        elif kind == "run_start":
            self.status = ("warm-up " if payload["warmup"] else "measuring ") + payload["run_id"]
        elif kind == "cooldown":
            self.status = "cooldown" + (f" {payload['seconds']:.1f} s" if "seconds" in payload else " (until idle)")
        elif kind == "load_start":
            self.status = f"loading {payload['model']}"
        elif kind == "run_end":
            row = payload["row"]
            self.progress.advance(self.task)
            if row.get("status") == "ok":
                jpt = (row["energy_j"] / row["n_gen_tokens"]) if row.get("energy_j") is not None else None
                est = " (estimate)" if row.get("flag_estimate") else ""
                self.last = (f"decode {row.get('decode_tok_s') or 0:.1f} tok/s · prefill {row.get('prefill_tok_s') or 0:.0f} tok/s"
                             f" · TTFT {row.get('ttft_ms') or 0:.1f} ms"
                             + (f" · {jpt:.4g} J/tok{est}" if jpt is not None else ""))
            else:
                self.failures += 1
                self.last = f"[failed] {row.get('error')}"
        elif kind == "point_skipped":
            self.status = f"point {payload['point_id']} skipped after {payload['failures']} failures"
        elif kind == "warning" and not self.quiet:
            self.progress.console.print(f"[yellow]warning:[/yellow] {payload['message']}")


def _resolve_out(out: Path | None, resume: Path | None, config: Any) -> Path:
    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise UsageError("--out and --resume name different directories", hint="--resume DIR continues DIR")
        return Path(resume)
    if out is not None:
        return Path(out)
    if config.output_dir:
        return Path(config.output_dir)
    return Path("results") / f"{config.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@app.command()
def sweep(
    config: Path = typer.Option(None, "--config", "-c",
                                help="Sweep config (YAML file, or a built-in name: quick, p1_baseline, p2_ablation) "
                                     "[default: quick]. Flags below override its fields."),
    out: Path = typer.Option(None, "--out", "-o", help="Results directory [default: config output_dir or results/NAME-TIME]."),
    resume: Path = typer.Option(None, "--resume", help="Continue an interrupted sweep in this directory (runs only what is missing)."),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a changed config and extend the sweep."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Model reference(s) (repeatable)."),
    threads: list[str] = typer.Option(None, "--threads", "-t", help="Threads: 1,2,4 or a range 1-8*2."),
    threads_batch: list[str] = typer.Option(None, "--threads-batch", "-tb", help="Prompt-processing threads."),
    n_gpu_layers: list[str] = typer.Option(None, "--n-gpu-layers", "-ngl", help="GPU layers: 0,11,22."),
    batch: list[str] = typer.Option(None, "--batch", "-b", help="n_batch values."),
    ubatch: list[str] = typer.Option(None, "--ubatch", "-ub", help="n_ubatch values."),
    flash_attn: list[str] = typer.Option(None, "--flash-attn", "-fa", help="auto,on,off."),
    ctx: list[str] = typer.Option(None, "--ctx", help="n_ctx values."),
    n_prompt: list[str] = typer.Option(None, "--n-prompt", "-p", help="Exact prompt lengths in tokens."),
    suite: list[str] = typer.Option(None, "--suite", help="Prompt suite(s): short_dialogue, analytical_reasoning, narrative_generation."),
    n_gen: list[str] = typer.Option(None, "--n-gen", "-n", help="Generated tokens."),
    repetitions: int = typer.Option(None, "--repetitions", "-r", help="Measured repetitions per point."),
    warmup: int = typer.Option(None, "--warmup", help="Warm-up runs per point."),
    cooldown: float = typer.Option(None, "--cooldown", help="Fixed cooldown seconds after each run."),
    idle: float = typer.Option(None, "--idle", help="Idle-baseline seconds before the sweep."),
    order: str = typer.Option(None, "--order", help="grouped, shuffled or interleaved."),
    meter: list[str] = typer.Option(None, "--meter", help="Meter(s) to use [default: auto]."),
    cpu_tdp_w: float = typer.Option(None, "--cpu-tdp-w", help="CPU TDP in W for the estimate meter."),
    sample_ms: float = typer.Option(None, "--sample-ms", help="Sampling period in ms."),
    min_window: float = typer.Option(None, "--min-window", help="Repeat decoding until a run lasts this many seconds."),
    max_failures: int = typer.Option(None, "--max-failures", help="Failed runs before a point is skipped."),
    no_gpu_protocol: bool = typer.Option(False, "--no-gpu-protocol",
                                         help="Measure offloading points without the Yang et al. GPU protocol "
                                              "(5 s windows, >= 4 trials, random gaps): faster, less accurate on A100/H100."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view; only the final summary."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (implies --quiet)."),
) -> None:
    """Run a grid of configurations with warm-ups, repetitions, idle baselines and cooldowns.

    Exit codes: 0 every point measured; 3 some points failed (the rest is saved); 2 bad
    usage/config; 1 the sweep could not run.
    """
    from energybench.backends import create_backend

    # start the llama.cpp worker now: its import overlaps config parsing and model resolution
    backend = create_backend("llama.cpp", start=True)
    try:
        _sweep(backend, config, out, resume, force, model, threads, threads_batch, n_gpu_layers, batch, ubatch,
               flash_attn, ctx, n_prompt, suite, n_gen, repetitions, warmup, cooldown, idle, order, meter,
               cpu_tdp_w, sample_ms, min_window, max_failures, no_gpu_protocol, quiet, as_json)
    finally:
        backend.close()


def _sweep(backend: Any, config: Path | None, out: Path | None, resume: Path | None, force: bool,
           model: list[str], threads: list[str], threads_batch: list[str], n_gpu_layers: list[str],
           batch: list[str], ubatch: list[str], flash_attn: list[str], ctx: list[str], n_prompt: list[str],
           suite: list[str], n_gen: list[str], repetitions: int | None, warmup: int | None,
           cooldown: float | None, idle: float | None, order: str | None, meter: list[str], cpu_tdp_w: float | None,
           sample_ms: float | None, min_window: float | None, max_failures: int | None, no_gpu_protocol: bool,
           quiet: bool, as_json: bool) -> None:
    from energybench.results import read_metadata
    from energybench.sweep import config_from_flags, load_config, parse_config
    from energybench.sweep.engine import plan_from_config, run_sweep

    flags = dict(models=model or None, threads=threads or None, threads_batch=threads_batch or None,
                 n_gpu_layers=n_gpu_layers or None, batch=batch or None, ubatch=ubatch or None,
                 flash_attn=flash_attn or None, n_ctx=ctx or None, n_prompt=n_prompt or None, suites=suite or None,
                 n_gen=n_gen or None, repetitions=repetitions, warmup=warmup, cooldown_s=cooldown,
                 idle_baseline_s=idle, order=order, meters=meter or None, cpu_tdp_w=cpu_tdp_w,
                 sample_period_ms=sample_ms, min_window_s=min_window, max_failures=max_failures)
    from energybench.examples import DEFAULT, builtin_config

    given = {k: v for k, v in flags.items() if v is not None}
    if config is not None and not config.exists() and builtin_config(str(config)) is not None:
        config = builtin_config(str(config))  # a built-in example by name: --config quick
    if config is None and resume is None and not given:
        config = builtin_config(DEFAULT)
        if config is not None and not quiet and not as_json:
            err_console.print(f"no config given: running the built-in [bold]{DEFAULT}[/bold] sweep ({config})")
    base = load_config(config) if config is not None else None
    if base is None and resume is not None and not given:
        meta = read_metadata(resume)
        if not meta.get("config"):
            raise UsageError(f"{str(resume)!r} has no stored config to resume", hint="pass --config FILE")
        base = parse_config(meta["config"], source=f"{resume}/metadata.json")
    if base is None and not given:
        raise UsageError("nothing to sweep", hint="pass --config FILE (e.g. examples/quick.yaml) or flags like -m synthetic:tiny -t 1,2")
    cfg = config_from_flags(base, **given) if given else base
    if no_gpu_protocol and cfg.gpu_protocol.enabled:
        cfg = cfg.model_copy(update={"gpu_protocol": cfg.gpu_protocol.model_copy(update={"enabled": False})})
    plan = plan_from_config(cfg)
    out_dir = _resolve_out(out, resume, cfg)
    total = plan.runs_total()  # per point: the GPU protocol may raise the trials of offloading points
    quiet = quiet or as_json
    view = LiveView(total, quiet)
    t0 = time.monotonic()
    with view.live:
        result = run_sweep(plan, out_dir, resume=resume is not None, force=force, events=view, backend=backend)
    if not quiet and not err_console.is_terminal:
        err_console.line()  # a log file gets the live view's last frame on its own lines
    summary = result.to_dict()
    if as_json:
        print_json(summary)
    else:
        _print_summary(result, time.monotonic() - t0)
    if result.partial:
        raise typer.Exit(EXIT_PARTIAL)


def _print_summary(result: Any, wall_s: float) -> None:
    t = Table(title=f"sweep {result.status}", title_justify="left", show_header=False)
    t.add_column("k", style="bold")
    t.add_column("v")
    t.add_row("results", str(result.out_dir))
    t.add_row("points", str(result.n_points))
    t.add_row("runs ok", f"{result.n_runs_done} (this session: {result.n_runs_this_session})")
    t.add_row("failed runs", str(result.n_failed_runs))
    if result.skipped_points:
        t.add_row("skipped points", ", ".join(result.skipped_points))
    t.add_row("model loads", f"{result.model_loads} ({result.load_groups} load groups)")
    t.add_row("time", f"{wall_s:.1f} s wall = {result.measured_s:.1f} s measured + {result.cooldown_s:.1f} s cooldown "
                      f"+ {result.idle_s:.1f} s idle + {result.load_s:.1f} s loads + overhead")
    console.print(t)
    if result.partial:
        warn(f"{len(result.failed_points)} point(s) had failed runs: see `energybench report {result.out_dir}`")
    console.print(f"next: [bold]energybench report {result.out_dir}[/bold]")
