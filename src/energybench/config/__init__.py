"""Sweep configuration: YAML file and/or llama-bench-style flags → a validated :class:`SweepConfig`.

By concern:

- :mod:`.axes` — range strings (``"1-8*2"``) and the parsers/types of grid axes and other values;
- :mod:`.schema` — the config sections, :class:`SweepConfig`, :func:`config_hash`, the JSON Schema;
- :mod:`.messages` — pydantic errors → one-line :class:`~energybench.errors.ConfigError`;
- :mod:`.yamlfile` — reading a YAML file (duplicate keys rejected);
- :mod:`.resolve` — file and/or flags → config (what ``measure`` and ``sweep`` call), warnings.

Default values live in :mod:`energybench.defaults`.

Public API::

    load_config(path) -> SweepConfig
    parse_config(data: Mapping, source="<config>") -> SweepConfig
    apply_flags(base, [Flag(path, value, label)]) -> SweepConfig
    resolve_config(config=None, flags=(), resume_dir=None, default=None) -> SweepConfig
    config_hash(config) -> str
    config_json_schema() -> dict
    parse_range(text) -> list[int]
    SweepConfig.to_yaml() / .normalized()
"""

from __future__ import annotations

from energybench.config.axes import FLASH_ATTN, FieldProblem, parse_range
from energybench.config.messages import allowed_keys, config_error_from_validation, format_path
from energybench.config.resolve import (
    Flag,
    apply_flags,
    estimate_note,
    gpu_warnings,
    load_config,
    parse_config,
    resolve_config,
)
from energybench.config.schema import (
    ADAPTIVE_METRICS,
    ORDERS,
    AdaptiveRepetitions,
    Cooldown,
    GpuProtocolConfig,
    Grid,
    PromptAxis,
    Repetitions,
    SweepConfig,
    UntilIdle,
    config_hash,
    config_json_schema,
    known_meters,
    offloads,
    parse_meters,
    prompt_specs,
)
from energybench.config.yamlfile import read_yaml

__all__ = [
    "ADAPTIVE_METRICS", "FLASH_ATTN", "ORDERS", "AdaptiveRepetitions", "Cooldown", "FieldProblem",
    "GpuProtocolConfig", "Grid", "PromptAxis", "Repetitions", "SweepConfig", "UntilIdle", "allowed_keys",
    "config_error_from_validation", "config_hash", "config_json_schema", "estimate_note",
    "format_path", "gpu_warnings", "known_meters", "load_config", "offloads", "parse_config", "parse_meters", "parse_range",
    "prompt_specs", "read_yaml", "resolve_config", "Flag", "apply_flags",
]
