"""``energybench sweep``: run a grid of configurations (config file and/or llama-bench-style flags)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from energybench import defaults
from energybench.cli.app import app, console, err_console, print_json, warn
from energybench.cli.live import LiveView
from energybench.cli.options import Field, given_flags, off_when_set

EXIT_PARTIAL = 3

#: option -> the config field it sets (merged over the config file by the one resolver)
FIELDS: dict[str, Field] = {
    "model": Field("models"),
    "threads": Field("grid.threads"),
    "threads_batch": Field("grid.threads_batch"),
    "n_gpu_layers": Field("grid.n_gpu_layers"),
    "batch": Field("grid.batch"),
    "ubatch": Field("grid.ubatch"),
    "flash_attn": Field("grid.flash_attn"),
    "ctx": Field("grid.n_ctx"),
    "n_prompt": Field("grid.prompt.n_prompt", "grid.prompt"),
    "suite": Field("grid.prompt.suites", "grid.prompt"),
    "n_gen": Field("grid.n_gen"),
    "repetitions": Field("repetitions.fixed", "repetitions"),
    "warmup": Field("warmup"),
    "cooldown": Field("cooldown.fixed_s", "cooldown"),
    "idle": Field("idle_baseline_s"),
    "order": Field("order"),
    "meter": Field("meters"),
    "cpu_tdp_w": Field("cpu_tdp_w"),
    "no_estimate": Field("allow_estimate", convert=off_when_set),
    "sample_ms": Field("sample_period_ms"),
    "min_window": Field("min_window_s"),
    "max_failures": Field("max_failures"),
    "no_gpu_protocol": Field("gpu_protocol.enabled", convert=off_when_set),
    "cpu_only": Field("cpu_only", convert=lambda on: True if on else None),
}


@app.command()
def sweep(
    context: typer.Context,
    config: Path = typer.Option(None, "--config", "-c",
                                help="Sweep config (YAML file, or a built-in name: quick, p1_baseline, p2_ablation, seed_p1, "
                                     "seed_p2) "
                                     "[default: quick]. Flags below override its fields."),
    out: str = typer.Option(None, "--out", "-o", metavar="DIR|URL", help="Results directory, or an s3://bucket/prefix URL (each finished "
                                                      "run is uploaded) [default: config output_dir or "
                                                      "results/NAME-TIME]."),
    resume: str = typer.Option(None, "--resume", metavar="DIR|URL", help="Continue an interrupted sweep in this directory or s3:// URL "
                                                      "(runs only what is missing)."),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a changed config and extend the sweep."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Model reference(s) (repeatable)."),
    threads: list[str] = typer.Option(None, "--threads", "-t", help="Threads: 1,2,4 or a range 1-8*2 [default: physical cores]."),
    threads_batch: list[str] = typer.Option(None, "--threads-batch", "-tb", help="Prompt-processing threads [default: --threads]."),
    n_gpu_layers: list[str] = typer.Option(None, "--n-gpu-layers", "-ngl", help=f"GPU layers: 0,11,22 [default: {defaults.N_GPU_LAYERS}]."),
    batch: list[str] = typer.Option(None, "--batch", "-b", help=f"n_batch values [default: {defaults.BATCH}]."),
    ubatch: list[str] = typer.Option(None, "--ubatch", "-ub", help="n_ubatch values [default: min(batch, "
                                                                    f"{defaults.LLAMA_DEFAULT_UBATCH})]."),
    flash_attn: list[str] = typer.Option(None, "--flash-attn", "-fa", help=f"auto,on,off [default: {defaults.FLASH_ATTN_MODE}]."),
    ctx: list[str] = typer.Option(None, "--ctx", help="n_ctx values [default: prompt + generation, rounded up to 256]."),
    n_prompt: list[str] = typer.Option(None, "--n-prompt", "-p", help=f"Exact prompt lengths in tokens [default: {defaults.N_PROMPT}]."),
    suite: list[str] = typer.Option(None, "--suite", help="Prompt suite(s): short_dialogue, analytical_reasoning, narrative_generation."),
    n_gen: list[str] = typer.Option(None, "--n-gen", "-n", help=f"Generated tokens [default: {defaults.N_GEN}]."),
    repetitions: int = typer.Option(None, "--repetitions", "-r", help=f"Measured repetitions per point [default: {defaults.REPETITIONS}]."),
    warmup: int = typer.Option(None, "--warmup", help=f"Warm-up runs per point [default: {defaults.WARMUP}]."),
    cooldown: float = typer.Option(None, "--cooldown", help="Fixed cooldown seconds after each run [default: until power "
                                                            f"is within {defaults.UNTIL_IDLE_WITHIN_PCT:g}% of idle]."),
    idle: float = typer.Option(None, "--idle", help=f"Idle-baseline seconds before the sweep [default: {defaults.IDLE_BASELINE_S:g}]."),
    order: str = typer.Option(None, "--order", help=f"grouped, shuffled or interleaved [default: {defaults.ORDER}]."),
    meter: list[str] = typer.Option(None, "--meter", help="Meter(s) to use (`energybench meters` lists them), or none for time only [default: auto]."),
    cpu_tdp_w: float = typer.Option(None, "--cpu-tdp-w", help="CPU TDP in W for the estimate meter."),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Never fall back to the estimate meter."),
    sample_ms: float = typer.Option(None, "--sample-ms", help=f"Sampling period in ms [default: {defaults.SAMPLE_PERIOD_MS:g}]."),
    min_window: float = typer.Option(None, "--min-window", help="Repeat decoding until a run lasts this many seconds."),
    max_failures: int = typer.Option(None, "--max-failures", help=f"Failed runs before a point is skipped [default: {defaults.MAX_FAILURES}]."),
    no_gpu_protocol: bool = typer.Option(False, "--no-gpu-protocol",
                                         help="Measure offloading points without the Yang et al. GPU protocol "
                                              "(5 s windows, >= 4 trials, random gaps): faster, less accurate on A100/H100."),
    cpu_only: bool = typer.Option(False, "--cpu-only", help="Run only the points that need no GPU (n_gpu_layers 0), "
                                                             "e.g. the CPU part of seed_p2 on a CPU-only build; the "
                                                             "others are named as left out."),
    shard: str = typer.Option(None, "--shard", metavar="K/N", help="Run shard K of N (1..N): a deterministic, "
                                                                   "balanced part of the points, load groups kept "
                                                                   "whole where that stays balanced; `report` merges "
                                                                   "the shards of one sweep."),
    sweep_id: str = typer.Option(None, "--sweep-id", metavar="ID", help="The sweep's identity beside its config hash (give every "
                                                          "shard the same one, e.g. $SLURM_ARRAY_JOB_ID) "
                                                          "[default: the config hash]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view; only the final summary."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (implies --quiet)."),
) -> None:
    """Run a grid of configurations with warm-ups, repetitions, idle baselines and cooldowns.

    Exit codes: 0 every point measured; 3 some points failed (the rest is saved); 2 bad
    usage/config; 1 the sweep could not run.
    """
    from energybench.config import resolve_config
    from energybench.engine import run
    from energybench.engine.results_dir import choose_out_dir
    from energybench.examples import DEFAULT
    from energybench.plan import left_out_ids, plan_from_config
    from energybench.results import read_metadata
    from energybench.shard import resolve

    flags = given_flags(context, FIELDS)
    cfg = resolve_config(config, flags, resume_dir=resume, default=DEFAULT)
    quiet = quiet or as_json
    if config is None and resume is None and not any(f.path == "models" for f in flags) and not quiet:
        err_console.print(f"no config given: running the built-in [bold]{DEFAULT}[/bold] sweep ({cfg.source})")
    part, identity = resolve(shard, sweep_id, read_metadata(resume) if resume is not None else {})
    plan = plan_from_config(cfg, shard=part, sweep_id=identity)
    if part is not None:  # said even with --quiet: a fleet's logs tell which part each machine ran
        err_console.print(f"shard {part}: {len(plan.points)} of the sweep's {plan.points_total} points "
                          f"({plan.runs_total()} runs planned)", highlight=False)
    if plan.left_out:
        warn(f"cpu_only: leaving out {len(plan.left_out)} points that need a GPU ({', '.join(left_out_ids(plan))}); "
             f"running the other {len(plan.points)}")
    view = LiveView(plan.runs_total(), quiet=quiet)
    t0 = time.monotonic()
    with view.live:
        result = run(plan, choose_out_dir(cfg, out=out, resume=resume), resume=resume is not None, force=force,
                     events=view)
    if not quiet and not err_console.is_terminal:
        err_console.line()  # a log file gets the live view's last frame on its own lines
    if as_json:
        print_json(result.to_dict())
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
    groups = f"{result.load_groups} load group" + ("s" if result.load_groups != 1 else "")
    t.add_row("model loads", f"{result.model_loads} ({groups})")
    t.add_row("time", f"{wall_s:.1f} s wall = {result.measured_s:.1f} s measured + {result.cooldown_s:.1f} s cooldown "
                      f"+ {result.idle_s:.1f} s idle + {result.load_s:.1f} s loads + overhead")
    console.print(t)
    if result.partial:
        warn(f"{len(result.failed_points)} point(s) had failed runs: see `energybench report {result.out_dir}`")
    console.print(f"next: [bold]energybench report {result.out_dir}[/bold]")
