"""From real command-line options to a config: every option the tables name exists, every field it
sets exists, flags replace whole fields over a file, and errors name the option as the command spells it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from energybench import defaults
from energybench.cli import _load_commands
from energybench.cli.app import app
from energybench.cli.options import given_flags
from energybench.config import allowed_keys, apply_flags, load_config, resolve_config
from energybench.errors import ConfigError, UsageError

DATA = Path(__file__).parent / "data" / "configs"


def command(name: str):
    _load_commands()
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def fields(name: str):
    from energybench.cli import measure, sweep

    return {"measure": measure.FIELDS, "sweep": sweep.FIELDS}[name]


def flags(name: str, *args: str):
    ctx = command(name).make_context(name, list(args))
    return given_flags(ctx, fields(name))


@pytest.mark.parametrize("name", ["measure", "sweep"])
def test_every_table_entry_is_a_real_option_and_a_real_field(name: str) -> None:
    options = {p.name for p in command(name).params}
    for option, field in fields(name).items():
        assert option in options, f"{name} has no option {option!r}"
        for path in {field.path, field.replaces or field.path}:
            *parents, key = path.split(".")
            assert key in allowed_keys(parents), f"{option}: {path} is not a config field"


def test_sweep_flags_only() -> None:
    c = apply_flags(None, flags("sweep", "-m", "synthetic:tiny", "-t", "1-8*2", "-ngl", "0,11,22", "-b", "128",
                                "-b", "512", "-ub", "64", "-fa", "on", "-p", "128", "-n", "64", "-r", "5",
                                "--warmup", "0", "--cooldown", "0.5", "--idle", "1", "--order", "grouped",
                                "--no-gpu-protocol", "--no-estimate"))
    g = c.grid
    assert g.threads == [1, 2, 4, 8] and g.n_gpu_layers == [0, 11, 22] and g.batch == [128, 512]
    assert g.ubatch == [64] and g.flash_attn == ["on"] and g.prompt.n_prompt == [128] and g.n_gen == [64]
    assert c.repetitions.fixed == 5 and c.warmup == 0 and c.cooldown.fixed_s == 0.5 and c.idle_baseline_s == 1
    assert c.order == "grouped" and not c.gpu_protocol.enabled and not c.allow_estimate
    assert c.source == "command line"


def test_measure_defaults_come_from_the_config_defaults() -> None:
    c = apply_flags(None, flags("measure"))  # nothing given: only the model's default
    assert c.models == [defaults.MODEL]
    assert c.grid.threads == [defaults.threads()] and c.grid.prompt.n_prompt == [defaults.N_PROMPT]
    assert c.repetitions.fixed == defaults.REPETITIONS and c.idle_baseline_s == defaults.IDLE_BASELINE_S
    assert c.cooldown.until_idle is not None and c.allow_estimate and c.gpu_protocol.enabled


def test_measure_prompt_text_replaces_the_synthetic_prompt(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Hello there, how are you?")
    c = apply_flags(None, flags("measure", "--prompt-file", str(tmp_path / "p.txt"), "--no-repack"))
    assert c.grid.prompt.text == ["Hello there, how are you?"] and c.grid.prompt.n_prompt is None
    assert c.grid.repack == [False]
    with pytest.raises(UsageError, match="--prompt-file .*cannot read it"):
        flags("measure", "--prompt-file", str(tmp_path / "missing.txt"))


def test_flags_win_over_the_file_and_replace_whole_fields() -> None:
    base = load_config(DATA / "valid_full.yaml")
    c = resolve_config(DATA / "valid_full.yaml", flags("sweep", "-t", "4", "-p", "256", "-r", "3"))
    assert c.grid.threads == [4]
    # the prompt flag replaces the whole prompt axis (suites, ids and text from the file are gone)
    assert c.grid.prompt.n_prompt == [256] and c.grid.prompt.suites is None and c.grid.prompt.text is None
    assert c.repetitions.fixed == 3 and c.repetitions.adaptive is None
    # everything not given keeps the file's value
    assert c.grid.batch == base.grid.batch and c.models == base.models and c.meters == base.meters
    assert c.cooldown == base.cooldown and c.order == base.order and c.name == base.name
    assert "valid_full.yaml" in c.source and "flags" in c.source
    assert resolve_config(DATA / "valid_full.yaml").normalized() == base.normalized()


def test_flag_errors_name_the_option_as_the_command_spells_it() -> None:
    with pytest.raises(ConfigError) as info:
        apply_flags(None, flags("sweep", "-m", "synthetic:tiny", "-t", "0"))
    line = info.value.one_line()
    assert line.startswith("command line -t/--threads: grid.threads = '0': must be at least 1"), line
    with pytest.raises(ConfigError, match=r"-ngl/--n-gpu-layers: grid\.n_gpu_layers\[1\] = '1\.\.2'"):
        apply_flags(None, flags("sweep", "-m", "synthetic:tiny", "-ngl", "0", "-ngl", "1..2"))
    with pytest.raises(ConfigError, match=r"command line -r/--reps: repetitions\.fixed = 0"):
        apply_flags(None, flags("measure", "-r", "0"))


def test_flag_conflicting_with_a_file_value() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(DATA / "valid_lists.yaml", flags("sweep", "-ub", "256"))  # the file's batch is [128, 512]
    line = info.value.one_line()
    assert "-ub/--ubatch" in line and "grid.ubatch = 256" in line and "batch 128" in line


def test_built_in_names_and_nothing_to_do() -> None:
    assert resolve_config("quick").source.endswith("quick.yaml")
    assert resolve_config(None, default="quick").source.endswith("quick.yaml")
    tuned = resolve_config(None, flags("sweep", "--cpu-tdp-w", "6"), default="quick")  # flags over the default
    assert tuned.cpu_tdp_w == 6 and tuned.name == "quick" and "flags" in tuned.source
    own = resolve_config(None, flags("sweep", "-m", "synthetic:tiny"), default="quick")  # a model: no default
    assert own.name == "sweep" and own.source == "command line"
    with pytest.raises(UsageError, match="nothing to measure"):
        resolve_config(None)
    with pytest.raises(ConfigError, match="no model given"):
        apply_flags(None, flags("sweep", "-t", "1"))
