"""Sweeps: configuration (:mod:`.config`) and grid expansion/ordering (:mod:`.grid`).

What ``energybench sweep`` needs, in order::

    from energybench.sweep import resolve_sweep_config, plan, group_by_load, config_hash

    config = resolve_sweep_config(config_path, models=..., threads=..., ...)  # file and/or flags
    points = plan(config)              # list[RunPoint], expanded and ordered (config.order)
    h = config_hash(config)            # store in metadata.json; compare on resume
    # per point: config.warmup warm-ups, then config.repetitions (fixed or adaptive) measured runs,
    # config.cooldown after each run, config.idle_baseline_s idle measurement before the first,
    # skip a point after config.max_failures failed runs.

Prompt token ids for a point: :func:`energybench.prompts.prompt_tokens` (``point.prompt``, the
loaded backend's ``tokenize``).
"""

from __future__ import annotations

from energybench.sweep.config import (
    ADAPTIVE_METRICS,
    FLAG_NAMES,
    ORDERS,
    AdaptiveRepetitions,
    Cooldown,
    Grid,
    PromptAxis,
    Repetitions,
    SweepConfig,
    UntilIdle,
    config_from_flags,
    config_hash,
    config_json_schema,
    load_config,
    parse_config,
    parse_range,
    prompt_specs,
    resolve_sweep_config,
)
from energybench.sweep.grid import (
    LoadGroup,
    PlanSummary,
    count_loads,
    expand,
    group_by_load,
    min_duration_s,
    order_points,
    plan,
    summarize,
    summarize_file,
)

__all__ = [
    "ADAPTIVE_METRICS", "FLAG_NAMES", "ORDERS", "AdaptiveRepetitions", "Cooldown", "Grid", "LoadGroup",
    "PlanSummary", "PromptAxis", "Repetitions", "SweepConfig", "UntilIdle", "config_from_flags", "config_hash",
    "config_json_schema", "count_loads", "expand", "group_by_load", "load_config", "min_duration_s",
    "order_points", "parse_config", "parse_range", "plan", "prompt_specs", "resolve_sweep_config", "summarize",
    "summarize_file",
]
