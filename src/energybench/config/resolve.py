"""From a YAML file and/or llama-bench-style flags to a validated :class:`SweepConfig`.

Flags (:class:`Flag`: the commands say which option sets which field, with the option's own
spelling) are merged over a file when both are given: **a flag replaces the whole field it names**
(``-t 1,2`` replaces ``grid.threads``; ``-p 128`` replaces the whole ``grid.prompt`` axis);
everything else keeps the file's value. :func:`resolve_config` is what ``measure`` and ``sweep`` call.

Also here: :func:`gpu_warnings` (``energybench config validate``) and :func:`estimate_note`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from energybench.config.messages import allowed_keys, config_error_from_validation
from energybench.config.schema import SweepConfig, offloads
from energybench.config.yamlfile import read_yaml
from energybench.errors import ConfigError, UsageError


def parse_config(data: Mapping[str, Any], source: str = "<config>",
                 labels: Mapping[str, str] | None = None) -> SweepConfig:
    """Validate a mapping (parsed YAML or built from flags). ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys ({', '.join(allowed_keys())})")
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{source}: key {bad_keys[0]!r} is not a name (allowed keys: {', '.join(allowed_keys())})")
    try:
        config = SweepConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error_from_validation(exc, source, labels) from None
    except ConfigError as exc:  # e.g. a broken shipped prompt suite
        raise ConfigError(f"{source}: {exc.one_line()}") from None
    config._source = source
    return config


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep config YAML file. Raises :class:`ConfigError` (one line, exit 2)."""
    return parse_config(read_yaml(path), source=str(path))


@dataclass(frozen=True)
class Flag:
    """A value given on the command line for one config field.

    ``path``: the dotted field it sets (``grid.threads``, ``repetitions.fixed``); ``label``: the option
    as the command defines it (``-t/--threads``), for error messages; ``replaces``: the field it
    replaces as a whole (``-p`` sets ``grid.prompt.n_prompt`` and replaces all of ``grid.prompt``).
    """

    path: str
    value: Any
    label: str
    replaces: str | None = None


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, key = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[key] = value


def _drop(data: dict[str, Any], path: str) -> None:
    *parents, key = path.split(".")
    for part in parents:
        data = data.get(part) or {}
    data.pop(key, None)


def _targets(data: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    """Where a flag's ``grid.X`` lands: in ``grid``, or in every entry of ``grids`` when the config
    has a union of grids (``-t 1,2`` then sets the threads of each grid)."""
    if path.startswith("grid.") and data.get("grids"):
        return [(g, path.removeprefix("grid.")) for g in data["grids"]]
    return [(data, path)]


def apply_flags(base: SweepConfig | None, flags: Sequence[Flag]) -> SweepConfig:
    """``flags`` merged over ``base`` (None: the defaults). A flag replaces the whole field it
    names; everything else keeps the base's value. Errors name the flag that gave the bad value."""
    data: dict[str, Any] = base.normalized() if base is not None else {}
    for f in flags:
        for target, path in _targets(data, f.replaces or f.path):
            _drop(target, path)
    for f in flags:
        value = f.value[0] if isinstance(f.value, (list, tuple)) and len(f.value) == 1 else f.value
        for target, path in _targets(data, f.path):
            _set(target, path, list(value) if isinstance(value, tuple) else value)
    if "models" not in data:
        raise ConfigError("no model given", hint="pass -m MODEL (e.g. -m synthetic:tiny) or --config FILE")
    labels = {f.replaces or f.path: f"command line {f.label}" for f in flags}
    source = base.source if base is not None else "command line"
    config = parse_config(data, source=source, labels=labels)
    config._source = f"{source} + flags" if base is not None and flags else source
    return config


def resolve_config(config: str | os.PathLike[str] | None = None, flags: Sequence[Flag] = (), *,
                   resume_dir: str | os.PathLike[str] | None = None, default: str | None = None) -> SweepConfig:
    """The one way from what a command was given to a validated config.

    ``config``: a YAML file or a built-in example's name (``quick``); without one, a resumed
    directory's stored config, else ``default`` (a built-in name) unless a flag names the models.
    ``flags`` are applied over that base (:func:`apply_flags`).
    """
    from energybench.examples import builtin_config

    path = config
    if config is not None and not Path(config).exists():
        path = builtin_config(str(config)) or config
    if path is None and resume_dir is None and default is not None and not any(f.path == "models" for f in flags):
        path = builtin_config(default)
    base = load_config(path) if path is not None else _stored_config(resume_dir) if resume_dir is not None else None
    if base is None and not flags:
        raise UsageError("nothing to measure", hint="pass --config FILE (e.g. examples/quick.yaml) or flags like "
                                                    "-m synthetic:tiny -t 1,2")
    return apply_flags(base, flags) if flags else base


def _stored_config(resume_dir: str | os.PathLike[str]) -> SweepConfig:
    from energybench.results import read_metadata

    meta = read_metadata(resume_dir)
    if not meta.get("config"):
        raise UsageError(f"{str(resume_dir)!r} has no stored config to resume", hint="pass --config FILE")
    return parse_config(meta["config"], source=f"{resume_dir}/metadata.json")


def gpu_warnings(config: SweepConfig, *, supports_gpu_offload: Any = None) -> list[str]:
    """Warnings about the GPU side of ``config`` (``energybench config validate`` prints them).

    Only a config whose grid offloads is checked: then whether the installed llama-cpp-python can
    offload at all (asked in a child process, cached; ``supports_gpu_offload`` may be given as a
    callable returning bool, for tests), and whether the GPU protocol is switched off.
    """
    if not offloads(config):
        return []
    from energybench.errors import EnergybenchError

    layers = sorted({n for g in config.all_grids() for n in g.n_gpu_layers if n != 0})
    out: list[str] = []
    if supports_gpu_offload is None:
        from energybench.gpu import supports_gpu_offload
    try:
        ok = bool(supports_gpu_offload())
    except EnergybenchError as exc:
        out.append(f"grid.n_gpu_layers {layers} offloads to the GPU, but whether this llama-cpp-python build can "
                   f"do that could not be checked: {exc.one_line()}")
    else:
        if not ok:
            from energybench.gpu import CUDA_INSTALL_ONE_LINER

            out.append(f"grid.n_gpu_layers {layers} offloads to the GPU, but the installed llama-cpp-python is a "
                       f"CPU-only build: `energybench sweep` will refuse to start (install a CUDA build: "
                       f"{CUDA_INSTALL_ONE_LINER}, see docs/cuda.md; or use n_gpu_layers: [0]; or run the points that "
                       f"need no GPU with `energybench sweep --cpu-only`)")
    if not config.gpu_protocol.enabled:
        out.append("gpu_protocol.enabled is false: GPU energy of offloading points is measured without the "
                   "Yang et al. protocol (NVML energy on A100/H100 was off by 39% on average without it)")
    return out


def estimate_note(config: SweepConfig) -> str:
    """A short human note on what the cooldown setting means for time (for summaries)."""
    if config.cooldown.fixed_s is not None:
        return f"fixed {config.cooldown.fixed_s:g} s cooldown after each run"
    ui = config.cooldown.until_idle
    assert ui is not None
    return f"cooldown until within {ui.within_pct:g}% of idle for {ui.hold_s:g} s (at most {ui.max_s:g} s)"


__all__ = ["Flag", "apply_flags", "estimate_note", "gpu_warnings", "load_config", "parse_config", "resolve_config"]
