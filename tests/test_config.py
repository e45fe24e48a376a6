"""Valid sweep configs: defaults, normalisation, hashing, flags merged over files, the JSON
Schema, and the `energybench config` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from energybench.cli import main
from energybench.errors import ConfigError
from energybench.sweep import (
    SweepConfig,
    config_from_flags,
    config_hash,
    config_json_schema,
    load_config,
    parse_config,
    resolve_sweep_config,
)
from energybench.sweep.config import FLAG_NAMES, allowed_keys

DATA = Path(__file__).parent / "data" / "configs"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- loading


def test_minimal_config_gets_documented_defaults() -> None:
    c = load_config(DATA / "valid_minimal.yaml")
    assert c.models == ["synthetic:tiny"]  # a scalar becomes a one-item list
    assert c.backend == "llama.cpp"
    g = c.grid
    assert (g.threads, g.threads_batch, g.n_gpu_layers, g.batch, g.ubatch) == ([1], [None], [0], [512], [None])
    assert (g.flash_attn, g.n_ctx, g.n_gen, g.repack, g.seed) == (["auto"], [None], [64], [True], [0])
    assert g.prompt.n_prompt == [128] and g.prompt.suites is None and g.prompt.text is None
    assert c.warmup == 1
    assert c.repetitions.fixed == 10 and c.repetitions.adaptive is None  # >= 10 reps: shared README §2
    assert c.cooldown.until_idle is not None and c.cooldown.fixed_s is None
    assert c.idle_baseline_s > 0
    assert c.order == "shuffled" and c.meters == "auto" and c.max_failures >= 1
    assert c.source == str(DATA / "valid_minimal.yaml")


def test_full_config_every_key() -> None:
    c = load_config(DATA / "valid_full.yaml")
    g = c.grid
    assert g.threads == [1, 2]
    assert g.threads_batch == [None, 2]
    assert g.ubatch == [None, 32]
    assert g.flash_attn == ["auto", "off"]  # YAML 1.1 reads bare `off` as false
    assert g.n_ctx == [None, 1024]
    assert g.prompt.n_prompt == [32, 64]
    assert g.prompt.suites == ["short_dialogue", "analytical_reasoning"]
    assert g.prompt.prompt_ids == ["sd-01", "ar-02"]
    assert g.prompt.text == ["The quick brown fox, measured."]
    assert g.repack == [True, False] and g.use_mmap == [True] and g.seed == [7]
    a = c.repetitions.adaptive
    assert a is not None and (a.target_ci_pct, a.min, a.max, a.metric) == (2.5, 4, 12, "decode_tok_s")
    assert c.repetitions.min_reps == 4 and c.repetitions.max_reps == 12
    assert c.cooldown.until_idle is not None and c.cooldown.min_s == 2 and c.cooldown.max_s == 30
    assert c.meters == ["rapl", "estimate"]
    assert c.runs_per_point() == (2 + 4, 2 + 12)
    assert c.output_dir == "results/full-example"


def test_range_and_list_spellings_are_the_same_config() -> None:
    a = load_config(DATA / "valid_ranges.yaml")
    b = load_config(DATA / "valid_lists.yaml")
    assert a.grid.threads == [1, 2, 4, 8]
    assert a.grid.n_gpu_layers == [0, 11, 22]
    assert a.grid.flash_attn == ["on", "off"]
    assert a.normalized() == b.normalized()
    assert config_hash(a) == config_hash(b)


@pytest.mark.parametrize("text,expected", [
    ("flash_attn: on", ["on"]), ("flash_attn: [on, off, auto]", ["on", "off", "auto"]),
    ("flash_attn: 'off'", ["off"]), ("flash_attn: true", ["on"]),
])
def test_yaml_booleans_for_flash_attn(text: str, expected: list[str]) -> None:
    c = parse_config({"models": ["m.gguf"], "grid": yaml.safe_load(text)})
    assert c.grid.flash_attn == expected


def test_scalar_shortcuts() -> None:
    c = parse_config({"models": "a.gguf", "repetitions": 4, "cooldown": 0.5,
                      "grid": {"n_gpu_layers": "all", "prompt": [short for short in ("short_dialogue",)]}})
    assert c.repetitions.fixed == 4 and c.cooldown.fixed_s == 0.5
    assert c.grid.n_gpu_layers == [-1]
    assert c.grid.prompt.suites == ["short_dialogue"] and c.grid.prompt.n_prompt is None
    c2 = parse_config({"models": "a.gguf", "grid": {"prompt": "64,256"}, "cooldown": "until_idle"})
    assert c2.grid.prompt.n_prompt == [64, 256] and c2.cooldown.until_idle is not None


def test_nctx_check_uses_largest_prompt_and_generation() -> None:
    ok = parse_config({"models": "m", "grid": {"n_ctx": 576, "prompt": {"n_prompt": [64, 512]}, "n_gen": [16, 64]}})
    assert ok.grid.n_ctx == [576]
    with pytest.raises(ConfigError, match=r"grid\.n_ctx = 575: too small.*n_ctx >= 576"):
        parse_config({"models": "m", "grid": {"n_ctx": 575, "prompt": {"n_prompt": [64, 512]}, "n_gen": [16, 64]}})


def test_ubatch_auto_allows_any_batch_and_explicit_is_checked() -> None:
    ok = parse_config({"models": "m", "grid": {"batch": [128, 512, 1024], "ubatch": "auto"}})
    assert ok.grid.ubatch == [None]
    ok2 = parse_config({"models": "m", "grid": {"batch": [128, 512], "ubatch": [64, 128]}})
    assert ok2.grid.ubatch == [64, 128]


# ----------------------------------------------------------------------------- normalisation + hash


@pytest.mark.parametrize("name", ["valid_minimal.yaml", "valid_full.yaml", "valid_ranges.yaml"])
def test_to_yaml_round_trips(name: str, tmp_path: Path) -> None:
    c = load_config(DATA / name)
    p = tmp_path / "again.yaml"
    p.write_text(c.to_yaml())
    again = load_config(p)
    assert again.normalized() == c.normalized()
    assert config_hash(again) == config_hash(c)


def test_hash_changes_with_anything_measured_but_not_output_dir() -> None:
    base = {"models": ["synthetic:tiny"], "grid": {"threads": [1, 2]}}
    h = config_hash(parse_config(base))
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(parse_config({**base, "output_dir": "elsewhere"})) == h
    assert config_hash(parse_config({**base, "grid": {"threads": [1, 3]}})) != h
    assert config_hash(parse_config({**base, "warmup": 2})) != h
    assert config_hash(parse_config({**base, "models": ["synthetic:tiny:Q8_0"]})) != h
    assert config_hash(parse_config(base), exclude=()) != config_hash(parse_config({**base, "output_dir": "x"}), exclude=())


def test_hash_is_stable_across_processes() -> None:
    code = ("import sys; from energybench.sweep import load_config, config_hash; "
            "print(config_hash(load_config(sys.argv[1])))")
    here = config_hash(load_config(DATA / "valid_full.yaml"))
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, str(DATA / "valid_full.yaml")], capture_output=True,
                             text=True, env=env, check=True, timeout=120)
        assert out.stdout.strip() == here


# ----------------------------------------------------------------------------- flags


def test_flags_only() -> None:
    c = config_from_flags(models=["synthetic:tiny"], threads="1-8*2", n_gpu_layers="0,11,22", batch=["128", "512"],
                          ubatch="64", flash_attn="on", n_prompt="128", n_gen="64", repetitions="5", warmup="0",
                          cooldown_s="0.5", idle_baseline_s="1", order="grouped", output_dir=Path("out/x"))
    g = c.grid
    assert g.threads == [1, 2, 4, 8] and g.n_gpu_layers == [0, 11, 22] and g.batch == [128, 512]
    assert g.ubatch == [64] and g.flash_attn == ["on"] and g.prompt.n_prompt == [128] and g.n_gen == [64]
    assert c.repetitions.fixed == 5 and c.warmup == 0 and c.cooldown.fixed_s == 0.5
    assert c.order == "grouped" and c.output_dir == os.path.join("out", "x")
    assert c.source == "command line"


def test_flags_win_over_file_and_replace_whole_fields() -> None:
    base = load_config(DATA / "valid_full.yaml")
    c = config_from_flags(base, threads="4", n_prompt=256, repetitions=3, output_dir="other")
    assert c.grid.threads == [4]
    # the prompt flag replaces the whole prompt axis (suites, ids and text from the file are gone)
    assert c.grid.prompt.n_prompt == [256] and c.grid.prompt.suites is None and c.grid.prompt.text is None
    assert c.repetitions.fixed == 3 and c.repetitions.adaptive is None
    assert c.output_dir == "other"
    # everything not given keeps the file's value
    assert c.grid.batch == base.grid.batch and c.models == base.models and c.meters == base.meters
    assert c.cooldown == base.cooldown and c.order == base.order and c.name == base.name
    assert "valid_full.yaml" in c.source and "flags" in c.source


def test_no_flags_returns_the_file_unchanged() -> None:
    path = DATA / "valid_full.yaml"
    assert resolve_sweep_config(path, threads=None, models=None).normalized() == load_config(path).normalized()
    merged = resolve_sweep_config(path, threads="1,2,4")
    assert merged.grid.threads == [1, 2, 4]


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_flags(models="synthetic:tiny", threads="0")
    line = info.value.one_line()
    assert line.startswith("command line -t/--threads: grid.threads = '0': must be at least 1"), line
    with pytest.raises(ConfigError, match=r"-ngl/--n-gpu-layers: grid\.n_gpu_layers\[1\] = '1\.\.2'"):
        config_from_flags(models="synthetic:tiny", n_gpu_layers=["0", "1..2"])


def test_flag_conflicting_with_file_value() -> None:
    base = load_config(DATA / "valid_lists.yaml")  # batch [128, 512]
    with pytest.raises(ConfigError) as info:
        config_from_flags(base, ubatch="256")
    line = info.value.one_line()
    assert "-ub/--ubatch-size" in line and "grid.ubatch = 256" in line and "batch 128" in line


def test_no_model_anywhere() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_flags(threads="1")
    assert "no model given" in info.value.one_line() and "-m MODEL" in info.value.one_line()


def test_flag_names_cover_real_fields() -> None:
    for path in FLAG_NAMES:
        *parents, key = path.split(".")
        assert key in allowed_keys(parents), path


# ----------------------------------------------------------------------------- schema


def test_json_schema_describes_the_file_format() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) == set(allowed_keys())
    assert schema["required"] == ["models"]
    assert schema["additionalProperties"] is False
    for name, sub in schema["$defs"].items():
        assert sub.get("additionalProperties") is False, name
    threads = schema["$defs"]["Grid"]["properties"]["threads"]
    assert any(alt.get("type") == "string" for alt in threads["anyOf"])  # range strings are allowed
    json.dumps(schema)  # serialisable


# ----------------------------------------------------------------------------- CLI


def test_cli_validate_prints_summary(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "examples" / "quick.yaml"
    assert main(["config", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {path}")
    assert "points          4" in out
    assert "runs            24 (1 warm-up + 5 measured per point)" in out
    assert "load groups     1" in out
    assert "min. duration   50 s" in out  # 2 s idle + 24 runs x (1 s cooldown + 1 s min window)


def test_cli_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "--json", str(DATA / "valid_full.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["n_points"] == 2560 and data["n_load_groups"] == 4
    assert data["runs_min"] == 2560 * 6 and data["runs_max"] == 2560 * 14
    assert data["config_hash"] == config_hash(load_config(DATA / "valid_full.yaml"))


def test_cli_show_prints_normalized_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["config", "show", str(DATA / "valid_ranges.yaml")]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert data["grid"]["threads"] == [1, 2, 4, 8]
    assert data["grid"]["ubatch"] == ["auto"]
    assert parse_config(data).normalized() == load_config(DATA / "valid_lists.yaml").normalized()
    assert main(["config", "show", "--json", str(DATA / "valid_ranges.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["grid"]["n_gpu_layers"] == [0, 11, 22]


def test_cli_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "energybench sweep config"
    assert "grid" in schema["properties"]


def test_cli_in_a_subprocess(cli) -> None:  # the installed entry point, exit codes as a shell sees them
    ok = cli("config", "validate", str(DATA / "valid_minimal.yaml"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")
    bad = cli("config", "validate", str(DATA / "bad_negative_threads.yaml"))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "grid.threads[1] = -2" in bad.stderr


def test_sweep_config_is_frozen() -> None:
    c = load_config(DATA / "valid_minimal.yaml")
    assert isinstance(c, SweepConfig)
    with pytest.raises(Exception):
        c.warmup = 5  # type: ignore[misc]


def test_adaptive_metrics_exist_in_the_results_schema() -> None:
    import typing

    from energybench.results import RUNS_SCHEMA
    from energybench.sweep.config import ADAPTIVE_METRICS, AdaptiveMetric

    assert typing.get_args(AdaptiveMetric) == ADAPTIVE_METRICS
    for metric in ADAPTIVE_METRICS:
        assert metric in RUNS_SCHEMA or metric in ("j_per_token", "j_per_token_net"), metric


@pytest.mark.parametrize("name", ["valid_minimal.yaml", "valid_full.yaml"])
def test_normalized_dict_round_trips(name: str) -> None:
    """metadata.json stores config.normalized(); a resume can rebuild the same config from it."""
    c = load_config(DATA / name)
    stored = json.loads(json.dumps(c.normalized()))
    again = parse_config(stored, source="metadata.json")
    assert again.normalized() == c.normalized() and config_hash(again) == config_hash(c)
