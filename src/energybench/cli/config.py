"""``energybench config``: print the config schema, validate a sweep config, show it normalized."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from energybench.cli.app import app, console, print_json, warn

if TYPE_CHECKING:  # the config models take ~0.8 s to build: import them only when a command runs
    from energybench.plan import PlanSummary

config_app = typer.Typer(
    name="config",
    help="Sweep configuration files: JSON Schema, validation with a plan summary, normalized view.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")

FILE_ARG = typer.Argument(..., help="A sweep config YAML file, or a built-in example: quick, p1_baseline, p2_ablation, "
                               "seed_p1, seed_p2.",
                          show_default=False)


def human_duration(seconds: float) -> str:
    """12.0 → '12 s'; 754 → '12 min 34 s'; 7260 → '2 h 01 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _print_summary(source: str, s: PlanSummary) -> None:
    reps = f"{s.reps_min}" if s.reps_min == s.reps_max else f"{s.reps_min}-{s.reps_max} (adaptive)"
    runs = f"{s.runs_min}" if s.runs_min == s.runs_max else f"{s.runs_min}-{s.runs_max}"
    lines = [
        f"ok: {source}",
        f"  name            {s.name}",
        f"  models          {s.n_models}",
        *_grid_lines(s),
        f"  points          {s.n_points}" + (f" ({s.n_configurations} configurations)" if len(s.grids) > 1 else ""),
        *([f"  left out        {s.n_left_out_points} points that need a GPU (cpu_only): {', '.join(s.left_out)}"]
          if s.left_out else []),
        f"  load groups     {s.n_load_groups} ({s.n_loads} model load{'s' if s.n_loads != 1 else ''} in {s.order} order)",
        f"  runs            {runs} ({s.warmup_per_point} warm-up + {reps} measured per point)",
        f"  min. duration   {human_duration(s.est_min_duration_s)} (idle baseline + cooldowns; {s.cooldown}; "
        "inference and model loads come on top)",
        f"  config hash     {s.config_hash[:16]}",
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _axes(sizes: dict[str, int]) -> str:
    return " x ".join(f"{k} {v}" for k, v in sizes.items() if v > 1) or "a single point"


def _grid_lines(s: PlanSummary) -> list[str]:
    """``grid`` (one grid), or one line per grid of a union: axes, points, shared points, ids."""
    if len(s.grids) <= 1:
        return [f"  grid            {_axes(s.axis_sizes)}"]
    out = [f"  grids           {len(s.grids)} (a point two grids share runs once)"]
    for g in s.grids:
        shared = f", {g.n_shared} already in an earlier grid" if g.n_shared else ""
        ids = ", ".join(g.configurations[:8]) + (", ..." if len(g.configurations) > 8 else "")
        out.append(f"    {g.index} {g.label or '-':<6} {_axes(g.axis_sizes)}: {g.n_points} points{shared} ({ids})")
    return out


@config_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of sweep config files."""
    from energybench.config import config_json_schema

    print_json(config_json_schema())


@config_app.command("validate")
def validate_cmd(
    file: Path = FILE_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate FILE: 'ok' and what it will run, or one line naming the problem (exit code 2).

    Impossible work (a prompt + generation beyond a model's training context, a context that
    cannot fit in memory) is such a problem, found without loading anything."""
    from energybench.config import gpu_warnings, resolve_config
    from energybench.plan import plan_from_config, summarize
    from energybench.preflight import check_plan

    config = resolve_config(file)
    summary = summarize(config)
    # e.g. a grid that offloads on a CPU-only llama.cpp build; an n_ctx beyond the training context
    warnings = gpu_warnings(config) + check_plan(plan_from_config(config).points)
    if as_json:
        print_json({"ok": True, "file": config.source, **summary.to_dict(), "warnings": warnings})
    else:
        _print_summary(config.source, summary)
    for w in warnings:
        warn(w)


@config_app.command("show")
def show_cmd(
    file: Path = FILE_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print FILE normalized: defaults filled in, ranges expanded (loads back to the same config)."""
    from energybench.config import resolve_config

    config = resolve_config(file)
    if as_json:
        print_json(config.normalized())
    else:
        typer.echo(config.to_yaml(), nl=False)
